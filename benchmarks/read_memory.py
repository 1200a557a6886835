"""Reader memory and speed against loading the whole file, measured in the same run.

Writes an N-row CSV, then reads it the naive way (every record of the whole file loaded into
one list with ``csv.reader``: the baseline), the way bulkusers streams it (record by record
through ``open_table().rows()``), and as a run reads it (``intake.read_input``: row count,
hash and repeated emails, the rows spooled: in memory up to 20,000, then on disk). Prints
peak traced memory and rows per second of each and the ratios:

    python benchmarks/read_memory.py --rows 200000
"""

from __future__ import annotations

import argparse
import csv
import tempfile
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path

from reading import write_csv

from bulkusers.intake import read_input
from bulkusers.readers import ReadOptions, open_table


def streamed(path: Path) -> int:
    """Rows read the bulkusers way."""
    return sum(1 for _ in open_table(path).rows())


def scanned(path: Path) -> int:
    """Rows read once, hashed, checked for repeated emails and spooled, as every run does."""
    return read_input(path, ReadOptions()).total


def whole(path: Path) -> int:
    """Rows read by loading the whole file at once."""
    with path.open(encoding="utf-8-sig", newline="") as handle:
        records = list(csv.reader(handle))
    return len(records) - 1


def measure(read: Callable[[Path], int], path: Path) -> tuple[float, float]:
    """(peak MiB traced, rows per second) of one read."""
    tracemalloc.start()
    started = time.perf_counter()
    rows = read(path)
    seconds = time.perf_counter() - started
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return peak / 2**20, rows / seconds


def main() -> None:
    """Parse options, measure both ways, print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else "")
    parser.add_argument("--rows", type=int, default=200_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "users.csv"
        write_csv(path, args.rows)
        base_mib, base_rate = measure(whole, path)
        ours_mib, ours_rate = measure(streamed, path)
        scan_mib, scan_rate = measure(scanned, path)
    print(f"rows={args.rows}")
    print(f"whole file (baseline):  {base_mib:8.1f} MiB peak {base_rate:10.0f} rows/s")
    print(f"streamed (bulkusers):   {ours_mib:8.1f} MiB peak {ours_rate:10.0f} rows/s  "
          f"memory {ours_mib / base_mib:.2f}x, speed {ours_rate / base_rate:.2f}x")
    print(f"as a run reads it:      {scan_mib:8.1f} MiB peak {scan_rate:10.0f} rows/s  "
          f"memory {scan_mib / base_mib:.2f}x, speed {scan_rate / base_rate:.2f}x")


if __name__ == "__main__":
    main()
