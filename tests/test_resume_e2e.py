"""Crash safety end to end: --resume, Ctrl-C, kill -9, the breaker, refused credentials.

Everything goes through the real CLI and the emulator over loopback HTTP; the interrupted and
killed runs are separate processes, so signals hit a real `bulkusers import`.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import pytest
from click.testing import Result

from bulkusers.emulator import Emulator, EmulatorSettings
from bulkusers.emulator.faults import RequestRecord
from bulkusers.emulator.records import UserRecord, hash_password
from bulkusers.report import summary_path
from bulkusers.reportlock import lock_path
from tests.conftest import GROUPS, TOKEN, Served, read_report, serve, summary_of, write_csv
from tests.terminal import RUN_S

RunCli = Callable[..., Result]
HEADER = ("Email", "Role", "Groups")
USERS = "/api/v1/users"
LOGIN = "/api/v1/authentication/login"
ADMIN = "admin@example.com"
ADMIN_PASSWORD = "Admin-Pass-1"
FINISHED = frozenset({"created", "updated", "unchanged", "deactivated", "deleted"})
ENV = {k: v for k, v in os.environ.items() if not k.startswith("SISENSE_")}
#: Every wait on a process or a condition: generous for a loaded machine, yet a hang fails
#: in seconds (one run here takes about a second).
TIMEOUT = RUN_S
CONCURRENCY = 4
#: Large enough that a signal lands mid-run, small enough to keep each run near a second.
SLOW_ROWS = 120
LATENCY_MS = 40.0

serving = contextlib.contextmanager(serve)


# -- helpers ----------------------------------------------------------------------------------


def people(count: int) -> list[list[str]]:
    """Valid rows for `count` new users."""
    return [[f"person{n:04d}@acme.example", "viewer", "Sales"] for n in range(1, count + 1)]


def source_file(directory: Path, count: int) -> Path:
    """An input CSV of `count` new users in `directory`."""
    directory.mkdir(parents=True, exist_ok=True)
    return write_csv(directory / "hr.csv", HEADER, people(count))


def user_args(served: Served, *args: str) -> list[str]:
    """A CLI command line against the served emulator with the fixed token."""
    return [*args, "--url", served.url, "--token", TOKEN]


def create_posts(requests: Sequence[RequestRecord]) -> list[RequestRecord]:
    """The single-user create requests among `requests`, whatever their answer."""
    return [r for r in requests if r.method == "POST" and r.path == USERS]


def last_line_per_row(report: Path) -> dict[str, dict[str, str]]:
    """The last report line of each input row (a resumed run appends newer lines)."""
    return {line["row"]: line for line in read_report(report)}


def assert_one_line_per_row(report: Path, rows: int) -> list[dict[str, str]]:
    """The report has exactly one line for each input row; its lines."""
    lines = read_report(report)
    assert sorted(int(line["row"]) for line in lines) == list(range(2, rows + 2))
    return lines


def assert_every_user_once(emulator: Emulator, rows: int) -> None:
    """The emulator holds each input user, and its creation log shows each created once."""
    wanted = {f"person{n:04d}@acme.example" for n in range(1, rows + 1)}
    emails = {u.email.casefold() for u in emulator.store.users.values()}
    assert wanted <= emails
    assert len(emails) == rows + 1  # + the admin
    assert dict(emulator.store.creations) == dict.fromkeys(wanted, 1)


def error_lines(output: str) -> list[str]:
    """The `bulkusers: error:` lines of a command's output (and proof of no traceback)."""
    assert "Traceback" not in output
    return [line for line in output.splitlines() if line.startswith("bulkusers: error")]


def aborted_line(output: str) -> str:
    """The summary's single `aborted:` line."""
    lines = [line for line in output.splitlines() if line.startswith("aborted:")]
    assert len(lines) == 1, output
    return lines[0]


def fail_next_creates(served: Served, statuses: list[int]) -> None:
    """Script the next single-user creates to be answered with `statuses`."""
    served.host.call(lambda: served.emulator.faults.script("POST", USERS, statuses))


def bulkusers(*args: str) -> list[str]:
    """The command line of `bulkusers ARGS` in this interpreter."""
    return [sys.executable, "-m", "bulkusers", *args]


@contextlib.contextmanager
def background(command: list[str], cwd: Path, log: Path) -> Iterator[subprocess.Popen[bytes]]:
    """Start a command with its stderr in `log`; it is always gone when the block ends."""
    with log.open("wb") as stderr:
        process = subprocess.Popen(command, stdin=subprocess.DEVNULL,
                                   stdout=subprocess.DEVNULL, stderr=stderr, env=ENV, cwd=cwd)
    try:
        yield process
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(timeout=TIMEOUT)


