"""The benchmark suite: one table of ratios, each against a baseline measured in the same run.

Every measurement starts a fresh ``bulkusers emulator`` as a separate process (as a real server
would be: its CPU is not the client's) and runs bulkusers in this process, so the client's CPU
is this process's. Baselines are measured in the same run against the same kind of server:

- per-row creates at concurrency 64 and 20 ms: a bare aiohttp loop at the same concurrency;
- the same, and the default options: a sequential loop of one request at a time;
- an upsert of 1,000 rows (500 changed, 500 new) into a 10,000-user directory: a per-row
  look-up-then-write loop;
- behind ``--max-inflight 16`` and behind ``--capacity 16`` (updates, default options; any
  other N with ``--server-limit N``): the server's capacity as a bare loop with exactly N in
  flight gets it in the same run (and, for reference, the nominal N / latency), and for
  ``--capacity`` the unloaded latency;
- ``--concurrency auto``: the best fixed concurrency of a sweep;
- client CPU per row (``--only cpu``; this process's CPU time, ``time.process_time``, which
  a shared machine disturbs far less than wall time): per-row creates at 64 against the bare
  loop's CPU, bulk creates against the core issue's 60 us (and the bare loop's, for
  reference), the runs alternating, the least CPU of each kept;
- the peak RSS of a large CSV dry run (150 MB, 100,000 rows/s);
- start-up of ``bulkusers --help``, ``--version`` and ``import --help`` (``startup.py``): an
  interpreter that does nothing (``python -c pass``); the target is 0.3 s of wall time;
- reading alone (``--only reading``, ``reading.py``): a 1M-row CSV through ``rows()`` against
  a bare csv.reader loop, a 50 MiB cell's memory, a 100k-row XLSX against one openpyxl
  read-only pass (CPU time too).

    python benchmarks/suite.py            # the whole table, a few minutes
    python benchmarks/suite.py --quick    # smaller sizes, about a minute: indicative only
    python benchmarks/suite.py --only inflight,capacity --server-limit 24   # another limit

The machine may be shared: the figures move between runs, the ratios much less. Each pair of
a measurement and its baseline runs back to back (``--repeat`` times, the best of each kept).
"""

from __future__ import annotations

import argparse
import asyncio
import platform
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import (
    TOKEN,
    Measured,
    bare_creates,
    bare_updates,
    emulator_process,
    percentile,
    run_bulkusers,
    run_cli_peak_rss,
    sequential_upserts,
    unloaded_latency_ms,
    write_changes,
    write_users,
)
from reading import measurements as reading_measurements
from reading import openpyxl_pass, write_xlsx_like_excel
from startup import TARGET_S, measure

from bulkusers.rules import PlanOptions

LATENCY = "20"


@dataclass(frozen=True, slots=True)
class Sizes:
    """How much each measurement sends."""

    per_row: int
    sequential: int
    default: int
    upsert_sample: int
    capped: int
    sweep: int
    dry_run: int
    cpu_rows: int
    csv_read: int
    xlsx_read: int
    repeat: int
    startup: int = 10


FULL = Sizes(per_row=8000, sequential=150, default=30_000, upsert_sample=100, capped=12_000,
             sweep=3000, dry_run=1_000_000, cpu_rows=12_000, csv_read=1_000_000,
             xlsx_read=100_000, repeat=2)
QUICK = Sizes(per_row=2000, sequential=60, default=8000, upsert_sample=40, capped=4000,
              sweep=1000, dry_run=100_000, cpu_rows=3000, csv_read=100_000, xlsx_read=10_000,
              repeat=1, startup=5)


@dataclass(frozen=True, slots=True)
class Line:
    """One line of the table: what, our figure, the baseline's, their ratio, the target."""

    what: str
    ours: str
    baseline: str
    ratio: float
    target: str
    ok: bool | None  # None: shown for reference, no target


def best(runs: list[Measured]) -> Measured:
    """The fastest of repeated runs (noise on a shared machine only ever slows a run)."""
    return max(runs, key=lambda m: m.rate)


