"""One write run, fully described: a frozen, typed configuration.

The CLI builds one :class:`RunConfig` from its options (flag > environment > profile >
default); a Python caller builds it directly. Everything that repeats a run's options derives
from it here, in one place: the JSON summary's ``options``, the check that ``--resume``
continues a run made with the same planning options, and the resume command printed after an
interrupted run.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import field, replace
from pathlib import Path
from typing import Literal

from bulkusers.commands import Command, command_spec
from bulkusers.concurrency import CEILING, DEFAULT_MAXIMUM
from bulkusers.config import Connection, RetryPolicy
from bulkusers.errors import ConfigError
from bulkusers.frozen import frozen
from bulkusers.guards import Confirm, Limit
from bulkusers.readers import ReadOptions
from bulkusers.rules import PlanOptions
from bulkusers.sync import SyncOptions
from bulkusers.words import set_to


@frozen
class Safety:
    """The guards of a run: dry run, strictness, limits, confirmation, resume, breaker."""

    dry_run: bool = False
    strict: bool = False
    max_changes: Limit = field(default_factory=Limit)
    confirm: Confirm | None = None
    resume: Path | None = None
    #: Consecutive rows that exhausted their retries on connection errors or 5xx before
    #: the run stops, so a dead server does not fail thousands of rows one by one.
    breaker: int = 5


@frozen
class RunConfig:
    """Everything one write run needs to know, checked by mypy, frozen once built."""

    command: Command
    connection: Connection
    #: The file to read (CSV, TSV or XLSX; reactivate: a report). None when the rows come
    #: from Python (``bulkusers.run(..., rows=...)``).
    input_path: Path | None = None
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    read: ReadOptions = field(default_factory=ReadOptions)
    plan: PlanOptions = field(default_factory=PlanOptions)
    safety: Safety = field(default_factory=Safety)
    #: sync only: the scope and what happens to users in scope the file does not list.
    sync: SyncOptions | None = None
    #: Write the per-row report (and its JSON summary, undo journal). The CLI always does;
    #: a Python caller gets each row's result as it finishes and asks for a report if needed.
    write_report: bool = True
    report_path: Path | None = None
    #: Where a report named by default goes (None: the current folder).
    report_dir: Path | None = None
    #: Requests in flight: "auto" finds the server's capacity (up to max_concurrency), a
    #: number fixes it (backing off only when the server refuses or times out).
    concurrency: int | Literal["auto"] = "auto"
    max_concurrency: int = DEFAULT_MAXIMUM
    batch_size: int = 50
    #: Accept an input without rows (a nightly leavers list is often empty).
    allow_empty: bool = False
    #: Take over Ctrl-C while sending (first: stop taking rows; second: cancel). The CLI does;
    #: a library call leaves the caller's signal handlers alone.
    handle_sigint: bool = True

    def __post_init__(self) -> None:
        # The CLI's values are bounded by click; a Python caller's are checked here, so that
        # a wrong one is a ConfigError (exit 2, nothing sent), never a TypeError mid-run.
        spec = command_spec(self.command)  # ConfigError for an unknown command
        plan, defaults = self.plan, spec.default_plan
        if plan.on_existing is None or plan.groups_mode is None:
            # The modes a caller left unset are the command's own (sync updates and
            # replaces groups; import skips and adds), as its CLI options default to.
            plan = replace(plan, on_existing=plan.on_existing or defaults.on_existing,
                           groups_mode=plan.groups_mode or defaults.groups_mode)
            object.__setattr__(self, "plan", plan)
        if spec.on_existing is not None and self.plan.on_existing != spec.on_existing:
            raise ConfigError(
                f"{self.command} plans with on_existing={spec.on_existing!r}, not "
                f"{self.plan.on_existing!r}: give PlanOptions(on_existing="
                f"{spec.on_existing!r}, ...) or no plan at all (its defaults: "
                f"{_plan_words(spec.default_plan)})")
        _count("max_concurrency", self.max_concurrency, CEILING)
        if self.concurrency != "auto":
            # A fixed number is its own maximum: max_concurrency bounds "auto" (a maximum a
            # caller set is checked against it where the caller's choices are known).
            _count("concurrency", self.concurrency, CEILING, "or 'auto'")
        _count("batch_size", self.batch_size, MAX_BATCH)

    @property
    def source_name(self) -> str:
        """The input as the summary names it."""
        return str(self.input_path) if self.input_path is not None else "(rows from Python)"

    @property
    def input_name(self) -> Path:
        """The input file, or the name the reports of rows from Python are named after."""
        return self.input_path or Path("rows")

    def check_runnable(self, *, from_python: bool) -> None:
        """Refuse a configuration that cannot run, before anything is read or sent
        (``from_python``: the rows come from Python, not from a file)."""
        if self.input_path is None and not from_python:
            raise ConfigError("no input: give an input file, or rows from Python")
        if self.input_path is not None and from_python:
            raise ConfigError("give an input file or rows from Python, not both")
        if self.safety.resume is not None and not self.write_report:
            raise ConfigError("resume continues a report: a run that writes no report cannot "
                              "resume one")
        if from_python and command_spec(self.command).reads_report:
            raise ConfigError(f"{self.command} reads the report of an earlier run; give its "
                              "path as the input file")

    def options(self) -> dict[str, object]:
        """The run's options for the JSON summary and the resume check: never a secret."""
        options: dict[str, object] = {
            "url": self.connection.url, "api": self.connection.api,
            "concurrency": self.concurrency, "max_concurrency": self.max_concurrency,
            "batch_size": self.batch_size, "default_role": self.plan.default_role,
            "on_existing": self.plan.on_existing, "groups": self.plan.groups_mode,
            "create_groups": self.plan.create_groups, "dry_run": self.safety.dry_run,
            "strict": self.safety.strict, "max_changes": self.safety.max_changes.count,
            "max_changes_percent": self.safety.max_changes.percent,
            "resume": str(self.safety.resume or ""), "encoding": self.read.encoding,
            "delimiter": self.read.delimiter, "sheet": self.read.sheet,
            "header_row": self.read.header_row}
        if self.sync is not None:
            options.update({"missing": self.sync.missing,
                            "scope_domains": list(self.sync.domains),
                            "scope_groups": list(self.sync.groups),
                            "max_missing": self.sync.max_missing.count,
                            "max_missing_percent": self.sync.max_missing.percent})
        return options


