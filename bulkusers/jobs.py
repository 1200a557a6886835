"""Whole runs: read, plan, execute and report one command end to end (no printing)."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from bulkusers.client import SisenseClient
from bulkusers.config import Connection, RetryPolicy
from bulkusers.directory import Directory, load_directory
from bulkusers.errors import AbortError
from bulkusers.execution import execute_create
from bulkusers.models import RowResult, Status
from bulkusers.operations import CreateTask, ImportOptions, Prescan, plan_create, prescan
from bulkusers.readers import ReadOptions, Table, open_table
from bulkusers.report import ReportWriter, RunSummary, default_report_path, summary_path
from bulkusers.runner import Pool

WorkItem = CreateTask | RowResult


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
    """What every write command shares: input, report, pool size."""

    input_path: Path
    read: ReadOptions = field(default_factory=ReadOptions)
    report_path: Path | None = None
    concurrency: int = 8
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


def open_input(settings: RunSettings) -> Table:
    """Open the input file or fail with an InputError before anything is sent."""
    return open_table(settings.input_path, settings.read)


async def run_import(settings: RunSettings, connection: Connection, policy: RetryPolicy,
                     options: ImportOptions, observer: Observer | None = None) -> RunSummary:
    """Create every valid row's user; every row ends in the report with a status."""
    observer = observer or SilentObserver()
    table = open_input(settings)
    scan = await asyncio.to_thread(prescan, table.rows(), table.header)
    async with SisenseClient(connection, policy,
                             max_connections=settings.concurrency) as client:
        await client.check()
        directory = await load_directory(client)
        report_path = settings.report_path or default_report_path(settings.input_path, "import")
        writer = ReportWriter(report_path, table.header,
                              exclusive=settings.report_path is None)
        summary = RunSummary(command="import", input_file=str(settings.input_path),
                             report_file=str(report_path), total_rows=scan.total,
                             options={"concurrency": settings.concurrency,
                                      "default_role": options.default_role,
                                      "api": connection.api, "url": connection.url})
        record = _Recorder(writer, summary, observer)
        observer.started(summary)
        try:
            await _execute_all(table, scan, directory, client, record, settings, options)
        finally:
            writer.close()
            summary.requests = client.stats.requests
            summary.retries = client.stats.retries
    summary.finish()
    summary.write_json(summary_path(report_path))
    return summary


async def _execute_all(table: Table, scan: Prescan, directory: Directory, client: SisenseClient,
                       record: _Recorder, settings: RunSettings, options: ImportOptions) -> None:
    summary = record.summary

    def planned() -> Iterator[WorkItem]:
        for row in table.rows():
            yield plan_create(row, table.header, directory, scan, options)

    async def handle(item: WorkItem) -> None:
        if isinstance(item, RowResult):
            record(item)
            return
        try:
            result = await execute_create(item, client, directory)
        except AbortError as exc:
            record(_not_attempted(item, str(exc)))
            raise
        except asyncio.CancelledError:
            record(_not_attempted(item, "interrupted while in flight; a re-run checks "
                                  "whether the user was created"))
            raise
        record(result)

    def unsent(item: WorkItem) -> None:
        if isinstance(item, RowResult):
            record(item)
        elif pool.abort is not None:
            record(_not_attempted(item, f"run aborted: {pool.abort}"))
        else:
            record(_not_attempted(item, "interrupted before it was sent"))

    pool: Pool[WorkItem] = Pool(handle, unsent, settings.concurrency)
    with _interrupts(pool, enabled=settings.handle_sigint):
        await pool.run(planned())
    if pool.abort is not None:
        summary.aborted = str(pool.abort)
    else:
        summary.interrupted = pool.interrupted


def _not_attempted(task: CreateTask, reason: str) -> RowResult:
    return RowResult(row=task.row, email=task.email, action="create",
                     status=Status.NOT_ATTEMPTED, error=reason)


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

