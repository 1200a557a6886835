"""Client instructions per row, counted by valgrind (callgrind): figures a busy machine does
not move, for comparing two versions of the code where CPU time is too noisy to tell.

Each figure is the difference between two runs of different sizes divided by the difference
in rows, so start-up and the directory load cancel out. Measured: a CSV dry run (reading,
planning, the report line and the summary of each row), per-row creates at concurrency 64,
and, as the baseline, the bare aiohttp loop POSTing as many users at 64. The emulator runs in
its own process, outside valgrind. Needs ``valgrind`` on the PATH; takes a few minutes.

    python benchmarks/instructions.py            # this checkout
    python benchmarks/instructions.py --rows 500,2500
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

from harness import TOKEN, emulator_process, write_users

#: Run inside valgrind: one send (bare or ours) of ``count`` rows against ``url``.
_SEND = """
import asyncio, sys
sys.path.insert(0, {bench!r})
from pathlib import Path
from harness import bare_creates, run_bulkusers
url, kind, count, folder = sys.argv[1], sys.argv[2], int(sys.argv[3]), Path(sys.argv[4])
if kind == "bare":
    asyncio.run(bare_creates(url, count, 64, prefix="bare" + folder.name))
else:
    from harness import write_users
    source = write_users(folder / "users.csv", count, prefix="ours" + folder.name)
    asyncio.run(run_bulkusers("import", url, source, folder / "report.csv", concurrency=64,
                              batch_size=1))
"""


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
    with emulator_process("--latency-ms", "20") as url:
        return instructions([sys.executable, "-c", script, url, kind, str(rows), str(run)])


def main() -> None:
    """Count and print instructions per row."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--rows", default="2000,20000",
                        help="the two dry-run sizes (default 2000,20000)")
    parser.add_argument("--send-rows", default="500,2500",
                        help="the two send sizes (default 500,2500)")
    args = parser.parse_args()
    if shutil.which("valgrind") is None:
        raise SystemExit("valgrind is not installed; install it (Debian: apt install valgrind)")
    small, large = (int(n) for n in args.rows.split(","))
    send_small, send_large = (int(n) for n in args.send_rows.split(","))
    os.environ.pop("SISENSE_TOKEN", None)
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
