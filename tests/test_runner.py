"""The worker pool: bounded concurrency, every item accounted for, stop and abort."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Iterator

import pytest

from bulkusers.errors import AuthError
from bulkusers.pipeline import _on_sigint
from bulkusers.runner import Pool


async def test_every_item_is_handled_once_with_bounded_concurrency() -> None:
    """All items reach the handler exactly once and never more than N run at the same time."""
    handled: list[int] = []
    running = 0
    peak = 0

    async def handle(item: int) -> None:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        await asyncio.sleep(0.001)
        running -= 1
        handled.append(item)

    pool: Pool[int] = Pool(handle, lambda item: None, concurrency=4)
    await pool.run(iter(range(1000)))
    assert sorted(handled) == list(range(1000))
    assert peak == 4


async def test_reader_is_pulled_lazily_so_memory_stays_bounded() -> None:
    """The source is read only a bounded distance ahead of the workers (backpressure)."""
    produced = 0
    max_ahead = 0
    handled = 0

    def source() -> Iterator[int]:
        nonlocal produced
        for i in range(5000):
            produced += 1
            yield i

    async def handle(item: int) -> None:
        nonlocal handled, max_ahead
        await asyncio.sleep(0)
        handled += 1
        max_ahead = max(max_ahead, produced - handled)

    pool: Pool[int] = Pool(handle, lambda item: None, concurrency=2)
    await pool.run(source())
    assert handled == 5000
    assert max_ahead < 1000  # a slice in hand plus a small queue, never the whole file


async def test_stop_sends_nothing_new_and_reports_the_rest_as_unsent() -> None:
    """After stop(), items in flight finish and every other item goes to unsent, once."""
    handled: list[int] = []
    unsent: list[int] = []

    async def handle(item: int) -> None:
        if item == 10:
            pool.stop()
        await asyncio.sleep(0.001)
        handled.append(item)

    pool: Pool[int] = Pool(handle, unsent.append, concurrency=3)
    await pool.run(iter(range(2000)))
    assert sorted(handled + unsent) == list(range(2000))
    assert len(handled) < 20
    assert pool.interrupted


async def test_abort_error_stops_the_run_and_is_kept() -> None:
    """An AbortError from one item stops the pool; the rest are unsent, the error is kept."""
    handled: list[int] = []
    unsent: list[int] = []

    async def handle(item: int) -> None:
        if item == 5:
            raise AuthError("token refused")
        await asyncio.sleep(0.001)
        handled.append(item)

    pool: Pool[int] = Pool(handle, unsent.append, concurrency=2)
    await pool.run(iter(range(500)))
    assert isinstance(pool.abort, AuthError)
    assert not pool.interrupted
    assert sorted([*handled, 5, *unsent]) == list(range(500))


async def test_cancel_cancels_items_in_flight() -> None:
    """cancel() interrupts handlers mid-flight; their items are neither lost nor doubled."""
    started: list[int] = []
    finished: list[int] = []
    cancelled: list[int] = []
    unsent: list[int] = []

    async def handle(item: int) -> None:
        started.append(item)
        if len(started) == 3:
            pool.cancel()
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            cancelled.append(item)
            raise
        finished.append(item)

    pool: Pool[int] = Pool(handle, unsent.append, concurrency=3)
    await asyncio.wait_for(pool.run(iter(range(100))), timeout=5)
    assert finished == []
    assert sorted(cancelled + unsent) == list(range(100))


async def test_an_unexpected_error_stops_the_pool_instead_of_hanging() -> None:
    """A handler raising a non-abort error (a bug, a full disk) stops the run cleanly: the
    pool returns, keeps the error as an abort, and every other item is unsent once."""
    handled: list[int] = []
    unsent: list[int] = []

    async def handle(item: int) -> None:
        if item == 3:
            raise OSError(28, "No space left on device")
        await asyncio.sleep(0.001)
        handled.append(item)

    pool: Pool[int] = Pool(handle, unsent.append, concurrency=2)
    await asyncio.wait_for(pool.run(iter(range(300))), timeout=5)
    assert pool.abort is not None
    assert "No space left" in str(pool.abort)
    assert sorted([*handled, 3, *unsent]) == list(range(300))


async def test_admission_keeps_items_queued_under_a_low_limit_and_stop_leaves_them_unsent(
        ) -> None:
    """With 16 workers but an admission of 2, only 2 items are ever in the handler; a stop
    then reports every other item unsent, and each item has exactly one outcome."""
    width = 2
    widened = asyncio.Event()
    running = 0
    peak = 0
    handled: list[int] = []
    unsent: list[int] = []

    async def admit(worker: int) -> None:
        while worker >= width:
            await widened.wait()

    async def handle(item: int) -> None:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        if len(handled) + running == 6:
            pool.stop()
        await asyncio.sleep(0.001)
        running -= 1
        handled.append(item)

    pool: Pool[int] = Pool(handle, unsent.append, concurrency=16, admit=admit)
    await asyncio.wait_for(pool.run(iter(range(500))), timeout=5)
    assert peak == 2
    assert len(handled) <= 6
    assert sorted(handled + unsent) == list(range(500))


async def test_a_source_that_fails_stops_the_pool_and_its_error_is_raised() -> None:
    """When the plan cannot be read back mid-run (its spool file), the pool stops taking
    items, lets those in flight finish, and raises that error; nothing is handled twice."""
    handled: list[int] = []
    unsent: list[int] = []

    def source() -> Iterator[int]:
        yield from range(20)
        raise OSError(5, "Input/output error")

    async def handle(item: int) -> None:
        await asyncio.sleep(0.001)
        handled.append(item)

    pool: Pool[int] = Pool(handle, unsent.append, concurrency=3)
    with pytest.raises(OSError, match="Input/output error"):
        await asyncio.wait_for(pool.run(source()), timeout=5)
    assert sorted(handled) == list(range(20))
    assert unsent == []


async def test_before_drain_is_told_once_before_the_items_left_go_unsent() -> None:
    """A stopped pool calls before_drain once, before the first item left is reported unsent
    (so a source that makes its items can make the rest cheaply); a pool that drained its
    source does not call it."""
    events: list[str] = []

    async def handle(item: int) -> None:
        if item == 5:
            pool.stop()
        await asyncio.sleep(0.001)

    pool: Pool[int] = Pool(handle, lambda item: events.append("unsent"), concurrency=2,
                           before_drain=lambda: events.append("drain"))
    await pool.run(iter(range(100)))
    assert events[0] == "drain"
    assert events.count("drain") == 1
    assert events.count("unsent") > 80

    finished: list[str] = []

    async def quick(item: int) -> None:
        await asyncio.sleep(0)

    whole: Pool[int] = Pool(quick, lambda item: finished.append("unsent"), concurrency=2,
                            before_drain=lambda: finished.append("drain"))
    await whole.run(iter(range(50)))
    assert finished == []


async def test_the_callers_ctrl_c_handler_is_back_after_a_run() -> None:
    """The run's Ctrl-C handler lasts only while it sends: afterwards the one from before is
    in place again (asyncio.run's, which cancels the run's task), not the default."""
    def before(signum: int, frame: object) -> None:
        """The caller's Ctrl-C handler."""

    previous = signal.signal(signal.SIGINT, before)
    try:
        with _on_sigint(lambda: None, enabled=True):
            assert signal.getsignal(signal.SIGINT) is not before
        assert signal.getsignal(signal.SIGINT) is before
    finally:
        signal.signal(signal.SIGINT, previous)
