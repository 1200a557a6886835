"""The adaptive concurrency limit, driven by simulated servers on a fake clock."""

from __future__ import annotations

import heapq
import random
from itertools import pairwise

import pytest

from bulkusers.concurrency import GATEWAY, ConcurrencyLimit, Overload
from bulkusers.refusals import RECENT


class Clock:
    """A clock that moves only when the simulation says so."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def queueing_round(limit: ConcurrencyLimit, clock: Clock, *, capacity: int,
                   service_s: float) -> float:
    """One round trip against a server serving ``capacity`` at once, queueing the rest: the
    client keeps ``limit`` requests in flight; returns the round's latency."""
    in_flight = limit.limit
    rtt = service_s * max(1.0, in_flight / capacity)
    clock.now += rtt
    for _ in range(in_flight):
        limit.succeeded(rtt, in_flight)
    return rtt


def capped_round(limit: ConcurrencyLimit, clock: Clock, *, cap: int, service_s: float) -> int:
    """One round trip against a server answering 429 beyond ``cap`` in flight; returns how
    many requests it refused."""
    in_flight, sent_at = limit.limit, clock.now
    clock.now += service_s
    refused = max(0, in_flight - cap)
    for number in range(1, in_flight + 1):
        if number > cap:
            limit.overloaded("429", sent_at=sent_at, inflight=number)
        else:
            limit.succeeded(service_s, number)
    return refused


def overload(limit: ConcurrencyLimit, clock: Clock, signal: Overload, *, sent_at: float,
             inflight: int) -> None:
    """A server that cannot keep up: ``signal`` for requests sent at ``sent_at``, once for
    429 and a timeout, and for a gateway refusal as many times as the answers it is judged
    by (one round trip of nothing but refusals)."""
    times = RECENT if signal in GATEWAY else 1
    clock.now += 1e-6  # the refusals come after the requests were sent
    for _ in range(times):
        limit.overloaded(signal, sent_at=sent_at, inflight=inflight)


@pytest.mark.parametrize("capacity", [2, 16, 40, 100])
def test_converges_under_a_queueing_servers_capacity(capacity: int) -> None:
    """Against a server with N workers and a queue, the limit rises past N (full throughput)
    and holds where latency stays well under twice the unloaded latency."""
    clock = Clock()
    limit = ConcurrencyLimit(512, clock=clock)
    assert limit.limit == 2  # starts low
    latencies = [queueing_round(limit, clock, capacity=capacity, service_s=0.02)
                 for _ in range(300)]
    settled = [limit.limit]
    for _ in range(100):
        latencies.append(queueing_round(limit, clock, capacity=capacity, service_s=0.02))
        settled.append(limit.limit)
    assert min(settled) >= capacity  # every worker of the server kept busy
    assert max(latencies[-100:]) <= 2 * 0.02
    assert limit.no_load_rtt == pytest.approx(0.02)


def test_settles_just_under_an_inflight_cap_and_stops_probing_it() -> None:
    """Against a server answering 429 beyond 16 in flight, the limit settles at exactly 16
    and is refused only while it first finds the cap, not all run long."""
    clock = Clock()
    limit = ConcurrencyLimit(64, clock=clock)
    refusals = [capped_round(limit, clock, cap=16, service_s=0.02) for _ in range(1000)]
    assert limit.limit == 16
    assert sum(refusals[20:]) == 0


def test_under_a_cap_a_little_slower_is_not_a_queue() -> None:
    """Behind a server that refuses with 429 beyond 16 in flight, answers a third slower than
    unloaded (the client's own time) keep the limit at 16; twice as slow still backs off."""
    clock = Clock()
    limit = ConcurrencyLimit(64, clock=clock)
    for _ in range(100):
        capped_round(limit, clock, cap=16, service_s=0.02)
    assert limit.limit == 16
    for _ in range(100):
        capped_round(limit, clock, cap=16, service_s=0.0267)
    assert limit.limit == 16
    for _ in range(20):
        capped_round(limit, clock, cap=16, service_s=0.04)
    assert limit.limit < 16


def test_probes_one_above_a_remembered_cap_only_after_a_long_calm() -> None:
    """A server whose cap rose from 16 to 20 is found again, one step per long calm."""
    clock = Clock()
    limit = ConcurrencyLimit(64, clock=clock)
    for _ in range(100):
        capped_round(limit, clock, cap=16, service_s=0.02)
    assert limit.limit == 16
    for _ in range(20_000):  # 400 s of calm answers at a cap of 20
        capped_round(limit, clock, cap=20, service_s=0.02)
    assert 17 <= limit.limit <= 20


