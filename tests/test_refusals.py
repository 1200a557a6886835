"""Gateway refusals: overload told from failures at random, on simulated servers and a fake
clock (the limit's own judgement, ``bulkusers.refusals``, through ``ConcurrencyLimit``)."""

from __future__ import annotations

import heapq
import random
from dataclasses import dataclass, field

import pytest

from bulkusers.concurrency import ConcurrencyLimit
from bulkusers.refusals import MEASURE_S, SETTLE_S, GatewayRefusals


class Clock:
    """A clock that moves only when the simulation says so."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@dataclass
class Server:
    """A server the client keeps ``limit.limit`` requests in flight against: each served
    request takes ``service_s``; beyond ``capacity`` served at once, a request is refused
    (503) at once, as a gateway refuses a full server's excess; ``random_share`` of the
    served requests fail (503) at random, after their service time. A refused request's row
    waits for its retry without holding a slot, so the client sends another at once."""

    capacity: int | None = None
    random_share: float = 0.0
    service_s: float = 0.02
    rng: random.Random = field(default_factory=lambda: random.Random(11))
    answered: int = 0
    #: The limit after each answer, with the clock's time.
    limits: list[tuple[float, int]] = field(default_factory=list)

    #: Requests in flight: (answered at, number, sent at, in flight then, ok, served).
    in_flight: list[tuple[float, int, float, int, bool, bool]] = field(default_factory=list)
    serving: int = 0
    sent: int = 0

    def run(self, limit: ConcurrencyLimit, clock: Clock, seconds: float) -> None:
        """Serve for ``seconds`` of the fake clock (at least one answer)."""
        in_flight = self.in_flight
        end = clock.now + seconds
        while True:
            while len(in_flight) < limit.limit:
                self.sent += 1
                count = len(in_flight) + 1
                if self.capacity is not None and self.serving >= self.capacity:
                    entry = (clock.now + 0.001, self.sent, clock.now, count, False, False)
                else:
                    self.serving += 1
                    ok = self.rng.random() >= self.random_share
                    entry = (clock.now + self.service_s, self.sent, clock.now, count, ok, True)
                heapq.heappush(in_flight, entry)
            finish, _, sent_at, count, ok, served = heapq.heappop(in_flight)
            clock.now = finish
            self.serving -= served
            if ok:
                self.answered += 1
                limit.succeeded(finish - sent_at, count)
            else:
                limit.overloaded("503", sent_at=sent_at, inflight=count)
            self.limits.append((clock.now, limit.limit))
            if clock.now >= end:
                return

    def mean_limit(self, since: float) -> float:
        """The limit's average over the answers after ``since`` (clock time)."""
        later = [value for at, value in self.limits if at >= since]
        return sum(later) / len(later)


def warmed(*, fixed: bool, clock: Clock) -> ConcurrencyLimit:
    """A limit of 64 that has reached its maximum against a calm server."""
    limit = ConcurrencyLimit(64, fixed=fixed, clock=clock)
    Server().run(limit, clock, 1.0)
    assert limit.limit == 64
    return limit


@pytest.mark.parametrize("fixed", [False, True])
@pytest.mark.parametrize("share", [0.2, 0.3])
def test_failures_at_random_do_not_sink_the_limit(fixed: bool, share: float) -> None:
    """A gateway failing a fifth or three tenths of the requests at random, at steady latency,
    costs one trial: the limit halves, answers a second halve too, and the limit goes back
    to 64 and stays there (before, it sank to a few in flight)."""
    clock = Clock()
    limit = warmed(fixed=fixed, clock=clock)
    server = Server(random_share=share)
    server.run(limit, clock, 10.0)
    reasons = [change.reason for change in limit.history]
    assert reasons.count("trying the limit again") == 1, limit.history[-10:]
    assert reasons.count("HTTP 503") == 1  # the trial's halving, and no back-off since
    assert share - 0.05 < limit.refused_at_random < share + 0.05
    assert server.mean_limit(since=clock.now - 6.0) > 60
    assert limit.limit == 64


@pytest.mark.parametrize("fixed", [False, True])
def test_a_server_refusing_its_excess_keeps_the_limit_near_its_capacity(fixed: bool) -> None:
    """Behind a gateway that refuses at once what a server of capacity 16 cannot serve, the
    limit comes down from 64 and stays about 16 (a trial finds overload: the halved limit gets
    as many answers a second), and the server is kept busy."""
    clock = Clock()
    limit = warmed(fixed=fixed, clock=clock)
    server = Server(capacity=16)
    start = clock.now
    server.run(limit, clock, 20.0)
    assert 10 <= server.mean_limit(since=clock.now - 10.0) <= 24, limit.history[-20:]
    # 800 answers a second at 16 in flight: most of it.
    assert server.answered / (clock.now - start) > 0.7 * 800


