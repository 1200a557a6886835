"""The layout docs/architecture.md describes holds: every module on its map, no import cycle,
dependencies that point one way, and a command line that starts without loading the heavy
libraries."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

import bulkusers
from tests.terminal import RUN_S

PACKAGE = Path(bulkusers.__file__).resolve().parent
ROOT = PACKAGE.parent
#: What ``bulkusers --help`` (and any command's ``--help``) must not load.
HEAVY = ("pandas", "numpy", "openpyxl", "aiohttp", "rich")


def module_name(path: Path) -> str:
    """``bulkusers/cli/common.py`` -> ``bulkusers.cli.common``; a package is its __init__."""
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def imported(path: Path) -> Iterator[str]:
    """Every module a file imports, anywhere in it: at the top, inside functions and under
    ``if TYPE_CHECKING`` (a type-level import is still a dependency)."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            # ``from bulkusers import verify`` imports the module bulkusers.verify; like any
            # import of a submodule it needs its package, which is never counted as an edge
            # (every module needs its package's __init__ first).
            modules = [f"{base}.{a.name}" for a in node.names if f"{base}.{a.name}" in MODULES]
            yield from modules
            if len(modules) < len(node.names):
                yield base


def local_graph() -> dict[str, set[str]]:
    """Module -> the bulkusers modules it imports."""
    return {name: {m for m in imported(path) if m in MODULES and m != name}
            for name, path in MODULES.items()}


def find_cycle(graph: dict[str, set[str]]) -> list[str]:
    """One import cycle as a list of modules (first == last), or [] when there is none."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str]:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return [*path[path.index(nxt):], nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        path.pop()
        state[node] = 2
        return []

    for start in sorted(graph):
        if start not in state and (cycle := visit(start)):
            return cycle
    return []


def roots(path: Path) -> set[str]:
    """The top-level packages a file imports."""
    return {m.split(".")[0] for m in imported(path)}


def test_the_cycle_finder_finds_a_cycle() -> None:
    """The checker itself sees a two-module cycle and a longer one, and passes a tree."""
    assert find_cycle({"a": {"b"}, "b": {"a"}}) == ["a", "b", "a"]
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b", "c"}, "b": {"c"}, "c": set()}) == []


def test_no_import_cycle_among_bulkusers_modules() -> None:
    """No bulkusers module imports, even for types or inside a function, one that imports it
    back (directly or around a longer loop)."""
    graph = local_graph()
    assert graph["bulkusers.api"] >= {"bulkusers.directory"}  # the walk does see imports
    assert find_cycle(graph) == []


def test_errors_imports_no_aiohttp() -> None:
    """errors.py (the exception tree, used by readers and planning) never imports aiohttp,
    not even inside a function; the network wording lives in network.py."""
    assert "aiohttp" not in roots(PACKAGE / "errors.py")
    assert "aiohttp" in roots(PACKAGE / "network.py")


def test_only_the_cli_imports_click_or_rich() -> None:
    """click and rich are imported only under bulkusers/cli/."""
    offenders = {name: sorted(roots(path) & {"click", "rich"}) for name, path in MODULES.items()
                 if not name.startswith("bulkusers.cli")}
    assert {name: found for name, found in offenders.items() if found} == {}
    assert "rich" in roots(PACKAGE / "cli" / "console.py")


def test_the_core_never_imports_the_emulator() -> None:
    """Only the CLI (the emulator and demo commands) imports bulkusers.emulator; the core
    and the client do not, and the emulator imports nothing else of bulkusers but the
    identity rule it shares with the client and how a value class is declared."""
    graph = local_graph()
    core = {name for name in MODULES if not name.startswith(("bulkusers.cli",
                                                             "bulkusers.emulator"))}
    assert {n: sorted(graph[n]) for n in core
            if any(m.startswith("bulkusers.emulator") for m in graph[n])} == {}
    emulator = {n for n in MODULES if n.startswith("bulkusers.emulator")}
    allowed = emulator | {"bulkusers", "bulkusers.identity", "bulkusers.frozen"}
    assert {n: sorted(graph[n] - allowed) for n in emulator if graph[n] - allowed} == {}
    assert any(m.startswith("bulkusers.emulator") for m in graph["bulkusers.cli.demo"])


def test_value_classes_are_declared_with_frozen() -> None:
    """Every immutable value class uses @frozen (read-only for mypy, cheap to make), never
    @dataclass(frozen=True), whose per-field guard made values cost six times as much."""
    found = []
    for path in MODULES.values():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ClassDef):
                for decorator in node.decorator_list:
                    if isinstance(decorator, ast.Call) and any(
                            keyword.arg == "frozen" for keyword in decorator.keywords):
                        found.append(f"{module_name(path)}.{node.name}")
    assert found == []


def test_cli_copies_of_core_constants_agree() -> None:
    """The values the CLI writes out to declare its options without importing the core are
    the core's own."""
    from bulkusers.cli.common import DEFAULT_MAX_CELL_BYTES
    from bulkusers.cli.sync import MISSING_CHOICES
    from bulkusers.readers import DEFAULT_MAX_CELL_BYTES as READERS_DEFAULT
    from bulkusers.sync import MISSING_CHOICES as SYNC_CHOICES

    assert DEFAULT_MAX_CELL_BYTES == READERS_DEFAULT
    assert MISSING_CHOICES == SYNC_CHOICES


