"""Reading speed and memory, each against a baseline measured in the same run.

- a 1M-row CSV (6 columns) read to the end through ``open_table(...).rows()`` (row checks
  and the SHA-256 included) against a bare ``csv.reader`` loop over the same file: rows/s
  (target 400,000 rows/s, and the ratio to the bare loop), and the peak RSS of that read in a
  child process of its own (target 100 MB);
- a CSV with a 50 MiB cell: the peak RSS growth while reading it, against the cell's size;
- a 100k-row XLSX (numbers with a ``000000`` format, dates, text) read through ``rows()``
  against one openpyxl read-only pass (``load_workbook(read_only=True)`` then
  ``iter_rows(values_only=True)``) over the same file: target 1.3x; once as openpyxl's
  write-only mode writes it (no ``<dimension>``), once with a ``<dimension>`` as Excel does;
- alternatives, when installed: python-calamine over the same XLSX (it loses number
  formats: ``000042`` reads as 42), and whether openpyxl runs with lxml.

    python benchmarks/reading.py            # the full sizes
    python benchmarks/reading.py --quick    # smaller sizes, indicative only

Times are CPU seconds of this process (rows/s are rows per CPU second). Each pair of a
measurement and its baseline runs back to back (``--repeat`` times, the best of each kept): the
machine may be shared, and noise only ever slows a run.
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import os
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import openpyxl
from openpyxl.cell import WriteOnlyCell

from bulkusers.readers import open_table

CELL_MIB = 50


@dataclass(frozen=True, slots=True)
class Figure:
    """One line of the table: what, our figure, the baseline's, their ratio, the target."""

    what: str
    ours: str
    baseline: str
    ratio: float
    target: str
    ok: bool | None


def write_csv(path: Path, count: int) -> Path:
    """A CSV of ``count`` HR-like rows, 6 columns."""
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["Work Email", "First Name", "Surname", "Role", "Groups", "Phone"])
        for i in range(count):
            writer.writerow([f"user{i:07d}@bench.example", "Given", f"Family{i}", "Viewer",
                             "Finance; Sales", f"+44 20 7946 {i % 10000:04d}"])
    return path


HEADER = ["Work Email", "First Name", "Surname", "Role", "Groups", "Employee ID", "Start"]


def write_xlsx(path: Path, count: int) -> Path:
    """An XLSX of ``count`` rows: text, a zero-padded number (format 000000) and a date,
    written in openpyxl's write-only mode (inline strings, no <dimension>, as many exporters)."""
    book = openpyxl.Workbook(write_only=True)
    sheet = book.create_sheet("Users")
    sheet.append(HEADER)
    for i in range(count):
        number = WriteOnlyCell(sheet, value=i)
        number.number_format = "000000"
        sheet.append([f"user{i:07d}@bench.example", "Given", f"Family{i}", "Viewer",
                      "Finance; Sales", number, dt.date(2020, 1, 1 + i % 28)])
    book.save(path)
    return path


def write_xlsx_like_excel(path: Path, count: int) -> Path:
    """The same rows with a <dimension> element, as Excel (and openpyxl's normal mode) writes
    a sheet: openpyxl's own pass then does not read the sheet twice."""
    book = openpyxl.Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.append(HEADER)
    for i in range(count):
        sheet.append([f"user{i:07d}@bench.example", "Given", f"Family{i}", "Viewer",
                      "Finance; Sales", i, dt.date(2020, 1, 1 + i % 28)])
        sheet.cell(row=i + 2, column=6).number_format = "000000"
    book.save(path)
    return path


def write_big_cell(path: Path) -> Path:
    """A CSV whose second row holds a CELL_MIB MiB cell."""
    with path.open("w", encoding="utf-8", newline="") as handle:
        handle.write("email,notes\na@bench.example,ok\n")
        handle.write("b@bench.example," + "z" * (CELL_MIB << 20) + "\n")
        handle.write("c@bench.example,ok\n")
    return path


