"""Help that matches the command, global options anywhere, shell completion, and the words
a person reads in summaries, prompts and long lines."""

from __future__ import annotations

import json
import logging
import os
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import click
import pytest
from click.testing import Result

from bulkusers.cli import cli
from bulkusers.words import count
from tests.conftest import TOKEN, Served, read_report, write_csv
from tests.terminal import RUN_S, answer_prompt

RunCli = Callable[..., Result]
COMMANDS = ("import", "update", "deactivate", "reactivate", "delete", "sync", "export",
            "diff", "emulator", "demo", "config show", "config path")


def command(path: str) -> click.Command:
    """The click command at a path such as 'config show'."""
    found: click.Command = cli
    for name in path.split():
        assert isinstance(found, click.Group)
        found = found.commands[name]
    return found


def offered(path: str) -> set[str]:
    """The long option names a command's --help offers."""
    return {name for param in command(path).params if isinstance(param, click.Option)
            and not param.hidden for name in param.opts if name.startswith("--")}


@pytest.mark.parametrize("path", COMMANDS)
def test_every_offered_option_has_a_help_line(path: str, run_cli: RunCli) -> None:
    """Each option a command shows has help text, and --help prints each of them."""
    for param in command(path).params:
        if isinstance(param, click.Option) and not param.hidden:
            assert (param.help or "").strip(), f"{path}: {param.opts} has no help"
    result = run_cli(*path.split(), "--help")
    assert result.exit_code == 0
    for name in offered(path):
        assert name in result.output


def test_yes_is_offered_only_where_a_prompt_exists(served: Served, run_cli: RunCli,
                                                  tmp_path: Path) -> None:
    """--yes is on deactivate, delete and sync; import, update and reactivate do not show it
    and, if a script passes it anyway, run as before with one warning naming the commands
    that ask."""
    for name in ("deactivate", "delete", "sync"):
        assert "--yes" in offered(name)
    source = write_csv(tmp_path / "hr.csv", ("Email", "Role"), [["a@acme.example", "viewer"]])
    assert run_cli("import", str(source), *served.connect()).exit_code == 0
    assert run_cli("deactivate", str(source), *served.connect(), "--yes").exit_code == 0
    report = next(tmp_path.glob("hr.deactivate.*.report.csv"))
    for name, target in (("import", source), ("update", source), ("reactivate", report)):
        assert "--yes" not in offered(name)
        result = run_cli(name, str(target), *served.connect(), "--yes")
        assert result.exit_code == 0, result.output
        warnings = [line for line in result.output.splitlines() if "warning" in line]
        assert warnings == ["bulkusers: warning: --yes does nothing here: only deactivate, "
                            "delete and sync ask before changing users; drop it"]


def test_each_command_offers_only_the_options_it_uses() -> None:
    """Batching only where requests are batched, reading options only where a file is read,
    connection and profile options only where a server is reached."""
    assert "--batch-size" in offered("import")
    assert "--batch-size" in offered("delete")
    for name in ("update", "deactivate", "reactivate", "export"):
        assert "--batch-size" not in offered(name)
    for name in ("import", "update", "deactivate", "delete"):
        assert {"--header-row", "--sheet", "--report-dir", "--profile"} <= offered(name)
    assert "--header-row" not in offered("reactivate")
    assert "--report-dir" in offered("reactivate")
    assert {"--report-dir", "--profile", "--ca-bundle"} <= offered("export")
    assert "--concurrency" not in offered("export")
    for name in ("emulator", "demo"):
        assert not {"--profile", "--url", "--yes", "--quiet"} & offered(name)
        assert "--debug" in offered(name)
    assert {"--debug", "--quiet"} <= offered("diff")
    assert not {"--profile", "--url"} & offered("diff")
    assert "--quiet" not in offered("config show")
    assert {"--url", "--token", "--profile", "--report-dir"} <= offered("config show")


def test_update_help_does_not_document_a_password_column(run_cli: RunCli) -> None:
    """update never sets a password, so its help names no password column; import's does."""
    update = " ".join(run_cli("update", "--help").output.split())
    assert "password (only used" not in update
    assert "Passwords are never changed" in update
    text = " ".join(run_cli("import", "--help").output.split())
    assert "password (only used when creating)" in text


def test_connection_options_name_their_environment_variables(run_cli: RunCli) -> None:
    """Every connection option has a variable, and --help names it."""
    text = run_cli("export", "--help").output
    for variable in ("SISENSE_URL", "SISENSE_TOKEN", "SISENSE_USERNAME", "SISENSE_PASSWORD",
                     "SISENSE_API", "SISENSE_API_SECRET", "SISENSE_CA_BUNDLE",
                     "SISENSE_INSECURE", "SISENSE_RETRIES", "SISENSE_TIMEOUT",
                     "SISENSE_MAX_RATE", "BULKUSERS_REPORT_DIR"):
        assert variable in text