def report_lines(report: Path) -> int:
    """Complete result lines in a report being written (0 before it exists)."""
    try:
        return max(report.read_bytes().count(b"\n") - 1, 0)
    except FileNotFoundError:
        return 0


def wait_until(condition: Callable[[], bool],
               process: subprocess.Popen[bytes] | None = None) -> None:
    """Poll `condition` (while `process` runs): a bounded wait, never a speed assertion."""
    deadline = time.monotonic() + TIMEOUT
    while not condition():
        assert process is None or process.poll() is None, "the import ended first"
        assert time.monotonic() < deadline, f"still waiting after {TIMEOUT} s"
        time.sleep(0.005)


def sigint_pending(pid: int) -> bool:
    """Whether a SIGINT sent to the process is still waiting to be delivered (Linux)."""
    bit = 1 << (signal.SIGINT - 1)
    status = Path(f"/proc/{pid}/status").read_text(encoding="ascii")
    pending = re.findall(r"^(?:SigPnd|ShdPnd):\s*([0-9a-f]+)$", status, re.MULTILINE)
    return any(int(mask, 16) & bit for mask in pending)


def wait_for_lines(report: Path, count: int, process: subprocess.Popen[bytes]) -> None:
    """Wait until the running import has reported at least `count` rows."""
    wait_until(lambda: report_lines(report) >= count, process)


