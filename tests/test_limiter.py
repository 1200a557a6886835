"""The shared request limits: evenly spaced starts, the in-flight gate and its pauses."""

from __future__ import annotations

import asyncio

import pytest

from bulkusers.concurrency import ConcurrencyLimit
from bulkusers.limiter import RateLimiter, RequestGate


class FakeTime:
    """A clock that only moves when the limiter sleeps."""

    def __init__(self) -> None:
        self.now = 100.0

    def clock(self) -> float:
        """The current fake time."""
        return self.now

    async def sleep(self, seconds: float) -> None:
        """Advance the fake time instead of waiting."""
        self.now += seconds


async def test_starts_are_spaced_at_the_rate_across_workers() -> None:
    """Ten workers sharing a 5/s limiter start 0.2 s apart, never two at once."""
    fake = FakeTime()
    limiter = RateLimiter(5, clock=fake.clock, sleep=fake.sleep)
    starts: list[float] = []

    async def worker() -> None:
        for _ in range(3):
            await limiter.wait()
            starts.append(fake.now)

    await asyncio.gather(*(worker() for _ in range(10)))
    assert len(starts) == 30
    gaps = [round(b - a, 6) for a, b in zip(sorted(starts), sorted(starts)[1:], strict=False)]
    assert min(gaps) >= 0.2 - 1e-9


async def test_an_idle_limiter_does_not_wait() -> None:
    """After a pause longer than the interval the next request starts at once."""
    fake = FakeTime()
    limiter = RateLimiter(2, clock=fake.clock, sleep=fake.sleep)
    await limiter.wait()
    fake.now += 10
    before = fake.now
    await limiter.wait()
    assert fake.now == before


def test_rate_must_be_positive() -> None:
    """A zero rate is refused rather than dividing by zero."""
    with pytest.raises(ValueError, match="positive"):
        RateLimiter(0)


async def test_gate_halts_requests_over_a_lowered_limit_and_hands_slots_over_in_order() -> None:
    """With the limit lowered to 1 by a 429, later requests wait and get the freed slot in
    the order they came."""
    gate = RequestGate(ConcurrencyLimit(2, fixed=True))
    first, second = await gate.acquire(), await gate.acquire()
    gate.release(second, overload="429")
    assert gate.limit.limit == 1
    order: list[str] = []

    async def wait(name: str) -> None:
        await gate.acquire()
        order.append(name)

    waiting = [asyncio.create_task(wait("a")), asyncio.create_task(wait("b"))]
    await asyncio.sleep(0)
    assert order == []
    gate.release(first, answered=False)  # no answer: nothing learnt, the limit stays 1
    await asyncio.wait_for(waiting[0], timeout=1)
    assert order == ["a"]
    assert not waiting[1].done()
    waiting[1].cancel()


async def test_refresh_lets_in_what_a_limit_raised_from_outside_admits() -> None:
    """Requests waiting at a full gate get in once the limit is raised outside an answer
    (the run holding more in flight for its reads) and the gate is refreshed."""
    gate = RequestGate(ConcurrencyLimit(8, clock=lambda: 0.0))
    held = [await gate.acquire(), await gate.acquire()]  # an adaptive limit starts at 2
    waiting = asyncio.create_task(gate.acquire())
    await asyncio.sleep(0)
    assert not waiting.done()
    gate.limit.hold()
    gate.refresh()
    await asyncio.wait_for(waiting, timeout=1)
    assert gate.inflight == 3
    assert len(held) == 2


async def test_a_retry_after_pauses_the_whole_run_once() -> None:
    """Three requests refused with Retry-After together start one pause, not three; every
    request waits for it, and a refusal of a request sent before it adds no second pause."""
    fake = FakeTime()
    resume = asyncio.Event()
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)
        await resume.wait()

    gate = RequestGate(ConcurrencyLimit(8, fixed=True), sleep=sleep, clock=fake.clock)
    tickets = [await gate.acquire() for _ in range(3)]
    for ticket in tickets:
        gate.pause(1.0, ticket)
        gate.release(ticket, overload="429")
    await asyncio.sleep(0)
    assert (slept, gate.pauses) == ([1.0], 1)
    blocked = asyncio.create_task(gate.acquire())
    await asyncio.sleep(0)
    assert not blocked.done()
    resume.set()
    late = await asyncio.wait_for(blocked, timeout=1)
    gate.pause(1.0, tickets[0])  # an answer to a request sent before the pause
    assert gate.pauses == 1
    gate.pause(1.0, late)  # a refusal after the pause: a new one
    assert gate.pauses == 2
    gate.close()


