"""Whole runs: read, plan, judge and carry out one write command end to end (no printing)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from bulkusers.api import UserApi, make_api
from bulkusers.client import SisenseClient
from bulkusers.commands import Command, command_spec
from bulkusers.commands.spec import Setting
from bulkusers.concurrency import ConcurrencyLimit
from bulkusers.config import Connection, RetryPolicy
from bulkusers.directory import Directory, User, load_directory
from bulkusers.errors import (
    ApiError,
    GuardTripped,
    InputError,
    ReportUnwritable,
    ServerUnavailable,
)
from bulkusers.execution import Executor
from bulkusers.identity import identity_key
from bulkusers.intake import read_input
from bulkusers.journal import Journal, journal_path
from bulkusers.ledger import STATE_DIR_VARIABLE, Ledger, read_ledger
from bulkusers.operations import NEW_GROUP_ID, Planner, PlanOptions, protected_users
from bulkusers.pipeline import Observer, Recorder, SilentObserver, execute, record_planned
from bulkusers.plan import Preflight, make_plan
from bulkusers.preflight import Confirm, Limit, check_confirmation, check_limit
from bulkusers.readers import ReadOptions
from bulkusers.report import (
    ReportWriter,
    check_report_path,
    compact_report,
    default_report_path,
    secret_columns,
    summary_path,
)
from bulkusers.resume import Earlier, load_earlier
from bulkusers.summary import RunSummary
from bulkusers.sync import SyncOptions, refuse_empty
from bulkusers.tasks import Task, describe
from bulkusers.words import count


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


async def run_command(command: Command, settings: RunSettings, connection: Connection,
                      policy: RetryPolicy, options: PlanOptions,
                      observer: Observer | None = None,
                      safety: Safety | None = None,
                      sync: SyncOptions | None = None) -> RunSummary:
    """Read the input once, plan every row against a snapshot of the directory, let the
    guards judge that plan, then carry it out exactly; every row ends in the report.

    ``sync`` (command "sync" only): the scope and what happens to the users in scope that the
    file does not list; ``bulkusers.sync`` plans them after the rows.
    """
    started = datetime.now(UTC)  # the run's time includes reading, loading and planning
    spec = command_spec(command)
    observer = observer or SilentObserver()
    safety = safety or Safety()
    if safety.resume is None:
        check_report_path(settings.report_path, settings.input_path, settings.report_dir)
    intake = await asyncio.to_thread(read_input, settings.input_path, settings.read,
                                     report=spec.reads_report)
    if spec.refuses_empty:
        refuse_empty(settings.input_path, intake.total)
    if intake.total == 0 and not settings.allow_empty:
        raise InputError(f"{settings.input_path}: has no rows, only a header; nothing to do. "
                         "Check it is the right file, or pass --allow-empty where an empty "
                         "list is normal")
    options_now = _options(connection, settings, options, safety)
    if sync is not None:
        options_now.update(sync.summary_options())
    earlier = (load_earlier(safety.resume, command, settings.input_path, intake.sha256,
                            options_now) if safety.resume else None)
    limit = concurrency_limit(settings)
    async with SisenseClient(connection, policy, concurrency=limit) as client:
        await client.check()
        api = make_api(client)
        directory, me = await _load_directory(api, connection)
        records = read_ledger(connection.url) if spec.ledgered else {}
        protected = protected_users(directory, me)
        planner = Planner(intake.header, directory, intake.repeats, options, protected,
                          prior=earlier.journal if earlier else None, deactivated=records,
                          report_lines=intake.lines)
        scheme = await spec.prepare(Setting(api, planner, intake, protected, sync,
                                            earlier.report if earlier else None))
        plan = await asyncio.to_thread(
            make_plan, intake.rows(), scheme.plan_row, scheme.tail(),
            batch_size=settings.batch_size, describe=_describer(directory),
            skip=earlier.finished if earlier else frozenset(), new_groups=planner.new_groups)
        refused = _strict_refusal(plan.counts, safety)
        dry_run = safety.dry_run or bool(refused)
        if not dry_run:
            # Every guard judges the whole plan before the first write, groups included.
            refusal = scheme.refusal(plan.counts)
            if refusal:
                raise GuardTripped(refusal)
            check_limit(plan.counts, safety.max_changes, directory.user_count)
            # On the loop's own thread: a prompt in a worker thread would keep Ctrl-C waiting
            # for Enter. Nothing else runs while the run waits for its answer.
            check_confirmation(command, plan.counts, safety.confirm)

        report_path, mode = _report_target(command, settings, earlier, dry_run)
        try:
            writer = ReportWriter(report_path, intake.header, mode=mode)
        except OSError as exc:
            raise ReportUnwritable(f"cannot write the report {report_path} "
                                   f"({exc.strerror or exc}); nothing was sent") from None
        summary = RunSummary(command=command, started=started,
                             input_file=str(settings.input_path),
                             report_file=str(report_path), total_rows=intake.total,
                             options=options_now,
                             input_sha256=intake.sha256, dry_run=dry_run, refused=refused,
                             ignored_columns=intake.header.unknown,
                             groups_created=plan.new_groups, sheet=intake.sheet or "",
                             masked_columns=tuple(intake.header.columns[i] for i in
                                                  sorted(secret_columns(intake.header))),
                             affected=list(plan.counts.targets),
                             affected_total=plan.counts.destructive)
        if earlier:
            summary.counts.update(earlier.counts)
            summary.carried_over = len(earlier.finished)
        carried = scheme.carry_over(summary.counts)
        summary.carried_over += carried
        summary.total_rows += scheme.extra_rows + carried
        try:
            summary.write_json(summary_path(report_path))  # a killed run can still resume
        except OSError as exc:
            writer.close()
            raise ReportUnwritable(f"cannot write {summary_path(report_path)} "
                                   f"({exc.strerror or exc}); nothing was sent") from None
        ledger = (Ledger(connection.url, records)
                  if spec.ledgered and not dry_run else None)
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
                   if spec.journals and not dry_run else None)
        try:
            observer.started(summary)
            if dry_run:
                await record_planned(plan, record, revokes_tokens=api.can_revoke_tokens,
                                     handle_sigint=settings.handle_sigint)
            else:
                # Only now, with every guard passed and the report open: the first write.
                group_ids = await _create_groups(api, plan.new_groups)
                client.relearn_latency()  # page reads and row writes take different times
                await execute(iter(plan), Executor(api, directory, journal, group_ids), record,
                              concurrency=limit.maximum,
                              handle_sigint=settings.handle_sigint, admit=client.gate.admit)
        finally:
            writer.close()
            plan.items.discard()
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


async def _load_directory(api: UserApi, connection: Connection) -> tuple[Directory,
                                                                        dict[str, Any] | None]:
    """The snapshot every row is planned against, and the account running the tool."""
    try:
        directory = await load_directory(api)
        me = await api.me()
    except ApiError as exc:
        raise ServerUnavailable(f"reading roles, groups and users from {connection.url} "
                                f"failed ({exc.describe()}); nothing was sent. Try again "
                                "later") from None
    return directory, me


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


async def _create_groups(api: UserApi, names: tuple[str, ...]) -> dict[str, str]:
    """Create the groups the plan needs (--create-groups); the sender's record of their ids,
    by the stand-in id the plan names them with."""
    if not names:
        return {}
    created = await api.create_groups(names)
    by_name = {identity_key(str(g.get("name", ""))): str(g.get("_id", "")) for g in created}
    return {f"{NEW_GROUP_ID}{name}": by_name.get(identity_key(name), "") for name in names}


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
