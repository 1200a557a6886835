"""Start-up time of the command line: ``bulkusers --help``, ``--version`` and ``import --help``.

Each is run as a fresh process (as a person or a script runs it), several times, the best kept
(noise on a shared machine only ever slows a run). The baseline, measured in the same run the
same way, is an interpreter that does nothing (``python -c pass``): the ratio is what bulkusers
adds to Python's own start-up. The target (issue 8) is at most 0.3 s of wall time.

    python benchmarks/startup.py              # best of 10
    python benchmarks/startup.py --repeat 30
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

#: The most a start-up may take, in seconds of wall time.
TARGET_S = 0.3
#: The command lines timed, after ``bulkusers``.
MEASURED = (("--help",), ("--version",), ("import", "--help"))
#: A run that takes longer than this is broken, not slow.
DEADLINE_S = 30.0


@dataclass(frozen=True, slots=True)
class Startup:
    """The best wall time of one command line, and of the do-nothing interpreter."""

    args: tuple[str, ...]
    seconds: float
    baseline: float

    @property
    def ratio(self) -> float:
        """How many times the bare interpreter's start-up this command line takes."""
        return self.seconds / self.baseline

    @property
    def label(self) -> str:
        """The command line as typed."""
        return "bulkusers " + " ".join(self.args)


def program() -> list[str]:
    """How to start bulkusers: the console script beside this Python, else ``-m``."""
    script = Path(sys.executable).parent / "bulkusers"
    return [str(script)] if script.exists() else [sys.executable, "-m", "bulkusers"]


def best_wall(command: list[str], repeat: int) -> float:
    """The fastest of ``repeat`` runs of ``command``, in seconds; a failing run stops us."""
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        subprocess.run(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                       check=True, timeout=DEADLINE_S)
        times.append(time.perf_counter() - started)
    return min(times)


def measure(repeat: int) -> list[Startup]:
    """Each command line of ``MEASURED`` and the baseline, run back to back."""
    found = []
    for args in MEASURED:
        baseline = best_wall([sys.executable, "-c", "pass"], repeat)
        seconds = best_wall([*program(), *args], repeat)
        found.append(Startup(args, seconds, baseline))
    return found


def main() -> None:
    """Time the start-ups and print one line each."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--repeat", type=int, default=10, help="runs of each, the best kept")
    args = parser.parse_args()
    for line in measure(args.repeat):
        met = "met" if line.seconds <= TARGET_S else "NOT met"
        print(f"{line.label:<26} {line.seconds:.3f} s   python -c pass {line.baseline:.3f} s   "
              f"ratio {line.ratio:.1f}   target <= {TARGET_S} s: {met}")


if __name__ == "__main__":
    main()