async def test_admit_lets_pool_workers_in_only_under_the_limit() -> None:
    """Worker 5 waits while the limit is 4 and is let in once answers raise the limit."""
    fake = FakeTime()
    limit = ConcurrencyLimit(16, initial=4, clock=fake.clock)
    gate = RequestGate(limit, clock=fake.clock)
    await asyncio.wait_for(gate.admit(3), timeout=1)
    fifth = asyncio.create_task(gate.admit(5))
    await asyncio.sleep(0)
    assert not fifth.done()
    while limit.limit <= 5:  # quick answers at full use: the limit grows
        tickets = [await gate.acquire() for _ in range(limit.limit)]
        fake.now += 0.02
        for ticket in tickets:
            gate.release(ticket)
    await asyncio.wait_for(fifth, timeout=1)


async def test_a_request_waiting_to_be_retried_lets_one_more_worker_take_a_row() -> None:
    """At a limit of 2, worker 2 waits; while one request rests before its retry, worker 2
    is let in (worker 3 still waits); with three resting, workers up to 4 take rows (more
    resting than the limit: random failures at a tenth or more); none more once they are
    retried."""
    gate = RequestGate(ConcurrencyLimit(2, fixed=True))
    third = asyncio.create_task(gate.admit(2))
    await asyncio.sleep(0)
    assert not third.done()
    with gate.resting_request():
        await asyncio.wait_for(third, timeout=1)
        fourth = asyncio.create_task(gate.admit(3))
        await asyncio.sleep(0)
        assert not fourth.done()
        with gate.resting_request(), gate.resting_request():
            fifth = asyncio.create_task(gate.admit(4))
            await asyncio.wait_for(asyncio.gather(fourth, fifth), timeout=1)
            sixth = asyncio.create_task(gate.admit(5))
            await asyncio.sleep(0)
            assert not sixth.done()
    assert gate.resting == 0
    again = asyncio.create_task(gate.admit(2))
    await asyncio.sleep(0)
    assert not again.done()
    for waiting in (sixth, again):
        waiting.cancel()


async def test_a_wider_limit_wakes_only_the_workers_it_lets_in() -> None:
    """Of 300 idle workers, a limit raised from 2 to 8 (held for reads) wakes workers 2 to 7
    and leaves the rest asleep (each waits on its own future, not on one event that wakes
    them all)."""
    limit = ConcurrencyLimit(64, initial=2)
    gate = RequestGate(limit)
    waiting = [asyncio.create_task(gate.admit(number)) for number in range(2, 302)]
    await asyncio.sleep(0)
    assert not any(task.done() for task in waiting)
    limit.hold()
    gate.refresh()
    await asyncio.sleep(0)
    assert [task.done() for task in waiting[:7]] == [True] * 6 + [False]
    assert len(gate._sleepers) == 294  # the others were not woken to go back to sleep
    for task in waiting[6:]:
        task.cancel()


async def test_in_an_outage_a_request_waiting_to_be_retried_lets_no_other_row_in() -> None:
    """When the server refuses more than the odd request (an outage), a request resting
    before its retry admits no extra worker: each such row would only fail too, and the
    run take longer to stop."""
    limit = ConcurrencyLimit(4, fixed=True)
    gate = RequestGate(limit)
    for _ in range(30):  # every answer a 503: no odd failure
        limit.overloaded("503", sent_at=0.0, inflight=4)
    assert not limit.keeps_up()
    with gate.resting_request():
        extra = asyncio.create_task(gate.admit(limit.limit))
        await asyncio.sleep(0)
        assert not extra.done()
        extra.cancel()


async def test_enter_lets_in_at_once_only_what_acquire_would_not_make_wait() -> None:
    """enter() hands out tickets while slots are free, and None (so the caller waits in
    acquire) when the gate is full, someone already waits, or the run is paused."""
    fake = FakeTime()
    resume = asyncio.Event()

    async def sleep(seconds: float) -> None:
        await resume.wait()

    gate = RequestGate(ConcurrencyLimit(2, fixed=True), sleep=sleep, clock=fake.clock)
    first, second = gate.enter(), gate.enter()
    assert first is not None
    assert second is not None
    assert (gate.inflight, second.inflight) == (2, 2)
    assert gate.enter() is None  # full
    queued = asyncio.create_task(gate.acquire())
    await asyncio.sleep(0)
    gate.release(first)  # the slot goes to the one waiting, not to a newcomer
    assert gate.enter() is None
    third = await asyncio.wait_for(queued, timeout=1)
    gate.release(second)
    gate.pause(1.0, third)
    assert gate.enter() is None  # paused, although a slot is free
    resume.set()
    gate.release(await asyncio.wait_for(gate.acquire(), timeout=1))  # after the pause
    assert gate.enter() is not None
    gate.close()
