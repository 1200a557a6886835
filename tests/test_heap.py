"""The run's long-lived values and the cycle collector: paused while the snapshot is built,
frozen after, and the process's collector left as the run found it."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Iterator

import pytest

from bulkusers.heap import YOUNG_THRESHOLD, LongLived


@pytest.fixture(autouse=True)
def collector_restored() -> Iterator[None]:
    """Each test starts with the collector on and nothing frozen, and leaves it so."""
    assert gc.isenabled()
    assert gc.get_freeze_count() == 0
    try:
        yield
    finally:
        gc.unfreeze()
        gc.enable()


def test_values_built_are_frozen_until_the_run_releases_them() -> None:
    """Inside ``building`` no collection runs; after it, what the process holds (the values
    built included) is frozen and the collector is on again; ``release`` thaws it, once."""
    lasting = LongLived()
    with lasting.building():
        assert not gc.isenabled()
        kept = [[n] for n in range(2000)]  # lists are tracked by the collector
    assert gc.isenabled()
    assert gc.get_freeze_count() > 0
    assert not any(o is kept for o in gc.get_objects())  # frozen: no generation holds it
    lasting.release()
    assert gc.get_freeze_count() == 0
    assert any(o is kept for o in gc.get_objects())
    lasting.release()
    assert gc.get_freeze_count() == 0


def test_a_failure_while_building_restores_the_collector_and_freezes_nothing() -> None:
    """An exception out of ``building`` (a server that refuses the load) leaves the collector
    on and nothing frozen, in the span and after it."""
    during: list[tuple[bool, int]] = []

    async def failing_run() -> None:
        async with LongLived() as lasting:
            try:
                with lasting.building():
                    raise ConnectionError("refused")
            finally:
                during.append((gc.isenabled(), gc.get_freeze_count()))

    with pytest.raises(ConnectionError):
        asyncio.run(failing_run())
    assert during == [(True, 0)]
    assert gc.isenabled()
    assert gc.get_freeze_count() == 0


def test_a_collector_the_caller_turned_off_stays_off() -> None:
    """A caller that runs with the collector disabled finds it disabled after ``building``."""
    gc.disable()
    lasting = LongLived()
    with lasting.building():
        pass
    assert not gc.isenabled()
    lasting.release()
    assert not gc.isenabled()


def test_objects_the_caller_froze_stay_frozen() -> None:
    """A process that froze its own objects (a server before it forks, another run) keeps
    them frozen: the run neither freezes more nor thaws them."""
    gc.freeze()
    frozen = gc.get_freeze_count()
    lasting = LongLived()
    with lasting.building():
        _ = [[n] for n in range(1000)]
    lasting.release()
    assert gc.get_freeze_count() == frozen


def test_a_run_collects_the_young_generation_less_often_and_restores_the_thresholds() -> None:
    """Inside the span the young generation's threshold is YOUNG_THRESHOLD; after it, the
    caller's thresholds are back; a caller's own higher threshold is left alone, and one the
    caller set during the run stands after it."""
    before = gc.get_threshold()

    async def run(inside: list[tuple[int, int, int]], change: tuple[int, int, int] | None
                  ) -> None:
        async with LongLived():
            inside.append(gc.get_threshold())
            if change is not None:
                gc.set_threshold(*change)

    try:
        gc.set_threshold(700, 10, 10)
        seen: list[tuple[int, int, int]] = []
        asyncio.run(run(seen, None))
        assert seen == [(YOUNG_THRESHOLD, 10, 10)]
        assert gc.get_threshold() == (700, 10, 10)
        gc.set_threshold(50_000, 10, 10)  # a caller that collects even less often
        asyncio.run(run(seen, None))
        assert seen[-1] == (50_000, 10, 10)
        assert gc.get_threshold() == (50_000, 10, 10)
        gc.set_threshold(700, 10, 10)
        asyncio.run(run(seen, (900, 5, 5)))  # changed by the caller while the run lasted
        assert gc.get_threshold() == (900, 5, 5)
    finally:
        gc.set_threshold(*before)
