"""The sending stage of a run: the pool over planned work, recording each outcome once,
the circuit breaker and Ctrl-C. No printing: progress goes to an ``Observer``."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import threading
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from typing import Protocol

from bulkusers.errors import (
    AbortError,
    ReportUnwritable,
    ServerUnavailable,
)
from bulkusers.execution import Executor
from bulkusers.models import RowResult, Status
from bulkusers.network import describe_network_error, is_retryable, server_failing
from bulkusers.plan import Plan
from bulkusers.reportwriter import ReportWriter
from bulkusers.results import IN_FLIGHT, NOT_SENT, unfinished, unfinished_rows
from bulkusers.results import planned as planned_results
from bulkusers.runner import Pool
from bulkusers.summary import RunSummary
from bulkusers.tasks import WorkItem, tasks_of
from bulkusers.words import flag


class Observer(Protocol):
    """Receives progress as a run goes; the CLI draws it, tests may record it."""

    def started(self, summary: RunSummary) -> None:
        """The input was scanned: ``summary.total_rows`` is known, writes are about to start."""

    def row_done(self, result: RowResult, summary: RunSummary) -> None:
        """One row has its outcome (called from the event loop, or from a dry run's planning
        thread)."""


class SilentObserver:
    """An observer that ignores everything."""

    def started(self, summary: RunSummary) -> None:
        """Ignore."""

    def row_done(self, result: RowResult, summary: RunSummary) -> None:
        """Ignore."""


@dataclass(slots=True)
class Recorder:
    """Writes each result once, counts it and tells the observer; safe across threads."""

    #: None: the run writes no report (a library call that did not ask for one).
    writer: ReportWriter | None
    summary: RunSummary
    observer: Observer
    breaker: int
    lock: threading.Lock = field(default_factory=threading.Lock)
    failing_in_a_row: int = 0
    broken: ReportUnwritable | None = None
    #: Told of each result once it is in the report (the deactivation ledger).
    settle: Callable[[RowResult], None] | None = None
    #: What the observer raised (a library caller's on_result, say): the row it was told of
    #: is recorded as it truly ended, the observer is told of nothing more, and the run
    #: stops as after an abort (``check_observer``; a dry run stops planning).
    observer_failure: Exception | None = None

    def __call__(self, result: RowResult) -> None:
        with self.lock:
            self._one(result)

    def all(self, results: list[RowResult]) -> None:
        """Record results known together (the rows of one planned item of a dry run) exactly
        as one call each would, in order; their lines are made and judged as one block first
        (ReportWriter.joined_lines), which spares each line its own scans."""
        with self.lock:
            writer = self.writer
            lines = (writer.joined_lines(results)
                     if writer is not None and self.broken is None else None)
            if writer is None or lines is None:
                for result in results:
                    self._one(result)
                return
            if writer.holding:
                # Gathered, not yet written: appending the block cannot fail part-way. A
                # flush it starts can: then it is unwritten, and none of its rows counted.
                try:
                    writer.write_held(lines)
                except OSError as exc:
                    self._unwritable(exc)
                    return
                for result in results:
                    self._counted(result)
                return
            for result, line in zip(results, lines, strict=True):
                try:
                    writer.write_line(line)
                except OSError as exc:
                    self._unwritable(exc)
                    return
                self._counted(result)

    def _one(self, result: RowResult) -> None:
        """Write one result's line, then count it (under the lock)."""
        if self.broken is not None:
            return  # the report cannot be written: the run is stopping
        try:
            if self.writer is not None:
                self.writer.write(result)
        except OSError as exc:
            self._unwritable(exc)
            return
        self._counted(result)

    def _counted(self, result: RowResult) -> None:
        """Count a result now in the report and tell the observer (under the lock)."""
        self.summary.add(result)
        if self.settle is not None:
            self.settle(result)
        if result.transient:
            self.failing_in_a_row += 1
        elif result.attempts:
            # Only a row that reached the server proves it answers; planned rows don't.
            self.failing_in_a_row = 0
        if self.observer_failure is None:
            try:
                self.observer.row_done(result, self.summary)
            except Exception as exc:
                # Not the row's failure: raised here, it would be taken for the request's
                # and the rows of a user created would be reported failed.
                self.observer_failure = exc

    def check_observer(self) -> None:
        """Stop the run once the observer has raised (asked between items, never in the
        middle of one: the rest of a bulk answer's rows are known and must be reported as
        they ended, not as unsent)."""
        if self.observer_failure is not None:
            raise AbortError(observer_failed(self.observer_failure))

    @contextlib.contextmanager
    def together(self) -> Iterator[None]:
        """The results recorded in this block go to the report in one write when it ends
        (rows one answer finished at once: one system call, not one per row)."""
        if self.writer is None:
            yield
            return
        self.writer.hold()
        try:
            yield
        finally:
            self.flush()
            self.writer.release()

    def flush(self) -> None:
        """Write the report lines a dry run's writer holds (a failure breaks the run)."""
        with self.lock:
            try:
                if self.writer is not None and self.broken is None:
                    self.writer.flush()
            except OSError as exc:
                self._unwritable(exc)

    def _unwritable(self, exc: OSError) -> None:
        self.broken = ReportUnwritable(
            f"cannot write the report {getattr(self.writer, 'path', '')} "
            f"({exc.strerror or exc}); free space or fix the folder, then resume with "
            f"{flag('--resume')}")

    def check_breaker(self) -> None:
        """Stop the run once the report cannot be written, or too many rows in a row failed
        for the server's reasons."""
        if self.broken is not None:
            raise self.broken
        if self.breaker and self.failing_in_a_row >= self.breaker:
            raise ServerUnavailable(
                f"{self.failing_in_a_row} rows in a row failed after their retries with "
                "connection errors or server errors; the server looks down or overloaded. "
                f"Try again later with {flag('--resume')} (and perhaps a lower "
                f"{flag('--concurrency')})")