def alternated(turns: int, first: Callable[[], Measured],
               second: Callable[[], Measured]) -> tuple[list[Measured], list[Measured]]:
    """Two measurements ``turns`` times each, each going first in turn: whatever the first of
    a pair meets (a busy moment, a cold cache) is not one side's alone."""
    runs: tuple[list[Measured], list[Measured]] = ([], [])
    for turn in range(turns):
        for side in (0, 1) if turn % 2 == 0 else (1, 0):
            runs[side].append((first, second)[side]())
    return runs


def checked(measured: Measured, what: str) -> Measured:
    """Refuse a run that did not do all its work: its speed would mean nothing."""
    summary = measured.summary
    if summary is not None and (summary.needs_attention or summary.exit_code != 0):
        raise SystemExit(f"benchmark invalid: {what}: {dict(summary.counts)}, "
                         f"exit {summary.exit_code}")
    return measured


class Suite:
    """The measurements, each with its baseline, in one temporary folder."""

    def __init__(self, sizes: Sizes, folder: Path, server_limit: int = 16) -> None:
        self.sizes = sizes
        #: The N of ``--max-inflight N`` and ``--capacity N`` (the issue's 16 by default).
        self.server_limit = server_limit
        self.folder = folder
        self.lines: list[Line] = []
        self._files = 0

    def path(self, stem: str) -> Path:
        """A fresh file name in the folder."""
        self._files += 1
        return self.folder / f"{self._files:03d}-{stem}"

    def ours(self, command: str, source: Path, *options: str, concurrency: int | str = "auto",
             batch_size: int = 50, plan: PlanOptions | None = None,
             latencies: bool = False) -> Measured:
        """One bulkusers run against a fresh emulator started with ``options``."""
        with emulator_process(*options) as url:
            return checked(asyncio.run(run_bulkusers(
                command, url, source, self.path("report.csv"),  # type: ignore[arg-type]
                concurrency=concurrency, batch_size=batch_size, options=plan,
                latencies=latencies)), f"{command} {' '.join(options)}")

    def bare(self, count: int, concurrency: int) -> Measured:
        """The bare aiohttp loop against a fresh emulator with the standard latency."""
        with emulator_process("--latency-ms", LATENCY) as url:
            return asyncio.run(bare_creates(url, count, concurrency))

    def add(self, what: str, ours: str, baseline: str, ratio: float, target: str,
            ok: bool | None) -> None:
        """Add a line and show it at once (a long run shows progress)."""
        line = Line(what, ours, baseline, ratio, target, ok)
        self.lines.append(line)
        print(f"  {what}: {ours} vs {baseline} = {ratio:.2f} ({target})", file=sys.stderr)

    # -- the measurements ---------------------------------------------------------------------

    def per_row_and_sequential(self) -> None:
        """Per-row creates at 64 vs the bare loop; per-row and default vs sequential."""
        sizes = self.sizes
        source = write_users(self.path("users.csv"), sizes.per_row)
        ours_runs, bare_runs = [], []
        for _ in range(sizes.repeat):
            bare_runs.append(self.bare(sizes.per_row, 64))
            ours_runs.append(self.ours("import", source, "--latency-ms", LATENCY,
                                       concurrency=64, batch_size=1))
        ours, bare = best(ours_runs), best(bare_runs)
        self.add("per-row creates, concurrency 64, 20 ms: rows/s vs bare aiohttp loop",
                 f"{ours.rate:,.0f}", f"{bare.rate:,.0f}", ours.rate / bare.rate,
                 ">= 0.90", ours.rate / bare.rate >= 0.90)
        sequential = self.bare(sizes.sequential, 1)
        self.add("per-row creates, concurrency 64: rows/s vs sequential loop",
                 f"{ours.rate:,.0f}", f"{sequential.rate:,.0f}", ours.rate / sequential.rate,
                 ">= 30x", ours.rate / sequential.rate >= 30)
        default_source = write_users(self.path("users.csv"), sizes.default)
        default = best([self.ours("import", default_source, "--latency-ms", LATENCY)
                        for _ in range(sizes.repeat)])
        self.add("default options (auto, bulk 50): rows/s vs sequential loop",
                 f"{default.rate:,.0f}", f"{sequential.rate:,.0f}",
                 default.rate / sequential.rate, ">= 300x", default.rate / sequential.rate >= 300)

    def cpu(self) -> None:
        """Client CPU per row (this process's CPU time, all its threads), per-row creates at
        64 and bulk creates with default options, against the CPU of a bare aiohttp loop
        POSTing as many users one per request at 64 in the same run. The runs alternate and
        the least CPU of each kind is kept: a busy machine only ever adds CPU."""
        rows = self.sizes.cpu_rows
        source = write_users(self.path("users.csv"), rows)
        bare_runs: list[Measured] = []
        per_row_runs: list[Measured] = []
        bulk_runs: list[Measured] = []
        for _ in range(max(self.sizes.repeat, 3)):
            bare_runs.append(self.bare(rows, 64))
            per_row_runs.append(self.ours("import", source, "--latency-ms", LATENCY,
                                          concurrency=64, batch_size=1))
            bulk_runs.append(self.ours("import", source, "--latency-ms", LATENCY))
        bare = min(m.cpu_us_per_row for m in bare_runs)
        per_row = min(m.cpu_us_per_row for m in per_row_runs)
        bulk = min(m.cpu_us_per_row for m in bulk_runs)
        self.add(f"client CPU per row, {rows:,} per-row creates at 64: us vs bare aiohttp "
                 "loop", f"{per_row:.0f}", f"{bare:.0f}", per_row / bare, "<= 1.3x",
                 per_row / bare <= 1.3)
        self.add(f"client CPU per row, {rows:,} bulk creates (default options): us vs 60 us",
                 f"{bulk:.1f}", "60", bulk / 60, "<= 1.0", bulk <= 60)
        self.add("the same bulk creates vs the bare aiohttp loop (one user per request)",
                 f"{bulk:.0f}", f"{bare:.0f}", bulk / bare, "(for reference)", None)

    def upsert(self) -> None:
        """1,000 rows (500 changed, 500 new) into 10,000 users vs look-up-then-write."""
        changed, new = range(1, 501), range(500)
        source = write_changes(self.path("upsert.csv"), changed, new)
        plan = PlanOptions(on_existing="update")
        ours = best([self.ours("import", source, "--latency-ms", LATENCY, "--users", "10000",
                               plan=plan) for _ in range(self.sizes.repeat)])
        half = self.sizes.upsert_sample // 2
        with emulator_process("--latency-ms", LATENCY, "--users", "10000") as url:
            baseline = asyncio.run(sequential_upserts(url, range(1, half + 1), range(half)))
        self.add("upsert 1,000 rows into 10,000 users, 20 ms: rows/s vs per-row "
                 "look-up-then-write", f"{ours.rate:,.0f}", f"{baseline.rate:,.0f}",
                 ours.rate / baseline.rate, ">= 100x", ours.rate / baseline.rate >= 100)

    def behind_a_limit(self, option: str) -> None:
        """Updates with default options behind ``option N`` (``--server-limit``, 16 unless
        told): share of the server's capacity (the nominal N / latency, and what a bare loop
        with exactly N in flight gets from it in the same run), failed rows, and (behind
        --capacity) the p95 latency during the run against the unloaded latency. Each side
        runs ``repeat`` times, alternating which goes first; the fastest of each is compared,
        the p95 is the fastest run's, and a row failed in any run counts."""
        count = self.sizes.capped
        limit = self.server_limit
        source = write_changes(self.path("renames.csv"), range(1, count + 1), ())
        options = ("--latency-ms", LATENCY, "--users", str(count), option, str(limit))
        nominal = limit / (float(LATENCY) / 1000)
        with emulator_process(*options) as url:
            unloaded = asyncio.run(unloaded_latency_ms(url))
        def bare() -> Measured:
            with emulator_process(*options) as url:
                return asyncio.run(bare_updates(url, count, limit))

        # Alternating pairs, the fastest of each kind kept, as for the other ratios: one run
        # each let a busy moment of either side decide the ratio.
        bare_runs, ours_runs = alternated(
            self.sizes.repeat, bare,
            lambda: self.ours("update", source, *options, latencies=option == "--capacity"))
        served = best(bare_runs)
        # Ours is timed while sending (its start-up reads are not the server's capacity);
        # every run's failed rows count.
        measured = max(ours_runs, key=lambda m: m.send_rate)
        failed = sum(m.summary.counts.get("failed", 0) if m.summary else 1 for m in ours_runs)
        share = measured.send_rate / served.rate
        self.add(f"behind {option} {limit}, 20 ms (updates, default options; {failed} failed): "
                 f"rows/s while sending vs a bare loop at exactly {limit} in flight",
                 f"{measured.send_rate:,.0f}", f"{served.rate:,.0f}", share,
                 ">= 0.90, 0 failed", share >= 0.90 and failed == 0)
        self.add(f"the same vs the nominal capacity ({limit} / 20 ms)",
                 f"{measured.send_rate:,.0f}", f"{nominal:,.0f}", measured.send_rate / nominal,
                 "(for reference)", None)
        if option == "--capacity":
            p95 = percentile(measured.latencies_ms, 0.95)
            self.add(f"behind --capacity {limit}: p95 request latency during the run vs "
                     "unloaded (ms)", f"{p95:.0f}", f"{unloaded:.0f}", p95 / unloaded, "<= 2x",
                     p95 / unloaded <= 2)

    def sweep(self) -> None:
        """--concurrency auto against the best fixed concurrency of a sweep (per-row creates).

        The sweep only finds the best fixed concurrency; that one and auto are then measured
        head to head, three times each, alternating which goes first, and the best of each is
        kept. (The best of a whole sweep is the best of every run at every concurrency: where
        two concurrencies are as fast, that is a maximum of more samples than auto's, and it
        reads a busy machine's noise as a lead.)"""
        source = write_users(self.path("users.csv"), self.sizes.sweep)

        def one(concurrency: int | str) -> Measured:
            return self.ours("import", source, "--latency-ms", LATENCY,
                             concurrency=concurrency, batch_size=1)

        fixed = {n: best([one(n) for _ in range(self.sizes.repeat)]) for n in (8, 16, 32, 64)}
        top = max(fixed, key=lambda n: fixed[n].rate)
        auto_runs, top_runs = alternated(3, lambda: one("auto"), lambda: one(top))
        auto, at_top = best(auto_runs), best(top_runs)
        ratio = auto.rate / at_top.rate
        self.add(f"--concurrency auto vs best fixed of 8/16/32/64 ({top}), per-row creates: "
                 "rows/s", f"{auto.rate:,.0f}", f"{at_top.rate:,.0f}", ratio, ">= 0.90",
                 ratio >= 0.90)

    def xlsx_import(self) -> None:
        """A large XLSX imported (default options) into an emulator without latency, against
        one openpyxl read-only pass over the same file: wall seconds."""
        rows = self.sizes.xlsx_read
        source = write_xlsx_like_excel(self.path("import.xlsx"), rows)
        passes = []
        for _ in range(self.sizes.repeat):
            started = time.perf_counter()
            openpyxl_pass(source)
            passes.append(time.perf_counter() - started)
        baseline = min(passes)
        ours = best([self.ours("import", source) for _ in range(self.sizes.repeat)])
        ratio = ours.seconds / baseline
        self.add(f"{rows:,}-row XLSX import, no latency: seconds vs one openpyxl read-only "
                 "pass", f"{ours.seconds:.1f}", f"{baseline:.1f}", ratio, "<= 1.5x", ratio <= 1.5)

    def dry_run_memory(self) -> None:
        """A large CSV dry run as its own process, ``repeat`` times: the fastest run's rows/s
        (noise only ever slows a run, as for the other parts) and the largest peak RSS."""
        rows = self.sizes.dry_run
        source = write_users(self.path("big.csv"), rows)
        walls, peaks = [], []
        with emulator_process() as url:
            for turn in range(self.sizes.repeat):
                wall, _, peak = run_cli_peak_rss(
                    ["import", str(source), "--dry-run", "--quiet", "--url", url, "--token",
                     TOKEN, "--report", str(self.path(f"report{turn}.csv"))])
                walls.append(wall)
                peaks.append(peak)
        wall, rss = min(walls), max(peaks)
        megabytes = rss / 2**20
        self.add(f"{rows:,}-row CSV dry run: peak RSS MB vs 150 MB", f"{megabytes:.0f}",
                 "150", megabytes / 150, "<= 1.0", megabytes <= 150)
        rate = rows / wall
        self.add(f"{rows:,}-row CSV dry run: rows/s vs 100,000", f"{rate:,.0f}", "100,000",
                 rate / 100_000, ">= 1.0", rate >= 100_000)

    def reading(self) -> None:
        """Reading alone (benchmarks/reading.py): CSV rows/s and RSS, a 50 MiB cell, XLSX."""
        sizes = self.sizes
        for figure in reading_measurements(sizes.csv_read, sizes.xlsx_read, sizes.repeat):
            self.add(figure.what, figure.ours, figure.baseline, figure.ratio, figure.target,
                     figure.ok)


    def startup(self) -> None:
        """``bulkusers --help``, ``--version`` and ``import --help`` as fresh processes."""
        for line in measure(self.sizes.startup):
            self.add(f"`{line.label}`: s vs `python -c pass`", f"{line.seconds:.3f}",
                     f"{line.baseline:.3f}", line.ratio, f"<= {TARGET_S} s",
                     line.seconds <= TARGET_S)


