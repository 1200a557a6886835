"""One write run end to end, its stages in order (no printing).

read (intake) -> connect and load the directory snapshot -> plan (one pass, an immutable
Plan) -> guards judge the plan -> open the records -> send exactly the plan -> record.
When no guard judges the plan whole, planning and sending overlap (plan.PlanStream).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime
from typing import Any

from bulkusers.api import UserApi, make_api, roles_of
from bulkusers.client import SisenseClient
from bulkusers.commands import command_spec
from bulkusers.commands.spec import Setting
from bulkusers.concurrency import ConcurrencyLimit
from bulkusers.directory import Directory, Unknown, User
from bulkusers.errors import (
    ApiError,
    ConfigError,
    GuardTripped,
    InputError,
    ServerUnavailable,
)
from bulkusers.execution import Executor
from bulkusers.guards import check_confirmation, limit_refusal
from bulkusers.heap import LongLived
from bulkusers.identity import identity_key
from bulkusers.intake import Intake, PythonRow, RecordsReader, read_input
from bulkusers.ledger import read_ledger
from bulkusers.loading import load_directory, together
from bulkusers.models import Header, Row, RowResult
from bulkusers.network import describe_failure, is_network_error
from bulkusers.pipeline import (
    MakePlan,
    Observer,
    Recorder,
    SilentObserver,
    execute,
    observer_failed,
    write_plan,
)
from bulkusers.plan import Plan, PlanStream, Preflight, Stop, make_plan
from bulkusers.planner import Planner
from bulkusers.readers import ReadOptions
from bulkusers.report import (
    check_report_path,
    secret_columns,
)
from bulkusers.reportlock import Holds
from bulkusers.results import not_planned
from bulkusers.resume import load_earlier
from bulkusers.rules import NEW_GROUP_ID, protected_users
from bulkusers.runconfig import COMMON_RESUME_OPTIONS, RunConfig, Safety
from bulkusers.runfiles import open_run_files, report_target, write_final_summary
from bulkusers.summary import RunSummary
from bulkusers.sync import refuse_empty
from bulkusers.tasks import Task, WorkItem, describe
from bulkusers.words import count, flag


async def run_command(config: RunConfig, observer: Observer | None = None,
                      records: Iterable[PythonRow] | None = None) -> RunSummary:
    """Read the input once, plan every row against a snapshot of the directory, let the
    guards judge that plan, then carry it out exactly; every row ends in the report (when one
    is written) and reaches the observer.

    ``records``: rows from Python instead of ``config.input_path``. The reports the run
    reads back or writes are locked until it ends (summary included): a second run on one
    of them is refused (``ReportInUse``, exit 2) before anything is sent.
    """
    with contextlib.ExitStack() as stack:
        return await _run_command(config, observer, records, Holds(stack))


async def _run_command(config: RunConfig, observer: Observer | None,
                       records: Iterable[PythonRow] | None, holds: Holds) -> RunSummary:
    started = datetime.now(UTC)  # the run's time includes reading, loading and planning
    spec = command_spec(config.command)
    observer = observer or SilentObserver()
    safety = config.safety
    config.check_runnable(from_python=records is not None)
    if config.write_report and safety.resume is None:
        check_report_path(config.report_path, config.input_name, config.report_dir)
    if spec.reads_report and records is None:
        # reactivate's input is an earlier run's report: not while that run still writes it.
        holds.hold(config.input_name)
    intake = await _read(config, records, spec.reads_report)  # 1 read once
    if spec.refuses_empty:
        refuse_empty(config.input_name, intake.total)
    if intake.total == 0 and not config.allow_empty:
        raise InputError(f"{config.source_name}: has no rows, only a header; nothing to do. "
                         "Check it is the right file, or pass --allow-empty where an empty "
                         "list is normal")
    options_now = config.options()
    # 2 resume?
    if safety.resume is not None:
        holds.hold(safety.resume)
    earlier = (load_earlier(safety.resume, config.command, config.input_name, intake.sha256,
                            options_now, (*COMMON_RESUME_OPTIONS, *spec.resume_options))
               if safety.resume else None)
    limit = concurrency_limit(config)
    connection = config.connection
    async with LongLived() as lasting, SisenseClient(connection, config.retry,
                                                     concurrency=limit) as client:
        api = make_api(client)
        with lasting.building():  # the snapshot lasts the run: no collector scans it
            directory, me = await _connect(client, api)  # 3 the snapshot
        _check_default_role(config.plan.default_role, directory,
                            "default_role" in spec.resume_options)
        deactivations = read_ledger(connection.url) if spec.ledgered else {}
        protected = protected_users(directory, me)
        planner = Planner(intake.header, directory, intake.repeats, config.plan, protected,
                          prior=earlier.journal if earlier else None,
                          deactivated=deactivations, report_lines=intake.lines)
        scheme = await spec.prepare(Setting(api, planner, intake, protected, config.sync,
                                            earlier.report if earlier else None))
        skip = earlier.finished if earlier else frozenset()  # 4 plan (a dry run: at 7)

        def making(sink: Callable[[WorkItem], None] | None = None,
                   stop: Stop | None = None) -> Plan:
            # The rows and the tail are asked for only when the plan is made (a run that
            # streams its plan makes it through PlanStream instead).
            return make_plan(intake.rows(), scheme.plan_row, scheme.tail(),
                             batch_size=config.batch_size, describe=_describer(directory),
                             skip=skip, new_groups=planner.new_groups, sink=sink, stop=stop)

        # Made whole before the first write when something judges it; otherwise sent as it
        # is made (a dry run: written as it is made).
        streamed = not safety.dry_run and _sent_as_made(config)
        plan = (None if safety.dry_run or streamed
                else await asyncio.to_thread(making))
        refused = _strict_refusal(plan.counts, safety) if plan is not None else ""
        prompt_seconds = 0.0
        dry_run = safety.dry_run or bool(refused)
        if plan is not None and not dry_run:  # 5 guards
            # Every guard judges the whole plan before the first write, groups included.
            refusal = _plan_refusal(scheme.refusal, plan.counts, safety, directory.user_count)
            if refusal:
                raise GuardTripped(refusal)
            # On the loop's own thread: a prompt in a worker thread would keep Ctrl-C waiting
            # for Enter. Nothing else runs while the run waits for its answer.
            asked = time.monotonic()
            check_confirmation(config.command, plan.counts, safety.confirm)
            prompt_seconds = time.monotonic() - asked

        report_path, mode = report_target(config, earlier, dry_run)
        summary = RunSummary(command=config.command, started=started,
                             input_file=config.source_name,
                             report_file=str(report_path or ""), total_rows=intake.total,
                             options=options_now,
                             input_sha256=intake.sha256, dry_run=safety.dry_run,
                             refused=refused, prompt_seconds=prompt_seconds,
                             ignored_columns=intake.header.unknown, sheet=intake.sheet or "",
                             masked_columns=tuple(intake.header.columns[i] for i in
                                                  sorted(secret_columns(intake.header))))
        if plan is not None:
            _describe_plan(summary, plan)
        if earlier:
            summary.counts.update(earlier.counts)
            summary.carried_over = len(earlier.finished)
        carried = scheme.carry_over(summary.counts)
        summary.carried_over += carried
        summary.total_rows += scheme.extra_rows + carried
        # 6 open the records
        if report_path is not None:
            holds.hold(report_path)
        files = open_run_files(report_path, mode, intake.header, summary, connection.url,
                               deactivations if spec.ledgered and not dry_run else None,
                               journaled=spec.journals and not dry_run, held=dry_run)
        record = Recorder(files.writer, summary, observer, safety.breaker,
                          settle=files.ledger.settle if files.ledger else None)
        cancelled = False
        try:  # 7 send (8: each result is recorded as it comes)
            observer.started(summary)
            if dry_run:
                # Nothing sends the plan: a dry run writes it as it is made, a --strict
                # refusal writes the plan it judged.
                unplanned = _unplanned(intake.header, spec.row_action)
                judged = plan
                made: MakePlan = (
                    (lambda sink, _: judged.replay(sink)) if judged is not None
                    else lambda sink, stopped: making(sink, Stop(stopped, unplanned)))
                plan = await write_plan(made, record, revokes_tokens=api.can_revoke_tokens,
                                        handle_sigint=config.handle_sigint)
                _describe_plan(summary, plan)
                if safety.dry_run and not summary.interrupted:
                    summary.would_refuse = (
                        _strict_refusal(plan.counts, safety)
                        or _plan_refusal(scheme.refusal, plan.counts, safety,
                                         directory.user_count))
            else:
                # Only now, with every guard passed and the report open: the first write.
                stream = None
                items: Iterator[WorkItem]
                if plan is None:  # sent as it is made
                    stream = PlanStream(intake.rows(), scheme.plan_row, scheme.tail(),
                                        batch_size=config.batch_size, skip=skip,
                                        describe=_describer(directory),
                                        unplanned=_unplanned(intake.header, spec.row_action))
                    items = iter(stream)
                else:
                    items = iter(plan)
                group_ids = await _create_groups(api, plan.new_groups if plan else ())
                client.relearn_latency()  # page reads and row writes take different times
                executor = Executor(api, directory, files.journal, group_ids,
                                    together=record.together)
                # Workers beyond the limit take rows only while as many requests wait to be
                # retried (RequestGate.admit).
                await execute(items, executor, record, concurrency=client.gate.workers,
                              handle_sigint=config.handle_sigint, admit=client.gate.admit,
                              stopped=stream.halt if stream is not None else None)
                if stream is not None:
                    if stream.failure is not None and not summary.aborted:
                        summary.aborted = str(stream.failure)
                    plan = stream.made()
                    _describe_plan(summary, plan)
            if record.observer_failure is not None and not summary.aborted:
                summary.aborted = observer_failed(record.observer_failure)
        except asyncio.CancelledError:
            # The caller cancelled the task (a library run): every row is reported by now;
            # the summary says so too, as after Ctrl-C, before the cancellation goes on.
            summary.interrupted = cancelled = True
            raise
        finally:
            files.close(compact=mode == "append" and record.broken is None)
            if plan is not None:
                plan.items.discard()
            intake.spool.discard()
            summary.requests = client.stats.requests
            summary.retries = client.stats.retries
            summary.concurrency = concurrency_report(limit, client.gate.pauses)
            if cancelled:
                write_final_summary(summary, report_path)
    write_final_summary(summary, report_path)
    return summary


def _check_default_role(name: str | None, directory: Directory, used: bool) -> None:
    """A --default-role the server does not have stops the run before anything is sent
    (ConfigError, exit 2): a typo in a profile would otherwise make every row without a role
    invalid, night after night. ``used``: the command creates users, which is where it
    applies."""
    if not name or not used:
        return
    found = directory.role(name)
    if isinstance(found, Unknown):
        raise ConfigError(f"{flag('--default-role')} {name!r}: {found.describe()}; nothing "
                          "was sent")


def _plan_refusal(refusal: Callable[[Preflight], str], counts: Preflight, safety: Safety,
                  directory_users: int) -> str:
    """Why the guards that judge a plan's counts refuse it ("" when they let it through): the
    command's own (sync's --max-missing), then --max-changes. A run is stopped by it before
    the first write; a dry run's plan is judged by it (with --strict) after it is written, so
    that a rehearsal says what the real run would meet."""
    return refusal(counts) or limit_refusal(counts, safety.max_changes, directory_users)


def _describe_plan(summary: RunSummary, plan: Plan) -> None:
    """What the summary says of the plan: the groups it creates and whom it affects."""
    summary.groups_created = plan.new_groups
    summary.affected = list(plan.counts.targets)
    summary.affected_total = plan.counts.destructive


async def _read(config: RunConfig, records: Iterable[PythonRow] | None,
                reads_report: bool) -> Intake:
    """Stage 1: the input, read once (InputError, exit 2, for anything unreadable)."""
    if records is not None:
        return await _read_records(records, config.read)
    return await asyncio.to_thread(read_input, config.input_name, config.read,
                                   report=reads_report)


#: Rows from Python read between two turns of the caller's event loop.
RECORDS_BLOCK = 1_000


async def _read_records(records: Iterable[PythonRow], options: ReadOptions) -> Intake:
    """Rows from Python, read on the caller's thread, the event loop's (a database cursor
    may be used only on the thread that opened it), letting the caller's other tasks run
    between blocks of rows."""
    reader = RecordsReader(options)
    for number, record in enumerate(records, start=1):
        reader.add(record)
        if number % RECORDS_BLOCK == 0:
            await asyncio.sleep(0)
    return reader.finish()


async def _connect(client: SisenseClient, api: UserApi,
                   ) -> tuple[Directory, dict[str, Any] | None]:
    """Check the server and load the snapshot every row is planned against, with the account
    running the tool, in the same round trips: the check's roles are the directory's, and its
    answer is not waited for before the first pages are asked for. When anything fails, the
    check's verdict (unreachable, refused, not Sisense: one clear line) comes first."""
    checking = asyncio.ensure_future(client.check())

    async def checked_roles() -> list[dict[str, Any]]:
        # Shielded: the load giving up must not cancel the check whose verdict is wanted.
        return roles_of(await asyncio.shield(checking))

    try:
        directory, me = await together(load_directory(api, roles=checked_roles()), api.me())
    except asyncio.CancelledError:
        checking.cancel()
        raise
    except Exception as exc:
        await asyncio.wait([checking])
        failure = None if checking.cancelled() else checking.exception()
        if failure is not None:
            raise failure from None
        if not (isinstance(exc, ApiError) or is_network_error(exc)):
            raise
        raise ServerUnavailable(f"reading roles, groups and users from "
                                f"{client.connection.url} failed ({describe_failure(exc)}); "
                                "nothing was sent. Try again later") from None
    return directory, me


