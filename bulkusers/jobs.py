"""Whole runs: read, plan, judge and carry out one write command end to end (no printing)."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

from bulkusers.api import UserApi, make_api
from bulkusers.client import SisenseClient
from bulkusers.concurrency import ConcurrencyLimit
from bulkusers.config import Connection, RetryPolicy
from bulkusers.directory import Directory, Group, User, load_directory
from bulkusers.errors import (
    ApiError,
    InputError,
    ReportUnwritable,
    ServerUnavailable,
)
from bulkusers.execution import Executor
from bulkusers.journal import Journal, journal_path
from bulkusers.ledger import STATE_DIR_VARIABLE, Ledger, read_ledger
from bulkusers.models import Header, Row
from bulkusers.operations import Planner, PlanOptions, protected_users
from bulkusers.pipeline import Observer, Recorder, SilentObserver, execute
from bulkusers.preflight import (
    DESTRUCTIVE,
    Confirm,
    Limit,
    Preflight,
    check_confirmation,
    check_limit,
    count_plan,
)
from bulkusers.prescan import Prescan, prescan
from bulkusers.readers import ReadOptions, open_table
from bulkusers.report import (
    ReportLine,
    ReportWriter,
    check_report_path,
    compact_report,
    default_report_path,
    read_report,
    secret_columns,
    summary_path,
)
from bulkusers.resume import Earlier, file_sha256, load_earlier
from bulkusers.summary import RunSummary
from bulkusers.sync import Reconciler, SyncOptions, refuse_empty
from bulkusers.tasks import Task, WorkItem, batched, describe
from bulkusers.words import count

Command = Literal["import", "update", "deactivate", "delete", "reactivate", "sync"]
#: Commands that read and keep the machine's deactivation records (see ledger.py).
LEDGERED = frozenset({"deactivate", "delete", "reactivate", "sync"})
#: Commands that keep an undo journal of their destructive requests.
JOURNALED = DESTRUCTIVE | {"sync"}


@dataclass(frozen=True, slots=True)
class RunSettings:
    """What every write command shares: input, report, pool and batch sizes."""

    input_path: Path
    read: ReadOptions = field(default_factory=ReadOptions)
    report_path: Path | None = None
    #: Where a report named by default goes (None: the current folder).
    report_dir: Path | None = None
    #: Requests in flight: "auto" finds the server's capacity (up to max_concurrency), a
    #: number fixes it (backing off only when the server refuses or times out).
    concurrency: int | Literal["auto"] = "auto"
    max_concurrency: int = 64
    batch_size: int = 50
    handle_sigint: bool = True
    #: Accept an input without rows (a nightly leavers list is often empty).
    allow_empty: bool = False


@dataclass(frozen=True, slots=True)
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


@dataclass(frozen=True, slots=True)
class _Input:
    """A command's input made uniform: a header, re-readable rows, its count and hash."""

    header: Header
    rows: Callable[[], Iterator[Row]]
    scan: Prescan
    sha256: str
    lines: tuple[ReportLine, ...] = ()
    #: The worksheet read, for a workbook.
    sheet: str | None = None


async def _open_input(command: Command, settings: RunSettings) -> _Input:
    """Read the input (all errors here are InputError: exit 2, nothing sent)."""
    path = settings.input_path
    if command == "reactivate":
        lines = await asyncio.to_thread(lambda: tuple(read_report(path)))
        actions = sorted({line.action for line in lines if line.action})
        if lines and "deactivate" not in actions:
            raise InputError(f"{path}: deactivated nobody (its lines are {', '.join(actions)}); "
                             "reactivate takes the report of a deactivate run")
        if any(line.status == "planned" for line in lines):
            # Its records are the users' state before a deactivation that never happened:
            # "restoring" them would undo whatever changed since.
            raise InputError(f"{path}: is the report of a dry run, which deactivated nobody; "
                             "reactivate takes the report of a deactivate run that was sent")
        sha = await asyncio.to_thread(file_sha256, path)
        rows = tuple(Row(line.line, ()) for line in lines)
        return _Input(Header((), {}), lambda: iter(rows), Prescan(total=len(lines)), sha, lines)
    table = open_table(path, settings.read)
    scan = await asyncio.to_thread(prescan, table.rows, table.header)
    sha = await asyncio.to_thread(file_sha256, path)
    return _Input(table.header, table.rows, scan, sha, sheet=table.sheet)