@pytest.mark.parametrize("signal", ["429", "502", "503", "504", "timeout"])
def test_backs_off_on_each_overload_signal(signal: Overload) -> None:
    """Every kind of overload (429, 502, 503, 504, a timeout) lowers the limit at once."""
    clock = Clock()
    limit = ConcurrencyLimit(32, fixed=True, clock=clock)
    overload(limit, clock, signal, sent_at=clock.now, inflight=32)
    assert limit.limit < 32
    assert limit.history[-1].reason in (f"HTTP {signal}", "timeout")


def test_a_burst_of_refusals_from_one_round_trip_backs_off_once() -> None:
    """Twenty timeouts of requests sent before the back-off lower the limit once, not twenty
    times; a timeout of a request sent after it lowers it again. (Gateway refusals start a
    trial instead: test_refusals.)"""
    clock = Clock()
    limit = ConcurrencyLimit(40, fixed=True, clock=clock)
    sent = clock.now
    clock.now += 0.02
    for _ in range(20):
        limit.overloaded("timeout", sent_at=sent, inflight=40)
    assert limit.limit == 30
    clock.now += 0.02
    limit.overloaded("timeout", sent_at=clock.now, inflight=30)
    assert limit.limit == 22


@pytest.mark.parametrize("signal", sorted(GATEWAY))
def test_the_odd_gateway_refusal_of_a_server_that_keeps_up_is_no_overload(
        signal: Overload) -> None:
    """Random refusals of 1 answer in 20 (a flaky gateway), with steady latency, leave the
    limit where it is: adaptive at its maximum, fixed at N; each is counted as a blip."""
    for fixed in (False, True):
        clock, rng = Clock(), random.Random(7)
        limit = ConcurrencyLimit(64, fixed=fixed, clock=clock)
        refused = 0
        for _ in range(400):  # 400 round trips, about 1,280 refusals
            sent_at, in_flight = clock.now, limit.limit
            clock.now += 0.02
            for _ in range(in_flight):
                if rng.random() < 0.05:
                    refused += 1
                    limit.overloaded(signal, sent_at=sent_at, inflight=in_flight)
                else:
                    limit.succeeded(0.02, in_flight)
        assert limit.limit == 64, (fixed, limit.history[-5:])
        assert limit.blips == refused > 1000


@pytest.mark.parametrize("signal", sorted(GATEWAY))
def test_a_gateway_refusal_asking_to_wait_lowers_the_limit_at_once(signal: Overload) -> None:
    """A refusal carrying Retry-After is the server asking for fewer requests: the first one
    lowers the limit, with no share of refusals to reach (an odd one without it does not)."""
    clock = Clock()
    limit = ConcurrencyLimit(32, fixed=True, clock=clock)
    for _ in range(20):
        queueing_round(limit, clock, capacity=1000, service_s=0.02)
    clock.now += 1e-6
    limit.overloaded(signal, sent_at=clock.now - 0.01, inflight=32)
    assert (limit.limit, limit.blips) == (32, 1)
    limit.overloaded(signal, sent_at=clock.now - 0.01, inflight=32, asked_to_wait=True)
    assert (limit.limit, limit.blips) == (24, 1)
    assert limit.history[-1].reason == f"HTTP {signal}"


def test_the_share_of_gateway_refusals_is_taken_over_at_least_twenty_answers() -> None:
    """After 10 answers, 4 refusals are no more than a fifth of 20 (blips); the 5th is more."""
    clock = Clock()
    limit = ConcurrencyLimit(32, fixed=True, clock=clock)
    for _ in range(10):
        limit.succeeded(0.02, 32)
    clock.now += 1e-6
    for _ in range(4):
        limit.overloaded("503", sent_at=clock.now - 0.01, inflight=32)
    assert (limit.limit, limit.blips) == (32, 4)
    assert limit.keeps_up()
    limit.overloaded("503", sent_at=clock.now - 0.01, inflight=32)
    assert (limit.limit, limit.blips) == (16, 4)  # halved: a trial (test_refusals)
    assert limit.keeps_up()  # a quarter refused: overload, not a server down
    for _ in range(6):
        limit.overloaded("503", sent_at=clock.now - 0.01, inflight=32)
    assert not limit.keeps_up()  # 11 of 21


