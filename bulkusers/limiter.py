"""A shared pace for requests: at most N per second across every worker of a run."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable


class RateLimiter:
    """Spaces request starts evenly at ``rate`` per second (a leaky bucket without bursts).

    Sisense publishes no rate limit but advises pacing write-heavy jobs (about 5 to 10
    requests per second on a busy server), so an admin can ask for a steady pace instead of
    discovering the server's limit through errors.
    """

    def __init__(self, rate: float, *, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], Awaitable[None]] = asyncio.sleep) -> None:
        if rate <= 0:
            raise ValueError("rate must be positive")
        self._interval = 1.0 / rate
        self._clock = clock
        self._sleep = sleep
        self._next = 0.0
        self._lock = asyncio.Lock()

    async def wait(self) -> None:
        """Return when the next request may start."""
        async with self._lock:
            now = self._clock()
            start = max(now, self._next)
            self._next = start + self._interval
        if start > now:
            await self._sleep(start - now)


class AdaptiveLimit:
    """How many requests may be in flight: halved when the server answers 429, grown back by
    one after a run of answers without one (additive increase, multiplicative decrease).

    A server that caps concurrency below ``--concurrency`` then sees the tool settle just
    under its cap instead of a stream of refusals.
    """

    def __init__(self, maximum: int) -> None:
        self.maximum = maximum
        self.limit = maximum
        self._inflight = 0
        self._calm = 0
        self._waiters: list[asyncio.Future[None]] = []

    async def acquire(self) -> None:
        """Wait for a free slot under the current limit."""
        while self._inflight >= self.limit:
            waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self._waiters.append(waiter)
            await waiter
        self._inflight += 1

    def release(self, *, throttled: bool) -> None:
        """Free a slot; ``throttled`` when the answer was 429."""
        self._inflight -= 1
        if throttled:
            self.limit = max(1, self.limit // 2)
            self._calm = 0
        else:
            self._calm += 1
            # Probe upwards slowly: each probe above a server's cap costs some row a 429.
            if self._calm >= max(10, 4 * self.limit) and self.limit < self.maximum:
                self.limit += 1
                self._calm = 0
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:  # each re-checks the limit; cancelled ones are already done
            if not waiter.done():
                waiter.set_result(None)
