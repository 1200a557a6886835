"""The worker pool: a reader thread feeds a bounded queue that N workers drain.

The runner is generic: it knows items, not rows. It guarantees that every item the source
yields is either handed to ``handle`` or to ``unsent`` exactly once, also when the run is
stopped (Ctrl-C, an abort) or cancelled, so the caller can account for every input row.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Awaitable, Callable, Iterator
from typing import Any, Generic, TypeVar

from bulkusers.errors import AbortError, UnexpectedError

T = TypeVar("T")

#: Items taken from the source per trip to the reader thread: large enough to amortise the
#: thread hop, small enough that a stop leaves little read-but-unsent work.
SLICE = 256


class Pool(Generic[T]):
    """Run ``handle`` over a source's items with bounded concurrency and backpressure."""

    def __init__(self, handle: Callable[[T], Awaitable[None]], unsent: Callable[[T], None],
                 concurrency: int, *, admit: Callable[[int], Awaitable[None]] | None = None,
                 ) -> None:
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        self._handle = handle
        self._unsent = unsent
        self._concurrency = concurrency
        # Worker i takes an item only once admit(i) returns: an adaptive limit below the
        # pool's size keeps the other items queued, where a first Ctrl-C leaves them unsent.
        self._admit = admit
        self._queue: asyncio.Queue[T] = asyncio.Queue(maxsize=concurrency * 2)
        self._stopping = asyncio.Event()
        self._workers: list[asyncio.Task[None]] = []
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

    def cancel(self) -> None:
        """Stop, and cancel the items in flight too (a second Ctrl-C)."""
        self.stop()
        for worker in self._workers:
            worker.cancel()

    async def run(self, source: Iterator[T]) -> None:
        """Drain the source; returns when every item is handled or unsent."""
        self._workers = [asyncio.create_task(self._work(number))
                         for number in range(self._concurrency)]
        try:
            await self._feed(source)
            await self._processed()
        finally:
            # Whatever stopped us, nothing may stay queued without an outcome.
            for worker in self._workers:
                worker.cancel()
            await asyncio.gather(*self._workers, return_exceptions=True)
            self._drain_queue()

    async def _feed(self, source: Iterator[T]) -> None:
        while True:
            # Reading and planning run in a thread so a slow file never stalls the network.
            batch = await asyncio.to_thread(_take, source, SLICE)
            if not batch:
                return
            for item in batch:
                if self.stopping:
                    self._unsent(item)
                else:
                    await self._put(item)
            if self.stopping:
                # Account for the rest of the input without sending any of it.
                await asyncio.to_thread(lambda: [self._unsent(i) for i in source])
                return

    async def _put(self, item: T) -> None:
        if not self._queue.full():
            self._queue.put_nowait(item)  # the usual case, without two tasks per item
            return
        # Wait for room in the queue, but give the item up if the pool stops meanwhile.
        put = asyncio.create_task(self._queue.put(item))
        stop = asyncio.create_task(self._stopping.wait())
        try:
            await asyncio.wait({put, stop}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stop.cancel()
            if not put.done():
                put.cancel()
                self._unsent(item)

    async def _processed(self) -> None:
        # Every queued item is done, or every worker has been cancelled (a second Ctrl-C).
        joined = asyncio.create_task(self._queue.join())
        workers_gone = asyncio.gather(*self._workers, return_exceptions=True)
        waiting: set[asyncio.Future[Any]] = {joined, workers_gone}
        try:
            await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
        finally:
            joined.cancel()

    async def _work(self, number: int) -> None:
        while True:
            if self._admit is not None and number > 0:  # worker 0 always drains the queue
                await self._admit(number)
            item = await self._queue.get()
            try:
                if self.stopping:
                    self._unsent(item)
                else:
                    await self._handle(item)
            except AbortError as exc:
                # Not this item's fault: stop the run; the handler has reported the item.
                self._abort(exc)
            except Exception as exc:
                # A bug must not silently kill a worker (the queue would never drain).
                self._abort(UnexpectedError(f"unexpected {exc.__class__.__name__}: {exc}"))
            finally:
                self._queue.task_done()

    def _abort(self, exc: AbortError) -> None:
        if self.abort is None:
            self.abort = exc
        self._stopping.set()

    def _drain_queue(self) -> None:
        while True:
            try:
                item = self._queue.get_nowait()
            except asyncio.QueueEmpty:
                return
            self._queue.task_done()
            self._unsent(item)


def _take(source: Iterator[T], count: int) -> list[T]:
    return list(itertools.islice(source, count))
