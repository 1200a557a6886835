"""The run's long-lived values and the cycle collector: paused while the snapshot is built,
frozen after, and the process's collector left as the run found it."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Iterator

import pytest

from bulkusers.heap import LongLived


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