def test_a_trial_holds_each_step_until_it_is_measured() -> None:
    """The first back-off on refusals halves the limit and holds it (no growth however
    steady the latency) for SETTLE_S + MEASURE_S; then the limit goes back to 64 and holds
    as long again; answers a second there twice as many, it stays, with the share refused
    at random in the summary's figure."""
    clock = Clock()
    limit = warmed(fixed=False, clock=clock)
    failing = Server(random_share=0.3)
    while limit.limit == 64:
        failing.run(limit, clock, 0.001)
    halved = clock.now
    assert limit.limit == 32
    failing.limits.clear()
    while limit.limit == 32 and clock.now - halved < 5:
        failing.run(limit, clock, 0.001)
    assert {value for _, value in failing.limits[:-1]} == {32}
    assert clock.now - halved >= SETTLE_S + MEASURE_S - 1e-9
    assert (limit.limit, limit.history[-1].reason) == (64, "trying the limit again")
    failing.run(limit, clock, 3.0)
    assert {value for _, value in failing.limits if value != 32} == {64}
    assert 0.25 < limit.refused_at_random < 0.35


def test_an_outage_sinks_the_limit_after_its_trial() -> None:
    """A server that refuses everything (down): the trial finds overload (most refused at
    the halved limit too), the limit goes on down to one, and rows waiting to be retried
    admit no other rows."""
    clock = Clock()
    limit = warmed(fixed=False, clock=clock)
    Server(random_share=1.0).run(limit, clock, 4.0)
    assert limit.limit == 1
    assert not limit.keeps_up()
    assert "refusals at random" not in [change.reason for change in limit.history]


def test_a_trial_that_found_overload_is_not_repeated_above_its_half() -> None:
    """A trial from 64 whose half kept the refusals (still above the server's capacity) and
    got as many answers a second as the limit again finds overload: the limit halves again,
    and refusals above 32 start no other trial; at 32 or below one may be held again."""
    clock = Clock()
    refusals = GatewayRefusals()

    def answers(seconds: float, *, refused_every: int) -> object:
        """1,000 answers a second over ``seconds``, every ``refused_every``-th refused; the
        last step the trial asked for."""
        asked = None
        for number in range(int(seconds * 1000)):
            clock.now += 0.001
            step = (refusals.refused(clock.now) if number % refused_every == 0
                    else refusals.answered(clock.now))
            asked = step or asked
        return asked

    answers(0.1, refused_every=3)
    assert refusals.show_overload()
    assert refusals.begin(clock.now, 64)
    assert answers(SETTLE_S + MEASURE_S + 0.01, refused_every=3) == (64, "trying the limit again")
    assert answers(SETTLE_S + MEASURE_S + 0.01, refused_every=3) == (32, "refusals: overload")
    assert not refusals.judging()
    assert not refusals.begin(clock.now, 48)
    assert not refusals.begin(clock.now, 33)
    assert refusals.begin(clock.now, 32)


def test_latency_moves_nothing_during_a_trial_but_a_timeout_ends_it() -> None:
    """While a trial measures its halved limit, answers three times slower than unloaded
    (which would lower the limit) leave it at 32; a timeout still lowers it, and ends the
    trial without a verdict."""
    clock = Clock()
    limit = warmed(fixed=False, clock=clock)
    failing = Server(random_share=0.3)
    while limit.limit == 64:
        failing.run(limit, clock, 0.001)
    assert limit.limit == 32
    slow = Server(random_share=0.3, service_s=0.06)
    slow.run(limit, clock, 0.5)
    assert {value for _, value in slow.limits} == {32}
    limit.overloaded("timeout", sent_at=clock.now, inflight=32)
    assert limit.limit == 24
    assert not any(change.reason == "trying the limit again" for change in limit.history)
    slow.run(limit, clock, SETTLE_S + MEASURE_S)
    assert not any(change.reason == "trying the limit again" for change in limit.history)


def test_the_share_refused_counted_as_answers_come_is_the_share_of_the_latest() -> None:
    """The running count of refusals among the latest RECENT and LONGER answers gives, after
    every answer, the share a count over those answers gives (the oldest dropping out)."""
    from bulkusers.refusals import LONGER, RECENT, REFUSED_OVER, _Latest

    draw = random.Random(5)
    marks = [int(draw.random() < 0.3) for _ in range(1000)]
    for size in (RECENT, LONGER):
        latest = _Latest(size)
        for seen, mark in enumerate(marks, start=1):
            latest.add(mark)
            window = marks[max(0, seen - size):seen]
            assert latest.share() == sum(window) / max(len(window), REFUSED_OVER)