def _met(ok: bool | None) -> str:
    return "-" if ok is None else "yes" if ok else "NO"


def table(lines: list[Line]) -> str:
    """The lines as one Markdown table."""
    out = ["| measurement | bulkusers | baseline | ratio | target | met |",
           "| --- | ---: | ---: | ---: | --- | --- |"]
    for line in lines:
        out.append(f"| {line.what} | {line.ours} | {line.baseline} | {line.ratio:.2f} | "
                   f"{line.target} | {_met(line.ok)} |")
    return "\n".join(out)


def main() -> None:
    """Run the measurements asked for and print the table."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller sizes, indicative only")
    parser.add_argument("--repeat", type=int, default=None,
                        help="runs of each measurement, the best kept (default 2, quick 1)")
    parser.add_argument("--only", default="",
                        help="comma-separated parts: per-row, cpu, upsert, inflight, capacity, "
                             "sweep, memory, startup, reading, xlsx-import (default: all)")
    parser.add_argument("--server-limit", type=int, default=16, metavar="N",
                        help="the emulator's --max-inflight and --capacity for the inflight "
                             "and capacity parts (default 16, as in the issue)")
    args = parser.parse_args()
    sizes = QUICK if args.quick else FULL
    if args.repeat:
        sizes = Sizes(**{**{f: getattr(sizes, f) for f in Sizes.__slots__},
                         "repeat": args.repeat})
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as folder:
        suite = Suite(sizes, Path(folder), args.server_limit)
        parts: dict[str, Callable[[], None]] = {
            "per-row": suite.per_row_and_sequential, "cpu": suite.cpu, "upsert": suite.upsert,
            "inflight": lambda: suite.behind_a_limit("--max-inflight"),
            "capacity": lambda: suite.behind_a_limit("--capacity"),
            "sweep": suite.sweep, "memory": suite.dry_run_memory, "startup": suite.startup,
            "reading": suite.reading, "xlsx-import": suite.xlsx_import}
        chosen = [p for p in args.only.split(",") if p] or list(parts)
        for name in chosen:
            parts[name]()
    print(f"bulkusers benchmark suite{' (quick)' if args.quick else ''}: "
          f"{platform.python_implementation()} {platform.python_version()}, "
          f"{platform.machine()}, {len(__import__('os').sched_getaffinity(0))} cores, "
          f"emulator in its own process, {time.perf_counter() - started:.0f} s\n")
    print(table(suite.lines))


if __name__ == "__main__":
    main()
