"""Shared limits on requests: a pace (at most N per second) and a gate (at most N in flight,
and one pause for the whole run when the server says ``Retry-After``)."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import heapq
import time
from collections.abc import Awaitable, Callable, Iterator

from bulkusers.concurrency import ConcurrencyLimit, Overload
from bulkusers.frozen import frozen


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


@frozen
class Ticket:
    """One request let through the gate: when it went, with how many in flight, in which pause
    generation (so an answer to a request sent before a pause does not start another)."""

    sent_at: float
    inflight: int
    pauses: int


#: Pool workers beyond the maximum in flight, as a multiple of it: rows that may wait to be
#: retried while the others go on. At 2,400 rows a second and 10 % random refusals, about
#: 300 rows wait at any moment (a first retry waits 0.5 to 1.5 s).
RESTING_ROOM = 4


class RequestGate:
    """Lets at most ``limit.limit`` requests through at once, first come first served, and
    pauses the whole run when the server asks for it (``Retry-After``).

    It also tells the pool how many workers may take rows (``admit``), so that rows wait in
    the queue, not half-sent, while the limit is low, and a first Ctrl-C leaves them unsent.
    A worker whose row waits to be retried holds no request in flight: unless the server is
    down (most requests refused), one more worker may take a row for each of them (up to
    RESTING_ROOM times the maximum), so failed requests do not leave the limit unused for the
    second or more their retries wait, whether they failed at random or for overload (the
    limit is what protects a server that cannot keep up, and it must be in use to tell the
    two apart: ``refusals``).
    """

    def __init__(self, limit: ConcurrencyLimit, *,
                 sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.limit = limit
        self.inflight = 0
        self.pauses = 0
        #: Requests waiting to be retried (their worker holds a row, not a slot).
        self.resting = 0
        self._sleep = sleep
        self._clock = clock
        self._waiters: collections.deque[asyncio.Future[None]] = collections.deque()
        self._resume: asyncio.Event | None = None
        self._pausing: asyncio.Task[None] | None = None
        #: Pool workers waiting to be admitted, as (worker number, its waiter): a heap, so
        #: that a wider limit wakes only the workers it lets in, not every idle one.
        self._sleepers: list[tuple[int, asyncio.Future[None]]] = []

    @property
    def workers(self) -> int:
        """How many pool workers the run needs: the maximum in flight, and room for as many
        rows again, RESTING_ROOM times over, waiting to be retried."""
        return self.limit.maximum * (1 + RESTING_ROOM)

    def enter(self) -> Ticket | None:
        """A ticket at once when nothing has to wait (no pause, a free slot, nobody queued);
        else None, and ``acquire`` waits. The usual case without a coroutine."""
        if self._resume is None and not self._waiters and self.inflight < self.limit.limit:
            self.inflight += 1
            return Ticket(self._clock(), self.inflight, self.pauses)
        return None

    async def acquire(self) -> Ticket:
        """Wait for the end of a pause and for a free slot; the ticket to release it with."""
        while self._resume is not None:
            await self._resume.wait()
        if self.inflight < self.limit.limit and not self._waiters:
            self.inflight += 1
        else:
            waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self._waiters.append(waiter)
            try:
                await waiter  # the releasing request hands its slot over
            except asyncio.CancelledError:
                if waiter.done() and not waiter.cancelled():
                    self._free()
                else:
                    self._waiters.remove(waiter)
                raise
        return Ticket(self._clock(), self.inflight, self.pauses)

    def release(self, ticket: Ticket, *, overload: Overload | None = None,
                answered: bool = True, asked_to_wait: bool = False) -> None:
        """Free the slot. ``overload``: the server refused or timed out the request;
        ``answered``: it answered at all (a latency worth learning from); ``asked_to_wait``:
        the refusal carried ``Retry-After``."""
        before = self.limit.limit
        if overload is not None:
            self.limit.overloaded(overload, sent_at=ticket.sent_at, inflight=ticket.inflight,
                                  asked_to_wait=asked_to_wait)
        elif answered:
            self.limit.succeeded(self._clock() - ticket.sent_at, ticket.inflight)
        self._free()
        if self.limit.limit > before:
            self._widen()
        elif self._sleepers:
            self._wake()  # the server is back up: the resting rows' room is back

    def pause(self, seconds: float, ticket: Ticket) -> None:
        """Pause every request for ``seconds`` (a ``Retry-After``), unless a pause is already
        running or began since the refused request was sent: the run pauses once."""
        if self._resume is not None or ticket.pauses != self.pauses:
            return
        self.pauses += 1
        self._resume = asyncio.Event()
        self._pausing = asyncio.get_running_loop().create_task(
            self._paused(seconds, self._resume))

    def close(self) -> None:
        """End a pause still running (the run is over)."""
        if self._pausing is not None:
            self._pausing.cancel()

    async def _paused(self, seconds: float, resume: asyncio.Event) -> None:
        try:
            await self._sleep(seconds)
        finally:
            self._resume = None
            resume.set()

    async def admit(self, worker: int) -> None:
        """Return once pool worker number ``worker`` (from 0) is within the limit, plus one
        worker for each request waiting to be retried unless the server is down: in an
        outage each such row would only fail as well, and the run take longer to stop."""
        while worker >= self._admitted():
            waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            # Worker numbers are distinct: the heap never compares two waiters.
            heapq.heappush(self._sleepers, (worker, waiter))
            await waiter  # a cancelled waiter is left in the heap, and skipped by _wake

    def _admitted(self) -> int:
        """How many pool workers may hold rows now."""
        limit = self.limit.limit
        if self.resting and self.limit.keeps_up():
            return limit + self.resting
        return limit

    def _wake(self) -> None:
        """Let in the sleeping workers the limit and the resting requests now admit."""
        admitted = self._admitted()
        sleepers = self._sleepers
        while sleepers and sleepers[0][0] < admitted:
            _, waiter = heapq.heappop(sleepers)
            if not waiter.done():
                waiter.set_result(None)

    @contextlib.contextmanager
    def resting_request(self) -> Iterator[None]:
        """Around a request's wait before it is retried: another worker may take a row."""
        self.resting += 1
        self._wake()
        try:
            yield
        finally:
            self.resting -= 1

    def refresh(self) -> None:
        """The limit was changed from outside (not by an answer): let in whoever it now
        admits."""
        self._widen()

    def _widen(self) -> None:
        self._wake()
        self._free(released=False)

    def _free(self, *, released: bool = True) -> None:
        """Give a freed slot (and any room a raised limit made) to the longest waiters."""
        if released:
            self.inflight -= 1
        while self._waiters and self.inflight < self.limit.limit:
            waiter = self._waiters.popleft()
            if not waiter.done():
                self.inflight += 1
                waiter.set_result(None)
