"""End to end: `bulkusers import` through the CLI against the emulator over loopback HTTP."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

from click.testing import Result

from tests.conftest import TOKEN, Served, read_report, write_csv

SAMPLES = Path(__file__).resolve().parent.parent / "samples"
HEADER = ("Work Email", "First Name", "Surname", "Role", "Groups", "Employee ID")
RunCli = Callable[..., Result]


def good_rows() -> list[list[str]]:
    """Three valid HR rows using display names, aliases and both group separators."""
    return [
        ["ann.lee@acme.example", "Ann", "Lee", "Viewer", "Finance; Sales", "000123"],
        ["Bo.Chan@Acme.example", "Bo", "Chan", "designer", "Engineering", "000124"],
        ["cy.diaz@acme.example", "Cy", "Díaz", "Data Designer", "Sales|Marketing", "000125"],
    ]


def import_args(served: Served, path: Path, *extra: str) -> list[str]:
    """Command line for an import against the served emulator."""
    return ["import", str(path), "--url", served.url, "--token", TOKEN, *extra]


def test_good_rows_are_created_with_resolved_roles_and_groups(
        served: Served, run_cli: RunCli, tmp_path: Path) -> None:
    """Valid rows become users whose role and groups match the names in the file; exit 0."""
    source = write_csv(tmp_path / "hr.csv", HEADER, good_rows())
    report = tmp_path / "report.csv"
    result = run_cli(*import_args(served, source, "--report", str(report)))
    assert result.exit_code == 0, result.output
    store = served.emulator.store
    ann = store.user_by_email("ann.lee@acme.example")
    assert ann is not None
    assert (ann["firstName"], ann["lastName"]) == ("Ann", "Lee")
    assert store.role_name_of(ann["_id"]) == "consumer"
    assert store.group_names_of(ann["_id"]) == {"Finance", "Sales"}
    bo = store.user_by_email("bo.chan@acme.example")
    assert bo is not None
    assert store.role_name_of(bo["_id"]) == "contributor"
    cy = store.user_by_email("cy.diaz@acme.example")
    assert cy is not None
    assert store.role_name_of(cy["_id"]) == "dataDesigner"
    assert store.group_names_of(cy["_id"]) == {"Sales", "Marketing"}
    lines = read_report(report)
    assert [line["status"] for line in lines] == ["created"] * 3
    assert sorted(line["row"] for line in lines) == ["2", "3", "4"]


def test_a_run_reads_the_roles_and_the_account_once(
        served: Served, run_cli: RunCli, tmp_path: Path) -> None:
    """The roles the first call (the server check) read make the directory's roles, and the
    account running the tool is read once: one GET each before the writes."""
    source = write_csv(tmp_path / "hr.csv", HEADER, good_rows())
    result = run_cli(*import_args(served, source, "--report", str(tmp_path / "r.csv")))
    assert result.exit_code == 0, result.output
    paths = [r.path for r in served.emulator.requests if r.method == "GET"]
    assert paths.count("/api/roles") == 1
    assert paths.count("/api/users/loggedin") == 1


def test_bad_rows_are_skipped_with_reasons_and_never_sent(
        served: Served, run_cli: RunCli, tmp_path: Path) -> None:
    """Malformed, unknown-role, unknown-group, repeated and blank emails are skipped; exit 1."""
    rows = [
        *good_rows(),
        ["not-an-email", "X", "Y", "Viewer", "Finance", "1"],
        ["eve@acme.example", "Eve", "Z", "Superuser", "Finance", "2"],
        ["fay@acme.example", "Fay", "Z", "Viewer", "Finanse", "3"],
        ["gus@acme.example", "Gus", "Z", "Viewer", "Sales", "4"],
        ["GUS@acme.example", "Gus", "Again", "Viewer", "Sales", "5"],
        ["", "No", "Email", "Viewer", "Sales", "6"],
    ]
    source = write_csv(tmp_path / "hr.csv", HEADER, rows)
    report = tmp_path / "report.csv"
    result = run_cli(*import_args(served, source, "--report", str(report)))
    assert result.exit_code == 1, result.output
    by_row = {line["row"]: line for line in read_report(report)}
    assert len(by_row) == len(rows)
    assert "malformed email" in by_row["5"]["error"]
    assert "unknown role 'Superuser'" in by_row["6"]["error"]
    assert "did you mean 'Finance'" in by_row["7"]["error"]
    assert "row 9" in by_row["8"]["error"]
    assert "row 8" in by_row["9"]["error"]
    assert "no email" in by_row["10"]["error"]
    for number in ("5", "6", "7", "8", "9", "10"):
        assert by_row[number]["status"] == "skipped"
    store = served.emulator.store
    for email in ("eve@acme.example", "fay@acme.example", "gus@acme.example"):
        assert store.user_by_email(email) is None
    # Only the three good rows were sent, together in one bulk create.
    assert [(r.method, r.path) for r in served.emulator.writes()] == [
        ("POST", "/api/v1/users/bulk")]
    assert len(store.users) == 1 + 3


def test_rerun_creates_nothing_and_sends_no_write(
        served: Served, run_cli: RunCli, tmp_path: Path) -> None:
    """Importing the same file twice leaves the users as they were and sends no write."""
    source = write_csv(tmp_path / "hr.csv", HEADER, good_rows())
    first = run_cli(*import_args(served, source, "--report", str(tmp_path / "one.csv")))
    assert first.exit_code == 0, first.output
    users_after_first = len(served.emulator.store.users)
    writes_after_first = len(served.emulator.writes())
    second = run_cli(*import_args(served, source, "--report", str(tmp_path / "two.csv")))
    assert second.exit_code == 0, second.output
    assert len(served.emulator.store.users) == users_after_first
    assert len(served.emulator.writes()) == writes_after_first
    lines = read_report(tmp_path / "two.csv")
    assert {line["status"] for line in lines} == {"skipped"}
    assert all(line["changes"] == "none: user already exists" for line in lines)
    assert all(line["user_id"] for line in lines)


def test_503_503_201_ends_created_after_three_attempts(
        served: Served, run_cli: RunCli, tmp_path: Path) -> None:
    """A create answered 503 twice then 201 is reported created with attempts 3."""
    served.host.call(lambda: served.emulator.faults.script("POST", "/api/v1/users",
                                                          [503, 503]))
    source = write_csv(tmp_path / "hr.csv", HEADER, good_rows()[:1])
    report = tmp_path / "report.csv"
    result = run_cli(*import_args(served, source, "--report", str(report)))
    assert result.exit_code == 0, result.output
    (line,) = read_report(report)
    assert (line["status"], line["attempts"], line["http_status"]) == ("created", "3", "201")
    assert served.emulator.store.user_by_email("ann.lee@acme.example") is not None


def test_429_with_retry_after_is_waited_out(
        served: Served, run_cli: RunCli, tmp_path: Path) -> None:
    """A 429 carrying Retry-After is retried after the wait and the row still succeeds."""
    served.host.call(lambda: served.emulator.faults.script("POST", "/api/v1/users", [429],
                                                          retry_after=0.2))
    source = write_csv(tmp_path / "hr.csv", HEADER, good_rows()[:1])
    report = tmp_path / "report.csv"
    result = run_cli(*import_args(served, source, "--report", str(report)))
    assert result.exit_code == 0, result.output
    (line,) = read_report(report)
    assert (line["status"], line["attempts"]) == ("created", "2")


def test_rate_limited_server_still_gets_every_row(
        served: Served, run_cli: RunCli, tmp_path: Path) -> None:
    """With the server capping requests in flight (429 + Retry-After), every row is created."""
    def limit() -> None:
        served.emulator.faults.max_inflight = 2
        served.emulator.faults.retry_after_s = 0.05
        served.emulator.faults.latency_ms = 5

    served.host.call(limit)
    rows = [[f"user{i:03d}@acme.example", "U", str(i), "Viewer", "Sales", str(i)]
            for i in range(40)]
    source = write_csv(tmp_path / "hr.csv", HEADER, rows)
    report = tmp_path / "report.csv"
    result = run_cli(*import_args(served, source, "--report", str(report), "--retries", "10",
                                  "--concurrency", "8", "--batch-size", "1"))
    assert result.exit_code == 0, result.output
    assert {line["status"] for line in read_report(report)} == {"created"}
    assert any(r.status == 429 for r in served.emulator.requests)


def test_report_is_excel_safe_and_hides_passwords(
        served: Served, run_cli: RunCli, tmp_path: Path) -> None:
    """The report starts with a BOM, echoes input columns, masks passwords, defuses formulas."""
    source = write_csv(tmp_path / "hr.csv", ("Email", "Role", "Password", "Phone"),
                       [["zoe@acme.example", "viewer", "S3cret-pw!", "+44 20 7946 0001"],
                        ["=cmd@acme.example", "viewer", "", "=HYPERLINK(1)"]])
    report = tmp_path / "report.csv"
    run_cli(*import_args(served, source, "--report", str(report)))
    raw = report.read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf")
    assert b"S3cret-pw!" not in raw
    lines = read_report(report)
    assert list(lines[0])[:10] == ["row", "email", "action", "status", "user_id",
                                   "http_status", "error", "attempts", "elapsed_ms", "changes"]
    assert lines[0]["Password"] == "***"
    assert lines[0]["Phone"] == "'+44 20 7946 0001"
    assert lines[1]["Phone"] == "'=HYPERLINK(1)"
    assert lines[1]["email"] == "'=cmd@acme.example"
    assert served.emulator.store.check_password("zoe@acme.example", "S3cret-pw!")


def test_default_report_never_overwrites(served: Served, run_cli: RunCli,
                                         tmp_path: Path) -> None:
    """Two runs without --report write two distinct report files in the working directory."""
    source = write_csv(tmp_path / "hr.csv", HEADER, good_rows())
    run_cli(*import_args(served, source))
    run_cli(*import_args(served, source))
    reports = sorted(tmp_path.glob("hr.import.*.report.csv"))
    assert len(reports) == 2
    assert len(list(tmp_path.glob("hr.import.*.summary.json"))) == 2


def test_sample_workbook_imports_all_good_rows(served: Served, run_cli: RunCli,
                                               tmp_path: Path) -> None:
    """The shipped HR workbook: 314 users created, its 6 bad rows skipped; exit code 1."""
    source = tmp_path / "hr_users.xlsx"
    shutil.copy(SAMPLES / "hr_users.xlsx", source)
    report = tmp_path / "report.csv"
    result = run_cli(*import_args(served, source, "--report", str(report)))
    assert result.exit_code == 1, result.output
    lines = read_report(report)
    assert len(lines) == 320
    statuses = [line["status"] for line in lines]
    assert statuses.count("created") == 314
    assert statuses.count("skipped") == 6
    assert len(served.emulator.store.users) == 1 + 314
    assert all(len(line["Cost Centre"]) == 5 for line in lines)  # zero-padded as Excel shows


def test_a_report_filtered_to_failed_rows_is_the_next_input(
        served: Served, run_cli: RunCli, tmp_path: Path) -> None:
    """The failed lines of a report, saved as a file of their own, import as they are."""
    served.host.call(lambda: served.emulator.faults.script("POST", "/api/v1/users", [503]))
    source = write_csv(tmp_path / "hr.csv", HEADER, good_rows())
    report = tmp_path / "report.csv"
    first = run_cli(*import_args(served, source, "--report", str(report), "--retries", "0",
                                 "--batch-size", "1", "--concurrency", "1"))
    assert first.exit_code == 1, first.output
    text = report.read_text(encoding="utf-8-sig").splitlines()
    failed = [line for line in text[1:] if ",failed," in line]
    assert len(failed) == 1
    retry = tmp_path / "failed-only.csv"
    retry.write_text("\n".join([text[0], *failed]) + "\n", encoding="utf-8-sig")
    second = run_cli(*import_args(served, retry, "--report", str(tmp_path / "again.csv")))
    assert second.exit_code == 0, second.output
    (line,) = read_report(tmp_path / "again.csv")
    assert line["status"] == "created"
    assert len(served.emulator.store.users) == 1 + 3
