"""End to end: the breaker with rows that send nothing, a report that cannot be written,
passwords that never travel through a report."""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import Result

from bulkusers.config import build_connection
from bulkusers.jobs import run_command
from bulkusers.readers import open_table
from bulkusers.reportwriter import ReportWriter
from bulkusers.runconfig import RunConfig
from bulkusers.words import speaking_cli
from tests.conftest import TOKEN, Served, read_report, write_csv

RunCli = Callable[..., Result]


def test_breaker_trips_although_skipped_rows_sit_between_failures(
        served: Served, run_cli: RunCli, tmp_path: Path) -> None:
    """Existing users (skipped, nothing sent) between failing creates do not reset the
    breaker: a dead write path still stops the run (exit 3)."""
    existing = [[f"old{i:03d}@acme.example", "viewer"] for i in range(50)]
    seed = write_csv(tmp_path / "seed.csv", ("Email", "Role"), existing)
    assert run_cli("import", str(seed), "--url", served.url, "--token", TOKEN, "--report",
                   str(tmp_path / "seed-report.csv")).exit_code == 0
    mixed: list[list[str]] = []
    for i in range(50):
        mixed.append(existing[i])
        mixed.append([f"new{i:03d}@acme.example", "viewer"])
    source = write_csv(tmp_path / "mixed.csv", ("Email", "Role"), mixed)
    served.host.call(lambda: served.emulator.faults.script("POST", "/api/v1/users",
                                                          [503] * 500))
    report = tmp_path / "r.csv"
    result = run_cli("import", str(source), "--url", served.url, "--token", TOKEN,
                     "--report", str(report), "--batch-size", "1", "--retries", "0",
                     "--concurrency", "1")
    assert result.exit_code == 3, result.output
    statuses = [line["status"] for line in read_report(report)]
    assert statuses.count("failed") == 5
    assert "not_attempted" in statuses


