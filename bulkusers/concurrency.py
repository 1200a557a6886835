"""How many requests may be in flight: found from the server's latency and its refusals.

A real Sisense publishes no limit and seldom answers 429: under load its answers slow down, then
its gateway answers 502, 503 or 504. `ConcurrencyLimit` is a Vegas-style limit (as in Netflix's
concurrency-limits): it starts low, doubles once per round trip while the server keeps up (slow
start, judged on the first half of each round trip's answers; an overshoot into the server's
queue goes straight back), then moves by a tenth at a time, holding where the latency is a
tenth above the unloaded latency. Above that it backs off unless answers per second rise with
the requests in flight (a busy client, not a queue: by Little's law, more in flight over the
same latency). From a server whose answers are alike (the quick ones of the latest within an
eighth of each other, as when requests only wait in its queue), a tail of answers half as slow
again as the quick ones of the same round trip is a queue whatever the mean says (one request
over a small server's capacity moves the mean little and the p95 latency to twice unloaded):
the limit backs off, then waits a few round trips before it probes again, twice as long each
time the probe queues. A server whose answers vary widely on their own has such a tail at
every level: for it the mean alone decides. The limit backs off at once on 429 and timeouts,
and on 502, 503 and 504 from a server that shows overload (more than a fifth of the latest
answers refused, or a refusal carrying ``Retry-After``): a gateway also fails requests at
random, which a retry mends and a lower limit does not (``refusals``: the first back-off on
them is a trial that tells the two apart). It backs off at most once per round trip, and
never exceeds its maximum. After a 429 it
remembers the in-flight count the server refused and probes above it only after a long calm,
since every probe above a server's cap costs the whole run a ``Retry-After`` pause. While the
run reads pages of users it holds a few in flight (``hold``), and learns the latency afresh for
the writes (``relearn``).

Pure logic: time comes from an injected clock, requests are reported by the caller.
"""

from __future__ import annotations

import bisect
import logging
import math
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

from bulkusers.frozen import frozen
from bulkusers.refusals import TRYING_AGAIN, GatewayRefusals

log = logging.getLogger("bulkusers.concurrency")

#: What told the limit to back off: an HTTP status the server answered, or a timeout.
Overload = Literal["429", "502", "503", "504", "timeout"]

