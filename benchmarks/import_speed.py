"""Import speed against a sequential baseline measured in the same run.

Generates N rows, starts the emulator in this process with a given latency, and imports the
rows three times into a fresh emulator: one request per user with one in flight (what a
sequential script does: the baseline), one request per user through the worker pool, and the
default (pool plus bulk create). Prints rows per second and the ratio to the baseline, so every
later change to the pool or the batching is measured the same way:

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


async def measure(source: Path, report: Path, concurrency: int, batch_size: int,
                  latency_ms: float) -> float:
    """Rows per second of one import into a fresh emulator."""
    settings = EmulatorSettings(token=TOKEN, groups=GROUPS, latency_ms=latency_ms)
    async with running_emulator(settings) as emulator:
        connection = build_connection(url=emulator.url, token=TOKEN, username=None,
                                      password=None)
        run = RunSettings(input_path=source, report_path=report, concurrency=concurrency,
                          batch_size=batch_size, handle_sigint=False)
        started = time.perf_counter()
        summary = await run_command("import", run, connection, RetryPolicy(), PlanOptions())
        seconds = time.perf_counter() - started
        created = summary.counts.get("created", 0)
        if created != summary.total_rows:
            raise SystemExit(f"benchmark invalid: {created} of {summary.total_rows} created")
        return summary.total_rows / seconds


def main() -> None:
    """Parse options, run the three measurements, print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else "")
    parser.add_argument("--rows", type=int, default=1000)
    parser.add_argument("--latency-ms", type=float, default=20.0)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--batch-size", type=int, default=50)
    args = parser.parse_args()
    setups = [("sequential, 1 request per user", 1, 1),
              (f"pool of {args.concurrency}, 1 request per user", args.concurrency, 1),
              (f"pool of {args.concurrency}, bulk of {args.batch_size}", args.concurrency,
               args.batch_size)]
    rates = []
    with tempfile.TemporaryDirectory() as folder:
        source = Path(folder) / "users.csv"
        write_rows(source, args.rows)
        for index, (_, concurrency, batch) in enumerate(setups):
            report = Path(folder) / f"report-{index}.csv"
            rates.append(asyncio.run(measure(source, report, concurrency, batch,
                                             args.latency_ms)))
    print(f"rows={args.rows} latency={args.latency_ms:g} ms per request")
    for (label, _, _), rate in zip(setups, rates, strict=True):
        print(f"{label:<36} {rate:9.1f} rows/s  {rate / rates[0]:6.2f}x baseline")


if __name__ == "__main__":
    main()
