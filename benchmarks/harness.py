"""What the benchmark suite measures with: an emulator in its own process, bare loops, runs.

Every figure the suite prints is a ratio against a baseline measured in the same run, so the
helpers here return plain numbers (rows per second, CPU seconds, latencies) and never judge.
"""

from __future__ import annotations

import asyncio
import csv
import logging
import os
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from bulkusers.commands import Command
from bulkusers.config import build_connection
from bulkusers.jobs import run_command
from bulkusers.models import RowResult
from bulkusers.rules import PlanOptions
from bulkusers.runconfig import RunConfig
from bulkusers.summary import RunSummary

TOKEN = "benchmark-token"
GROUPS = ("Finance", "Sales", "Engineering")


@contextmanager
def emulator_process(*options: str) -> Iterator[str]:
    """``bulkusers emulator`` as a separate process on a free port (as a real server would
    be: its CPU is not the client's); yields its URL."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SISENSE_")}
    process = subprocess.Popen(
        [sys.executable, "-m", "bulkusers", "emulator", "--port", "0", "--token", TOKEN,
         "--groups", ",".join(GROUPS), *options],
        stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True, env=env)
    try:
        assert process.stderr is not None
        line = process.stderr.readline()
        match = re.search(r"http://127\.0\.0\.1:\d+", line)
        if not match:
            raise SystemExit(f"the emulator did not start: {line.strip()}")
        yield match.group(0)
    finally:
        process.terminate()
        process.wait(timeout=10)


def write_users(path: Path, count: int, *, start: int = 0, prefix: str = "new") -> Path:
    """A CSV of ``count`` valid, distinct new users."""
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["Email", "First Name", "Last Name", "Role", "Groups"])
        for i in range(start, start + count):
            writer.writerow([f"{prefix}{i:07d}@bench.example", "User", str(i), "Viewer",
                             GROUPS[i % len(GROUPS)]])
    return path


def write_changes(path: Path, existing: Sequence[int], new: Sequence[int]) -> Path:
    """An upsert input: generated users ``user{n:04d}`` with a new first name, then new ones."""
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["Email", "First Name", "Last Name", "Role", "Groups"])
        for n in existing:
            writer.writerow([f"user{n:04d}@example.com", f"Renamed{n}", "", "", ""])
        for n in new:
            writer.writerow([f"new{n:07d}@bench.example", "User", str(n), "Viewer", "Sales"])
    return path


@dataclass
class Measured:
    """One measured run: rows, wall seconds, client CPU seconds and the summary."""

    rows: int
    seconds: float
    cpu: float
    summary: RunSummary | None = None
    send_seconds: float = 0.0
    latencies_ms: list[float] = field(default_factory=list)

    @property
    def rate(self) -> float:
        """Rows per second of the whole run."""
        return self.rows / self.seconds

    @property
    def send_rate(self) -> float:
        """Rows per second while sending (after reading, loading and planning)."""
        return self.rows / self.send_seconds

    @property
    def cpu_us_per_row(self) -> float:
        """Client CPU per row, in microseconds."""
        return self.cpu / self.rows * 1e6


class SendClock:
    """An observer noting when sending starts and when the last row finishes."""

    def __init__(self) -> None:
        self.began = 0.0
        self.last = 0.0

    def started(self, summary: RunSummary) -> None:
        """Sending starts now."""
        self.began = time.perf_counter()

    def row_done(self, result: RowResult, summary: RunSummary) -> None:
        """One more row finished."""
        self.last = time.perf_counter()


class Latencies(logging.Handler):
    """Collects each request's latency from the client's debug log (no formatting)."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.ms: list[float] = []

    def emit(self, record: logging.LogRecord) -> None:
        """Keep the milliseconds of a ``METHOD path -> status in N ms`` line."""
        if isinstance(record.args, tuple) and len(record.args) == 5:
            self.ms.append(float(str(record.args[4])))


