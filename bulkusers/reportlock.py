"""One run at a time per report: an exclusive lock held while a run writes its records.

A report, its summary and its undo journal are written by one run. A second run on the same
report (a ``--resume`` started while the first still runs, or twice at once) would interleave
lines, overwrite the summary and leave the three disagreeing. While a run holds a report, it
holds an advisory lock on ``<report>.lock``: the operating system drops it when the process
ends, killed or not, so a crash never leaves a report locked. The file is removed when the
run ends.

Where the platform has no ``fcntl`` (Windows), no lock is taken.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

from bulkusers.errors import InputError

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None  # type: ignore[assignment]


class ReportInUse(InputError):
    """Another run holds the report: nothing was sent (exit 2)."""


def lock_path(report: Path) -> Path:
    """Where the lock of a report lives: beside the file the path leads to, so that a link to
    a report and the report itself share one lock."""
    real = report.resolve()
    return real.with_name(real.name + ".lock")


@contextlib.contextmanager
def holding(report: Path) -> Iterator[None]:
    """Hold the report's lock for the block; ReportInUse when another run holds it."""
    path = lock_path(report)
    fd = _acquire(report, path)
    try:
        yield
    finally:
        if fd is not None:
            _release(fd, path)


def _acquire(report: Path, path: Path) -> int | None:
    """The descriptor of the locked lock file ``path`` (None without fcntl, or when the folder
    cannot hold it: writing the report there fails next, with its own message)."""
    if fcntl is None:
        return None
    while True:
        fd = _open(path)
        if fd is None:
            return None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise ReportInUse(
                f"{report}: another bulkusers run is writing this report (its lock "
                f"{path.name} is held); wait for that run to end, then run again") from None
        # The run before us may have removed the file between our open and our lock: our
        # lock is then on a file nobody else will open. Lock the file the path names now.
        try:
            current = os.path.samestat(os.fstat(fd), path.stat())
        except FileNotFoundError:
            current = False
        if current:
            return fd
        os.close(fd)


def _open(path: Path) -> int | None:
    """The lock file, made if missing; read only when it exists but is not ours to write (a
    lock locks through any descriptor); None when it cannot be had at all."""
    try:
        return os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    except PermissionError:
        try:
            return os.open(path, os.O_RDONLY)
        except OSError:
            return None
    except OSError:
        return None


def _release(fd: int, path: Path) -> None:
    """Remove the lock file while still holding it, then let go."""
    with contextlib.suppress(OSError):
        path.unlink()
    os.close(fd)


class Holds:
    """The report locks one run takes as it goes (a resumed report when the run starts, the
    report it writes when that is opened), each once, all held until the run's stack ends."""

    def __init__(self, stack: contextlib.ExitStack) -> None:
        self._stack = stack
        self._held: set[str] = set()

    def hold(self, report: Path) -> None:
        """Lock ``report`` for the rest of the run (ReportInUse when another run has it)."""
        key = str(report.resolve())
        if key not in self._held:
            self._stack.enter_context(holding(report))
            self._held.add(key)