def _describer(directory: Directory) -> Callable[[Task], str]:
    """How the prompt and a dry run name a task's user: as the server stores it."""
    def describe_task(task: Task) -> str:
        user = getattr(task, "user", None)
        return describe(user, directory) if isinstance(user, User) else task.email

    return describe_task


def _sent_as_made(config: RunConfig) -> bool:
    """True when nothing judges the plan whole before the first write, so that its rows may
    be sent as they are planned: a command whose plan has no guard of its own
    (``CommandSpec.streams``), no --strict, no --max-changes, no groups to create first."""
    safety = config.safety
    return (command_spec(config.command).streams and not safety.strict
            and not safety.max_changes.active and not config.plan.create_groups)


def _unplanned(header: Header, action: str) -> Callable[[Row, str], RowResult]:
    """How a streamed run reports a row it stopped before planning."""
    def unplanned(row: Row, reason: str) -> RowResult:
        return not_planned(row, header.value(row, "email"), action, reason)

    return unplanned


def _strict_refusal(preview: Preflight, safety: Safety) -> str:
    """Why --strict refuses this plan ("" when it does not)."""
    problems = preview.invalid + preview.failed
    if not safety.strict or not problems:
        return ""
    are = "is" if problems == 1 else "are"
    strict = flag("--strict")
    return (f"{strict}: {count(problems, 'row')} {are} invalid (first: "
            f"{preview.first_problem()}); nothing was sent. Fix "
            f"{'it' if problems == 1 else 'them'}, or run without {strict} to skip "
            f"{'it' if problems == 1 else 'them'}")