async def run_bulkusers(command: Command, url: str, source: Path, report: Path, *,
                        concurrency: int | str = "auto", batch_size: int = 50,
                        options: PlanOptions | None = None,
                        latencies: bool = False) -> Measured:
    """One bulkusers run in this process (the emulator is elsewhere): wall time, CPU."""
    connection = build_connection(url=url, token=TOKEN, username=None, password=None)
    config = RunConfig(command=command, connection=connection, input_path=source,
                       report_path=report, plan=options or PlanOptions(),
                       concurrency=concurrency,  # type: ignore[arg-type]
                       batch_size=batch_size, handle_sigint=False)
    clock = SendClock()
    handler = Latencies()
    http = logging.getLogger("bulkusers.http")
    if latencies:
        http.addHandler(handler)
        http.setLevel(logging.DEBUG)
    cpu, wall = time.process_time(), time.perf_counter()
    try:
        summary = await run_command(config, clock)
    finally:
        http.removeHandler(handler)
        http.setLevel(logging.NOTSET)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    return Measured(summary.total_rows, wall, cpu, summary, clock.last - clock.began,
                    handler.ms)


async def _roles_and_groups(session: aiohttp.ClientSession, url: str) -> tuple[str, dict[str,
                                                                                         str]]:
    async with session.get(url + "/api/roles") as response:
        roles = await response.json()
    async with session.get(url + "/api/v1/groups") as response:
        groups = await response.json()
    viewer = next(r["_id"] for r in roles if r["name"] == "consumer")
    return viewer, {g["name"]: g["_id"] for g in groups}


async def bare_creates(url: str, count: int, concurrency: int, *, start: int = 0,
                       prefix: str = "bare") -> Measured:
    """The baseline: a bare aiohttp loop POSTing one user per request, ``concurrency`` at once.

    It reads nothing from a file, checks nothing and writes no report: what a careful hand
    written script costs, and the most a client can get out of this server.
    """
    headers = {"Authorization": f"Bearer {TOKEN}"}
    cpu, wall = time.process_time(), time.perf_counter()
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(headers=headers, connector=connector) as session:
        viewer, groups = await _roles_and_groups(session, url)
        numbers = iter(range(start, start + count))

        async def worker() -> None:
            for i in numbers:
                payload = {"email": f"{prefix}{i:07d}@bench.example",
                           "userName": f"{prefix}{i:07d}@bench.example", "roleId": viewer,
                           "firstName": "User", "lastName": str(i),
                           "groups": [groups[GROUPS[i % len(GROUPS)]]]}
                async with session.post(url + "/api/v1/users", json=payload) as response:
                    await response.read()
                    if response.status != 201:
                        raise SystemExit(f"benchmark invalid: bare create got {response.status}")

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return Measured(count, time.perf_counter() - wall, time.process_time() - cpu)


async def bare_updates(url: str, count: int, concurrency: int) -> Measured:
    """The server's capacity as a client can use it: a bare aiohttp loop PATCHing ``count``
    users with exactly ``concurrency`` in flight (timed from the first PATCH)."""
    headers = {"Authorization": f"Bearer {TOKEN}"}
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(headers=headers, connector=connector) as session:
        async with session.get(url + "/api/v1/users",
                               params={"limit": str(count + 1), "fields": "_id,email"}) as answer:
            users = [u for u in await answer.json() if u["email"] != "admin@example.com"]
        ids = iter(u["_id"] for u in users[:count])
        cpu, wall = time.process_time(), time.perf_counter()

        async def worker() -> None:
            for user_id in ids:
                async with session.patch(f"{url}/api/v1/users/{user_id}",
                                         json={"firstName": "Bare"}) as response:
                    await response.read()
                    if response.status != 200:
                        raise SystemExit(f"benchmark invalid: bare PATCH got {response.status}")

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return Measured(count, time.perf_counter() - wall, time.process_time() - cpu)