def test_never_exceeds_the_maximum() -> None:
    """With latency that never rises, the limit grows to the maximum and stays there."""
    clock = Clock()
    limit = ConcurrencyLimit(50, clock=clock)
    seen = []
    for _ in range(200):
        queueing_round(limit, clock, capacity=10_000, service_s=0.02)
        seen.append(limit.limit)
    assert max(seen) == 50
    assert seen[-1] == 50


def test_a_fixed_limit_ignores_latency_and_recovers_after_backing_off() -> None:
    """--concurrency N: queueing does not lower it; a 503 does, and calm answers bring it
    back to N, never above."""
    clock = Clock()
    limit = ConcurrencyLimit(24, fixed=True, clock=clock)
    for _ in range(50):
        queueing_round(limit, clock, capacity=4, service_s=0.02)
    assert limit.limit == 24
    overload(limit, clock, "503", sent_at=clock.now, inflight=24)
    assert limit.limit == 18  # most of the latest answers refused: no trial, a back-off
    for _ in range(50):
        queueing_round(limit, clock, capacity=100, service_s=0.02)
    assert limit.limit == 24


def test_an_idle_run_does_not_raise_the_limit() -> None:
    """Answers that used far less than the limit say nothing about it: it stays."""
    clock = Clock()
    limit = ConcurrencyLimit(64, initial=32, clock=clock)
    for _ in range(200):
        clock.now += 0.02
        limit.succeeded(0.02, 2)
    assert limit.limit == 32


def test_history_records_each_change_with_its_reason() -> None:
    """The limit over time is kept: the start, then every change with time and reason."""
    clock = Clock()
    limit = ConcurrencyLimit(64, clock=clock)
    queueing_round(limit, clock, capacity=100, service_s=0.5)
    overload(limit, clock, "504", sent_at=clock.now, inflight=8)
    assert [(c.seconds, c.limit, c.reason) for c in limit.history] == [
        (0.0, 2, "start"), (0.5, 4, "latency steady"), (0.5, 2, "HTTP 504")]


def test_maximum_must_be_within_bounds() -> None:
    """A maximum of 0 or above 512 is refused."""
    for bad in (0, 513):
        with pytest.raises(ValueError, match="between 1 and 512"):
            ConcurrencyLimit(bad)


def test_relearning_starts_lower_again_but_keeps_a_servers_cap() -> None:
    """Turning from reads to writes: the adaptive limit starts low again and re-learns the
    latency, but never forgets the in-flight cap a 429 revealed."""
    clock = Clock()
    limit = ConcurrencyLimit(64, clock=clock)
    for _ in range(100):
        capped_round(limit, clock, cap=10, service_s=0.05)
    assert limit.limit == 10
    limit.relearn()
    assert (limit.limit, limit.no_load_rtt) == (8, None)
    for _ in range(100):
        queueing_round(limit, clock, capacity=1000, service_s=0.02)
    assert limit.limit == 10
    assert limit.no_load_rtt == pytest.approx(0.02)


def test_keeps_probing_while_throughput_rises_although_latency_climbs() -> None:
    """A busy client makes every answer slower the more are in flight (1.8 times unloaded
    at 40), yet more in flight still gets more answers per second: the limit keeps growing
    to the maximum."""
    clock = Clock()
    limit = ConcurrencyLimit(40, clock=clock)
    for _ in range(300):
        in_flight = limit.limit
        rtt = 0.02 * (1 + in_flight / 50)
        clock.now += rtt
        for _ in range(in_flight):
            limit.succeeded(rtt, in_flight)
    assert limit.limit == 40
    assert any(change.reason == "throughput rising" for change in limit.history)


def served_one_by_one(limit: ConcurrencyLimit, clock: Clock, *, capacity: int,
                      service_s: float, requests: int,
                      spread: float = 0.0) -> list[tuple[int, float]]:
    """Requests sent one by one as the limit allows, to a server serving ``capacity`` at once
    (first come, first served) and answering each after ``service_s`` give or take a tenth
    (or, with ``spread``, times a log-normal factor of that sigma, as a real server's answers
    vary): the limit and the latency of each answer, in the order they came."""
    wander = [1.0, 1.08, 0.93, 1.03, 0.95, 1.1, 0.97, 1.05, 0.91]
    if spread:
        chance = random.Random(7)
        wander = [chance.lognormvariate(0.0, spread) for _ in range(997)]
    events: list[tuple[float, int, float]] = []  # (answered at, number, sent at)
    queue: list[tuple[int, float]] = []
    busy = sent = 0
    seen: list[tuple[int, float]] = []

    def serve(number: int, sent_at: float) -> None:
        answered = clock.now + service_s * wander[number % len(wander)]
        heapq.heappush(events, (answered, number, sent_at))

    while len(seen) < requests:
        while sent < requests and sent - len(seen) < limit.limit:
            sent += 1
            if busy < capacity:
                busy += 1
                serve(sent, clock.now)
            else:
                queue.append((sent, clock.now))
        clock.now, _, sent_at = heapq.heappop(events)
        if queue:
            serve(*queue.pop(0))
        else:
            busy -= 1
        limit.succeeded(clock.now - sent_at, sent - len(seen))
        seen.append((limit.limit, clock.now - sent_at))
    return seen