#: Runs each help in a fresh interpreter and reports which heavy modules each one loaded.
HELP_PROBE = """
import json, sys
from bulkusers.cli import cli
heavy = {heavy!r}
seen = {{}}
for args in {commands!r}:
    try:
        cli.main(args, prog_name="bulkusers", standalone_mode=False)
    except SystemExit:
        pass
    seen[" ".join(args)] = sorted(m for m in sys.modules if m.split(".")[0] in heavy)
print(json.dumps(seen))
"""

HELPS = [["--help"], ["--version"], *([*c.split(), "--help"] for c in (
    "import", "update", "deactivate", "reactivate", "delete", "sync", "export", "diff",
    "emulator", "demo", "config", "config show", "config path"))]


def test_help_and_version_do_not_load_heavy_libraries() -> None:
    """`bulkusers --help`, `--version` and every command's --help, in a fresh interpreter,
    load none of pandas, numpy, openpyxl, aiohttp or rich (nor the run core)."""
    code = HELP_PROBE.format(heavy=(*HEAVY, "bulkusers"), commands=HELPS)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=RUN_S, check=True, cwd=ROOT)
    seen: dict[str, list[str]] = json.loads(done.stdout.strip().splitlines()[-1])
    assert list(seen) == [" ".join(args) for args in HELPS]
    loaded = {args: [m for m in mods if m.split(".")[0] in HEAVY] for args, mods in seen.items()}
    assert {args: mods for args, mods in loaded.items() if mods} == {}
    core = {"bulkusers.jobs", "bulkusers.readers", "bulkusers.client", "bulkusers.export",
            "bulkusers.exportfile", "bulkusers.diff", "bulkusers.planner",
            "bulkusers.cli.console"}
    assert sorted(core.intersection(seen["config path --help"])) == []


#: Reading, planning, the report and the summary: what runs without the network stack
#: or a terminal (a dry run's whole path but the server check).
OFFLINE = ("intake", "readers", "tables", "csvfile", "workbooks", "sheetxml", "planner",
           "resolve", "rules", "plan", "tasks", "results", "report", "reportwriter",
           "summary", "guards", "sync", "journal", "ledger")


def test_reading_planning_and_records_load_no_network_or_terminal_library() -> None:
    """Reading, planning, the report and the summary, imported in a fresh interpreter,
    load none of aiohttp, click or rich."""
    code = ("import importlib, json, sys\n"
            f"for name in {OFFLINE!r}: importlib.import_module('bulkusers.' + name)\n"
            "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in "
            "('aiohttp', 'click', 'rich'))))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=RUN_S, check=True, cwd=ROOT)
    assert json.loads(done.stdout.strip().splitlines()[-1]) == []


@pytest.mark.parametrize("args", [["--help"], ["--version"]])
def test_console_script_help_runs_in_a_fresh_process(args: list[str]) -> None:
    """`python -m bulkusers --help` / `--version` exit 0 with their text (the path the
    startup benchmark times)."""
    done = subprocess.run([sys.executable, "-m", "bulkusers", *args], capture_output=True,
                          text=True, timeout=RUN_S, check=False, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    assert ("Usage: bulkusers" in done.stdout) if args == ["--help"] else \
        (bulkusers.__version__ in done.stdout)


def named_in_the_map(path: Path, text: str) -> bool:
    """Whether docs/architecture.md names a module: its path below bulkusers/ or its file name
    in backticks, or, for a command's declaration, the commands/ folder it lives in."""
    relative = path.relative_to(PACKAGE).as_posix()
    if relative.startswith("commands/"):
        return "`commands/`" in text
    return f"`{relative}`" in text or f"`{path.name}`" in text


def test_named_in_the_map_tells_a_named_module_from_an_unnamed_one() -> None:
    """The check below can fail: a module the text does not name is reported as missing."""
    text = "| `planner.py` | ... | `cli/write.py` | `commands/` |"
    assert named_in_the_map(PACKAGE / "planner.py", text)
    assert named_in_the_map(PACKAGE / "cli" / "write.py", text)
    assert named_in_the_map(PACKAGE / "commands" / "import_users.py", text)
    assert not named_in_the_map(PACKAGE / "jsonlines.py", text)
    assert not named_in_the_map(PACKAGE / "commands" / "import_users.py", "`planner.py`")


def test_every_module_is_on_the_architecture_map() -> None:
    """docs/architecture.md, the map of the code, names every module of the package: a new
    module cannot land without its line."""
    text = (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")
    missing = [p.relative_to(PACKAGE).as_posix() for p in MODULES.values()
               if not named_in_the_map(p, text)]
    assert missing == []
