"""Whole runs: read, plan, execute and report one write command end to end (no printing)."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Protocol

from bulkusers.api import make_api
from bulkusers.client import SisenseClient
from bulkusers.config import Connection, RetryPolicy
from bulkusers.directory import load_directory
from bulkusers.errors import AbortError
from bulkusers.execution import Executor
from bulkusers.models import Header, Row, RowResult, Status
from bulkusers.operations import Planner, PlanOptions, Prescan, prescan, protected_users
from bulkusers.readers import ReadOptions, open_table
from bulkusers.report import (
    ReportLine,
    ReportWriter,
    RunSummary,
    default_report_path,
    read_report,
    summary_path,
)
from bulkusers.runner import Pool
from bulkusers.tasks import Task, WorkItem, batched, tasks_of

Command = Literal["import", "update", "deactivate", "delete", "reactivate"]


class Observer(Protocol):
    """Receives progress as a run goes; the CLI draws it, tests may record it."""

    def started(self, summary: RunSummary) -> None:
        """The input was scanned: ``summary.total_rows`` is known, writes are about to start."""

    def row_done(self, result: RowResult, summary: RunSummary) -> None:
        """One row has its outcome (called from the event loop or the reader thread)."""


class SilentObserver:
    """An observer that ignores everything."""

    def started(self, summary: RunSummary) -> None:
        """Ignore."""

    def row_done(self, result: RowResult, summary: RunSummary) -> None:
        """Ignore."""


@dataclass(frozen=True, slots=True)
class RunSettings:
    """What every write command shares: input, report, pool and batch sizes."""

    input_path: Path
    read: ReadOptions = field(default_factory=ReadOptions)
    report_path: Path | None = None
    concurrency: int = 8
    batch_size: int = 50
    handle_sigint: bool = True


@dataclass(slots=True)
class _Recorder:
    """Writes each result once, counts it and tells the observer; safe across threads."""

    writer: ReportWriter
    summary: RunSummary
    observer: Observer
    lock: threading.Lock = field(default_factory=threading.Lock)

    def __call__(self, result: RowResult) -> None:
        with self.lock:
            self.writer.write(result)
            self.summary.add(result)
            self.observer.row_done(result, self.summary)


@dataclass(frozen=True, slots=True)
class _Input:
    """A command's input made uniform: a header, re-readable rows, and its row count."""

    header: Header
    rows: Callable[[], Iterator[Row]]
    scan: Prescan


async def _open_input(command: Command, settings: RunSettings) -> tuple[_Input, list[ReportLine]]:
    """Read the input (all errors here are InputError: exit 2, nothing sent)."""
    if command == "reactivate":
        lines = await asyncio.to_thread(lambda: list(read_report(settings.input_path)))
        header = Header((), {})
        return _Input(header, lambda: iter(()), Prescan(total=len(lines))), lines
    table = open_table(settings.input_path, settings.read)
    scan = await asyncio.to_thread(prescan, table.rows(), table.header)
    return _Input(table.header, table.rows, scan), []


async def run_command(command: Command, settings: RunSettings, connection: Connection,
                      policy: RetryPolicy, options: PlanOptions,
                      observer: Observer | None = None) -> RunSummary:
    """Plan and carry out every row of the input; every row ends in the report."""
    observer = observer or SilentObserver()
    source, lines = await _open_input(command, settings)
    async with SisenseClient(connection, policy,
                             max_connections=settings.concurrency) as client:
        await client.check()
        api = make_api(client)
        directory = await load_directory(api)
        me = await api.me()
        planner = Planner(source.header, directory, source.scan, options,
                          protected_users(directory, me))
        report_path = settings.report_path or default_report_path(settings.input_path, command)
        writer = ReportWriter(report_path, source.header,
                              exclusive=settings.report_path is None)
        summary = RunSummary(command=command, input_file=str(settings.input_path),
                             report_file=str(report_path), total_rows=source.scan.total,
                             options=_options(connection, settings, options))
        record = _Recorder(writer, summary, observer)
        observer.started(summary)

        def planned() -> Iterator[WorkItem]:
            items: Iterable[WorkItem]
            if command == "reactivate":
                items = (planner.plan_reactivate(line) for line in lines)
            else:
                plan = {"import": planner.plan_import, "update": planner.plan_update,
                        "deactivate": planner.plan_deactivate,
                        "delete": planner.plan_delete}[command]
                items = (plan(row) for row in source.rows())
            return batched(items, settings.batch_size)

        try:
            await _execute(planned(), Executor(api, directory), record, settings)
        finally:
            writer.close()
            summary.requests = client.stats.requests
            summary.retries = client.stats.retries
    summary.finish()
    summary.write_json(summary_path(report_path))
    return summary


def _options(connection: Connection, settings: RunSettings,
             options: PlanOptions) -> dict[str, object]:
    """The run's options for the JSON summary: never a secret."""
    return {"url": connection.url, "api": connection.api,
            "concurrency": settings.concurrency, "batch_size": settings.batch_size,
            "default_role": options.default_role, "on_existing": options.on_existing,
            "groups": options.groups_mode}


async def _execute(items: Iterator[WorkItem], executor: Executor, record: _Recorder,
                   settings: RunSettings) -> None:
    summary = record.summary

    async def handle(item: WorkItem) -> None:
        done: set[int] = set()

        def emit(result: RowResult) -> None:
            done.add(result.row.number)
            record(result)

        try:
            await executor.run(item, emit)
        except AbortError as exc:
            _unfinished(item, done, record, f"run aborted: {exc}")
            raise
        except asyncio.CancelledError:
            _unfinished(item, done, record, "interrupted while in flight; a re-run checks "
                                            "whether it was applied")
            raise

    def unsent(item: WorkItem) -> None:
        if isinstance(item, RowResult):
            record(item)
        elif pool.abort is not None:
            _unfinished(item, set(), record, f"run aborted: {pool.abort}")
        else:
            _unfinished(item, set(), record, "interrupted before it was sent")

    pool: Pool[WorkItem] = Pool(handle, unsent, settings.concurrency)
    with _interrupts(pool, enabled=settings.handle_sigint):
        await pool.run(items)
    if pool.abort is not None:
        summary.aborted = str(pool.abort)
    else:
        summary.interrupted = pool.interrupted


def _unfinished(item: WorkItem, done: set[int], record: _Recorder, reason: str) -> None:
    """Report every row of an item that has no outcome yet as ``not_attempted``."""
    for task in tasks_of(item):
        if task.row.number not in done:
            record(_not_attempted(task, reason))


def _not_attempted(task: Task, reason: str) -> RowResult:
    return RowResult(row=task.row, email=task.email, action=task.action,
                     status=Status.NOT_ATTEMPTED, error=reason,
                     user_id=getattr(getattr(task, "user", None), "id", ""))


@contextlib.contextmanager
def _interrupts(pool: Pool[WorkItem], *, enabled: bool) -> Iterator[None]:
    """First Ctrl-C: take no new rows; second: cancel the requests in flight."""
    loop = asyncio.get_running_loop()
    presses = 0

    def on_sigint() -> None:
        nonlocal presses
        presses += 1
        if presses == 1:
            pool.stop()
        else:
            pool.cancel()

    installed = False
    if enabled:
        try:
            loop.add_signal_handler(signal.SIGINT, on_sigint)
            installed = True
        except (NotImplementedError, RuntimeError, ValueError):
            installed = False  # not the main thread, or a platform without signal support
    try:
        yield
    finally:
        if installed:
            loop.remove_signal_handler(signal.SIGINT)