def test_holds_just_above_a_queueing_servers_capacity() -> None:
    """Requests answered one by one by a server serving 16 at once: answers per second that
    wander from one round trip to the next never pass for a rise, so the limit holds a few
    above 16 (the server kept busy) instead of climbing into its queue, and 95 % of the
    answers come within one and a half times the unloaded latency."""
    clock = Clock()
    limit = ConcurrencyLimit(64, clock=clock)
    seen = served_one_by_one(limit, clock, capacity=16, service_s=0.02, requests=12_000)
    later = seen[2000:]
    assert min(level for level, _ in later) >= 16
    assert max(level for level, _ in later) <= 22
    latencies = sorted(latency for _, latency in seen)
    assert latencies[int(len(latencies) * 0.95)] <= 1.5 * 0.02


@pytest.mark.parametrize(("capacity", "least"), [(16, 14), (10_000, 24)])
def test_answers_that_vary_on_their_own_are_not_taken_for_a_queue(capacity: int,
                                                                  least: int) -> None:
    """A server whose answers vary by a log-normal factor (sigma 0.2, as real ones do) keeps
    the limit near its capacity, or near the maximum when it has none: a slow answer now and
    then is chance, not a queue. (A rule that read every tail as a queue sank it to 1.)"""
    clock = Clock()
    limit = ConcurrencyLimit(64, clock=clock)
    seen = served_one_by_one(limit, clock, capacity=capacity, service_s=0.02,
                             requests=20_000, spread=0.2)
    later = [level for level, _ in seen[5000:]]
    assert sum(later) / len(later) >= least


