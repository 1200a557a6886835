"""How many requests may be in flight: found from the server's latency and its refusals.

A real Sisense publishes no limit and seldom answers 429: under load its answers slow down, then
its gateway answers 502, 503 or 504. `ConcurrencyLimit` is a Vegas-style limit (as in Netflix's
concurrency-limits): it starts low, doubles once per round trip while the server keeps up (slow
start, judged on the first half of each round trip's answers; an overshoot into the server's
queue goes straight back), then moves by a tenth at a
time, holding where the latency is a tenth above the unloaded latency. Above that it backs off
unless answers per second rise with the requests in flight (a busy client, not a queue: by
Little's law, more in flight over the same latency). It backs off at once on 429, 502, 503, 504
and timeouts, at most once per round trip, and never exceeds its maximum. After a 429 it
remembers the in-flight count the server refused and probes above it only after a long calm,
since every probe above a server's cap costs the whole run a ``Retry-After`` pause. While the
run reads pages of users it holds a few in flight (``hold``), and learns the latency afresh for
the writes (``relearn``).

Pure logic: time comes from an injected clock, requests are reported by the caller.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from bulkusers.frozen import frozen

log = logging.getLogger("bulkusers.concurrency")

#: What told the limit to back off: an HTTP status the server answered, or a timeout.
Overload = Literal["429", "502", "503", "504", "timeout"]

#: The most requests in flight a run may ever use (``--max-concurrency`` is at most this).
CEILING = 512
#: Where an adaptive limit starts: low, so an unknown server is not hit by a crowd at once.
INITIAL = 2
#: Requests in flight an adaptive limit holds while the run reads pages of users.
READS = 8
#: An adaptive limit at most this high is kept when the run relearns the latency.
RELEARN_FROM = 8
#: Seconds without a 429 after which the limit may probe one above the in-flight count the
#: server refused with 429 (servers' caps change, but rarely within a run).
CAP_MEMORY_S = 60.0
#: A window (one round trip) never lasts longer than this, so a slow trickle still adapts.
MAX_WINDOW_S = 1.0
#: The limit grows while the server answers less than this many times slower than unloaded
#: (a fifth of the requests waiting in its queue); above it, it backs off unless answers per
#: second rise with it (RISE_SHARE).
GROW_BELOW = 1.2
#: Out of slow start the limit grows only while answers come less than this many times
#: slower than unloaded, and otherwise backs off towards it: a server's queue held to a
#: tenth of its latency leaves room for the jitter of real answers under twice unloaded.
HOLD_BELOW = 1.1
#: Above GROW_BELOW the limit still grows while answers per second rise by at least this
#: share of the rise in requests in flight (a queue adds none: its answers only wait longer).
RISE_SHARE = 0.5
#: Under the in-flight count a 429 refused, the limit backs off for latency only above this:
#: such a server refuses what it cannot serve, so a little slower is the client's own time.
CAPPED_HOLD = 1.5
#: How much answers per second measured over one round trip wander on their own.
RATE_NOISE = 0.03
#: At most this many limit changes are kept for the summary (older ones are thinned).
MAX_HISTORY = 1000


@frozen
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
        self._held = False  # held at READS by ``hold`` until the next ``relearn``
        #: Round trips in a row whose latency climbed while in slow start.
        self._climbing = 0
        self._no_load_rtt: float | None = None
        self._ratio: float | None = None  # smoothed latency over the unloaded latency
        self._rates: dict[int, float] = {}  # answers per second with each number in flight
        self._changed_at = self._start  # answers to requests sent before say nothing new
        self._lowered_at = -math.inf  # when the limit last came down
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
        # In slow start half a window of answers judges a level: the first answers to a
        # doubled limit come back one round trip after the doubling, the last a round trip
        # after that, and waiting for them all made every doubling cost two round trips.
        needed = self.limit // 2 if self._slow_start else self.limit
        long_enough = window.samples >= needed or now - window.started >= MAX_WINDOW_S
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

    def hold(self) -> None:
        """Hold an adaptive limit at READS (never above the maximum) until the next
        ``relearn``, backing off only on overload signals, as a fixed limit does: for reading
        pages of users, whose latency says more about the client (busy with the pages it got)
        than about the server. A fixed limit is kept as it is."""
        if self.fixed:
            return
        self._held = True
        self._slow_start = False
        self._window = _Window(self._clock())
        self._set(float(min(READS, self.maximum)), "reading")

    def relearn(self) -> None:
        """Learn the latency afresh (the run moves on to other requests, e.g. from reading
        pages of users to writing one user each): an adaptive limit above RELEARN_FROM drops to
        a quarter (at least RELEARN_FROM), low enough to see the server unloaded again, and
        doubles back in a few round trips."""
        self._no_load_rtt = self._ratio = None
        self._rates.clear()
        self._window = _Window(self._clock())
        self._held = False
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
        if self.fixed or self._held:
            target = self.maximum if self.fixed else min(READS, self.maximum)
            if self._limit < target:
                self._set(min(float(target), self._limit + 1), "recovering")
            return
        if window.peak_inflight < self.limit // 2:
            return  # the run did not use the limit: its latency says nothing about it
        # How much slower than unloaded the server answers (1.0: no queue at all), smoothed
        # over round trips so that one slow moment (a busy client) moves nothing.
        ratio = rtt / self._no_load_rtt
        self._ratio = ratio if self._ratio is None else (self._ratio + ratio) / 2
        # Answers per second by Little's law (requests in flight over their latency), kept
        # by the number really in flight (not by the limit: it fills up after a rise).
        # Counting answers over the window's length instead would undercount every level
        # the limit just moved to, and a level held longer would look faster than it is.
        # Right after the limit came down, the server still works off the queue the higher
        # limit left: that round trip is slower than the new level, and not recorded.
        level = round(window.inflight_total / window.samples)
        settled = self._lowered_at < window.started
        if settled:
            answered = window.inflight_total / window.rtt_total
            before = self._rates.get(level)
            self._rates[level] = answered if before is None else (before + answered) / 2
        # In slow start each round trip is judged on its own (the smoothed ratio would let
        # one slow round trip count twice); afterwards, smoothed.
        judged = ratio if self._slow_start else self._ratio
        if judged < (GROW_BELOW if self._slow_start else HOLD_BELOW):
            self._climbing = 0
            step = self._limit if self._slow_start else max(1.0, self._limit * 0.1)
            self._set(self._limit + step, "latency steady")
            return
        if self._slow_start:
            # Latency has started to climb: probe gently from now on. Only when it climbs two
            # round trips in a row: the first requests on each new connection are slower
            # (the handshake), which one window alone cannot tell from a queue.
            self._climbing += 1
            if self._climbing < 2:
                # The rest of this round trip's answers say the same: the next judgement is
                # of requests sent from now on.
                self._changed_at = now
                return
            self._slow_start = False
            if not (level in self._rates and self._throughput_rising(level)):
                # The doubling overshot into a queue: straight back to where latency would
                # be growable (half at most), not a fifth per round trip while it waits.
                back = max(self._limit / 2, self._limit * HOLD_BELOW / ratio)
                self._set(max(1.0, min(self._limit - 1, back)), "latency rising")
                return
        if not settled:
            return  # judge the new level once the old queue has drained
        if level in self._rates and self._throughput_rising(level):
            # Slower answers, but more of them: a busy machine, not a queue. Keep probing.
            self._set(self._limit + max(1.0, self._limit * 0.1), "throughput rising")
            return
        if self._cap is not None and self._limit <= self._cap and self._ratio < CAPPED_HOLD:
            return  # under the cap a 429 showed, somewhat slower is the client, not a queue
        # Slower answers and no more of them: a queue at the server. Back halfway towards
        # where latency would be growable again: a fifth at most, one at least.
        growable = self._limit * HOLD_BELOW / self._ratio
        lowered = min(self._limit - 1, max(self._limit * 0.8, (self._limit + growable) / 2))
        self._set(max(1.0, lowered), "latency rising")

    def _throughput_rising(self, level: int) -> bool:
        """Whether more requests in flight (``level``) are served about as fast, a busy
        machine, rather than merely waiting longer in the server's queue, where answers per
        second stay: they beat the best seen with clearly fewer in flight by at least half
        as much as the requests in flight rose, and the best seen with a few fewer by more
        than the noise of one round trip."""
        here = self._rates[level]
        clearly = [(rate, limit) for limit, rate in self._rates.items()
                   if limit <= level * 0.85]
        if not clearly:
            return False
        rate, limit = max(clearly)
        close = [rate for limit, rate in self._rates.items() if level * 0.85 < limit < level]
        return (here > rate * (1 + RISE_SHARE * (level / limit - 1))
                and all(here > other * (1 + RATE_NOISE) for other in close))

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
            if self.limit < before:
                self._lowered_at = self._changed_at
            seconds = round(self._clock() - self._start, 3)
            self.history.append(LimitChange(seconds, self.limit, reason))
            if len(self.history) > MAX_HISTORY:
                # Keep the first change and every other later one: the shape survives.
                self.history = self.history[:1] + self.history[2::2]
            log.debug("concurrency limit %d -> %d (%s)", before, self.limit, reason)
