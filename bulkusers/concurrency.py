"""How many requests may be in flight: found from the server's latency and its refusals.

A real Sisense publishes no limit and seldom answers 429: under load its answers slow down, then
its gateway answers 502, 503 or 504. `ConcurrencyLimit` is a Vegas-style limit (as in Netflix's
concurrency-limits): it starts low, doubles once per round trip while the server keeps up (slow
start), then moves one request at a time, holding where the latency climbs above the unloaded
latency by a small queue's worth. It backs off at once on 429, 502, 503, 504 and timeouts,
at most once per round trip, and never exceeds its maximum. After a 429 it remembers the
in-flight count the server refused and probes above it only after a long calm, since every
probe above a server's cap costs the whole run a ``Retry-After`` pause.

Pure logic: time comes from an injected clock, requests are reported by the caller.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

log = logging.getLogger("bulkusers.concurrency")

#: What told the limit to back off: an HTTP status the server answered, or a timeout.
Overload = Literal["429", "502", "503", "504", "timeout"]

#: The most requests in flight a run may ever use (``--max-concurrency`` is at most this).
CEILING = 512
#: Where an adaptive limit starts: low, so an unknown server is not hit by a crowd at once.
INITIAL = 2
#: An adaptive limit at most this high is kept when the run relearns the latency.
RELEARN_FROM = 8
#: Seconds without a 429 after which the limit may probe one above the in-flight count the
#: server refused with 429 (servers' caps change, but rarely within a run).
CAP_MEMORY_S = 60.0
#: A window (one round trip) never lasts longer than this, so a slow trickle still adapts.
MAX_WINDOW_S = 1.0
#: The limit grows while the server answers less than this many times slower than unloaded
#: (a fifth of the requests waiting in its queue), and backs off above BACK_OFF_ABOVE.
GROW_BELOW = 1.2
BACK_OFF_ABOVE = 1.7
#: At most this many limit changes are kept for the summary (older ones are thinned).
MAX_HISTORY = 1000


@dataclass(frozen=True, slots=True)
class LimitChange:
    """The limit became ``limit`` at ``seconds`` after the start, because of ``reason``."""

    seconds: float
    limit: int
    reason: str


@dataclass(slots=True)
class _Window:
    """What one round trip's answers said."""

    started: float
    samples: int = 0
    rtt_total: float = 0.0
    inflight_total: int = 0
    peak_inflight: int = 0

    def add(self, rtt: float, inflight: int) -> None:
        self.samples += 1
        self.rtt_total += rtt
        self.inflight_total += inflight
        self.peak_inflight = max(self.peak_inflight, inflight)