def test_a_report_that_cannot_be_written_aborts_the_run(
        served: Served, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """When writing the report fails (a full disk), the run aborts instead of sending rows
    it cannot record, and says which file and what to do."""
    rows = [[f"u{i:03d}@acme.example", "viewer"] for i in range(40)]
    source = write_csv(tmp_path / "hr.csv", ("Email", "Role"), rows)
    original = ReportWriter.write
    written = 0

    def failing_write(self: ReportWriter, result: object) -> None:
        nonlocal written
        written += 1
        if written > 5:
            raise OSError(28, "No space left on device")
        original(self, result)  # type: ignore[arg-type]

    monkeypatch.setattr(ReportWriter, "write", failing_write)
    connection = build_connection(url=served.url, token=TOKEN, username=None, password=None)
    config = RunConfig(command="import", connection=connection, input_path=source,
                       report_path=tmp_path / "r.csv", batch_size=1, concurrency=1,
                       handle_sigint=False)
    with speaking_cli():  # as the CLI runs it
        summary = asyncio.run(run_command(config))
    assert summary.exit_code == 3
    assert "No space left" in summary.aborted
    assert "--resume" in summary.aborted
    creates = [r for r in served.emulator.writes() if r.method == "POST"]
    assert len(creates) < 10  # stopped soon after the first unwritable line


def test_password_columns_are_masked_and_never_re_imported(
        served: Served, run_cli: RunCli, tmp_path: Path) -> None:
    """A Password column and a secret-looking unknown column are masked in the report, and
    re-importing that report sets no password at all (never the mask)."""
    source = write_csv(tmp_path / "hr.csv", ("Email", "Role", "Password", "Temporary Password"),
                       [["ann@acme.example", "viewer", "Ann-Pass-1", "Temp-Secret-9"]])
    report = tmp_path / "r.csv"
    assert run_cli("import", str(source), "--url", served.url, "--token", TOKEN, "--report",
                   str(report)).exit_code == 0
    raw = report.read_text(encoding="utf-8-sig")
    assert "Ann-Pass-1" not in raw
    assert "Temp-Secret-9" not in raw
    (line,) = read_report(report)
    assert (line["Password"], line["Temporary Password"]) == ("***", "***")
    assert not open_table(report).header.has("password")
    leavers = write_csv(tmp_path / "leavers.csv", ("Email",), [["ann@acme.example"]])
    assert run_cli("delete", str(leavers), "--url", served.url, "--token", TOKEN, "--yes",
                   "--report", str(tmp_path / "d.csv")).exit_code == 0
    assert run_cli("import", str(report), "--url", served.url, "--token", TOKEN, "--report",
                   str(tmp_path / "again.csv")).exit_code == 0
    store = served.emulator.store
    assert store.user_by_email("ann@acme.example") is not None
    assert not store.check_password("ann@acme.example", "***")


def test_a_server_capping_concurrency_is_met_by_slowing_down(
        served: Served, run_cli: RunCli, tmp_path: Path) -> None:
    """A server that allows 2 requests in flight (429 beyond) gets every row created at the
    default concurrency of 8: the tool halves its pace on 429 instead of aborting."""
    def cap() -> None:
        served.emulator.faults.max_inflight = 2
        served.emulator.faults.retry_after_s = 0.05
        served.emulator.faults.latency_ms = 10

    served.host.call(cap)
    rows = [[f"c{i:03d}@acme.example", "viewer"] for i in range(80)]
    source = write_csv(tmp_path / "hr.csv", ("Email", "Role"), rows)
    report = tmp_path / "r.csv"
    # Retries as an admin would set them against a throttling server: a row may still meet
    # a 429 when the tool probes above the cap again.
    result = run_cli("import", str(source), "--url", served.url, "--token", TOKEN,
                     "--batch-size", "1", "--retries", "10", "--report", str(report))
    assert result.exit_code == 0, result.output
    assert {line["status"] for line in read_report(report)} == {"created"}
    refused = sum(1 for r in served.emulator.requests if r.status == 429)
    assert refused < 40  # it settled under the cap rather than being refused all run long


def test_a_delete_report_re_creates_users_even_when_the_list_had_blank_columns(
        served: Served, run_cli: RunCli, tmp_path: Path) -> None:
    """Leavers listed with empty First Name/Role/Groups columns: importing the delete report
    restores names, role and groups from the recorded state."""
    people = write_csv(tmp_path / "people.csv", ("Email", "First Name", "Role", "Groups"),
                       [["ann@acme.example", "Ann", "designer", "Sales; Finance"]])
    assert run_cli("import", str(people), "--url", served.url, "--token", TOKEN, "--report",
                   str(tmp_path / "seed.csv")).exit_code == 0
    leavers = write_csv(tmp_path / "leavers.csv", ("Email", "First Name", "Role", "Groups"),
                        [["ann@acme.example", "", "", ""]])
    report = tmp_path / "deleted.csv"
    assert run_cli("delete", str(leavers), "--url", served.url, "--token", TOKEN, "--yes",
                   "--report", str(report)).exit_code == 0
    again = run_cli("import", str(report), "--url", served.url, "--token", TOKEN, "--report",
                    str(tmp_path / "again.csv"))
    assert again.exit_code == 0, again.output
    store = served.emulator.store
    ann = store.user_by_email("ann@acme.example")
    assert ann is not None
    assert ann["firstName"] == "Ann"
    assert store.role_name_of(ann["_id"]) == "contributor"
    assert store.group_names_of(ann["_id"]) == {"Sales", "Finance"}


def test_report_paths_that_would_destroy_something_are_refused(
        served: Served, run_cli: RunCli, tmp_path: Path) -> None:
    """--report naming the input file or an existing report is exit 2 with nothing sent."""
    source = write_csv(tmp_path / "hr.csv", ("Email", "Role"), [["ann@acme.example", "viewer"]])
    earlier = tmp_path / "earlier.csv"
    earlier.write_text("kept\n", encoding="utf-8")
    for target in (source, earlier):
        result = run_cli("import", str(source), "--url", served.url, "--token", TOKEN,
                         "--report", str(target))
        assert result.exit_code == 2, result.output
    assert served.emulator.requests == []
    assert earlier.read_text(encoding="utf-8") == "kept\n"
    assert "ann@acme.example" in source.read_text(encoding="utf-8")


def test_reactivate_of_a_report_resaved_in_another_encoding_is_one_line(
        served: Served, run_cli: RunCli, tmp_path: Path) -> None:
    """A report re-saved by a spreadsheet as cp1252 is exit 2 with a hint, not a crash."""
    report = tmp_path / "deactivated.csv"
    header = ("row,email,action,status,user_id,http_status,error,attempts,elapsed_ms,changes,"
              "previous,Email\r\n")
    report.write_bytes((header + '2,zoë@acme.example,deactivate,deactivated,,200,,1,1.0,,,'
                        'zoë@acme.example\r\n').encode("cp1252"))
    result = run_cli("reactivate", str(report), "--url", served.url, "--token", TOKEN)
    assert result.exit_code == 2, result.output
    assert "CSV UTF-8" in result.output
    assert served.emulator.requests == []


def test_attempts_and_retries_count_tries_not_requests(
        served: Served, run_cli: RunCli, tmp_path: Path) -> None:
    """A deactivation sends several requests without retrying any: attempts 1, retries 0."""
    source = write_csv(tmp_path / "hr.csv", ("Email", "Role", "Groups"),
                       [["ann@acme.example", "admin", "Sales"]])
    assert run_cli("import", str(source), "--url", served.url, "--token", TOKEN, "--report",
                   str(tmp_path / "seed.csv")).exit_code == 0
    report = tmp_path / "d.csv"
    assert run_cli("deactivate", str(source), "--url", served.url, "--token", TOKEN, "--yes",
                   "--report", str(report)).exit_code == 0
    (line,) = read_report(report)
    assert (line["status"], line["attempts"]) == ("deactivated", "1")
    summary = json.loads((tmp_path / "d.summary.json").read_text(encoding="utf-8"))
    assert summary["retries"] == 0


def test_pipes_and_sheet_on_csv_are_refused_with_one_line(
        served: Served, run_cli: RunCli, tmp_path: Path) -> None:
    """A named pipe (which would block) and --sheet on a CSV are exit 2, nothing sent."""
    fifo = tmp_path / "pipe.csv"
    os.mkfifo(fifo)
    result = run_cli("import", str(fifo), "--url", served.url, "--token", TOKEN)
    assert result.exit_code == 2
    assert "regular file" in result.output
    source = write_csv(tmp_path / "hr.csv", ("Email", "Role"), [["ann@acme.example", "viewer"]])
    result = run_cli("import", str(source), "--sheet", "Users", "--url", served.url,
                     "--token", TOKEN)
    assert result.exit_code == 2
    assert "--sheet" in result.output
    assert served.emulator.requests == []