#: The largest batch of creates or deletes in one request (as --batch-size allows).
MAX_BATCH = 1000


def _count(name: str, value: object, most: int, other: str = "") -> None:
    """ConfigError unless ``value`` is a whole number from 1 to ``most`` (``other``: what
    else the setting may be, for the message)."""
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= most:
        extra = f" {other}" if other else ""
        raise ConfigError(f"{name}={value!r}: a whole number from 1 to {most}{extra}")


def _plan_words(plan: PlanOptions) -> str:
    """A PlanOptions' modes as a Python caller would write them."""
    return f"on_existing={plan.on_existing!r}, groups_mode={plan.groups_mode!r}"


#: Options that change what a row means, (key in ``RunConfig.options()``, flag, default): a
#: resumed run must use the same ones. Every command must match the connection's and the
#: reading's (COMMON_RESUME_OPTIONS); each command declares its own others
#: (``CommandSpec.resume_options``).
PLAN_OPTIONS: tuple[tuple[str, str, object], ...] = (
    ("url", "--url", None),
    ("api", "--api", "v1"),
    ("encoding", "--encoding", "utf-8-sig"),
    ("delimiter", "--delimiter", None),
    ("sheet", "--sheet", None),
    ("header_row", "--header-row", None),
    ("default_role", "--default-role", None),
    ("on_existing", "--on-existing", "skip"),
    ("groups", "--groups", "add"),
    ("create_groups", "--create-groups", False),
    ("missing", "--missing", "deactivate"),
    ("scope_domains", "--scope-domain", []),
    ("scope_groups", "--scope-group", []),
)


#: The options every command's resume must repeat: where it sends and how it reads.
COMMON_RESUME_OPTIONS = ("url", "api", "encoding", "delimiter", "sheet", "header_row")


def option_flags(options: Mapping[str, object],
                 keys: Collection[str] | None = None) -> list[str]:
    """The command-line flags that repeat a run's planning options (those in ``keys``, all by
    default; defaults left out)."""
    flags: list[str] = []
    for key, flag, default in PLAN_OPTIONS:
        if keys is not None and key not in keys:
            continue
        value = options.get(key, default)
        if value != default:
            flags.extend(_words(flag, value))
    return flags


def _words(flag: str, value: object) -> list[str]:
    """The command-line words that set an option to ``value``: none for a value no flag
    gives (None, False, an empty list), the flag alone for True, the flag with each value."""
    if value is None or value is False or value == []:
        return []
    if value is True:
        return [flag]
    values = value if isinstance(value, list) else [value]  # a repeatable option: each
    return [word for item in values for word in (flag, "tab" if item == "\t" else str(item))]


def differing_options(earlier: Mapping[str, object], now: Mapping[str, object],
                      keys: Collection[str]) -> list[str]:
    """The flags of the planning options (among ``keys``) in which two runs differ."""
    return [flag for key, flag, default in PLAN_OPTIONS
            if key in keys and earlier.get(key, default) != now.get(key, default)]


def option_setting(options: Mapping[str, object], flag: str) -> str:
    """How a run set one planning option, in words a command line shows: ``--on-existing
    skip``, ``--create-groups``, or ``no --default-role`` when it was not given (a default
    is shown with its value, so that a refusal can name it)."""
    for key, known, default in PLAN_OPTIONS:
        if known == flag:
            return " ".join(_words(flag, options.get(key, default))) or f"no {flag}"
    raise KeyError(flag)


def option_argument(options: Mapping[str, object], flag: str) -> str:
    """How a Python caller set one planning option (by its flag), default values included:
    ``PlanOptions(on_existing='skip')``."""
    for key, known, default in PLAN_OPTIONS:
        if known == flag:
            value = options.get(key, default)
            return set_to(flag, tuple(value) if isinstance(value, list) else value)
    raise KeyError(flag)


def option_arguments(options: Mapping[str, object],
                     keys: Collection[str] | None = None) -> list[str]:
    """The Python arguments that repeat a run's planning options (those in ``keys``, all by
    default; defaults left out), as ``option_flags`` gives the command line's."""
    return [option_argument(options, flag) for key, flag, default in PLAN_OPTIONS
            if (keys is None or key in keys) and options.get(key, default) != default]