def _plan_function(command: Command, planner: Planner,
                   source: _Input) -> Callable[[Row], WorkItem]:
    if command == "reactivate":
        by_line = {line.line: line for line in source.lines}
        return lambda row: planner.plan_reactivate(by_line[row.number])
    return {"import": planner.plan_import, "update": planner.plan_update,
            "sync": planner.plan_import,
            "deactivate": planner.plan_deactivate, "delete": planner.plan_delete}[command]


async def run_command(command: Command, settings: RunSettings, connection: Connection,
                      policy: RetryPolicy, options: PlanOptions,
                      observer: Observer | None = None,
                      safety: Safety | None = None,
                      sync: SyncOptions | None = None) -> RunSummary:
    """Plan, check and carry out every row of the input; every row ends in the report.

    ``sync`` (command "sync" only): the scope and what happens to the users in scope that the
    file does not list; ``bulkusers.sync`` plans them after the rows.
    """
    started = datetime.now(UTC)  # the run's time includes reading, loading and planning
    observer = observer or SilentObserver()
    safety = safety or Safety()
    if safety.resume is None:
        check_report_path(settings.report_path, settings.input_path, settings.report_dir)
    source = await _open_input(command, settings)
    if command == "sync":
        refuse_empty(settings.input_path, source.scan.total)
    if source.scan.total == 0 and not settings.allow_empty:
        raise InputError(f"{settings.input_path}: has no rows, only a header; nothing to do. "
                         "Check it is the right file, or pass --allow-empty where an empty "
                         "list is normal")
    options_now = _options(connection, settings, options, safety)
    if sync is not None:
        options_now.update(sync.summary_options())
    earlier = (load_earlier(safety.resume, command, settings.input_path, source.sha256,
                            options_now) if safety.resume else None)
    skip = earlier.finished if earlier else frozenset()
    limit = concurrency_limit(settings)
    async with SisenseClient(connection, policy, concurrency=limit) as client:
        await client.check()
        api = make_api(client)
        try:
            directory = await load_directory(api)
            me = await api.me()
        except ApiError as exc:
            raise ServerUnavailable(f"reading roles, groups and users from {connection.url} "
                                    f"failed ({exc.describe()}); nothing was sent. Try again "
                                    "later") from None
        records = read_ledger(connection.url) if command in LEDGERED else {}
        protected = protected_users(directory, me)
        planner = Planner(source.header, directory, source.scan, options, protected,
                          prior=earlier.journal if earlier else None, deactivated=records)
        plan = _plan_function(command, planner, source)
        reconciler = None
        if command == "sync":
            reconciler = await Reconciler.prepare(api, planner, source.header, source.rows,
                                                  sync or SyncOptions(missing="report"),
                                                  protected, earlier.report if earlier else None)
            plan = reconciler.plan_row

        def planned() -> Iterator[WorkItem]:
            items: Iterator[WorkItem] = (plan(row) for row in source.rows()
                                         if row.number not in skip)
            if reconciler is not None:
                items = itertools.chain(items, reconciler.tail())  # the out-of-file users
            return batched(items, settings.batch_size)

        describe_task = _describer(directory)
        preview = await asyncio.to_thread(count_plan, planned(), describe_task)
        missing = _stand_in_groups(planner, directory, options)
        if missing:
            preview = await asyncio.to_thread(count_plan, planned(), describe_task)
        refused = _strict_refusal(preview, safety)
        dry_run = safety.dry_run or bool(refused)
        if not dry_run:
            # Every guard judges the whole plan before the first write, groups included.
            if reconciler is not None:
                reconciler.check()
            check_limit(preview, safety.max_changes, directory.user_count)
            # On the loop's own thread: a prompt in a worker thread would keep Ctrl-C waiting
            # for Enter. Nothing else runs while the run waits for its answer.
            check_confirmation(command, preview, safety.confirm)

        report_path, mode = _report_target(command, settings, earlier, dry_run)
        try:
            writer = ReportWriter(report_path, source.header, mode=mode)
        except OSError as exc:
            raise ReportUnwritable(f"cannot write the report {report_path} "
                                   f"({exc.strerror or exc}); nothing was sent") from None
        summary = RunSummary(command=command, started=started,
                             input_file=str(settings.input_path),
                             report_file=str(report_path), total_rows=source.scan.total,
                             options=options_now,
                             input_sha256=source.sha256, dry_run=dry_run, refused=refused,
                             ignored_columns=source.header.unknown,
                             groups_created=missing, sheet=source.sheet or "",
                             masked_columns=tuple(source.header.columns[i] for i in
                                                  sorted(secret_columns(source.header))),
                             affected=list(preview.targets),
                             affected_total=preview.destructive)
        if earlier:
            summary.counts.update(earlier.counts)
            summary.carried_over = len(earlier.finished)
        if reconciler is not None:
            carried = reconciler.carry_over(summary.counts)
            summary.carried_over += carried
            summary.total_rows += reconciler.size + carried
        try:
            summary.write_json(summary_path(report_path))  # a killed run can still resume
        except OSError as exc:
            writer.close()
            raise ReportUnwritable(f"cannot write {summary_path(report_path)} "
                                   f"({exc.strerror or exc}); nothing was sent") from None
        ledger = (Ledger(connection.url, records)
                  if command in LEDGERED and not dry_run else None)
        if ledger is not None:
            try:
                ledger.open()
            except OSError as exc:
                writer.close()
                raise ReportUnwritable(
                    f"cannot keep the deactivation records in {ledger.path.parent} "
                    f"({exc.strerror or exc}); set {STATE_DIR_VARIABLE} to a writable folder; "
                    "nothing was sent") from None
        record = Recorder(writer, summary, observer, safety.breaker,
                          settle=ledger.settle if ledger else None)
        journal = (Journal(journal_path(report_path), fresh=mode != "append", ledger=ledger)
                   if command in JOURNALED and not dry_run else None)
        try:
            if not dry_run:
                # Only now, with every guard passed and the report open: the first write.
                await _create_groups(api, directory, missing)
            observer.started(summary)
            client.relearn_latency()  # page reads and row writes take different times
            await execute(planned(), Executor(api, directory, journal), record,
                          concurrency=limit.maximum, dry_run=dry_run,
                          handle_sigint=settings.handle_sigint, admit=client.gate.admit)
        finally:
            writer.close()
            if journal is not None:
                journal.close()
            if ledger is not None:
                ledger.close()
            if mode == "append" and record.broken is None:
                compact_report(report_path)
            summary.requests = client.stats.requests
            summary.retries = client.stats.retries
            summary.concurrency = concurrency_report(limit, client.gate.pauses)
    summary.finish()
    try:
        summary.write_json(summary_path(report_path))
    except OSError as exc:
        # The rows are done and reported; only the machine summary is missing: exit 3.
        summary.aborted = summary.aborted or (
            f"cannot write {summary_path(report_path)} ({exc.strerror or exc})")
        summary.finish()
    return summary


