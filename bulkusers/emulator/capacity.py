"""A server that slows down like a real one: N requests served at once, the rest queued.

A real Sisense publishes no rate limit: under load its requests wait for a worker, so latency
grows with load, and the gateway in front of it answers 503 when its queue is full and 504 when
a request waited too long. `Capacity` models exactly that, first in, first out: at most
``capacity`` requests are inside the server at once (each taking the emulator's latency), up to
``queue_limit`` more wait for a slot, beyond that the answer is 503, and a request that waited
``gateway_timeout_s`` for a slot is answered 504 without ever being processed.
"""

from __future__ import annotations

import asyncio
import collections
from collections.abc import Awaitable, Callable

from aiohttp import web

#: What a gateway in front of an overloaded server answers, and what each status means.
QUEUE_FULL = 503
GATEWAY_TIMEOUT = 504


class Capacity:
    """A FIFO of requests waiting for one of ``capacity`` slots; the knobs are plain attributes."""

    def __init__(self, capacity: int, *, queue_limit: int | None = None,
                 gateway_timeout_s: float | None = 60.0) -> None:
        if capacity < 1:
            raise ValueError("capacity must be at least 1")
        self.capacity = capacity
        self.queue_limit = queue_limit
        self.gateway_timeout_s = gateway_timeout_s
        self.serving = 0
        self.peak_queue = 0  # lets tests see that requests really waited
        self._waiting: collections.deque[asyncio.Future[None]] = collections.deque()

    @property
    def queued(self) -> int:
        """Requests waiting for a slot right now."""
        return len(self._waiting)

    async def serve(self, handle: Callable[[], Awaitable[web.StreamResponse]],
                    refuse: Callable[[int], web.StreamResponse]) -> web.StreamResponse:
        """Run ``handle`` once a slot is free; ``refuse(503 or 504)`` when the gateway gives up."""
        if self.serving < self.capacity and not self._waiting:
            self.serving += 1
        else:
            if self.queue_limit is not None and len(self._waiting) >= self.queue_limit:
                return refuse(QUEUE_FULL)
            if not await self._wait_for_slot():
                return refuse(GATEWAY_TIMEOUT)
        try:
            return await handle()
        finally:
            self._release()

    async def _wait_for_slot(self) -> bool:
        """Queue up; True once a slot was handed over, False after the gateway timeout."""
        slot: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiting.append(slot)
        self.peak_queue = max(self.peak_queue, len(self._waiting))
        try:
            await asyncio.wait_for(asyncio.shield(slot), self.gateway_timeout_s)
        except TimeoutError:
            if slot.done():  # handed over in the same instant: take it after all
                return True
            self._waiting.remove(slot)
            return False
        except asyncio.CancelledError:
            # The client went away while queued: give up the place, or the slot if it came.
            if slot.done():
                self._release()
            else:
                self._waiting.remove(slot)
            raise
        return True

    def _release(self) -> None:
        """Hand the freed slot straight to the longest waiter (no barging), else free it."""
        while self._waiting:
            slot = self._waiting.popleft()
            if not slot.done():
                slot.set_result(None)
                return  # the slot changes hands: ``serving`` stays the same
        self.serving -= 1
