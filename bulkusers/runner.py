"""The worker pool: N workers take the items of a plan one at a time and handle them.

The runner is generic: it knows items, not rows. It guarantees that every item the source
yields is either handed to ``handle`` or to ``unsent`` exactly once, also when the run is
stopped (Ctrl-C, an abort) or cancelled, so the caller can account for every input row.

The source is a plan already made (``plan.Plan``: in memory, or blocks read back from a
spool), so a worker takes its next item straight from it on the event loop. An item is only
taken when a worker is about to handle it: nothing is ever held between the source and a
worker, and the source is read no further ahead than the items in flight.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterator
from typing import Any, Generic, TypeVar

from bulkusers.errors import AbortError, UnexpectedError

T = TypeVar("T")

_END: Any = object()


class Pool(Generic[T]):
    """Run ``handle`` over a source's items with bounded concurrency."""

    def __init__(self, handle: Callable[[T], Awaitable[None]], unsent: Callable[[T], None],
                 concurrency: int, *, admit: Callable[[int], Awaitable[None]] | None = None,
                 before_drain: Callable[[], None] | None = None) -> None:
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        self._handle = handle
        self._unsent = unsent
        self._concurrency = concurrency
        # Worker i takes an item only once admit(i) returns: an adaptive limit below the
        # pool's size leaves the other items in the source, where a first Ctrl-C leaves
        # them unsent.
        self._admit = admit
        # Told when the items left in the source are about to go to ``unsent`` (a source that
        # makes its items can then make them cheaply: they will not be handled).
        self._before_drain = before_drain
        self._source: Iterator[T] = iter(())
        self._exhausted = False
        self._in_flight = 0
        self._done = asyncio.Event()
        self._stopping = asyncio.Event()
        self._workers: list[asyncio.Task[None]] = []
        self._source_error: BaseException | None = None
        self.abort: AbortError | None = None
        self.interrupted = False

    @property
    def stopping(self) -> bool:
        """True once the pool takes no new items."""
        return self._stopping.is_set()

    def stop(self) -> None:
        """Take no new items; those in flight finish, the rest go to ``unsent``."""
        self.interrupted = True
        self._stopping.set()
        self._check_done()

    def cancel(self) -> None:
        """Stop, and cancel the items in flight too (a second Ctrl-C)."""
        self.stop()
        for worker in self._workers:
            worker.cancel()

    async def run(self, source: Iterator[T]) -> None:
        """Drain the source; returns when every item is handled or unsent."""
        self._source = source
        self._workers = [asyncio.create_task(self._work(number))
                         for number in range(self._concurrency)]
        try:
            await self._processed()
        finally:
            # Whatever stopped us, nothing may stay in the source without an outcome.
            for worker in self._workers:
                worker.cancel()
            await asyncio.gather(*self._workers, return_exceptions=True)
            if self._source_error is None:
                if self._before_drain is not None and not self._exhausted:
                    self._before_drain()
                for item in self._source:
                    self._unsent(item)
        if self._source_error is not None:
            raise self._source_error

    async def _processed(self) -> None:
        # Every item is taken and done (or the pool stopped with none in flight), or every
        # worker has been cancelled (a second Ctrl-C).
        done = asyncio.create_task(self._done.wait())
        workers_gone = asyncio.gather(*self._workers, return_exceptions=True)
        waiting: set[asyncio.Future[Any]] = {done, workers_gone}
        try:
            await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
        finally:
            done.cancel()

    async def _work(self, number: int) -> None:
        while not self._stopping.is_set() and not self._exhausted:
            if self._admit is not None and number > 0:  # worker 0 always takes items
                await self._admit(number)
                if self._stopping.is_set():
                    break
            try:
                item = next(self._source, _END)
            except Exception as exc:  # the plan could not be read back (its spool file)
                self._source_error = exc
                self._stopping.set()
                break
            if item is _END:
                self._exhausted = True
                break
            self._in_flight += 1
            try:
                await self._handle(item)
            except AbortError as exc:
                # Not this item's fault: stop the run; the handler has reported the item.
                self._abort(exc)
            except Exception as exc:
                # A bug must not silently kill a worker (the pool would never finish).
                self._abort(UnexpectedError(f"unexpected {exc.__class__.__name__}: {exc}"))
            finally:
                self._in_flight -= 1
        self._check_done()

    def _check_done(self) -> None:
        if (self._exhausted or self._stopping.is_set()) and self._in_flight == 0:
            self._done.set()

    def _abort(self, exc: AbortError) -> None:
        if self.abort is None:
            self.abort = exc
        self._stopping.set()