def _describer(directory: Directory) -> Callable[[Task], str]:
    """How the prompt and a dry run name a task's user: as the server stores it."""
    def describe_task(task: Task) -> str:
        user = getattr(task, "user", None)
        return describe(user, directory) if isinstance(user, User) else task.email

    return describe_task


def _strict_refusal(preview: Preflight, safety: Safety) -> str:
    """Why --strict refuses this plan ("" when it does not)."""
    problems = preview.invalid + preview.failed
    if not safety.strict or not problems:
        return ""
    are = "is" if problems == 1 else "are"
    return (f"--strict: {count(problems, 'row')} {are} invalid (first: "
            f"{preview.first_problem()}); nothing was sent. Fix "
            f"{'it' if problems == 1 else 'them'}, or run without --strict to skip "
            f"{'it' if problems == 1 else 'them'}")


def _report_target(command: Command, settings: RunSettings, earlier: Earlier | None,
                   dry_run: bool) -> tuple[Path, str]:
    """Where the report goes, and whether it is new or appended to (a resume)."""
    if earlier and not dry_run:
        return earlier.report, "append"
    if earlier:
        # A dry run (or a --strict refusal) of a resume writes its plan to a new report:
        # appending to the one being resumed would mark it a dry run, and unresumable.
        return default_report_path(settings.input_path, command, settings.report_dir), "new"
    return settings.report_path or default_report_path(settings.input_path, command,
                                                       settings.report_dir), "new"