class ConcurrencyLimit:
    """The number of requests allowed in flight, adapted to the server's answers.

    ``fixed`` keeps the limit at ``maximum`` except to back off from overload signals (and
    climb back), without reading the latency: what ``--concurrency N`` asks for.
    """

    def __init__(self, maximum: int, *, fixed: bool = False, initial: int | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if not 1 <= maximum <= CEILING:
            raise ValueError(f"the maximum concurrency must be between 1 and {CEILING}")
        self.maximum = maximum
        self.fixed = fixed
        self._clock = clock
        self._start = clock()
        start = maximum if fixed else min(initial or INITIAL, maximum)
        self._limit = float(start)
        #: Requests allowed in flight now (at least 1): read for every request, so kept as a
        #: plain attribute, set with ``_limit``.
        self.limit = max(1, int(self._limit))
        self._slow_start = not fixed
        #: Round trips in a row whose latency climbed while in slow start.
        self._climbing = 0
        self._no_load_rtt: float | None = None
        self._ratio: float | None = None  # smoothed latency over the unloaded latency
        self._rates: dict[int, float] = {}  # answers per second seen at each limit
        self._changed_at = self._start  # answers to requests sent before say nothing new
        self._window = _Window(self._start)
        self._last_backoff = -math.inf  # requests sent before it do not count twice
        self._cap: int | None = None  # in-flight count a 429 refused, minus one
        self._cap_since = self._start
        self.history: list[LimitChange] = [LimitChange(0.0, start, "start")]

    @property
    def no_load_rtt(self) -> float | None:
        """The lowest round-trip time seen over a window: the server's unloaded latency."""
        return self._no_load_rtt

    # -- what the caller reports --------------------------------------------------------------

    def succeeded(self, rtt: float, inflight: int) -> None:
        """An answer that took ``rtt`` seconds, sent with ``inflight`` requests in flight
        (itself included)."""
        now = self._clock()
        if now - rtt < self._changed_at:
            return  # sent under the previous limit: it tells nothing about this one
        self._window.add(rtt, inflight)
        window = self._window
        long_enough = window.samples >= self.limit or now - window.started >= MAX_WINDOW_S
        if long_enough:
            self._end_window(now)

    def overloaded(self, signal: Overload, *, sent_at: float, inflight: int) -> None:
        """The server refused or timed out a request sent at ``sent_at`` (clock time) with
        ``inflight`` requests in flight (itself included)."""
        now = self._clock()
        if signal == "429":
            refused_at = max(1, inflight - 1)
            if self._cap is None or refused_at < self._cap:
                self._cap = refused_at
            self._cap_since = now
        if sent_at < self._last_backoff:
            return  # sent before the last back-off: that one already answered for it
        self._last_backoff = now
        self._slow_start = False
        if signal == "429" and self._cap is not None and self._cap < self._limit:
            new = float(self._cap)  # a cap on requests in flight: settle just under it
        else:
            new = self._limit * (0.9 if signal == "429" else 0.75)
        self._set(max(1.0, new), f"HTTP {signal}" if signal != "timeout" else "timeout")
        self._window = _Window(now)

    def relearn(self) -> None:
        """Learn the latency afresh (the run moves on to other requests, e.g. from reading
        pages of users to writing one user each): an adaptive limit above RELEARN_FROM drops to
        a quarter (at least RELEARN_FROM), low enough to see the server unloaded again, and
        doubles back in a few round trips."""
        self._no_load_rtt = self._ratio = None
        self._rates.clear()
        self._window = _Window(self._clock())
        if not self.fixed:
            self._slow_start = True
            self._climbing = 0
            # A quarter of a high limit; a low one (up to RELEARN_FROM) is kept: so few in
            # flight already show the server unloaded, and dropping them costs round trips.
            low = max(INITIAL, min(self.limit, RELEARN_FROM), self.limit // 4)
            self._set(float(min(low, self.maximum)), "relearning")

    # -- the algorithm ------------------------------------------------------------------------

    def _end_window(self, now: float) -> None:
        window, self._window = self._window, _Window(now)
        rtt = window.rtt_total / window.samples
        if self._no_load_rtt is None or rtt < self._no_load_rtt:
            self._no_load_rtt = rtt
        if self._cap is not None and now - self._cap_since >= CAP_MEMORY_S:
            self._cap += 1  # a long calm: the server's cap may have risen, probe one above
            self._cap_since = now
        if self.fixed:
            if self._limit < self.maximum:
                self._set(self._limit + 1, "recovering")
            return
        if window.peak_inflight < self.limit // 2:
            return  # the run did not use the limit: its latency says nothing about it
        # How much slower than unloaded the server answers (1.0: no queue at all), smoothed
        # over round trips so that one slow moment (a busy client) moves nothing.
        ratio = rtt / self._no_load_rtt
        self._ratio = ratio if self._ratio is None else (self._ratio + ratio) / 2
        level = self.limit
        answered = window.samples / max(now - window.started, 1e-6)
        before = self._rates.get(level)
        self._rates[level] = answered if before is None else (before + answered) / 2
        # In slow start each round trip is judged on its own (the smoothed ratio would let
        # one slow round trip count twice); afterwards, smoothed.
        judged = ratio if self._slow_start else self._ratio
        if judged < GROW_BELOW:
            self._climbing = 0
            step = self._limit if self._slow_start else max(1.0, self._limit * 0.1)
            self._set(self._limit + step, "latency steady")
        elif (self._ratio > BACK_OFF_ABOVE and not self._slow_start
              and not self._throughput_rising(level)):
            # Much slower answers and no more of them than with fewer in flight: a queue.
            # Back towards where latency would be just growable again, a fifth at most.
            factor = max(0.8, GROW_BELOW / self._ratio)
            self._set(max(1.0, min(self._limit - 1, self._limit * factor)), "latency rising")
        elif not self._slow_start and self._throughput_rising(level):
            # Slower answers, but more of them: a busy machine, not a queue. Keep probing.
            self._set(self._limit + max(1.0, self._limit * 0.1), "throughput rising")
        else:
            # Latency has started to climb: probe gently now. In slow start only when it
            # climbs two round trips in a row: the first requests on each new connection
            # are slower (the handshake), which one window alone cannot tell from a queue.
            self._climbing += 1
            if self._climbing >= 2 or not self._slow_start:
                self._slow_start = False

    def _throughput_rising(self, level: int) -> bool:
        """Whether answers per second at this limit beat every clearly lower limit's."""
        lower = [rate for limit, rate in self._rates.items() if limit <= level * 0.85]
        return bool(lower) and self._rates[level] > 1.1 * max(lower)

    def _set(self, value: float, reason: str) -> None:
        ceiling = float(self.maximum if self._cap is None else min(self.maximum, self._cap))
        if reason in ("latency steady", "throughput rising", "recovering"):
            value = min(value, max(ceiling, 1.0))
            if value <= self._limit:
                return
        value = min(value, float(self.maximum))
        before = self.limit
        self._limit = value
        self.limit = max(1, int(value))
        if self.limit != before:
            self._changed_at = self._clock()
            seconds = round(self._clock() - self._start, 3)
            self.history.append(LimitChange(seconds, self.limit, reason))
            if len(self.history) > MAX_HISTORY:
                # Keep the first change and every other later one: the shape survives.
                self.history = self.history[:1] + self.history[2::2]
            log.debug("concurrency limit %d -> %d (%s)", before, self.limit, reason)