@pytest.mark.parametrize("capacity", [3, 5, 12])
def test_a_small_servers_queue_stays_out_of_the_p95(capacity: int) -> None:
    """Behind a server serving only a few at once, where one request over its capacity is a
    large share of them, 95 % of the answers still come within 1.3 times the unloaded
    latency, and the server is kept busy (98 % of what it can serve)."""
    clock = Clock()
    limit = ConcurrencyLimit(64, clock=clock)
    started = clock.now
    seen = served_one_by_one(limit, clock, capacity=capacity, service_s=0.02,
                             requests=600 * capacity)
    assert len(seen) / (clock.now - started) >= 0.98 * capacity / 0.02
    later = sorted(latency for _, latency in seen[len(seen) // 4:])
    assert later[int(len(later) * 0.95)] <= 1.3 * 0.02
    assert min(level for level, _ in seen[len(seen) // 4:]) >= capacity


def in_step_round(limit: ConcurrencyLimit, clock: Clock, *, capacity: int,
                  service_s: float) -> int:
    """One round trip against a server serving ``capacity`` at once, first come first served,
    whose clients send in step (as the emulator's are): the requests over its capacity wait a
    whole service time and come back twice as slow. Returns how many were in flight."""
    in_flight = limit.limit
    clock.now += service_s
    for _ in range(min(in_flight, capacity)):
        limit.succeeded(service_s, in_flight)
    if in_flight > capacity:
        clock.now += service_s
        for _ in range(in_flight - capacity):
            limit.succeeded(2 * service_s, in_flight)
    return in_flight


@pytest.mark.parametrize("capacity", [3, 5, 10, 16])
def test_a_tail_of_queued_answers_holds_the_limit_at_the_capacity(capacity: int) -> None:
    """Each request over the server's capacity waits a whole service time: with one over a
    capacity of 10 the mean of a round trip is under a tenth above unloaded, but its p95 is
    twice unloaded. The tail shows it: the limit holds at the capacity (every worker busy)
    and probes one above it ever more rarely, so under 5 % of the answers wait."""
    clock = Clock()
    limit = ConcurrencyLimit(64, clock=clock)
    levels = [in_step_round(limit, clock, capacity=capacity, service_s=0.02)
              for _ in range(600)]
    later = levels[150:]
    assert min(later) >= capacity
    waited = sum(level - capacity for level in later)
    assert waited / sum(later) < 0.05
    probes = [i for i in range(150, 600) if levels[i] > capacity >= levels[i - 1]]
    assert len(probes) >= 5  # it still looks for a server that got faster
    gaps = [b - a for a, b in pairwise(probes)]
    assert all(gap >= 16 for gap in gaps[2:]), gaps


def test_a_server_that_grows_is_followed_soon_after_a_long_hold() -> None:
    """After a long hold at a capacity of 10 (probes 16 round trips apart), the server grows to
    20: only the first step up waits, the climb after a probe that holds goes on a step a
    round trip, so the limit reaches 20 within 60 round trips instead of one level per 16."""
    clock = Clock()
    limit = ConcurrencyLimit(64, clock=clock)
    for _ in range(400):
        in_step_round(limit, clock, capacity=10, service_s=0.02)
    assert limit.limit <= 11
    levels = [in_step_round(limit, clock, capacity=20, service_s=0.02) for _ in range(60)]
    assert max(levels[-10:]) >= 20


def test_one_slow_round_trip_in_slow_start_does_not_end_it() -> None:
    """New connections answer their first request slower (the handshake): one slow round trip
    while doubling is not a queue, so the limit keeps doubling to the maximum; two in a row
    end slow start."""
    clock = Clock()
    limit = ConcurrencyLimit(64, clock=clock)
    queueing_round(limit, clock, capacity=1000, service_s=0.02)  # 2 -> 4
    queueing_round(limit, clock, capacity=1000, service_s=0.02)  # 4 -> 8
    slow = limit.limit
    queueing_round(limit, clock, capacity=1000, service_s=0.05)  # a handshake spike: held
    assert limit.limit == slow
    for _ in range(4):
        queueing_round(limit, clock, capacity=1000, service_s=0.02)
    assert limit.limit == 64
    queued = ConcurrencyLimit(64, clock=clock)
    queueing_round(queued, clock, capacity=1000, service_s=0.02)
    for _ in range(2):
        queueing_round(queued, clock, capacity=1000, service_s=0.05)
    held = queued.limit
    queueing_round(queued, clock, capacity=1000, service_s=0.02)
    assert queued.limit < 2 * held  # out of slow start: it grows a tenth, not double


def test_holding_for_reads_keeps_a_few_in_flight_until_the_run_relearns() -> None:
    """While pages are read, the limit holds 8 in flight whatever their latency (a busy
    client parsing pages is no queue at the server), still backs off on a 503 and climbs
    back to 8 only; relearning for the writes makes it adaptive again."""
    clock = Clock()
    limit = ConcurrencyLimit(64, clock=clock)
    limit.hold()
    assert limit.limit == 8
    for _ in range(50):
        queueing_round(limit, clock, capacity=2, service_s=0.02)  # four times unloaded
    assert limit.limit == 8
    overload(limit, clock, "503", sent_at=clock.now, inflight=8)
    assert limit.limit == 6  # most of the latest answers refused: no trial, a back-off
    for _ in range(50):
        queueing_round(limit, clock, capacity=1000, service_s=0.02)
    assert limit.limit == 8
    limit.relearn()
    for _ in range(20):
        queueing_round(limit, clock, capacity=1000, service_s=0.02)
    assert limit.limit == 64
    assert [c.reason for c in limit.history][:2] == ["start", "reading"]


def test_holding_leaves_a_fixed_limit_as_it_is() -> None:
    """--concurrency N is what the reads get too: hold changes nothing."""
    limit = ConcurrencyLimit(24, fixed=True, clock=Clock())
    limit.hold()
    assert limit.limit == 24


def test_slow_start_judges_a_level_on_the_first_half_of_its_answers() -> None:
    """In slow start half of a level's answers judge it: the limit doubles one round trip
    after each doubling, without waiting for the answers of the requests sent last."""
    clock = Clock()
    limit = ConcurrencyLimit(64, clock=clock)
    seen = [limit.limit]
    while limit.limit < 64:
        clock.now += 0.02
        for _ in range(limit.limit // 2):
            limit.succeeded(0.02, limit.limit)
        seen.append(limit.limit)
    assert seen == [2, 4, 8, 16, 32, 64]
