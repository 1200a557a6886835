"""Client instructions per row, counted by valgrind (callgrind): figures a busy machine does
not move, for comparing two versions of the code where CPU time is too noisy to tell.

Each figure is the difference between two runs of different sizes divided by the difference
in rows, so start-up and the directory load cancel out (the sizes are chosen so that every
input is larger than the sample its delimiter is sniffed from). Measured: a CSV dry run (reading,
planning, the report line and the summary of each row), per-row creates at concurrency 64,
and, as the baseline, the bare aiohttp loop POSTing as many users at 64. The emulator runs in
its own process, outside valgrind. Needs ``valgrind`` on the PATH; takes a few minutes.

    python benchmarks/instructions.py            # this checkout
    python benchmarks/instructions.py --rows 2000,20000 --send-rows 1500,3500
    python benchmarks/instructions.py --stages   # a dry-run row stage by stage, in process
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import GROUPS, TOKEN, emulator_process, write_users

#: Run inside valgrind: one send (bare or ours) of ``count`` rows against ``url``.
_SEND = """
import asyncio, sys
sys.path.insert(0, {bench!r})
from pathlib import Path
from harness import bare_creates, run_bulkusers
url, kind, count, folder = sys.argv[1], sys.argv[2], int(sys.argv[3]), Path(sys.argv[4])
if kind == "bare":
    asyncio.run(bare_creates(url, count, 64, prefix="bare" + folder.name))
else:  # the input was written before the count began: making it is not bulkusers' work
    asyncio.run(run_bulkusers("import", url, folder / "users.csv", folder / "report.csv",
                              concurrency=64, batch_size=1))
"""


#: Run inside valgrind: a dry run's stages in one process, up to ``stage``, over a CSV of new
#: users against a directory of Sisense's roles and the benchmark's groups (no server).
_STAGES = """
import sys
from dataclasses import fields
from pathlib import Path
from bulkusers.directory import Directory, Group, Role
from bulkusers.intake import read_input
from bulkusers.pipeline import Recorder, SilentObserver
from bulkusers.plan import make_plan, planned_items
from bulkusers.planner import Planner
from bulkusers.readers import ReadOptions
from bulkusers.reportwriter import ReportWriter
from bulkusers.results import planned
from bulkusers.rules import PlanOptions
from bulkusers.runconfig import RunConfig
from bulkusers.summary import RunSummary
source, stage, report = Path(sys.argv[1]), sys.argv[2], Path(sys.argv[3])
intake = read_input(source, ReadOptions())
directory = Directory([Role("r-viewer", "consumer", "Viewer")],
                      [Group("g-" + name, name) for name in {groups!r}])
planner = Planner(intake.header, directory, intake.repeats, PlanOptions())
if stage == "read":
    for _ in intake.rows():
        pass
elif stage == "plan":
    for row in intake.rows():
        planner.plan_import(row)
else:
    record = Recorder(ReportWriter(report, intake.header, held=True),
                      RunSummary(command="import", input_file=str(source),
                                 report_file=str(report)), SilentObserver(), breaker=0)
    def sink(item):
        # As pipeline.write_plan records a dry run's items: each item's rows together.
        if stage == "record":
            record.all(planned(item))
    # Creates batched as a dry run's are by default (RunConfig's batch_size).
    batch_size = next(f.default for f in fields(RunConfig) if f.name == "batch_size")
    make_plan(intake.rows(), planner.plan_import, (), batch_size=batch_size, describe=str,
              sink=sink)
    record.flush()
"""
#: The stages, each including the ones before it.
STAGES = ("read", "plan", "count", "record")


def instructions(command: list[str]) -> int:
    """Instructions the command's process (and its threads) executed, by callgrind."""
    with tempfile.TemporaryDirectory() as folder:
        out = Path(folder) / "callgrind.out"
        done = subprocess.run(["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}",
                               *command], capture_output=True, text=True, check=False)
        if done.returncode not in (0, 1):
            raise SystemExit(f"measurement invalid: {' '.join(command)} failed:\n"
                             f"{done.stderr[-2000:]}")
        found = re.findall(r"Collected : (\d+)", done.stderr)
        if not found:
            raise SystemExit("measurement invalid: callgrind reported no count")
        return sum(int(n) for n in found)


