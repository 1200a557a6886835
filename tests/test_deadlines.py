"""Deadlines: one watchdog keeps every request's time limit, as aiohttp's timer would."""

from __future__ import annotations

import asyncio
import time

import pytest

from bulkusers.deadlines import Deadlines


async def limited(deadlines: Deadlines, seconds: float) -> str:
    """A request that takes ``seconds``, limited as the client limits one."""
    number = deadlines.begin()
    try:
        await asyncio.sleep(seconds)
    except asyncio.CancelledError:
        if deadlines.timed_out(number):
            raise TimeoutError from None
        raise
    finally:
        deadlines.end(number)
    return "answered"


async def test_a_request_past_its_limit_times_out_within_a_tick() -> None:
    """A request still under way after the limit raises TimeoutError, no later than a tick
    after it (and not before it)."""
    deadlines = Deadlines(0.2)
    deadlines.start()
    started = time.monotonic()
    with pytest.raises(TimeoutError):
        await limited(deadlines, 10)
    took = time.monotonic() - started
    await deadlines.stop()
    assert 0.2 <= took < 0.2 + 0.2 / 10 + 0.15  # the limit, a tick, the loop's slack


async def test_requests_within_their_limit_are_untouched_and_their_task_goes_on() -> None:
    """Requests that end before their limit answer, and the task that sent them is not
    cancelled later (a waiting sleep after them completes)."""
    deadlines = Deadlines(0.3)
    deadlines.start()

    async def several() -> list[str]:
        answers = [await limited(deadlines, 0.05) for _ in range(3)]
        await asyncio.sleep(0.5)  # past the first request's limit
        return answers

    assert await several() == ["answered"] * 3
    await deadlines.stop()


async def test_only_the_requests_past_their_limit_time_out() -> None:
    """Of requests begun at different times, those past their limit time out and the one
    begun later, still within its own, answers."""
    deadlines = Deadlines(0.3)
    deadlines.start()
    early = asyncio.create_task(limited(deadlines, 10))
    await asyncio.sleep(0.2)
    later = asyncio.create_task(limited(deadlines, 0.25))  # ends 0.45 s in, its limit 0.5
    outcomes = await asyncio.gather(early, later, return_exceptions=True)
    await deadlines.stop()
    assert isinstance(outcomes[0], TimeoutError)
    assert outcomes[1] == "answered"


async def test_a_cancellation_from_elsewhere_stays_a_cancellation() -> None:
    """A task cancelled by its owner raises CancelledError, not TimeoutError, whether or not
    its limit has also passed; and the watchdog does not undo the owner's cancellation."""
    deadlines = Deadlines(0.2)
    deadlines.start()
    plain = asyncio.create_task(limited(deadlines, 10))
    await asyncio.sleep(0.05)
    plain.cancel()
    with pytest.raises(asyncio.CancelledError):
        await plain

    both = asyncio.create_task(limited(deadlines, 10))
    await asyncio.sleep(0.01)  # under way
    deadlines.expire(asyncio.get_running_loop().time() + 1)  # the watchdog's cancel...
    both.cancel()  # ...and its owner's, before the task runs again
    with pytest.raises(asyncio.CancelledError):
        await both
    await deadlines.stop()


async def test_without_the_watchdog_nothing_is_limited() -> None:
    """Before start() and after stop(), a request takes as long as it takes."""
    deadlines = Deadlines(0.05)
    assert await limited(deadlines, 0.1) == "answered"
    deadlines.start()
    await deadlines.stop()
    assert await limited(deadlines, 0.1) == "answered"


async def test_a_cancellation_while_the_watchdog_stops_goes_on() -> None:
    """A task cancelled while stop() waits for the watchdog's end raises CancelledError."""
    deadlines = Deadlines(0.2)
    deadlines.start()
    await asyncio.sleep(0)  # the watchdog asleep
    stopping = asyncio.create_task(deadlines.stop())
    await asyncio.sleep(0)  # stop() waits for the watchdog to end
    stopping.cancel()
    outcome = (await asyncio.gather(stopping, return_exceptions=True))[0]
    assert isinstance(outcome, asyncio.CancelledError)


async def test_a_request_sent_by_a_task_already_cancelling_still_times_out() -> None:
    """A request sent after its task caught a cancellation (cleanup) raises TimeoutError
    when past its limit, as under aiohttp's timer, and leaves that cancellation pending."""
    deadlines = Deadlines(0.1)
    deadlines.start()

    async def cleanup_after_a_cancellation() -> tuple[str, int]:
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            try:
                return await limited(deadlines, 10), 0
            except TimeoutError:
                task = asyncio.current_task()
                assert task is not None
                return "timed out", task.cancelling()
        return "not cancelled", 0

    task = asyncio.create_task(cleanup_after_a_cancellation())
    await asyncio.sleep(0)
    task.cancel()
    outcome = (await asyncio.gather(task, return_exceptions=True))[0]
    await deadlines.stop()
    assert outcome == ("timed out", 1)


async def test_a_request_answered_in_time_is_not_cancelled_while_it_winds_up() -> None:
    """Once its answer is read (answered()), a request past its deadline is left alone while
    it releases its connection; one that had already timed out still times out."""
    deadlines = Deadlines(0.2)

    async def winding_up(already_expired: bool) -> str:
        number = deadlines.begin()
        try:
            await asyncio.sleep(0.01)  # the answer comes in...
            if already_expired:
                deadlines.expire(asyncio.get_running_loop().time() + 1)
            deadlines.answered(number)
            deadlines.expire(asyncio.get_running_loop().time() + 1)  # ...then the deadline
            await asyncio.sleep(0.01)  # aiohttp releasing the connection
        except asyncio.CancelledError:
            if deadlines.timed_out(number):
                return "timed out"
            raise
        finally:
            deadlines.end(number)
        return "answered"

    assert await winding_up(already_expired=False) == "answered"
    assert await winding_up(already_expired=True) == "timed out"


async def test_the_watchdog_sleeps_while_no_request_is_under_way() -> None:
    """An idle client's watchdog stops looking (at most one last look after the last
    request), and wakes for the next request, whose limit it still keeps."""
    deadlines = Deadlines(0.5)  # a look every 0.05 s while busy
    looks = 0
    expire = deadlines.expire

    def counted(now: float) -> None:
        nonlocal looks
        looks += 1
        expire(now)

    deadlines.expire = counted  # type: ignore[method-assign]
    deadlines.start()
    assert await limited(deadlines, 0.12) == "answered"
    assert looks >= 1  # it looked while the request was under way
    looks = 0
    await asyncio.sleep(0.4)  # eight looks' time, idle
    assert looks <= 1
    with pytest.raises(TimeoutError):
        await limited(deadlines, 10)
    await deadlines.stop()