def _stand_in_groups(planner: Planner, directory: Directory,
                     options: PlanOptions) -> tuple[str, ...]:
    """With --create-groups, let the plan use the groups rows named that the server lacks.

    Stand-ins (no id yet) let the pre-flight count and the guards judge the plan as it will
    run; the groups themselves are created only once every guard has passed.
    """
    names = tuple(sorted(planner.missing_groups.values(), key=str.casefold))
    if not options.create_groups or not names:
        return ()
    for name in names:
        directory.add_group(Group(id=f"(new group {name})", name=name))
    return names


async def _create_groups(api: UserApi, directory: Directory, names: tuple[str, ...]) -> None:
    """Create the groups the plan needs and put their real ids in place of the stand-ins."""
    if not names:
        return
    for created in await api.create_groups(names):
        directory.add_group(Group(id=str(created.get("_id", "")),
                                  name=str(created.get("name", ""))), replace=True)


def concurrency_limit(settings: RunSettings) -> ConcurrencyLimit:
    """The run's limit on requests in flight: fixed at a number, or adaptive."""
    if settings.concurrency == "auto":
        return ConcurrencyLimit(settings.max_concurrency)
    return ConcurrencyLimit(settings.concurrency, fixed=True)


def concurrency_report(limit: ConcurrencyLimit, pauses: int) -> dict[str, object]:
    """The limit over the run, for the JSON summary: each change as [seconds, limit, why]."""
    no_load = limit.no_load_rtt
    return {"mode": "fixed" if limit.fixed else "auto", "maximum": limit.maximum,
            "final": limit.limit, "peak": max(c.limit for c in limit.history),
            "unloaded_latency_ms": round(no_load * 1000, 1) if no_load is not None else None,
            "retry_after_pauses": pauses,
            "changes": [[c.seconds, c.limit, c.reason] for c in limit.history]}


def _options(connection: Connection, settings: RunSettings, options: PlanOptions,
             safety: Safety) -> dict[str, object]:
    """The run's options for the JSON summary: never a secret."""
    return {"url": connection.url, "api": connection.api,
            "concurrency": settings.concurrency,
            "max_concurrency": settings.max_concurrency, "batch_size": settings.batch_size,
            "default_role": options.default_role, "on_existing": options.on_existing,
            "groups": options.groups_mode, "create_groups": options.create_groups,
            "dry_run": safety.dry_run, "strict": safety.strict,
            "max_changes": safety.max_changes.count, "max_changes_percent":
            safety.max_changes.percent, "resume": str(safety.resume or ""),
            "encoding": settings.read.encoding, "delimiter": settings.read.delimiter,
            "sheet": settings.read.sheet, "header_row": settings.read.header_row}
