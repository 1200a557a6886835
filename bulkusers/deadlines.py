"""Requests' time limits kept by one watchdog task instead of a timer per request.

aiohttp's own ``ClientTimeout(total=...)`` (and ``asyncio.timeout``) schedule and cancel an
event-loop timer for every request: about 29,000 CPU instructions of a request's 440,000
(38,000 for ``asyncio.timeout``), counted by callgrind on per-row creates. Every request of a
client has the same limit, so their deadlines come in the order they were set: one task that
wakes a few times a second while requests are under way (and sleeps while none is) cancels
the requests past theirs, at a cost per request of two dictionary operations. A request
cancelled by the watchdog raises ``TimeoutError``, as aiohttp's timeout does; any other
cancellation stays a cancellation.
"""

from __future__ import annotations

import asyncio

#: How often the watchdog looks, at most (a limit is kept to within this much).
LONGEST_TICK_S = 0.5


class Deadlines:
    """A time limit of ``seconds`` for requests within one event loop. A request calls
    ``begin()`` and, whatever happens, ``end()``; on a CancelledError in between it asks
    ``timed_out()`` whether to raise TimeoutError instead. ``start()`` the watchdog inside the
    loop first and ``stop()`` it at the end; without it nothing is limited."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        #: The requests under way by number, in the order their deadlines come (the same
        #: limit for all: the order they began), with their deadline, task, and how many
        #: cancellations that task had pending when the request began.
        self._open: dict[int, tuple[float, asyncio.Task[object], int]] = {}
        self._expired: set[int] = set()
        self._count = 0
        self._tick = min(LONGEST_TICK_S, seconds / 10)
        self._watchdog: asyncio.Task[None] | None = None
        #: Set by the first request after none was under way: the watchdog sleeps on it
        #: rather than waking a few times a second for nothing (a client kept open idle).
        self._busy: asyncio.Event | None = None

    def start(self) -> None:
        """Start the watchdog (inside the running loop)."""
        if self._watchdog is None:
            self._busy = asyncio.Event()  # made here: it belongs to the running loop
            self._watchdog = asyncio.get_running_loop().create_task(self._watch(self._busy))

    async def stop(self) -> None:
        """Stop the watchdog; requests still under way are no longer limited. (Awaiting the
        watchdog itself would swallow a cancellation of the caller's that came meanwhile:
        ``asyncio.wait`` raises it.)"""
        watchdog, self._watchdog = self._watchdog, None
        if watchdog is not None:
            watchdog.cancel()
            await asyncio.wait((watchdog,))
            if not watchdog.cancelled():
                watchdog.result()  # a failure of the watchdog's own is raised, not lost

    def begin(self) -> int:
        """The current task's request starts: cancelled if still under way ``seconds`` from
        now (up to a tick later). Its number, for ``timed_out`` and ``end``."""
        task: asyncio.Task[object] | None = asyncio.current_task()
        assert task is not None, "Deadlines.begin() outside a task"
        self._count += 1
        if not self._open and self._busy is not None:
            self._busy.set()
        self._open[self._count] = (task.get_loop().time() + self.seconds, task,
                                   task.cancelling())
        return self._count

    def timed_out(self, number: int) -> bool:
        """On a CancelledError: True when it is the watchdog's alone (the task is uncancelled:
        raise TimeoutError instead); False when someone else cancelled the task too. As
        aiohttp's timer and ``asyncio.timeout`` do, a cancellation the task had pending
        before the request began (it is cleaning up after one) is not someone else's."""
        if number not in self._expired:
            return False
        self._expired.discard(number)
        _deadline, task, cancelling = self._open[number]
        return task.uncancel() <= cancelling

    def answered(self, number: int) -> None:
        """The answer is read whole: the request is no longer limited (what is left, aiohttp
        releasing the connection, is not the server's time), unless it already timed out."""
        if number not in self._expired:
            self._open.pop(number, None)

    def end(self, number: int) -> None:
        """The request is over, however it ended."""
        self._open.pop(number, None)
        self._expired.discard(number)

    def expire(self, now: float) -> None:
        """Cancel the tasks of the requests whose deadline is past at ``now`` (loop time)."""
        due = []
        for number, (deadline, _task, _cancelling) in self._open.items():
            if deadline > now:
                break  # the rest began later: their deadlines are later too
            if number not in self._expired:
                due.append(number)
        for number in due:
            self._expired.add(number)
            self._open[number][1].cancel()

    async def _watch(self, busy: asyncio.Event) -> None:
        loop = asyncio.get_running_loop()
        while True:
            if not self._open:
                busy.clear()
                await busy.wait()  # until a request begins
            await asyncio.sleep(self._tick)
            self.expire(loop.time())