#: A dry run's maker: ``make(sink, stopped)`` hands each item of the plan to ``sink``; once
#: ``stopped()`` gives a reason, it stops planning and hands over the rows left unplanned.
MakePlan = Callable[[Callable[[WorkItem], None], Callable[[], str | None]], Plan]


async def write_plan(make: MakePlan, record: Recorder, *, revokes_tokens: bool,
                     handle_sigint: bool) -> Plan:
    """A dry run: ``make`` (in a thread) hands each item of the plan to ``sink``, which
    records what it would do. Ctrl-C stops it: the rows not yet recorded are not attempted,
    and those not yet planned are not planned (a million rows left are reported in seconds)."""
    stopped = threading.Event()

    def reason() -> str | None:
        return NOT_SENT if stopped.is_set() else None

    def sink(item: WorkItem) -> None:
        if record.observer_failure is not None and not stopped.is_set():
            stopped.set()  # planning stops too: the rows left are reported, not planned
        if stopped.is_set():
            _unfinished(item, set(), record, NOT_SENT)
            return
        record.all(planned_results(item, revokes_tokens=revokes_tokens))

    with _on_sigint(stopped.set, enabled=handle_sigint):
        plan = await asyncio.to_thread(make, sink, reason)
    record.flush()
    if record.broken is not None:
        record.summary.aborted = str(record.broken)
    elif record.observer_failure is not None:
        record.summary.aborted = observer_failed(record.observer_failure)
    else:
        record.summary.interrupted = stopped.is_set()
    return plan