def ours(path: Path) -> int:
    """Rows read the bulkusers way, to the end, with the file's hash."""
    table = open_table(path)
    count = sum(1 for _ in table.rows())
    assert len(table.sha256) == 64
    return count


def bare_csv(path: Path) -> int:
    """Records read by a bare csv.reader loop (its field limit raised to hold any cell)."""
    csv.field_size_limit(sys.maxsize)
    with path.open(encoding="utf-8-sig", newline="") as handle:
        return sum(1 for _ in csv.reader(handle))


def openpyxl_pass(path: Path) -> int:
    """Rows read by one openpyxl read-only pass, values only."""
    book = openpyxl.load_workbook(path, read_only=True)
    sheet = book.active
    assert sheet is not None
    count = sum(1 for _ in sheet.iter_rows(values_only=True))
    book.close()
    return count


def calamine_pass(path: Path) -> int:
    """Rows read by python-calamine (no number formats: 000042 reads as 42)."""
    from python_calamine import CalamineWorkbook  # type: ignore[import-not-found]

    book = CalamineWorkbook.from_path(str(path))
    return sum(1 for _ in book.get_sheet_by_index(0).iter_rows())


READS: dict[str, Callable[[Path], int]] = {
    "ours": ours, "bare-csv": bare_csv, "openpyxl": openpyxl_pass, "calamine": calamine_pass}


def seconds(read: Callable[[Path], int], path: Path) -> tuple[float, int]:
    """(CPU seconds, rows) of one read. Reading is single-threaded and CPU-bound (the file is
    in the page cache after it is written): CPU time is its cost, where wall time on a shared
    machine also counts the time other processes held the cores."""
    started = time.process_time()
    rows = read(path)
    return time.process_time() - started, rows


def paired(first: Callable[[Path], int], second: Callable[[Path], int], path: Path,
           repeat: int) -> tuple[tuple[float, int], tuple[float, int]]:
    """The best (fastest) of ``repeat`` back-to-back runs of each."""
    ones, twos = [], []
    for _ in range(repeat):
        ones.append(seconds(first, path))
        twos.append(seconds(second, path))
    return min(ones), min(twos)


def child_peak_rss(kind: str, path: Path) -> tuple[int, int]:
    """(peak RSS bytes at the start, at the end) of a child process that reads ``path``."""
    result = subprocess.run([sys.executable, __file__, "--child", kind, str(path)],
                            capture_output=True, text=True, check=True, timeout=600)
    before, after = result.stdout.split()
    return int(before), int(after)


def _high_water() -> int:
    """This process's peak RSS in bytes (VmHWM: unlike ru_maxrss, which a child inherits
    from the parent that forked it, it starts afresh at exec)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _child(kind: str, path: Path) -> None:
    """In the child: print peak RSS (bytes) after the imports, then after the read."""
    before = _high_water()
    READS[kind](path)
    print(before, _high_water())


def measure_csv(folder: Path, rows: int, repeat: int) -> list[Figure]:
    """CSV speed against the bare loop, and peak RSS."""
    path = write_csv(folder / "users.csv", rows)
    (mine, _), (bare, _) = paired(ours, bare_csv, path, repeat)
    rate, bare_rate = rows / mine, rows / bare
    _, rss = child_peak_rss("ours", path)
    megabytes = rss / 1e6
    return [
        Figure(f"{rows:,}-row CSV read through rows(): rows per CPU second vs 400,000",
               f"{rate:,.0f}", "400,000", rate / 400_000, ">= 1.0", rate >= 400_000),
        Figure("the same: rows/s vs a bare csv.reader loop", f"{rate:,.0f}",
               f"{bare_rate:,.0f}", rate / bare_rate, "(for reference)", None),
        Figure(f"{rows:,}-row CSV read through rows(): peak RSS MB vs 100 MB",
               f"{megabytes:.0f}", "100", megabytes / 100, "<= 1.0", megabytes <= 100),
    ]


def measure_big_cell(folder: Path) -> list[Figure]:
    """Peak RSS growth while reading a CELL_MIB MiB cell: ours against a bare csv.reader
    (which holds the cell, as the readers did before) and the cell's size."""
    path = write_big_cell(folder / "big-cell.csv")
    before, after = child_peak_rss("ours", path)
    grown = (after - before) / 2**20
    before, after = child_peak_rss("bare-csv", path)
    bare = (after - before) / 2**20
    return [Figure(f"a {CELL_MIB} MiB CSV cell: peak RSS growth MiB vs a bare csv.reader",
                   f"{grown:.0f}", f"{bare:.0f}", grown / bare, "(for reference)", None),
            Figure("the same vs the cell's size, MiB", f"{grown:.0f}", f"{CELL_MIB}",
                   grown / CELL_MIB, "(for reference)", None)]


