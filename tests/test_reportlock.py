"""The report lock: one run per report, never left held by a run that ended or was killed."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from bulkusers.reportlock import ReportInUse, holding, lock_path
from tests.terminal import RUN_S

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="no fcntl: no lock is taken")


def test_a_held_report_refuses_a_second_holder_and_is_free_again_after(tmp_path: Path) -> None:
    """While one holder has the report a second is refused; once released it can be held
    again and no lock file is left behind."""
    report = tmp_path / "r.csv"
    with holding(report):
        assert lock_path(report).exists()
        with pytest.raises(ReportInUse, match="another bulkusers run"), holding(report):
            pass
    assert not lock_path(report).exists()
    with holding(report):
        pass


def test_a_lock_file_left_by_a_killed_run_does_not_block(tmp_path: Path) -> None:
    """A process killed while holding the lock leaves its file, not its lock: the next run
    takes it."""
    report = tmp_path / "r.csv"
    code = ("import os, sys; from pathlib import Path; from bulkusers.reportlock import holding\n"
            "with holding(Path(sys.argv[1])):\n    print('held', flush=True); os._exit(9)\n")
    done = subprocess.run([sys.executable, "-c", code, str(report)], capture_output=True,
                          text=True, timeout=RUN_S, check=False,
                          env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    assert "held" in done.stdout, done.stderr
    assert lock_path(report).exists()  # os._exit skipped the release: as a kill -9 would
    with holding(report):
        pass


def test_another_process_holding_the_report_is_seen(tmp_path: Path) -> None:
    """The lock is seen across processes: a child holding it makes this process's attempt
    fail."""
    report = tmp_path / "r.csv"
    code = ("import sys; from pathlib import Path; from bulkusers.reportlock import holding\n"
            "with holding(Path(sys.argv[1])):\n    print('held', flush=True); sys.stdin.read()\n")
    child = subprocess.Popen([sys.executable, "-c", code, str(report)], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, text=True,
                             env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    try:
        assert child.stdout is not None
        assert child.stdout.readline().strip() == "held"
        with pytest.raises(ReportInUse), holding(report):
            pass
    finally:
        child.communicate(timeout=RUN_S)
    with holding(report):
        pass


def test_a_link_to_a_report_and_the_report_share_one_lock(tmp_path: Path) -> None:
    """A run given a symbolic link to a report is refused while another run holds the
    report itself, and the other way round."""
    real = tmp_path / "r.csv"
    real.write_text("x", encoding="utf-8")
    link = tmp_path / "link.csv"
    link.symlink_to(real)
    with holding(real), pytest.raises(ReportInUse), holding(link):
        pass
    with holding(link), pytest.raises(ReportInUse), holding(real):
        pass
    assert not lock_path(real).exists()


def test_a_lock_file_removed_between_open_and_lock_is_not_trusted(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """When the run before removes the lock file just after this one opened it (its lock then
    guards a file nobody else opens), the lock is taken again on the file the path names:
    a second holder is refused."""
    import bulkusers.reportlock as reportlock

    report = tmp_path / "r.csv"
    real_open = reportlock._open
    calls = 0

    def open_then_lose(path: Path) -> int | None:
        nonlocal calls
        calls += 1
        fd = real_open(path)
        if calls == 1:
            path.unlink()  # as the previous holder's release does
        return fd

    monkeypatch.setattr(reportlock, "_open", open_then_lose)
    with holding(report):
        assert calls == 2
        assert lock_path(report).exists()
        monkeypatch.setattr(reportlock, "_open", real_open)
        with pytest.raises(ReportInUse), holding(report):
            pass
