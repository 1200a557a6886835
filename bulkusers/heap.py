"""The values a run keeps to its end, kept out of the cycle collector's way.

A run's directory snapshot is tens of thousands of small objects (a dict per user as the
answer is parsed, then a ``User`` and its group ids) that all live until the run ends. Built
with the cycle collector running, every 700 new objects start a collection, and later full
collections scan them all again: for a 10,000-user directory about 70 collections and one
full one, 40 to 55 ms of the 0.4 s of client CPU an upsert into it takes (measured with
``gc.callbacks``; 7 to 10 ms with the collector paused and the snapshot frozen).

``gc.freeze`` moves every object the process tracks into the permanent generation, not only
the snapshot: the caller's objects too, and any cycle of garbage not yet collected (made
while the collector was paused, say). Reference counting still frees every value the run
drops; only such cycles wait for ``release`` at the end of the run.

While a run lasts, the young generation is collected a tenth as often (``YOUNG_THRESHOLD``
new objects instead of Python's 700). Each request in flight holds tracked objects for its
whole round trip (its coroutines, futures, aiohttp's request and response), and each young
collection walks all of them: with 64 requests in flight, per-row creates spent about 1 µs
of client CPU a row in those collections (``gc.callbacks``), and 3,000 to 6,000
instructions a row fewer by callgrind with the threshold raised. What a less frequent
collection costs is cyclic garbage that waits longer to be freed: a few thousand objects.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager
from types import TracebackType

#: New objects between two collections of the young generation while a run lasts.
YOUNG_THRESHOLD = 7_000


class LongLived:
    """One run's span (``async with``): values built in ``building`` are left out of the
    cycle collector's scans until the run ends, and the young generation is collected less
    often meanwhile."""

    def __init__(self) -> None:
        self._froze = False
        #: The thresholds before the run, while the run's own are in force.
        self._thresholds: tuple[int, int, int] | None = None

    @contextmanager
    def building(self) -> Iterator[None]:
        """Build values that last the rest of the run with the cycle collector paused, then
        move every object the process tracks (the caller's too) into its permanent
        generation (``gc.freeze``), unless something else froze objects first: a server that
        froze its own before forking, or another run in this process, must not have them
        thawed by this one. (Runs in several threads at once may both freeze; the first to
        end thaws all: a matter of speed only.)"""
        enabled = gc.isenabled()
        gc.disable()
        try:
            yield
            # Nothing was built when the block failed: nothing worth freezing.
            if gc.get_freeze_count() == 0:
                gc.freeze()
                self._froze = True
        finally:
            if enabled:
                gc.enable()

    def release(self) -> None:
        """Give what ``building`` froze back to the collector (idempotent)."""
        if self._froze:
            self._froze = False
            gc.unfreeze()

    def collect_less(self) -> None:
        """Collect the young generation every ``YOUNG_THRESHOLD`` new objects until
        ``restore`` (unless it already is collected as rarely: a caller's choice stands)."""
        young, middle, old = before = gc.get_threshold()
        if young < YOUNG_THRESHOLD:
            gc.set_threshold(YOUNG_THRESHOLD, middle, old)
            self._thresholds = before

    def restore(self) -> None:
        """The thresholds as they were before ``collect_less``, unless something changed
        them since (another run in this process, the caller): theirs stand (idempotent)."""
        if self._thresholds is not None:
            before, self._thresholds = self._thresholds, None
            if gc.get_threshold()[0] == YOUNG_THRESHOLD:
                gc.set_threshold(*before)

    async def __aenter__(self) -> LongLived:
        self.collect_less()
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        self.release()
        self.restore()
