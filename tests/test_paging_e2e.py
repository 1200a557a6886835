"""Concurrent paging of users: the same directory as page-by-page reading, in fewer round trips."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from bulkusers.api import V1Api
from bulkusers.client import SisenseClient
from bulkusers.concurrency import ConcurrencyLimit
from bulkusers.config import RetryPolicy, build_connection
from bulkusers.emulator import Emulator, EmulatorSettings, running_emulator
from bulkusers.errors import TransientApiError
from bulkusers.loading import load_directory

TOKEN = "paging-token"
USERS = "/api/v1/users"


@pytest.fixture
async def emulator() -> AsyncIterator[Emulator]:
    """An emulator with 2,000 generated users (plus super) and 20 ms of latency."""
    settings = EmulatorSettings(token=TOKEN, users=2000, groups=("Sales", "Finance"),
                                latency_ms=20)
    async with running_emulator(settings) as emu:
        yield emu


def client_for(emulator: Emulator, concurrency: ConcurrencyLimit,
               policy: RetryPolicy | None = None) -> SisenseClient:
    """A client of the emulator with the given limit on requests in flight."""
    connection = build_connection(url=emulator.url, token=TOKEN, username=None, password=None)
    return SisenseClient(connection, policy or RetryPolicy(), concurrency=concurrency)


@pytest.mark.parametrize("page_size", [37, 100, 2001, 5000])
async def test_concurrent_pages_give_exactly_the_directory_in_order(
        emulator: Emulator, page_size: int) -> None:
    """Whatever the page size (a ragged last page, one exact page, one short page), every
    user comes once, in the server's order, with the fields a sequential reader gets."""
    async with client_for(emulator, ConcurrencyLimit(16, fixed=True)) as client:
        users = [u async for u in V1Api(client).iter_users(page_size=page_size)]
    expected = [user.id for user in emulator.store.users.values()]
    assert [u["_id"] for u in users] == expected
    assert {u["email"] for u in users} == {u.email for u in emulator.store.users.values()}
    pages = -(-len(expected) // page_size) + (len(expected) % page_size == 0)
    asked = sum(1 for r in emulator.requests if r.path == USERS)
    assert pages <= asked <= 2 * pages  # never more pages past the end than before it


async def test_a_large_directory_is_paged_concurrently(emulator: Emulator) -> None:
    """Pages after the first are in flight together (the server sees several at once), and
    the loaded directory indexes every user."""
    async with client_for(emulator, ConcurrencyLimit(16, fixed=True)) as client:
        directory = await load_directory(V1Api(client), page_size=40)
    assert directory.user_count == len(emulator.store.users)
    for record in emulator.store.users.values():
        user = directory.user_by_email(record.email)
        assert user is not None
        assert user.id == record.id
    assert emulator.faults.peak_inflight >= 8


async def test_adaptive_paging_never_exceeds_the_maximum(emulator: Emulator) -> None:
    """With an adaptive limit of at most 3, paging ahead never has more than 3 in flight."""
    async with client_for(emulator, ConcurrencyLimit(3)) as client:
        users = [u async for u in V1Api(client).iter_users(page_size=50)]
    assert len(users) == len(emulator.store.users)
    assert emulator.faults.peak_inflight <= 3


async def test_a_failing_page_stops_the_load_and_leaves_nothing_running(
        emulator: Emulator) -> None:
    """A page refused for good ends the load with the error; the pages asked for ahead are
    cancelled, not left running."""
    no_retries = RetryPolicy(attempts=1)
    async with client_for(emulator, ConcurrencyLimit(8, fixed=True), no_retries) as client:
        pages = V1Api(client).iter_users(page_size=100)
        first = [await anext(pages) for _ in range(150)]  # into the second page
        emulator.faults.error_rate = 1.0
        with pytest.raises(TransientApiError, match="503"):
            async for _ in pages:
                pass
        assert client.gate.inflight == 0
    assert len(first) == 150