def measure_xlsx(folder: Path, rows: int, repeat: int) -> list[Figure]:
    """XLSX rows() against one openpyxl read-only pass; calamine when installed."""
    path = write_xlsx(folder / "users.xlsx", rows)
    (mine, _), (base, _) = paired(ours, openpyxl_pass, path, repeat)
    lxml = "with" if openpyxl.LXML else "without"
    figures = [Figure(f"{rows:,}-row XLSX read through rows(): CPU seconds vs one openpyxl "
                      f"read-only pass (openpyxl {lxml} lxml)", f"{mine:.2f}", f"{base:.2f}",
                      mine / base, "<= 1.3x", mine / base <= 1.3)]
    excel = write_xlsx_like_excel(folder / "excel.xlsx", rows)
    (mine, _), (base, _) = paired(ours, openpyxl_pass, excel, repeat)
    figures.append(Figure("the same rows with a <dimension> element, as Excel writes a sheet",
                          f"{mine:.2f}", f"{base:.2f}", mine / base, "<= 1.3x",
                          mine / base <= 1.3))
    try:
        calamine = min(seconds(calamine_pass, path)[0] for _ in range(repeat))
    except ImportError:
        return figures
    figures.append(Figure("the same XLSX: python-calamine pass (loses number formats) vs "
                          "the openpyxl pass, seconds", f"{calamine:.2f}", f"{base:.2f}",
                          calamine / base, "(for reference)", None))
    return figures


def measurements(csv_rows: int, xlsx_rows: int, repeat: int) -> list[Figure]:
    """Every reading figure, in one temporary folder."""
    with tempfile.TemporaryDirectory() as name:
        folder = Path(name)
        return [*measure_csv(folder, csv_rows, repeat), *measure_big_cell(folder),
                *measure_xlsx(folder, xlsx_rows, repeat)]


def main() -> None:
    """Parse options, measure, print the table."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller sizes, indicative only")
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--child", nargs=2, metavar=("KIND", "PATH"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        _child(args.child[0], Path(args.child[1]))
        return
    csv_rows, xlsx_rows = (100_000, 10_000) if args.quick else (1_000_000, 100_000)
    load = os.getloadavg()[0]
    figures = measurements(csv_rows, xlsx_rows, args.repeat)
    print(f"reading benchmarks{' (quick)' if args.quick else ''}: load average {load:.1f} "
          f"at the start, {os.getloadavg()[0]:.1f} at the end, "
          f"{len(os.sched_getaffinity(0))} cores\n")
    print("| measurement | bulkusers | baseline | ratio | target | met |")
    print("| --- | ---: | ---: | ---: | --- | --- |")
    for f in figures:
        met = "-" if f.ok is None else "yes" if f.ok else "NO"
        print(f"| {f.what} | {f.ours} | {f.baseline} | {f.ratio:.2f} | {f.target} | {met} |")


if __name__ == "__main__":
    main()
