"""The shared request pace: evenly spaced starts across concurrent workers."""

from __future__ import annotations

import asyncio

import pytest

from bulkusers.limiter import AdaptiveLimit, RateLimiter


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


async def test_adaptive_limit_halves_on_429_and_grows_back() -> None:
    """A 429 halves the requests allowed in flight; calm answers raise it again, to the max."""
    gate = AdaptiveLimit(8)
    for _ in range(3):
        await gate.acquire()
    gate.release(throttled=True)
    assert gate.limit == 4
    gate.release(throttled=True)
    assert gate.limit == 2
    gate.release(throttled=False)
    for _ in range(400):
        await gate.acquire()
        gate.release(throttled=False)
    assert gate.limit == 8


async def test_adaptive_limit_holds_back_requests_over_the_limit() -> None:
    """With the limit lowered to 1, a second request waits until the first is released."""
    gate = AdaptiveLimit(2)
    await gate.acquire()
    await gate.acquire()
    gate.release(throttled=True)  # limit 1, one still in flight
    second = asyncio.create_task(gate.acquire())
    await asyncio.sleep(0)
    assert not second.done()
    gate.release(throttled=False)
    await asyncio.wait_for(second, timeout=1)
