"""Import speed: rows per second at concurrency 1 (the sequential baseline) and at N.

Generates N rows, starts the emulator in this process with a given latency, imports the
rows once with one request in flight and once with the default pool size, and prints both
rates and their ratio. Every later change to the pool is measured the same way:

    python benchmarks/import_speed.py --rows 2000 --latency-ms 20
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import tempfile
import time
from pathlib import Path

from bulkusers.config import RetryPolicy, build_connection
from bulkusers.emulator import EmulatorSettings, running_emulator
from bulkusers.jobs import RunSettings, run_command
from bulkusers.operations import PlanOptions

TOKEN = "benchmark-token"
GROUPS = ("Finance", "Sales", "Engineering")


def write_rows(path: Path, count: int) -> None:
    """A CSV of ``count`` valid, distinct users."""
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["Email", "First Name", "Last Name", "Role", "Groups"])
        for i in range(count):
            writer.writerow([f"user{i:07d}@bench.example", "User", str(i), "Viewer",
                             GROUPS[i % len(GROUPS)]])


async def measure(source: Path, report: Path, concurrency: int, latency_ms: float) -> float:
    """Rows per second of one import into a fresh emulator."""
    settings = EmulatorSettings(token=TOKEN, groups=GROUPS, latency_ms=latency_ms)
    async with running_emulator(settings) as emulator:
        connection = build_connection(url=emulator.url, token=TOKEN, username=None,
                                      password=None)
        run = RunSettings(input_path=source, report_path=report, concurrency=concurrency,
                          handle_sigint=False)
        started = time.perf_counter()
        summary = await run_command("import", run, connection, RetryPolicy(), PlanOptions())
        seconds = time.perf_counter() - started
        created = summary.counts.get("created", 0)
        if created != summary.total_rows:
            raise SystemExit(f"benchmark invalid: {created} of {summary.total_rows} created")
        return summary.total_rows / seconds


def main() -> None:
    """Parse options, run both measurements, print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else "")
    parser.add_argument("--rows", type=int, default=1000)
    parser.add_argument("--latency-ms", type=float, default=20.0)
    parser.add_argument("--concurrency", type=int, default=8)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        source = Path(folder) / "users.csv"
        write_rows(source, args.rows)
        baseline = asyncio.run(measure(source, Path(folder) / "seq.csv", 1, args.latency_ms))
        pooled = asyncio.run(measure(source, Path(folder) / "pool.csv", args.concurrency,
                                     args.latency_ms))
    print(f"rows={args.rows} latency={args.latency_ms:g} ms")
    print(f"concurrency 1:  {baseline:8.1f} rows/s  (baseline)")
    print(f"concurrency {args.concurrency}: {pooled:8.1f} rows/s")
    print(f"ratio: {pooled / baseline:.2f}x the sequential baseline")


if __name__ == "__main__":
    main()
