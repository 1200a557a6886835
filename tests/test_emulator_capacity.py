"""The emulator's capacity queue: N served at once, the rest queued, 503 and 504 at the gateway."""

from __future__ import annotations

import asyncio
import csv
from collections.abc import Callable
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from click.testing import Result

from bulkusers.emulator import EmulatorSettings, running_emulator
from bulkusers.emulator.capacity import Capacity
from bulkusers.emulator.faults import fault_response
from tests.terminal import emulator_command

TOKEN = "capacity-token"
HEADERS = {"Authorization": f"Bearer {TOKEN}"}


class Backend:
    """Handlers that finish only when the test says so, recording the order they started in."""

    def __init__(self) -> None:
        self.started: list[int] = []
        self.release: dict[int, asyncio.Event] = {}

    def handle(self, number: int) -> Callable[[], asyncio.Future[web.StreamResponse]]:
        """The handler of request ``number``."""
        self.release[number] = asyncio.Event()

        async def run() -> web.StreamResponse:
            self.started.append(number)
            await self.release[number].wait()
            return web.Response(status=200)

        return lambda: asyncio.ensure_future(run())


async def settle() -> None:
    """Let every ready task run until it waits on something."""
    for _ in range(20):
        await asyncio.sleep(0)


async def test_requests_beyond_capacity_wait_and_are_served_in_order() -> None:
    """With capacity 2, five requests: two are served, three queue, each freed slot goes to
    the longest waiter, and all five are answered 200."""
    capacity, backend = Capacity(2), Backend()
    calls = [asyncio.create_task(capacity.serve(backend.handle(n), fault_response))
             for n in range(5)]
    await settle()
    assert (backend.started, capacity.serving, capacity.queued) == ([0, 1], 2, 3)
    backend.release[1].set()
    await settle()
    assert backend.started == [0, 1, 2]
    assert (capacity.serving, capacity.queued) == (2, 2)
    for n in (0, 2, 3, 4):
        backend.release[n].set()
    statuses = [response.status for response in await asyncio.gather(*calls)]
    assert statuses == [200] * 5
    assert backend.started == [0, 1, 2, 3, 4]
    assert (capacity.serving, capacity.queued, capacity.peak_queue) == (0, 0, 3)


async def test_a_full_queue_answers_503_at_once_without_serving() -> None:
    """Capacity 1 with a queue of 1: the third request is refused 503 and never handled."""
    capacity, backend = Capacity(1, queue_limit=1), Backend()
    first = asyncio.create_task(capacity.serve(backend.handle(0), fault_response))
    second = asyncio.create_task(capacity.serve(backend.handle(1), fault_response))
    await settle()
    refused = await capacity.serve(backend.handle(2), fault_response)
    assert refused.status == 503
    assert backend.started == [0]
    backend.release[0].set()
    backend.release[1].set()
    assert [(await first).status, (await second).status] == [200, 200]
    assert backend.started == [0, 1]


async def test_a_request_queued_past_the_gateway_timeout_gets_504_and_is_never_served() -> None:
    """A request that waits longer than the gateway timeout is answered 504 and its handler
    never runs; the slot's holder is unaffected and the queue is empty again."""
    capacity, backend = Capacity(1, gateway_timeout_s=0.05), Backend()
    first = asyncio.create_task(capacity.serve(backend.handle(0), fault_response))
    await settle()
    timed_out = await capacity.serve(backend.handle(1), fault_response)
    assert timed_out.status == 504
    assert capacity.queued == 0
    backend.release[0].set()
    assert (await first).status == 200
    assert backend.started == [0]
    assert capacity.serving == 0


async def test_a_client_that_leaves_the_queue_gives_up_its_place() -> None:
    """A queued request cancelled by its client leaves the queue; the next one gets the slot."""
    capacity, backend = Capacity(1), Backend()
    first = asyncio.create_task(capacity.serve(backend.handle(0), fault_response))
    leaver = asyncio.create_task(capacity.serve(backend.handle(1), fault_response))
    third = asyncio.create_task(capacity.serve(backend.handle(2), fault_response))
    await settle()
    leaver.cancel()
    await settle()
    assert capacity.queued == 1
    backend.release[0].set()
    backend.release[2].set()
    assert [(await first).status, (await third).status] == [200, 200]
    assert backend.started == [0, 2]
    assert capacity.serving == 0


def test_capacity_must_be_positive() -> None:
    """A capacity of 0 would serve nothing: refused."""
    with pytest.raises(ValueError, match="at least 1"):
        Capacity(0)