async def _create_groups(api: UserApi, names: tuple[str, ...]) -> dict[str, str]:
    """Create the groups the plan needs (--create-groups); the sender's record of their ids,
    by the stand-in id the plan names them with."""
    if not names:
        return {}
    created = await api.create_groups(names)
    by_name = {identity_key(str(g.get("name", ""))): str(g.get("_id", "")) for g in created}
    return {f"{NEW_GROUP_ID}{name}": by_name.get(identity_key(name), "") for name in names}


def concurrency_limit(config: RunConfig) -> ConcurrencyLimit:
    """The run's limit on requests in flight: fixed at a number, or adaptive."""
    if config.concurrency == "auto":
        return ConcurrencyLimit(config.max_concurrency)
    return ConcurrencyLimit(config.concurrency, fixed=True)


def concurrency_report(limit: ConcurrencyLimit, pauses: int) -> dict[str, object]:
    """The limit over the run, for the JSON summary: each change as [seconds, limit, why]."""
    no_load = limit.no_load_rtt
    return {"mode": "fixed" if limit.fixed else "auto", "maximum": limit.maximum,
            "final": limit.limit, "peak": max(c.limit for c in limit.history),
            "unloaded_latency_ms": round(no_load * 1000, 1) if no_load is not None else None,
            "retry_after_pauses": pauses, "gateway_errors_not_overload": limit.blips,
            "gateway_refused_at_random": round(limit.refused_at_random, 3),
            "changes": [[c.seconds, c.limit, c.reason] for c in limit.history]}