def test_environment_supplies_tls_and_request_settings(served: Served, run_cli: RunCli,
                                                       tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """SISENSE_CA_BUNDLE and SISENSE_INSECURE act as the flags do: the bundle is checked,
    and insecure contradicts it."""
    monkeypatch.setenv("SISENSE_CA_BUNDLE", str(tmp_path / "missing.pem"))
    result = run_cli("export", "u.csv", *served.connect())
    assert result.exit_code == 2
    assert "missing.pem is not a readable file" in result.output
    monkeypatch.setenv("SISENSE_INSECURE", "1")
    result = run_cli("export", "u.csv", *served.connect())
    assert result.exit_code == 2
    assert "contradict" in result.output


@pytest.mark.parametrize("where", ["before", "after"])
def test_debug_and_quiet_work_before_or_after_the_command(
        served: Served, run_cli: RunCli, tmp_path: Path, where: str) -> None:
    """--debug logs requests and --quiet drops the summary, wherever they are written."""
    source = write_csv(tmp_path / "hr.csv", ("Email", "Role"), [["a@acme.example", "viewer"]])
    args = ["import", str(source), *served.connect(), "--report", f"{where}.csv"]
    flags = ["--debug", "--quiet"]
    result = run_cli(*(flags + args if where == "before" else args + flags))
    assert result.exit_code == 0, result.output
    assert re.search(r"bulkusers\.http: GET /api/v1/users\S* -> 200", result.output)
    assert "report:" not in result.output


def test_debug_logging_ends_with_its_command(
        served: Served, run_cli: RunCli, tmp_path: Path) -> None:
    """--debug's stderr handler and level last only as long as its command: the next command
    in the same process (without --debug) logs nothing and writes to no earlier stderr."""
    logger = logging.getLogger("bulkusers")
    handlers, level = list(logger.handlers), logger.level
    source = write_csv(tmp_path / "hr.csv", ("Email", "Role"), [["a@acme.example", "viewer"]])
    first = run_cli("--debug", "import", str(source), *served.connect(), "--report", "a.csv")
    assert first.exit_code == 0, first.output
    assert "bulkusers.http: GET" in first.output
    assert (logger.handlers, logger.level) == (handlers, level)
    second = run_cli("import", str(source), *served.connect(), "--report", "b.csv")
    assert second.exit_code == 0, second.output
    assert "bulkusers.http" not in second.output


def test_shell_completion_script_is_produced(tmp_path: Path) -> None:
    """`_BULKUSERS_COMPLETE=bash_source bulkusers` (and zsh, fish) print a completion
    script, as the README says."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SISENSE_", "BULKUSERS_"))}
    script = Path(sys.executable).parent / "bulkusers"
    program = [str(script)] if script.exists() else [sys.executable, "-m", "bulkusers"]
    for shell, marker in (("bash", "complete -o nosort -F"), ("zsh", "compdef"),
                          ("fish", "complete --no-files --command bulkusers")):
        done = subprocess.run(program, env=env | {"_BULKUSERS_COMPLETE": f"{shell}_source"},
                              capture_output=True, text=True, timeout=RUN_S, check=False)
        assert done.returncode == 0, done.stderr
        assert marker in done.stdout
    done = subprocess.run(program, env=env | {"_BULKUSERS_COMPLETE": "bash_complete",
                                              "COMP_WORDS": "bulkusers dea", "COMP_CWORD": "1"},
                          capture_output=True, text=True, timeout=RUN_S, check=False)
    assert "deactivate" in done.stdout


@pytest.mark.parametrize(("number", "words"), [(0, "0 rows"), (1, "1 row"), (2, "2 rows")])
def test_counts_take_the_right_plural(number: int, words: str) -> None:
    """count() gives the singular for one only."""
    assert count(number, "row") == words
    assert count(number, "retry", "retries").endswith("retry" if number == 1 else "retries")


def test_summary_words_for_one_row_and_already_there(served: Served, run_cli: RunCli,
                                                     tmp_path: Path) -> None:
    """One row reads '1 row has'; a second import counts the user as 'already there', not
    with the invalid rows, and says so in the JSON summary too."""
    source = write_csv(tmp_path / "hr.csv", ("Email", "Role"), [["a@acme.example", "viewer"]])
    first = run_cli("import", str(source), *served.connect(), "--report", "1.csv")
    assert "1 of 1 row has an outcome" in first.output
    assert not re.search(r"\b1 (rows|requests|problems)\b", first.output)
    bad = write_csv(tmp_path / "again.csv", ("Email", "Role"), [["a@acme.example", "viewer"],
                                                                ["bad", "viewer"]])
    second = run_cli("import", str(bad), *served.connect(), "--report", "2.csv")
    assert second.exit_code == 1
    assert re.search(r"already there\s+1", second.output)
    assert re.search(r"invalid\s+1", second.output)
    assert "1 row needs attention" in second.output
    summary = (tmp_path / "2.summary.json").read_text(encoding="utf-8")
    assert '"already_there": 1' in summary
    assert '"invalid": 1' in summary


def test_roles_are_shown_as_the_ui_names_them(served: Served, run_cli: RunCli,
                                              tmp_path: Path) -> None:
    """changes read 'role: Viewer -> Data Designer'; the previous JSON keeps the API name."""
    source = write_csv(tmp_path / "hr.csv", ("Email", "Role"), [["a@acme.example", "viewer"]])
    assert run_cli("import", str(source), *served.connect()).exit_code == 0
    change = write_csv(tmp_path / "up.csv", ("Email", "Role"),
                       [["a@acme.example", "dataDesigner"]])
    assert run_cli("update", str(change), *served.connect(), "--report", "u.csv").exit_code == 0
    line = read_report(tmp_path / "u.csv")[0]
    assert line["changes"] == "role: Viewer -> Data Designer"
    assert json.loads(line["previous"])["role"] == "consumer"


def test_declining_the_prompt_is_calm(served: Served, run_cli: RunCli, tmp_path: Path) -> None:
    """Answering 'n' prints 'Nothing was sent.' and no error line; exit 3 as documented."""
    source = write_csv(tmp_path / "hr.csv", ("Email", "Role"), [["a@acme.example", "viewer"]])
    assert run_cli("import", str(source), *served.connect()).exit_code == 0
    code, text = answer_prompt(["delete", str(source), *served.connect()], tmp_path, b"n\n")
    assert code == 3, text
    assert "Delete 1 user?" in text
    assert "Nothing was sent." in text
    assert "error" not in text
    assert served.emulator.store.user_by_email("a@acme.example") is not None


def test_long_lines_are_not_wrapped_off_a_terminal(served: Served, tmp_path: Path) -> None:
    """Off a terminal, a long error and the summary's example rows stay one line each."""
    long_group = "G" * 70  # long names are shortened in messages: keep it whole
    source = write_csv(tmp_path / "hr.csv", ("Email", "Role", "Groups"),
                       [["a@acme.example", "viewer", long_group]])
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SISENSE_", "BULKUSERS_"))}
    env["COLUMNS"] = "80"
    done = subprocess.run([sys.executable, "-m", "bulkusers", "import", str(source), "--url",
                           served.url, "--token", TOKEN], capture_output=True, text=True,
                          env=env, cwd=tmp_path, timeout=RUN_S, check=False)
    assert done.returncode == 1, done.stderr
    example = [line for line in done.stderr.splitlines() if "a@acme.example" in line]
    assert len(example) == 1
    assert long_group in example[0]
    assert "pass --create-groups" in example[0]
    assert len(example[0].rstrip()) > 120


def test_creates_and_strict_refusals_use_ui_role_names_and_plurals(
        served: Served, run_cli: RunCli, tmp_path: Path) -> None:
    """A create's changes name the role as the UI does ('role Designer'); --strict with one
    bad row says '1 row is invalid', never '1 rows are'."""
    source = write_csv(tmp_path / "hr.csv", ("Email", "Role"),
                       [["a@acme.example", "contributor"]])
    assert run_cli("import", str(source), *served.connect(), "--report", "c.csv").exit_code == 0
    assert "role Designer" in (tmp_path / "c.csv").read_text(encoding="utf-8-sig")
    bad = write_csv(tmp_path / "bad.csv", ("Email", "Role"),
                    [["b@acme.example", "viewer"], ["nope", "viewer"]])
    result = run_cli("import", str(bad), *served.connect(), "--strict")
    assert result.exit_code == 2
    assert "--strict: 1 row is invalid" in result.output
    # Word boundaries: a speed such as "111 rows/s" is not the wording checked here.
    assert not re.search(r"\b1 rows\b", result.output), result.output


def test_compare_needs_a_file_output(served: Served, run_cli: RunCli, tmp_path: Path) -> None:
    """export - --compare PREVIOUS is refused before anything is asked of the server."""
    previous = write_csv(tmp_path / "old.csv", ("email", "role"), [["a@acme.example", "x"]])
    result = run_cli("export", "-", "--compare", str(previous), *served.connect())
    assert result.exit_code == 2
    assert "--compare needs OUTPUT to be a file" in result.output
    assert served.emulator.requests == []