def dry_run(url: str, rows: int, folder: Path) -> int:
    """Instructions of a ``bulkusers import --dry-run`` of ``rows`` new users."""
    source = write_users(folder / f"dry{rows}.csv", rows)
    return instructions([sys.executable, "-m", "bulkusers", "import", str(source),
                         "--dry-run", "--quiet", "--url", url, "--token", TOKEN,
                         "--report", str(folder / f"dry{rows}.report.csv")])


def send(kind: str, rows: int, folder: Path) -> int:
    """Instructions of ``rows`` creates sent by ``kind`` (bare or ours) to a fresh emulator
    with 20 ms of latency."""
    script = _SEND.format(bench=str(Path(__file__).resolve().parent))
    run = folder / f"{kind}{rows}"
    run.mkdir()
    if kind == "ours":
        write_users(run / "users.csv", rows, prefix="ours" + run.name)
    with emulator_process("--latency-ms", "20") as url:
        return instructions([sys.executable, "-c", script, url, kind, str(rows), str(run)])


def stages(small: int, large: int, folder: Path) -> dict[str, float]:
    """Instructions a dry-run row costs up to each stage (reading, hashing, counting and
    spooling; planning; batching and counting the plan; the planned row's result, report
    line and summary), in one process without a server."""
    script = _STAGES.format(groups=GROUPS)
    sources = {n: write_users(folder / f"stages{n}.csv", n) for n in (small, large)}
    counts: dict[str, float] = {}
    for stage in STAGES:
        total = {n: instructions([sys.executable, "-c", script, str(source), stage,
                                  str(folder / f"{stage}{n}.report.csv")])
                 for n, source in sources.items()}
        counts[stage] = (total[large] - total[small]) / (large - small)
    return counts


def main() -> None:
    """Count and print instructions per row."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--rows", default="2000,20000",
                        help="the two dry-run sizes (default 2000,20000)")
    # Both sizes above the 64 KiB the reader sniffs the delimiter from
    # (inputfile.SAMPLE_BYTES): below it, the smaller run sniffs less of its file than the
    # larger, and that start-up work would count as the rows' (about 9,000 instructions a
    # row at 500 and 2,500).
    parser.add_argument("--send-rows", default="1500,3500",
                        help="the two send sizes (default 1500,3500)")
    parser.add_argument("--stages", action="store_true",
                        help="only a dry-run row's stages, in one process (no server)")
    args = parser.parse_args()
    if shutil.which("valgrind") is None:
        raise SystemExit("valgrind is not installed; install it (Debian: apt install valgrind)")
    small, large = (int(n) for n in args.rows.split(","))
    send_small, send_large = (int(n) for n in args.send_rows.split(","))
    os.environ.pop("SISENSE_TOKEN", None)
    if args.stages:
        with tempfile.TemporaryDirectory() as name:
            counts = stages(small, large, Path(name))
        print("| dry-run stage (each includes the ones before) | instructions a row | added |")
        print("| --- | ---: | ---: |")
        before = 0.0
        for stage, count in counts.items():
            print(f"| {stage} | {count:,.0f} | {count - before:,.0f} |")
            before = count
        return
    with tempfile.TemporaryDirectory() as name:
        folder = Path(name)
        with emulator_process() as url:
            dry = (dry_run(url, large, folder) - dry_run(url, small, folder)) / (large - small)
        per = {kind: (send(kind, send_large, folder) - send(kind, send_small, folder))
               / (send_large - send_small) for kind in ("bare", "ours")}
    print("| measurement | instructions a row |\n| --- | ---: |")
    print(f"| CSV dry run (read, plan, report line, summary) | {dry:,.0f} |")
    print(f"| per-row creates at 64, bulkusers | {per['ours']:,.0f} |")
    print(f"| per-row creates at 64, bare aiohttp loop | {per['bare']:,.0f} |")
    print(f"| ratio, bulkusers / bare loop | {per['ours'] / per['bare']:.2f} |")


if __name__ == "__main__":
    main()