#: The most requests in flight a run may ever use (``--max-concurrency`` is at most this).
CEILING = 512
#: The most requests in flight ``auto`` reaches when no maximum is given.
DEFAULT_MAXIMUM = 64
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
#: An answer this many times slower than the quick answers of its round trip (the fifth
#: quickest) waited in the server's queue: with one request more than a server serves at
#: once, one answer per round trip comes back about twice as slow as the others. A mean a
#: tenth higher hides it; a tail of such answers is what a p95 latency shows.
QUEUED_AT = 1.5
#: A round trip with more than this share of queued answers (and at least one) is a queue,
#: not a busy client: the limit backs off, whatever the mean and answers per second say.
QUEUED_SHARE = 0.04
#: The tail is read only while the quick answers are alike: the 40th percentile of the last
#: RECENT answers within this factor of their 10th (low ones, which a queue of up to half the
#: requests leaves alone). A server whose answers vary on their own (log-normal, sigma above
#: about 0.11) has a tail at every level, which says nothing about a queue: the mean decides.
ALIKE = 1.12
#: How many of the latest answers tell whether they are alike.
RECENT = 64
#: Round trips the limit waits, after backing off from a server whose answers are alike,
#: before it grows again; each time a climb runs straight back into the queue the wait
#: doubles, up to PATIENCE_MAX. Only the first step after a back-off waits: a climb that
#: holds goes on a step a round trip.
PATIENCE = 2
PATIENCE_MAX = 16
#: Changes the calm makes: growth read from latency and throughput.
_CALM_REASONS = frozenset({"latency steady", "throughput rising", "recovering"})
#: Changes the latency and the calm make, which a trial on refusals holds off (it measures
#: the limit it set), and the changes that raise the limit (never above a 429's cap).
_LATENCY_REASONS = _CALM_REASONS | {"latency rising"}
_GROWTH_REASONS = _CALM_REASONS | {TRYING_AGAIN}
#: Gateway answers: the signals a random failure also gives.
GATEWAY: frozenset[Overload] = frozenset({"502", "503", "504"})
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
    inflight_total: int = 0
    peak_inflight: int = 0
    rtts: list[float] = field(default_factory=list)

    @property
    def samples(self) -> int:
        """How many answers the round trip has had."""
        return len(self.rtts)

    def add(self, rtt: float, inflight: int) -> None:
        self.inflight_total += inflight
        self.peak_inflight = max(self.peak_inflight, inflight)
        self.rtts.append(rtt)

    def queued(self) -> bool:
        """Whether more than QUEUED_SHARE of the answers (and at least one) took QUEUED_AT
        times as long as the quick ones: a queue at the server, whatever the mean says."""
        ordered = sorted(self.rtts)
        slow = QUEUED_AT * ordered[len(ordered) // 5]
        waited = len(ordered) - bisect.bisect_right(ordered, slow)
        return waited > 0 and waited > QUEUED_SHARE * len(ordered)


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
        self._recent: deque[float] = deque(maxlen=RECENT)  # the latest answers' latencies
        self._refusals = GatewayRefusals()
        #: Gateway refusals that lowered nothing (for the summary).
        self.blips = 0
        #: Round trips to wait before growing again, and how many have passed since the
        #: limit last backed off from latency.
        self._patience = 0
        self._calm = 0
        self._probing = False  # the last change was a growth no round trip has passed yet
        self.history: list[LimitChange] = [LimitChange(0.0, start, "start")]

    @property
    def refused_at_random(self) -> float:
        """The share of requests the gateway was found to refuse at random (0 until a trial
        on refusals finds so: ``refusals``)."""
        return self._refusals.floor

    @property
    def no_load_rtt(self) -> float | None:
        """The lowest round-trip time seen over a window: the server's unloaded latency."""
        return self._no_load_rtt

    # -- what the caller reports --------------------------------------------------------------

    def succeeded(self, rtt: float, inflight: int) -> None:
        """An answer that took ``rtt`` seconds, sent with ``inflight`` requests in flight
        (itself included)."""
        now = self._clock()
        step = self._refusals.answered(now)
        if step is not None:
            self._trial_step(now, *step)
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

    def overloaded(self, signal: Overload, *, sent_at: float, inflight: int,
                   asked_to_wait: bool = False) -> None:
        """The server refused or timed out a request sent at ``sent_at`` (clock time) with
        ``inflight`` requests in flight (itself included). ``asked_to_wait``: the refusal
        carried ``Retry-After``, the server's own request for fewer requests, which a
        gateway's random failure never sends: a 503 with it is overload however rare."""
        now = self._clock()
        if signal == "429":
            refused_at = max(1, inflight - 1)
            if self._cap is None or refused_at < self._cap:
                self._cap = refused_at
            self._cap_since = now
        elif signal in GATEWAY:
            step = self._refusals.refused(now)
            if step is not None:
                self._trial_step(now, *step)
            # While a trial tells overload from failures at random, refusals lower nothing.
            if not asked_to_wait and (self._refusals.judging()
                                      or not self._refusals.show_overload()):
                self._blip(signal)
                return
        if sent_at < self._last_backoff:
            return  # sent before the last back-off: that one already answered for it
        # A 429, a timeout or a refusal asking to wait lowers the limit whatever a trial on
        # refusals was measuring: the trial is dropped.
        self._refusals.drop_trial()
        self._last_backoff = now
        self._slow_start = False
        if signal == "429" and self._cap is not None and self._cap < self._limit:
            new = float(self._cap)  # a cap on requests in flight: settle just under it
        elif (signal in GATEWAY and not asked_to_wait
              and self._refusals.begin(now, self.limit)):
            new = self._limit / 2  # a trial's first step (``refusals``)
        else:
            new = self._limit * (0.9 if signal == "429" else 0.75)
        self._set(max(1.0, new), f"HTTP {signal}" if signal != "timeout" else "timeout")
        self._window = _Window(now)

    def _trial_step(self, now: float, limit: int, reason: str) -> None:
        """Set the limit a trial on refusals asks for (``refusals``): back to where it
        began, then halved again when that found overload."""
        self._set(float(limit), reason)
        self._window = _Window(now)

    def _blip(self, signal: Overload) -> None:
        """Count a gateway refusal that lowers nothing."""
        self.blips += 1
        log.debug("HTTP %s lowers nothing (a failure at random, or a trial on refusals "
                  "under way)", signal)

    def keeps_up(self) -> bool:
        """Whether the server answers most requests (not an outage): then a request waiting
        to be retried may let another row be taken; in an outage, every one would fail too."""
        return not self._refusals.outage()

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
        self._recent.clear()
        self._refusals.drop_trial()
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
        rtt_total = sum(window.rtts)
        rtt = rtt_total / window.samples
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
            answered = window.inflight_total / rtt_total
            before = self._rates.get(level)
            self._rates[level] = answered if before is None else (before + answered) / 2
        self._calm += 1
        # This round trip judged the last growth, if there was one: a back-off now is the
        # probe running into the queue.
        probe, self._probing = self._probing, False
        # Out of slow start a tail of answers that waited in a queue says the limit is above
        # what the server serves at once, however little it moves the mean: back off.
        alike = self._alike()
        queued = not self._slow_start and alike and window.queued()
        self._recent.extend(window.rtts)
        self._adapt(now, ratio, self._ratio, level, settled, alike=alike, queued=queued,
                    probe=probe)

    def _adapt(self, now: float, ratio: float, smoothed: float, level: int, settled: bool, *,
               alike: bool, queued: bool, probe: bool) -> None:
        """Move the limit on what a round trip said (``ratio``: its latency over unloaded,
        ``smoothed``: the same over the last round trips, ``level``: requests in flight,
        ``settled``: no queue left from a higher limit)."""
        # In slow start each round trip is judged on its own (the smoothed ratio would let
        # one slow round trip count twice); afterwards, smoothed.
        judged = ratio if self._slow_start else smoothed
        if not queued and judged < (GROW_BELOW if self._slow_start else HOLD_BELOW):
            self._climbing = 0
            if self._slow_start:
                self._set(self._limit * 2, "latency steady")
            elif self._calm > self._patience:
                self._grow("latency steady")
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
                self._back_off(max(1.0, min(self._limit - 1, back)), patient=alike,
                               probe=probe)
                return
        if not settled:
            return  # judge the new level once the old queue has drained
        if not queued and level in self._rates and self._throughput_rising(level):
            # Slower answers, but more of them: a busy machine, not a queue. Keep probing.
            if self._calm > self._patience:
                self._grow("throughput rising")
            return
        if (not queued and self._cap is not None and self._limit <= self._cap
                and smoothed < CAPPED_HOLD):
            return  # under the cap a 429 showed, somewhat slower is the client, not a queue
        # Slower answers and no more of them: a queue at the server. Back halfway towards
        # where latency would be growable again: a fifth at most, one at least.
        growable = self._limit * HOLD_BELOW / smoothed
        lowered = min(self._limit - 1, max(self._limit * 0.8, (self._limit + growable) / 2))
        self._back_off(max(1.0, lowered), patient=alike, probe=probe)

    def _alike(self) -> bool:
        """Whether the last RECENT answers' quick ones are tight (the 40th percentile within
        ALIKE of the 10th): a server whose tail can only be a queue."""
        if len(self._recent) < RECENT // 2:
            return False
        ordered = sorted(self._recent)
        return ordered[len(ordered) * 2 // 5] <= ALIKE * ordered[len(ordered) // 10]

    def _grow(self, reason: str) -> None:
        """Out of slow start: a tenth more (one at least), a probe until a round trip at the
        new level passes without backing off."""
        self._probing = True
        self._set(self._limit + max(1.0, self._limit * 0.1), reason)

    def _back_off(self, value: float, *, patient: bool, probe: bool) -> None:
        """Down to ``value`` for latency. From a server whose answers are alike (``patient``),
        wait PATIENCE round trips before growing; a probe that ran straight back into the
        queue doubles the wait (at most PATIENCE_MAX), so the limit spends most round trips at
        the level that does not queue. From a server whose answers vary widely on their own,
        no wait: there a slower round trip is often chance, and waiting after each would sink
        the limit further each time."""
        if not patient:
            self._patience = 0
        elif probe:
            self._patience = min(PATIENCE_MAX, max(PATIENCE, self._patience * 2))
        else:  # a second step down does not forget how often probing failed
            self._patience = max(PATIENCE, self._patience)
        self._calm = 0
        self._set(value, "latency rising")

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
        if reason in _LATENCY_REASONS and self._refusals.judging():
            return  # a trial on refusals holds the limit it set until it is judged
        if reason in _GROWTH_REASONS:
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