async def _get(session: aiohttp.ClientSession, url: str) -> int:
    async with session.get(url + "/api/roles") as response:
        await response.read()
        return response.status


async def _wait_until(condition: Callable[[], bool]) -> None:
    """Poll a condition on the loop, failing within seconds."""
    async with asyncio.timeout(5):
        while not condition():  # noqa: ASYNC110 (the state lives in the emulator, no event)
            await asyncio.sleep(0.005)


async def test_emulator_over_http_queues_then_refuses_503_and_times_out_504() -> None:
    """Through HTTP: capacity 1, queue limit 1, gateway timeout 0.1 s, latency 0.6 s: the
    first request is served, the second queues and gets 504, a third beyond the queue 503."""
    settings = EmulatorSettings(token=TOKEN, latency_ms=600, capacity=1, queue_limit=1,
                                gateway_timeout_s=0.1)
    async with running_emulator(settings) as emulator, \
            aiohttp.ClientSession(headers=HEADERS) as session:
        capacity = emulator.faults.capacity
        assert capacity is not None
        served = asyncio.create_task(_get(session, emulator.url))
        await _wait_until(lambda: capacity.serving == 1)
        queued = asyncio.create_task(_get(session, emulator.url))
        await _wait_until(lambda: capacity.queued == 1)
        assert await _get(session, emulator.url) == 503
        assert await queued == 504
        assert await served == 200
    statuses = sorted(r.status for r in emulator.requests if r.path == "/api/roles")
    assert statuses == [200, 503, 504]


async def test_capacity_combines_with_the_inflight_cap() -> None:
    """--max-inflight answers 429 before a request reaches the capacity queue."""
    settings = EmulatorSettings(token=TOKEN, latency_ms=600, capacity=1, max_inflight=1)
    async with running_emulator(settings) as emulator, \
            aiohttp.ClientSession(headers=HEADERS) as session:
        capacity = emulator.faults.capacity
        assert capacity is not None
        served = asyncio.create_task(_get(session, emulator.url))
        await _wait_until(lambda: capacity.serving == 1)
        assert await _get(session, emulator.url) == 429
        assert capacity.peak_queue == 0
        assert await served == 200


def test_emulator_command_serves_with_a_capacity(tmp_path: Path) -> None:
    """`bulkusers emulator --capacity 1 --queue-limit 0` as its own process: of three
    requests sent together, the one that got the slot is served, the others answered 503."""
    with emulator_command("--token", TOKEN, "--capacity", "1", "--queue-limit", "0",
                          "--latency-ms", "800", cwd=tmp_path) as url:

        async def three_at_once() -> list[int]:
            async with aiohttp.ClientSession(headers=HEADERS) as session:
                return list(await asyncio.gather(*(_get(session, url) for _ in range(3))))

        statuses = asyncio.run(asyncio.wait_for(three_at_once(), 10))
    # Sent together, they overlap within the 0.8 s the first takes: it alone is served.
    assert sorted(statuses) == [200, 503, 503]


def test_queue_limit_without_capacity_is_a_usage_error(run_cli: Callable[..., Result]) -> None:
    """--queue-limit alone is refused with one line and exit 2."""
    result = run_cli("emulator", "--port", "0", "--queue-limit", "5")
    assert result.exit_code == 2
    assert "--queue-limit needs --capacity" in result.output


def test_emulator_command_caps_its_pages_and_an_export_still_reads_everyone(
        tmp_path: Path, run_cli: Callable[..., Result]) -> None:
    """`bulkusers emulator --page-cap 50` as its own process gives at most 50 users a page;
    an export asking for pages of 500 still writes every user once."""
    with emulator_command("--token", TOKEN, "--users", "180", "--page-cap", "50",
                          cwd=tmp_path) as url:

        async def page() -> int:
            async with aiohttp.ClientSession(headers=HEADERS) as session, \
                    session.get(url + "/api/v1/users", params={"limit": "500"}) as response:
                return len(await response.json())

        assert asyncio.run(asyncio.wait_for(page(), 10)) == 50
        result = run_cli("export", "everyone.csv", "--url", url, "--token", TOKEN)
    assert result.exit_code == 0, result.output
    with (tmp_path / "everyone.csv").open(encoding="utf-8-sig", newline="") as handle:
        emails = [row["email"] for row in csv.DictReader(handle)]
    assert len(emails) == len(set(emails)) == 181  # 180 generated and the admin