def run_process(command: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    """Run a command to its end, with a timeout, capturing its output."""
    return subprocess.run(command, cwd=cwd, env=ENV, capture_output=True, text=True,
                          timeout=TIMEOUT, check=False)


def slow_emulator() -> contextlib.AbstractContextManager[Served]:
    """A fresh emulator whose every request takes LATENCY_MS, so runs can be hit mid-way."""
    return serving(EmulatorSettings(token=TOKEN, groups=GROUPS, latency_ms=LATENCY_MS))


def slow_import(served: Served, source: Path, *extra: str) -> list[str]:
    """A subprocess import, one user per request, CONCURRENCY in flight."""
    return bulkusers("import", str(source), "--url", served.url, "--token", TOKEN,
                     "--batch-size", "1", "--concurrency", str(CONCURRENCY), *extra)


# -- resume after failed rows -----------------------------------------------------------------


def test_resume_sends_only_the_failed_rows_and_keeps_one_line_per_row(
        served: Served, run_cli: RunCli, tmp_path: Path) -> None:
    """A resumed run creates only the rows that failed; the report ends with one line per
    row (their last outcome, in row order) and the summary counts all."""
    rows, failing = 20, 3
    source = source_file(tmp_path, rows)
    report = tmp_path / "r.csv"
    fail_next_creates(served, [503] * failing)
    args = user_args(served, "import", str(source), "--retries", "0", "--batch-size", "1",
                     "--concurrency", "2")
    first = run_cli(*args, "--report", str(report))
    assert first.exit_code == 1, first.output
    lines = assert_one_line_per_row(report, rows)
    failed = {line["row"] for line in lines if line["status"] == "failed"}
    assert len(failed) == failing
    before = len(served.emulator.requests)

    second = run_cli(*args, "--resume", str(report))

    assert second.exit_code == 0, second.output
    assert len(create_posts(served.emulator.requests[before:])) == failing
    lines = assert_one_line_per_row(report, rows)
    assert [int(line["row"]) for line in lines] == list(range(2, rows + 2))
    assert {line["status"] for line in lines} == {"created"}
    assert_every_user_once(served.emulator, rows)
    summary = summary_of(report)
    assert summary["counts"]["created"] == rows
    assert sum(summary["counts"].values()) == summary["total_rows"] == rows
    assert summary["carried_over"] == rows - failing
    assert summary["exit_code"] == 0


def test_a_dry_run_of_a_resume_leaves_the_run_resumable(
        served: Served, run_cli: RunCli, tmp_path: Path) -> None:
    """--resume with --dry-run previews the rest without touching the report being resumed."""
    rows, failing = 10, 2
    source = source_file(tmp_path, rows)
    report = tmp_path / "r.csv"
    fail_next_creates(served, [503] * failing)
    args = user_args(served, "import", str(source), "--retries", "0", "--batch-size", "1")
    assert run_cli(*args, "--report", str(report)).exit_code == 1
    kept = report.read_bytes(), summary_path(report).read_bytes()

    preview = run_cli(*args, "--resume", str(report), "--dry-run")

    assert preview.exit_code == 0, preview.output
    assert (report.read_bytes(), summary_path(report).read_bytes()) == kept
    resumed = run_cli(*args, "--resume", str(report))
    assert resumed.exit_code == 0, resumed.output
    assert_every_user_once(served.emulator, rows)


# -- resume refusals: exit 2, nothing sent ----------------------------------------------------


def test_resume_refuses_a_changed_input_file_before_sending_anything(
        served: Served, run_cli: RunCli, tmp_path: Path) -> None:
    """An input changed since the report was started: exit 2, one line, no request at all."""
    source = source_file(tmp_path, 3)
    report = tmp_path / "r.csv"
    assert run_cli(*user_args(served, "import", str(source), "--report",
                              str(report))).exit_code == 0
    with source.open("a", encoding="utf-8", newline="") as handle:
        handle.write("late@acme.example,viewer,Sales\r\n")
    before = len(served.emulator.requests)

    result = run_cli(*user_args(served, "import", str(source), "--resume", str(report)))

    assert result.exit_code == 2, result.output
    [line] = error_lines(result.output)
    assert "changed" in line
    assert len(served.emulator.requests) == before


def test_resume_refuses_the_report_of_another_command(
        served: Served, run_cli: RunCli, tmp_path: Path) -> None:
    """The report of an `update` cannot be resumed by `import`: exit 2, nothing sent."""
    source = source_file(tmp_path, 3)
    assert run_cli(*user_args(served, "import", str(source))).exit_code == 0
    report = tmp_path / "update.csv"
    assert run_cli(*user_args(served, "update", str(source), "--report",
                              str(report))).exit_code == 0
    before = len(served.emulator.requests)

    result = run_cli(*user_args(served, "import", str(source), "--resume", str(report)))

    assert result.exit_code == 2, result.output
    [line] = error_lines(result.output)
    assert "update" in line
    assert len(served.emulator.requests) == before


def test_resume_refuses_a_dry_run_report(served: Served, run_cli: RunCli,
                                         tmp_path: Path) -> None:
    """A dry run sent nothing, so there is nothing to resume: exit 2, nothing sent."""
    source = source_file(tmp_path, 3)
    report = tmp_path / "dry.csv"
    assert run_cli(*user_args(served, "import", str(source), "--dry-run", "--report",
                              str(report))).exit_code == 0
    before = len(served.emulator.requests)

    result = run_cli(*user_args(served, "import", str(source), "--resume", str(report)))

    assert result.exit_code == 2, result.output
    [line] = error_lines(result.output)
    assert "dry run" in line
    assert len(served.emulator.requests) == before
    assert served.emulator.writes() == []


# -- Ctrl-C and kill -9 of a real process -----------------------------------------------------


@pytest.mark.parametrize("stop_signal", [signal.SIGINT, signal.SIGTERM])
def test_ctrl_c_exits_130_with_every_row_reported_and_the_printed_resume_finishes(
        stop_signal: signal.Signals, tmp_path: Path) -> None:
    """SIGINT, or SIGTERM (cron, systemd, kill): exit 130, one line per row, a resume hint
    that, run as printed, finishes."""
    source = source_file(tmp_path, SLOW_ROWS)
    report = tmp_path / "r.csv"
    log = tmp_path / "import.log"
    with slow_emulator() as served:
        with background(slow_import(served, source, "--report", str(report)), tmp_path,
                        log) as process:
            wait_for_lines(report, SLOW_ROWS // 5, process)
            process.send_signal(stop_signal)
            assert process.wait(timeout=TIMEOUT) == 130, log.read_text()
        output = log.read_text(encoding="utf-8")
        assert "Traceback" not in output
        lines = assert_one_line_per_row(report, SLOW_ROWS)
        statuses = {line["status"] for line in lines}
        assert statuses == {"created", "not_attempted"}, statuses
        assert all("interrupted" in line["error"] for line in lines
                   if line["status"] == "not_attempted")
        summary = summary_of(report)
        assert (summary["interrupted"], summary["exit_code"]) == (True, 130)
        hint = re.search(r"^\s+(bulkusers import .*--resume .*)$", output, re.MULTILINE)
        assert hint, output
        printed = shlex.split(hint.group(1))

        resumed = run_process(bulkusers(*printed[1:], "--url", served.url, "--token", TOKEN,
                                        "--batch-size", "1", "--concurrency",
                                        str(CONCURRENCY)), tmp_path)

        assert resumed.returncode == 0, resumed.stderr
        assert {line["status"] for line in last_line_per_row(report).values()} == {"created"}
        assert_every_user_once(served.emulator, SLOW_ROWS)


@contextlib.contextmanager
def import_under_way(served: Served, source: Path, report: Path,
                     tmp_path: Path) -> Iterator[subprocess.Popen[bytes]]:
    """A slow import of ``source`` writing ``report`` in the background, a fifth of its rows
    reported already; gone when the block ends."""
    with background(slow_import(served, source, "--report", str(report)), tmp_path,
                    tmp_path / "first.log") as process:
        wait_for_lines(report, SLOW_ROWS // 5, process)
        yield process


@contextlib.contextmanager
def held_back(served: Served) -> Iterator[None]:
    """While the block runs every request takes 1.5 s, so a run under way cannot finish
    before another process, however slow to start on a loaded machine, reaches its lock;
    the latency is back to LATENCY_MS after (requests already waiting end within 1.5 s)."""
    served.host.call(lambda: setattr(served.emulator.faults, "latency_ms", 1500.0))
    try:
        yield
    finally:
        served.host.call(lambda: setattr(served.emulator.faults, "latency_ms", LATENCY_MS))


def assert_refused_as_in_use(second: subprocess.CompletedProcess[str]) -> None:
    """A run refused because another holds its report: exit 2, that one line, no traceback."""
    assert second.returncode == 2, second.stderr
    (line,) = error_lines(second.stderr)
    assert "another bulkusers run is writing this report" in line


def test_a_resume_while_the_first_run_still_writes_is_refused(tmp_path: Path) -> None:
    """A --resume of a report whose own run is still sending is refused (exit 2, one line);
    the first run, untouched, finishes with one line per row and each user once."""
    source = source_file(tmp_path, SLOW_ROWS)
    report = tmp_path / "r.csv"
    with slow_emulator() as served:
        with import_under_way(served, source, report, tmp_path) as first:
            with held_back(served):
                second = run_process(slow_import(served, source, "--resume", str(report)),
                                     tmp_path)

            assert_refused_as_in_use(second)
            assert first.wait(timeout=TIMEOUT) == 0
        lines = assert_one_line_per_row(report, SLOW_ROWS)
        assert {line["status"] for line in lines} == {"created"}
        assert_every_user_once(served.emulator, SLOW_ROWS)


def test_a_second_resume_of_a_report_in_use_is_refused_and_the_first_finishes(
        tmp_path: Path) -> None:
    """Two resumes of one report at once: the second is refused (exit 2, one line, nothing
    sent) while the first holds the report; the first finishes with one line per row, each
    user created once, and a summary that agrees with its report."""
    source = source_file(tmp_path, SLOW_ROWS)
    report = tmp_path / "r.csv"
    with slow_emulator() as served:
        with import_under_way(served, source, report, tmp_path) as process:
            process.send_signal(signal.SIGINT)
            assert process.wait(timeout=TIMEOUT) == 130
        resume = slow_import(served, source, "--resume", str(report))
        log = tmp_path / "resume.log"
        with background(resume, tmp_path, log) as first:
            wait_until(lambda: lock_path(report).exists(), first)
            with held_back(served):
                second = run_process(resume, tmp_path)

            assert_refused_as_in_use(second)
            assert first.wait(timeout=TIMEOUT) == 0, log.read_text(encoding="utf-8")
        lines = assert_one_line_per_row(report, SLOW_ROWS)
        assert {line["status"] for line in lines} == {"created"}
        assert_every_user_once(served.emulator, SLOW_ROWS)
        summary = summary_of(report)
        assert summary["exit_code"] == 0
        assert summary["counts"].get("created") == SLOW_ROWS
        assert not lock_path(report).exists()


def test_a_second_ctrl_c_cancels_requests_in_flight_and_the_resume_checks_them(
        served: Served, tmp_path: Path) -> None:
    """Two SIGINTs cancel hung requests (not_attempted); the resume finds those that landed."""
    rows = 300
    source = source_file(tmp_path, rows)
    report = tmp_path / "r.csv"
    emulator = served.emulator
    log = tmp_path / "import.log"
    with background(slow_import(served, source, "--report", str(report)), tmp_path,
                    log) as process:
        # Once sending has begun (the directory's pages come before, with as many in flight
        # as the creates will have), every create hangs on the server for a long while; the
        # rows leave plenty still to send.
        wait_until(lambda: any(r.method == "POST" and r.path == "/api/v1/users"
                               for r in emulator.requests), process)
        served.host.call(lambda: setattr(emulator.faults, "latency_ms", 1500.0))
        wait_until(lambda: emulator.faults.inflight >= CONCURRENCY, process)
        process.send_signal(signal.SIGINT)
        # Two presses, not one: a second SIGINT sent while the first is still pending would
        # merge with it, so wait until the kernel has delivered the first.
        wait_until(lambda: not sigint_pending(process.pid), process)
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=TIMEOUT) == 130, log.read_text()
    output = log.read_text(encoding="utf-8")
    assert "Traceback" not in output
    assert "--resume" in output
    lines = assert_one_line_per_row(report, rows)
    cancelled = [line for line in lines if "in flight" in line["error"]]
    assert cancelled, lines
    assert {line["status"] for line in cancelled} == {"not_attempted"}
    served.host.call(lambda: setattr(emulator.faults, "latency_ms", 0.0))
    wait_until(lambda: emulator.faults.inflight == 0)  # the abandoned creates land

    resumed = run_process(slow_import(served, source, "--resume", str(report)), tmp_path)

    assert resumed.returncode == 0, resumed.stderr
    last = last_line_per_row(report)
    assert {line["status"] for line in last.values()} <= {"created", "skipped"}
    assert all("already exists" in line["changes"] for line in last.values()
               if line["status"] == "skipped")
    assert_every_user_once(emulator, rows)


def test_kill_9_at_any_point_then_resume_creates_every_user_exactly_once(
        tmp_path: Path) -> None:
    """SIGKILL early, midway or late: a resume finishes every row and duplicates no user."""
    for percent in (10, 50, 90):
        workdir = tmp_path / f"kill-at-{percent}"
        source = source_file(workdir, SLOW_ROWS)
        report = workdir / "r.csv"
        with slow_emulator() as served:
            with background(slow_import(served, source, "--report", str(report)), workdir,
                            workdir / "import.log") as process:
                wait_for_lines(report, SLOW_ROWS * percent // 100, process)
                process.kill()
                assert process.wait(timeout=TIMEOUT) == -signal.SIGKILL  # killed mid-run

            resumed = run_process(slow_import(served, source, "--resume", str(report)),
                                  workdir)

            assert resumed.returncode == 0, (percent, resumed.stderr)
            last = last_line_per_row(report)
            assert sorted(int(row) for row in last) == list(range(2, SLOW_ROWS + 2))
            for line in last.values():
                assert line["status"] in FINISHED | {"skipped"}, line
                if line["status"] == "skipped":  # its create landed just before the kill
                    assert not line["error"], line
                    assert "already exists" in line["changes"], line
            assert_every_user_once(served.emulator, SLOW_ROWS)
            summary = summary_of(report)
            assert sum(summary["counts"].values()) == SLOW_ROWS, summary["counts"]


def test_a_report_torn_mid_line_by_a_crash_resumes_into_a_clean_report(
        served: Served, run_cli: RunCli, tmp_path: Path) -> None:
    """A last line cut inside a quoted cell is dropped, so lines appended after it stay whole."""
    rows, failing = 12, 2
    source = write_csv(tmp_path / "hr.csv", (*HEADER, "Department"),
                       [[*row, "Sales, EMEA"] for row in people(rows)])
    report = tmp_path / "r.csv"
    fail_next_creates(served, [503] * failing)
    args = user_args(served, "import", str(source), "--batch-size", "1", "--retries", "0")
    assert run_cli(*args, "--report", str(report), "--concurrency", "1").exit_code == 1
    # What a crash while writing the last line leaves: half of it, ending inside "...".
    content = report.read_bytes()
    torn_row = content[content.rstrip(b"\r\n").rfind(b"\n") + 1:].split(b",", 1)[0].decode()
    report.write_bytes(content[:content.rindex(b'"Sales, E')] + b'"Sales, E')

    resumed = run_cli(*args, "--resume", str(report))

    assert resumed.exit_code == 0, resumed.output
    lines = read_report(report)
    assert all(line["Department"] == "Sales, EMEA" for line in lines), lines
    assert len(lines) == rows  # the torn line is gone; compacted to one line per row
    by_row = last_line_per_row(report)
    assert sorted(int(row) for row in by_row) == list(range(2, rows + 2))
    assert {by_row[str(row)]["status"] for row in range(2, 2 + failing)} == {"created"}
    assert by_row[torn_row]["status"] == "skipped"  # its create had landed: not sent again
    assert "already exists" in by_row[torn_row]["changes"]
    assert_every_user_once(served.emulator, rows)


# -- aborts: the breaker, refused credentials, 403 --------------------------------------------


@pytest.mark.parametrize("batch_size", ["1", "50"])
def test_breaker_stops_a_run_against_a_failing_server(
        served: Served, run_cli: RunCli, tmp_path: Path, batch_size: str) -> None:
    """Creates all answered 503: exit 3 after a handful of requests, the rest not_attempted."""
    rows = 100
    source = source_file(tmp_path, rows)
    report = tmp_path / "r.csv"
    served.host.call(lambda: served.emulator.faults.script("POST", USERS, [503] * 1000))

    result = run_cli(*user_args(served, "import", str(source), "--report", str(report),
                                "--retries", "0", "--batch-size", batch_size,
                                "--concurrency", str(CONCURRENCY)))

    assert result.exit_code == 3, result.output
    assert "server" in aborted_line(result.output)
    assert "--resume" in result.output
    sent = [r for r in served.emulator.requests if r.method == "POST"]
    assert 5 <= len(sent) <= 5 + 2 * CONCURRENCY, len(sent)  # the breaker, plus in flight
    lines = assert_one_line_per_row(report, rows)
    statuses = [line["status"] for line in lines]
    assert set(statuses) == {"failed", "not_attempted"}
    assert statuses.count("failed") <= len(sent)
    assert summary_of(report)["exit_code"] == 3
    served.host.call(served.emulator.faults.clear)  # the server is back

    resumed = run_cli(*user_args(served, "import", str(source), "--resume", str(report),
                                 "--batch-size", batch_size))

    assert resumed.exit_code == 0, resumed.output
    assert {line["status"] for line in last_line_per_row(report).values()} == {"created"}
    assert_every_user_once(served.emulator, rows)


def test_a_quiet_run_that_aborts_still_says_why(served: Served, run_cli: RunCli,
                                                tmp_path: Path) -> None:
    """With --quiet (cron), a run the breaker stops prints why as one error line (and the
    resume command), not only its exit code 3."""
    source = source_file(tmp_path, 30)
    served.host.call(lambda: served.emulator.faults.script("POST", USERS, [503] * 1000))
    result = run_cli(*user_args(served, "import", str(source), "--quiet", "--retries", "0",
                                "--batch-size", "1", "--concurrency", "1"))
    assert result.exit_code == 3, result.output
    (line,) = error_lines(result.output)
    assert line.startswith("bulkusers: error: aborted:")
    assert "server" in line
    assert "--resume" in result.output


def revoke_admin_after(served: Served, creates: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """Once `creates` users exist, revoke the admin's tokens and change its password."""
    store = served.emulator.store
    admin = store.find_user(ADMIN)
    create_users = store.create_users

    def create_then_revoke(bodies: list[object], *, bulk: bool) -> list[UserRecord]:
        created = create_users(bodies, bulk=bulk)
        if len(store.users) == creates + 1:  # on the emulator's loop, between two requests
            store.revoke_tokens(admin.id)
            admin.password_hash = hash_password("Changed-Pass-2")
        return created

    monkeypatch.setattr(store, "create_users", create_then_revoke)


def login_import(served: Served, source: Path, *extra: str) -> list[str]:
    """An import logging in as the admin with username and password, one user per request."""
    return ["import", str(source), "--url", served.url, "--username", ADMIN, "--password",
            ADMIN_PASSWORD, "--retries", "0", "--batch-size", "1", *extra]


def test_credentials_revoked_mid_run_abort_at_once(
        served: Served, run_cli: RunCli, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Tokens revoked and password changed mid-run: exit 3 at once, the rest not_attempted."""
    rows, before_revoke = 60, 5
    source = source_file(tmp_path, rows)
    report = tmp_path / "r.csv"
    revoke_admin_after(served, before_revoke, monkeypatch)

    result = run_cli(*login_import(served, source, "--report", str(report),
                                   "--concurrency", str(CONCURRENCY)))

    assert result.exit_code == 3, result.output
    assert "refused" in aborted_line(result.output)
    assert ADMIN_PASSWORD not in result.output
    statuses = [line["status"] for line in assert_one_line_per_row(report, rows)]
    assert set(statuses) == {"created", "not_attempted"}
    # The revoking create, and at most the others already past authentication.
    assert before_revoke <= statuses.count("created") < before_revoke + CONCURRENCY
    log = served.emulator.requests
    first_401 = next(i for i, r in enumerate(log) if r.status == 401)
    # Stopped at once: the requests already in flight and their re-login, nothing new.
    assert len(log) - first_401 <= 2 * CONCURRENCY, log[first_401:]


def test_a_refused_re_login_is_tried_once_however_many_requests_saw_the_401(
        served: Served, run_cli: RunCli, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Concurrent 401s cost one refused login, not one each (lockout policies count them)."""
    source = source_file(tmp_path, 60)
    served.host.call(lambda: setattr(served.emulator.faults, "latency_ms", 20.0))
    revoke_admin_after(served, 3, monkeypatch)

    result = run_cli(*login_import(served, source, "--report", str(tmp_path / "r.csv"),
                                   "--concurrency", "8"))

    assert result.exit_code == 3, result.output
    refused = [r for r in served.emulator.requests if r.path == LOGIN and r.status == 401]
    assert len(refused) == 1


def test_a_403_on_a_write_aborts_the_run(served: Served, run_cli: RunCli,
                                         tmp_path: Path) -> None:
    """A 403 on a create stops the run with exit 3; rows not yet sent are not_attempted."""
    rows = 50
    source = source_file(tmp_path, rows)
    report = tmp_path / "r.csv"
    fail_next_creates(served, [403])

    result = run_cli(*user_args(served, "import", str(source), "--report", str(report),
                                "--batch-size", "1", "--concurrency", str(CONCURRENCY)))

    assert result.exit_code == 3, result.output
    assert "403" in aborted_line(result.output)
    assert "--resume" in result.output
    statuses = [line["status"] for line in assert_one_line_per_row(report, rows)]
    assert set(statuses) <= {"created", "not_attempted"}
    assert statuses.count("not_attempted") >= rows - 2 * CONCURRENCY
    assert len(create_posts(served.emulator.requests)) <= 2 * CONCURRENCY


# -- undo records survive interruptions ---------------------------------------------------------


def test_delete_killed_mid_run_keeps_every_record_for_undo(tmp_path: Path) -> None:
    """kill -9 during a delete: the undo journal kept the record of every user sent, and the
    resume reports each row deleted with its previous state, so the report re-creates all."""
    with slow_emulator() as served:
        source = source_file(tmp_path, 60)
        seeded = run_process(bulkusers("import", str(source), "--url", served.url, "--token",
                                       TOKEN, "--report", str(tmp_path / "seed.csv")),
                             tmp_path)
        assert seeded.returncode == 0, seeded.stderr
        report = tmp_path / "deleted.csv"
        command = bulkusers("delete", str(source), "--url", served.url, "--token", TOKEN,
                            "--batch-size", "1", "--concurrency", str(CONCURRENCY), "--yes")
        with background([*command, "--report", str(report)], tmp_path,
                        tmp_path / "delete.log") as process:
            wait_for_lines(report, 20, process)
            process.kill()
            assert process.wait(timeout=TIMEOUT) == -signal.SIGKILL
        assert (tmp_path / "deleted.undo.jsonl").is_file()

        resumed = run_process([*command, "--resume", str(report)], tmp_path)

        assert resumed.returncode == 0, resumed.stderr
        lines = assert_one_line_per_row(report, 60)
        assert {line["status"] for line in lines} == {"deleted"}
        assert all(json.loads(line["previous"])["role"] == "consumer" for line in lines)
        assert len(served.emulator.store.users) == 1
        again = run_process(bulkusers("import", str(report), "--url", served.url, "--token",
                                      TOKEN, "--report", str(tmp_path / "again.csv")),
                            tmp_path)
        assert again.returncode == 0, again.stderr
        assert len(served.emulator.store.users) == 61


def test_a_resumed_deactivation_keeps_the_state_before_the_first_attempt(
        served: Served, run_cli: RunCli, tmp_path: Path) -> None:
    """A deactivation that changed a user but lost its answer is resumed with the user's
    original role and groups as its undo record (not the half-deactivated state)."""
    source = write_csv(tmp_path / "hr.csv", HEADER, [["ann@acme.example", "admin", "Finance"]])
    assert run_cli("import", str(source), "--url", served.url, "--token", TOKEN, "--report",
                   str(tmp_path / "seed.csv")).exit_code == 0
    # The revocation request is dropped: role, groups and password are already changed.
    served.host.call(lambda: served.emulator.faults.drop(
        "GET", "/api/v1/authentication/admin/logout", 5))
    report = tmp_path / "deactivated.csv"
    args = ["deactivate", str(source), "--url", served.url, "--token", TOKEN, "--yes",
            "--retries", "0"]
    first = run_cli(*args, "--report", str(report))
    assert first.exit_code == 1, first.output
    (line,) = read_report(report)
    assert line["status"] == "failed"
    assert json.loads(line["previous"])["role"] == "admin"
    served.host.call(lambda: served.emulator.faults.clear())

    resumed = run_cli(*args, "--resume", str(report))

    assert resumed.exit_code == 0, resumed.output
    (line,) = read_report(report)
    assert line["status"] == "deactivated"
    assert json.loads(line["previous"])["role"] == "admin"
    assert json.loads(line["previous"])["groups"] == ["Finance"]
    restored = run_cli("reactivate", str(report), "--url", served.url, "--token", TOKEN,
                       "--report", str(tmp_path / "back.csv"))
    assert restored.exit_code == 0, restored.output
    user = served.emulator.store.user_by_email("ann@acme.example")
    assert user is not None
    assert served.emulator.store.role_name_of(user["_id"]) == "admin"


def test_resume_needs_the_same_planning_options_and_prints_them(
        served: Served, run_cli: RunCli, tmp_path: Path) -> None:
    """A run that used --default-role prints it in its resume command, and a resume without
    it (or with another --on-existing) is refused (exit 2), naming how each run set the
    option, rather than planning the rest differently."""
    source = write_csv(tmp_path / "hr.csv", ("Email",),
                       [[f"p{i}@acme.example"] for i in range(30)])
    served.host.call(lambda: served.emulator.faults.script("POST", USERS, [503] * 200))
    report = tmp_path / "r.csv"
    args = ["import", str(source), "--url", served.url, "--token", TOKEN, "--batch-size", "1",
            "--retries", "0", "--concurrency", "1"]
    first = run_cli(*args, "--default-role", "viewer", "--report", str(report))
    assert first.exit_code == 3, first.output  # the breaker
    hint = first.output[first.output.index("Continue with:"):]
    assert "--default-role viewer" in hint.replace("\n", " ")
    served.host.call(lambda: served.emulator.faults.clear())
    refused = run_cli(*args, "--resume", str(report))
    assert refused.exit_code == 2
    line = refused.output.replace("\n", " ")
    assert "that run used --default-role viewer, where this one has no --default-role" in line
    # An option the first run left at its default is named with that default.
    other = run_cli(*args, "--default-role", "viewer", "--on-existing", "update", "--resume",
                    str(report))
    assert other.exit_code == 2
    line = other.output.replace("\n", " ")
    assert "used --on-existing skip, where this one has --on-existing update" in line
    resumed = run_cli(*args, "--default-role", "viewer", "--resume", str(report))
    assert resumed.exit_code == 0, resumed.output
    assert {line["status"] for line in read_report(report)} == {"created"}


#: Rows in the interrupted dry run: at any speed bulkusers may reach, seconds of work.
DRY_ROWS = 50_000


@pytest.mark.parametrize(("command", "stop_signal"), [
    ("import", signal.SIGINT), ("delete", signal.SIGINT), ("import", signal.SIGTERM)])
def test_ctrl_c_while_the_directory_loads_says_nothing_was_sent(
        command: str, stop_signal: signal.Signals, tmp_path: Path) -> None:
    """A Ctrl-C (or SIGTERM) before the first write (the directory still loading) exits 130
    with one line saying nothing was sent, sends nothing and leaves no report behind."""
    source = source_file(tmp_path, 20)
    report = tmp_path / "r.csv"
    log = tmp_path / "run.log"
    # 3,000 users take a second round trip of pages after the first: 1.5 s of loading left
    # once the first answer is in.
    settings = EmulatorSettings(token=TOKEN, groups=GROUPS, latency_ms=1500, users=3000)
    with serving(settings) as served:
        confirmed = ["--yes"] if command == "delete" else []
        with background(bulkusers(command, str(source), "--url", served.url, "--token",
                                  TOKEN, *confirmed, "--report", str(report)), tmp_path,
                        log) as process:
            wait_until(lambda: len(served.emulator.requests) > 0, process)
            process.send_signal(stop_signal)
            assert process.wait(timeout=TIMEOUT) == 130, log.read_text()
        output = log.read_text(encoding="utf-8")
        assert "interrupted before anything was sent; run the command again" in output
        assert "Traceback" not in output
        assert served.emulator.writes() == []
        assert not report.exists()
        assert not summary_path(report).exists()


@pytest.mark.parametrize("stop_signal", [signal.SIGINT, signal.SIGTERM])
def test_ctrl_c_stops_a_dry_run_with_every_row_reported(stop_signal: signal.Signals,
                                                        tmp_path: Path) -> None:
    """SIGINT (or SIGTERM) during a dry run (the plan written as it is made): exit 130, one
    report line per row, planned or not attempted, nothing sent, the rows planning had not
    reached reported without being planned, and no resume command offered (a dry run cannot
    be resumed)."""
    source = tmp_path / "big.csv"
    with source.open("w", encoding="utf-8", newline="") as handle:
        handle.write("Email,Role\n")
        # Capitals: a planned row's email is stored in lower case, an unplanned one's as
        # written, which tells the rows planning never reached.
        handle.writelines(f"U{n:06d}@ACME.example,viewer\n" for n in range(DRY_ROWS))
    report = tmp_path / "dry.csv"
    log = tmp_path / "dry.log"
    with serving(EmulatorSettings(token=TOKEN, groups=GROUPS)) as served:
        command = bulkusers("import", str(source), "--dry-run", "--report", str(report),
                            "--url", served.url, "--token", TOKEN)
        with background(command, tmp_path, log) as process:
            wait_for_lines(report, 100, process)
            process.send_signal(stop_signal)
            assert process.wait(timeout=TIMEOUT) == 130, log.read_text()
        assert served.emulator.writes() == []
    output = log.read_text(encoding="utf-8")
    assert "Traceback" not in output
    assert "--resume" not in output, output
    lines = assert_one_line_per_row(report, DRY_ROWS)
    assert {line["status"] for line in lines} == {"planned", "not_attempted"}
    # Planning stopped within a block or two of the Ctrl-C: the rows after were not planned.
    assert lines[-1]["email"] == f"U{DRY_ROWS - 1:06d}@ACME.example"
    assert lines[-1]["status"] == "not_attempted"
