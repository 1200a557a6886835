"""End to end: the breaker with rows that send nothing, a report that cannot be written,
passwords that never travel through a report."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import Result

from bulkusers.config import RetryPolicy, build_connection
from bulkusers.jobs import RunSettings, run_command
from bulkusers.operations import PlanOptions
from bulkusers.readers import open_table
from bulkusers.report import ReportWriter
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
    settings = RunSettings(input_path=source, report_path=tmp_path / "r.csv", batch_size=1,
                           concurrency=1, handle_sigint=False)
    summary = asyncio.run(run_command("import", settings, connection, RetryPolicy(),
                                      PlanOptions()))
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