async def sequential_upserts(url: str, existing: Sequence[int], new: Sequence[int]) -> Measured:
    """The baseline of an upsert: per row, look the user up by email, then PATCH or POST."""
    headers = {"Authorization": f"Bearer {TOKEN}"}
    cpu, wall = time.process_time(), time.perf_counter()
    async with aiohttp.ClientSession(headers=headers) as session:
        viewer, groups = await _roles_and_groups(session, url)
        rows: list[tuple[str, dict[str, Any]]] = (
            [(f"user{n:04d}@example.com", {"firstName": f"Renamed{n}"}) for n in existing]
            + [(f"seq{n:07d}@bench.example", {"firstName": "User", "lastName": str(n),
                                              "roleId": viewer, "groups": [groups["Sales"]]})
               for n in new])
        for email, fields in rows:
            async with session.get(url + "/api/v1/users", params={"email": email}) as response:
                found = await response.json()
            if found:
                async with session.patch(f"{url}/api/v1/users/{found[0]['_id']}",
                                         json=fields) as response:
                    await response.read()
            else:
                async with session.post(url + "/api/v1/users",
                                        json={"email": email, **fields}) as response:
                    await response.read()
    return Measured(len(rows), time.perf_counter() - wall, time.process_time() - cpu)


async def unloaded_latency_ms(url: str, count: int = 40) -> float:
    """The median latency of one request at a time (a PATCH of an existing user)."""
    headers = {"Authorization": f"Bearer {TOKEN}"}
    times = []
    async with aiohttp.ClientSession(headers=headers) as session:
        async with session.get(url + "/api/v1/users", params={"limit": "1"}) as response:
            user = (await response.json())[0]
        for _ in range(count):
            started = time.perf_counter()
            async with session.patch(f"{url}/api/v1/users/{user['_id']}",
                                     json={"firstName": "Same"}) as response:
                await response.read()
            times.append((time.perf_counter() - started) * 1000)
    return sorted(times)[len(times) // 2]


def percentile(values: Sequence[float], fraction: float) -> float:
    """The value below which ``fraction`` of the values lie (nearest rank)."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(fraction * len(ordered)) - 1))]


#: Run the CLI, then write this process's peak RSS (VmHWM) to the file named by the
#: variable: ru_maxrss would count the pages of the (large) benchmark process that forked it.
_PEAK_WRAPPER = """
import atexit, os, runpy, sys
def _peak():
    with open('/proc/self/status') as status:
        for line in status:
            if line.startswith('VmHWM:'):
                with open(os.environ['BULKUSERS_BENCH_PEAK'], 'w') as out:
                    out.write(str(int(line.split()[1]) * 1024))
atexit.register(_peak)
sys.argv = ['bulkusers', *sys.argv[1:]]
runpy.run_module('bulkusers', run_name='__main__')
"""


def run_cli_peak_rss(args: Sequence[str]) -> tuple[float, float, int]:
    """Run ``bulkusers ARGS`` as a child process: (wall seconds, CPU seconds, peak RSS bytes,
    as the child's own VmHWM where Linux has it, else ru_maxrss)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SISENSE_")}
    with tempfile.TemporaryDirectory() as folder:
        peak_file = Path(folder) / "peak"
        env["BULKUSERS_BENCH_PEAK"] = str(peak_file)
        started = time.perf_counter()
        process = subprocess.Popen([sys.executable, "-c", _PEAK_WRAPPER, *args], env=env,
                                   stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        _, status, usage = os.wait4(process.pid, 0)
        wall = time.perf_counter() - started
        if os.waitstatus_to_exitcode(status) not in (0, 1):
            err = process.stderr.read().decode() if process.stderr else ""
            raise SystemExit(f"benchmark invalid: bulkusers {' '.join(args)} failed: {err}")
        peak = (int(peak_file.read_text()) if peak_file.exists()
                else usage.ru_maxrss * 1024)
    return wall, usage.ru_utime + usage.ru_stime, peak