async def execute(items: Iterator[WorkItem], executor: Executor, record: Recorder, *,
                  concurrency: int, handle_sigint: bool,
                  admit: Callable[[int], Awaitable[None]] | None = None,
                  stopped: Callable[[str], None] | None = None) -> None:
    """Send every item through a pool of ``concurrency`` workers; every row of every item is
    recorded exactly once. ``admit(i)`` returns when worker i may take an item (the run's
    adaptive limit); ``stopped(reason)`` is told when the run stops taking items, before the
    items left are reported unsent with that reason."""
    summary = record.summary

    async def handle(item: WorkItem) -> None:
        done: set[int] = set()

        def emit(result: RowResult) -> None:
            done.add(result.row.number)
            record(result)
            # Checked per row, not per item: a refused batch is retried row by row, and a
            # dead server must not cost one failing request per row of it.
            record.check_breaker()

        try:
            await executor.run(item, emit)
            record.check_observer()
        except AbortError as exc:
            _unfinished(item, done, record, f"run aborted: {exc}")
            raise
        except asyncio.CancelledError:
            _unfinished(item, done, record, IN_FLIGHT)
            raise
        except Exception as exc:
            # Whatever went wrong, the rows are accounted for and the run goes on.
            reason = (describe_network_error(exc) if is_retryable(exc)
                      else f"unexpected {exc.__class__.__name__}: {exc}")
            for task in tasks_of(item):
                if task.row.number not in done:
                    record(unfinished(task, Status.FAILED, reason,
                                      transient=server_failing(exc)))
            record.check_breaker()

    def unsent_reason() -> str:
        return f"run aborted: {pool.abort}" if pool.abort is not None else NOT_SENT

    def unsent(item: WorkItem) -> None:
        if isinstance(item, RowResult):
            record(item)
        else:
            _unfinished(item, set(), record, unsent_reason())

    pool: Pool[WorkItem] = Pool(
        handle, unsent, concurrency, admit=admit,
        before_drain=(lambda: stopped(unsent_reason())) if stopped is not None else None)
    with _interrupts(pool, enabled=handle_sigint):
        await pool.run(items)
    abort = pool.abort or record.broken
    if abort is not None:
        summary.aborted = str(abort)
    else:
        summary.interrupted = pool.interrupted


class ObserverStopped(Exception):
    """The observer raised a ``KeyboardInterrupt`` or ``SystemExit`` (the ``raised``): the run
    stops as after any other error of the observer's, whose caller receives the original."""

    def __init__(self, raised: BaseException) -> None:
        super().__init__(raised)
        self.raised = raised


def observer_failed(exc: Exception) -> str:
    """Why a run stopped when its observer (a library caller's on_result) raised."""
    shown = exc.raised if isinstance(exc, ObserverStopped) else exc
    told = f"{shown.__class__.__name__}: {shown}" if str(shown) else shown.__class__.__name__
    return (f"telling a row's result raised {told}; the run stopped (the rows not sent are "
            "not_attempted)")


def _unfinished(item: WorkItem, done: set[int], record: Recorder, reason: str) -> None:
    """Report every row of an item that has no outcome yet as ``not_attempted``."""
    for result in unfinished_rows(item, done, reason):
        record(result)


def _interrupts(pool: Pool[WorkItem], *,
                enabled: bool) -> contextlib.AbstractContextManager[None]:
    """First Ctrl-C: take no new rows; second: cancel the requests in flight."""
    presses = 0

    def on_sigint() -> None:
        nonlocal presses
        presses += 1
        if presses == 1:
            pool.stop()
        else:
            pool.cancel()

    return _on_sigint(on_sigint, enabled=enabled)


@contextlib.contextmanager
def _on_sigint(handler: Callable[[], None], *, enabled: bool) -> Iterator[None]:
    """Call ``handler`` on each Ctrl-C while the block runs (when ``enabled`` and possible);
    afterwards the handler from before is back. (The command line takes SIGTERM, how cron,
    systemd and ``kill`` stop a process, for a Ctrl-C: ``cli.common.run``.)"""
    loop = asyncio.get_running_loop()
    before = signal.getsignal(signal.SIGINT)
    installed = False
    if enabled:
        # Not the main thread, or a platform without signal support: no handler.
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.add_signal_handler(signal.SIGINT, handler)
            installed = True
    try:
        yield
    finally:
        if installed:
            loop.remove_signal_handler(signal.SIGINT)
            # remove_signal_handler leaves the default handler, not the caller's
            # (asyncio.run's, which cancels the run's task).
            signal.signal(signal.SIGINT, before)
