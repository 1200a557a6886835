"""Concurrent paging of users: the same directory as page-by-page reading, in fewer round trips."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from urllib.parse import parse_qs

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from bulkusers.api import PLAN_FIELDS, LegacyApi, V1Api, roles_of
from bulkusers.client import SisenseClient
from bulkusers.concurrency import ConcurrencyLimit
from bulkusers.config import RetryPolicy, build_connection
from bulkusers.emulator import Emulator, EmulatorSettings, running_emulator
from bulkusers.errors import TransientApiError
from bulkusers.loading import load_directory, together

TOKEN = "paging-token"
USERS = "/api/v1/users"
#: A handler of the scripted servers below.
Handler = Callable[[web.Request], Awaitable[web.Response]]


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
    asked = [dict(pair.split("=") for pair in r.query.split("&"))
             for r in emulator.requests if r.path == USERS]
    # Never more pages than twice those a sequential reader asks for, and none past the end
    # but the one that comes back short.
    assert len(asked) <= 2 * pages
    assert len([q for q in asked if int(q["skip"]) >= len(expected)]) <= 1
    # With the count, pages grow so that the rest takes about one page per request let
    # through at once (16): fewer requests. (How many pages of the first size went out
    # before the count came in depends on timing: the first two, and a few more ahead.)
    grown = [q for q in asked if int(q["limit"]) > page_size]
    assert len(grown) <= 16 + 1
    if page_size * 16 < len(expected):  # more than 16 pages of the first size are left
        assert grown


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


async def test_the_directory_load_asks_only_for_what_planning_reads(emulator: Emulator) -> None:
    """A run's directory is read with exactly the fields planning compares, not the
    timestamps only an export shows (less for the server to encode and the client to parse),
    and every user's compared fields arrive; the export's own listing keeps the timestamps."""
    records = list(emulator.store.users.values())
    for n, record in enumerate(records[1:60]):  # languages and deactivated users to carry
        record.preferences["language"] = ("fr-FR", "de-DE", "ja-JP")[n % 3]
        record.active = n % 2 == 0
    async with client_for(emulator, ConcurrencyLimit(16, fixed=True)) as client:
        directory = await load_directory(V1Api(client), page_size=500)
        run_loads = [parse_qs(r.query) for r in emulator.requests if r.path == USERS]
        exported = [u async for u in V1Api(client).iter_users(page_size=500)]
    assert len(run_loads) >= 4
    for query in run_loads:
        assert set(query["fields"][0].split(",")) == set(PLAN_FIELDS.split(",")) == {
            "_id", "email", "userName", "firstName", "lastName", "roleId", "groups", "active",
            "preferences"}
    for record in records:
        user = directory.user_by_email(record.email)
        assert user is not None
        assert (user.id, user.user_name, user.first_name, user.last_name, user.role_id,
                list(user.group_ids), user.active, user.language) == (
            record.id, record.user_name, record.first_name, record.last_name, record.role_id,
            record.groups, record.active, record.preferences.get("language") or "")
    assert all({"created", "lastLogin", "lastUpdated"} <= set(u) for u in exported)


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


async def test_the_second_page_is_asked_for_with_the_first(emulator: Emulator) -> None:
    """A directory of one full page and a short one is read in one round trip: both pages
    (and the count of users) are in flight together, not the second page after the first
    came back full."""
    async with client_for(emulator, ConcurrencyLimit(16, fixed=True)) as client:
        users = [u async for u in V1Api(client).iter_users(page_size=1500)]
    assert len(users) == len(emulator.store.users)
    assert [r.path for r in emulator.requests].count(USERS) == 2
    assert len(emulator.requests) == 3  # the two pages and GET /api/users/count
    assert emulator.faults.peak_inflight == 3


async def test_the_count_of_users_asks_for_every_page_and_none_past_the_end(
        emulator: Emulator) -> None:
    """With GET /api/users/count answering, the pages up to the short one are asked for as
    soon as the count is in, and not one past the end (without it, up to as many again)."""
    async with client_for(emulator, ConcurrencyLimit(64, fixed=True)) as client:
        users = [u async for u in V1Api(client).iter_users(page_size=100)]
    assert len(users) == len(emulator.store.users) == 2001
    assert [r.path for r in emulator.requests].count(USERS) == 21
    assert emulator.faults.peak_inflight > 16  # not doubling round trip by round trip


async def test_roles_given_to_the_load_are_not_asked_for_again(emulator: Emulator) -> None:
    """The roles the client's check reads, at the same time as the load, make the directory's
    roles; the load asks the server only for groups and users."""
    async with client_for(emulator, ConcurrencyLimit(16, fixed=True)) as client:
        checking = asyncio.ensure_future(client.check())

        async def checked_roles() -> list[dict[str, object]]:
            return roles_of(await checking)

        directory = await load_directory(V1Api(client), roles=checked_roles())
    assert sum(1 for r in emulator.requests if r.path == "/api/roles") == 1
    assert {role.name for role in directory.roles} == {
        role.name for role in emulator.store.roles.values()}
    assert directory.user_count == len(emulator.store.users)


async def test_together_raises_the_first_failure_and_cancels_the_rest() -> None:
    """A failing call's own exception comes out (not a group), and a call still running is
    cancelled before it does, so nothing goes on behind the failure."""
    cancelled = []

    async def slow() -> None:
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            cancelled.append(True)
            raise

    async def failing() -> None:
        await asyncio.sleep(0)
        raise TransientApiError(503, None, "busy", method="GET", path=USERS)

    with pytest.raises(TransientApiError, match="busy"):
        await together(slow(), failing())
    assert cancelled == [True]
    assert await together(asyncio.sleep(0, "a"), asyncio.sleep(0, "b")) == ["a", "b"]


async def test_with_the_count_the_rest_comes_in_grown_pages(emulator: Emulator) -> None:
    """Once the count is in, the rest is asked for in pages grown to about one per request
    the limit lets through (8 while pages are read): a few round trips, every user once and
    in order."""
    async with client_for(emulator, ConcurrencyLimit(64)) as client:
        users = [u async for u in V1Api(client).iter_users(page_size=100)]
    assert [u["_id"] for u in users] == [user.id for user in emulator.store.users.values()]
    limits = [int(dict(pair.split("=") for pair in r.query.split("&"))["limit"])
              for r in emulator.requests if r.path == USERS]
    assert limits[:2] == [100, 100]
    assert max(limits) >= 200  # (2001 - 200) / 8 = 226 a page
    assert len(limits) <= 2 + 8 + 1


@pytest.mark.parametrize(("page_size", "cap"), [(100, 150), (500, 300), (37, 37)])
async def test_a_server_that_caps_its_pages_is_read_whole(
        emulator: Emulator, page_size: int, cap: int) -> None:
    """A server giving at most ``cap`` items a page, whatever limit asks: a page shorter than
    asked before the counted end is not taken for the end; the rest is read from where it
    stopped, every user once, in order."""
    emulator.faults.page_cap = cap
    async with client_for(emulator, ConcurrencyLimit(64)) as client:
        users = [u async for u in V1Api(client).iter_users(page_size=page_size)]
    assert [u["_id"] for u in users] == [user.id for user in emulator.store.users.values()]


async def read_users_from(users: Handler, count: Handler, page_size: int,
                          ) -> list[dict[str, object]]:
    """Every user a client with a limit of 64 reads, paging with ``page_size``, from a server
    whose user list and count are these handlers."""
    app = web.Application()
    app.router.add_get(USERS, users)
    app.router.add_get("/api/users/count", count)
    server = TestServer(app, host="127.0.0.1", port=0)
    await server.start_server()
    try:
        connection = build_connection(url=str(server.make_url("")).rstrip("/"), token=TOKEN,
                                      username=None, password=None)
        async with SisenseClient(connection, RetryPolicy(),
                                 concurrency=ConcurrencyLimit(64)) as client:
            return [u async for u in V1Api(client).iter_users(page_size=page_size)]
    finally:
        await server.close()


async def test_a_short_first_page_waits_for_a_late_count_before_ending() -> None:
    """The first page comes back shorter than asked while the count is still on its way:
    the count, not the short page, decides whether the list has ended (here it has not:
    the server caps its pages at 300)."""
    people = [{"_id": f"{n:024x}", "email": f"u{n}@example.com"} for n in range(1000)]

    async def users(request: web.Request) -> web.Response:
        skip, limit = int(request.query["skip"]), int(request.query["limit"])
        return web.json_response(people[skip:skip + min(limit, 300)])

    async def count(request: web.Request) -> web.Response:
        await asyncio.sleep(0.2)  # answered well after the first pages
        return web.json_response({"count": len(people)})

    read = await read_users_from(users, count, page_size=500)
    assert [u["_id"] for u in read] == [p["_id"] for p in people]


async def test_a_count_that_comes_while_a_page_is_awaited_asks_for_the_rest_at_once() -> None:
    """The count comes in after the first pages came back full, while the third is still on
    its way: the rest is asked for then, not once that slow page is in; every user once, in
    order."""
    people = [{"_id": f"{n:024x}", "email": f"u{n}@example.com"} for n in range(2000)]
    events: list[str] = []

    async def users(request: web.Request) -> web.Response:
        skip, limit = int(request.query["skip"]), int(request.query["limit"])
        events.append(f"asked {skip}")
        if skip == 200:
            await asyncio.sleep(0.5)  # the page awaited when the count comes in
        events.append(f"answered {skip}")
        return web.json_response(people[skip:skip + limit])

    async def count(request: web.Request) -> web.Response:
        await asyncio.sleep(0.15)  # after the first two pages, before the slow one
        events.append("counted")
        return web.json_response({"count": len(people)})

    read = await read_users_from(users, count, page_size=100)
    assert [u["_id"] for u in read] == [p["_id"] for p in people]
    slow_answered = events.index("answered 200")
    asked_after_count = [e for e in events[events.index("counted"):slow_answered]
                         if e.startswith("asked")]
    assert asked_after_count  # the rest went out while the slow page was awaited
    asked = [int(e.split()[1]) for e in events if e.startswith("asked")]
    # No page past the end but the one that comes back short.
    assert len([skip for skip in asked if skip >= len(people)]) <= 1


@pytest.mark.parametrize("page_size", [100, 500])
async def test_a_capped_legacy_listing_is_read_whole(page_size: int) -> None:
    """The v0.9 listing (GET /api/users, with its count) behind a page cap of 120, asked for
    in pages below it (grown past it) and above it (500: what `export --api legacy` asks
    for): every user once."""
    settings = EmulatorSettings(token=TOKEN, users=700, page_cap=120, api_secret="s3cret")
    async with running_emulator(settings) as emu:
        async with client_for(emu, ConcurrencyLimit(64)) as client:
            users = [u async for u in LegacyApi(client).iter_users(page_size=page_size)]
        assert sorted(str(u["_id"]) for u in users) == sorted(emu.store.users)
