"""Cron and pipes: export to standard output, the export's summary, --report-dir, and report
names that do not stack earlier suffixes."""

from __future__ import annotations

import csv
import io
import json
import os
import select
import shlex
import subprocess
import sys
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

import pytest
from click.testing import Result

from bulkusers.emulator import EmulatorSettings
from bulkusers.report import default_report_path, report_stem
from tests.conftest import TOKEN, Served, read_report, serve, write_csv
from tests.terminal import RUN_S

RunCli = Callable[..., Result]
HEADER = ("Email", "First Name", "Role", "Groups")
PEOPLE = [["ann@acme.example", "Ann", "Designer", "Finance; Sales"],
          ["bob@acme.example", "Bob", "Viewer", "Sales"],
          ["cat@acme.example", "Cat", "Admin", "Engineering"]]


def seed(served: Served, run_cli: RunCli, tmp_path: Path) -> None:
    """Create the three people."""
    source = write_csv(tmp_path / "seed.csv", HEADER, PEOPLE)
    result = run_cli("import", str(source), *served.connect(), "--report",
                     str(tmp_path / "seed-report.csv"))
    assert result.exit_code == 0, result.output


def clean_env(tmp_path: Path) -> dict[str, str]:
    """The environment of a subprocess: no SISENSE_/BULKUSERS_ variable, no user config."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("SISENSE_", "BULKUSERS_"))}
    env["XDG_CONFIG_HOME"] = str(tmp_path / ".no-config")
    return env


def test_export_to_stdout_is_exactly_the_csv(served: Served, run_cli: RunCli,
                                             tmp_path: Path) -> None:
    """`export -` in a subprocess: stdout is the CSV and nothing else (no BOM, no summary
    line), the same rows as an export to a file; the summary goes to stderr."""
    seed(served, run_cli, tmp_path)
    assert run_cli("export", "file.csv", *served.connect()).exit_code == 0
    done = subprocess.run([sys.executable, "-m", "bulkusers", "export", "-", "--url",
                           served.url, "--token", TOKEN], capture_output=True,
                          cwd=tmp_path, env=clean_env(tmp_path), timeout=RUN_S, check=False)
    assert done.returncode == 0, done.stderr
    text = done.stdout.decode("utf-8")
    assert not text.startswith("\ufeff")
    rows = list(csv.DictReader(io.StringIO(text)))
    assert {row["email"] for row in rows} == {p[0] for p in PEOPLE} | {"admin@example.com"}
    from_file = list(csv.DictReader(io.StringIO(
        (tmp_path / "file.csv").read_text(encoding="utf-8-sig"))))
    assert [r["email"] for r in rows] == [r["email"] for r in from_file]
    stderr = done.stderr.decode()
    assert "4 users written to standard output" in stderr
    assert "Traceback" not in stderr
    assert not list(tmp_path.glob("*.part"))


def test_export_piped_into_another_command_cron_style(served: Served, run_cli: RunCli,
                                                      tmp_path: Path) -> None:
    """As in a crontab: `bulkusers export - --quiet | next-command`; the next command reads
    clean CSV, stderr stays empty, the JSON summary lands in --report-dir."""
    seed(served, run_cli, tmp_path)
    reports = tmp_path / "reports"
    reports.mkdir()
    counter = (f"{shlex.quote(sys.executable)} -c 'import csv, sys; "
               "rows = list(csv.DictReader(sys.stdin)); "
               "print(len(rows), sorted(r[\"role\"] for r in rows))'")
    pipeline = (f"{shlex.quote(sys.executable)} -m bulkusers export - --quiet "
                f"--report-dir {shlex.quote(str(reports))} | {counter}")
    env = clean_env(tmp_path) | {"SISENSE_URL": served.url, "SISENSE_TOKEN": TOKEN}
    done = subprocess.run(["/bin/sh", "-c", "set -e; " + pipeline], capture_output=True,
                          text=True, cwd=tmp_path, env=env, timeout=RUN_S, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "4 ['admin', 'consumer', 'contributor', 'super']"
    assert done.stderr == ""
    summaries = list(reports.glob("export.*.summary.json"))
    assert len(summaries) == 1
    summary = json.loads(summaries[0].read_text(encoding="utf-8"))
    assert summary["output"] == "-"
    assert summary["written"] == 4
    assert summary["exit_code"] == 0
    assert TOKEN not in summaries[0].read_text(encoding="utf-8")


def test_export_piped_into_a_reader_that_stops_early_ends_quietly(tmp_path: Path) -> None:
    """`export - | head -1` on an export larger than a pipe holds: the export ends with 141
    (as a pipe's writer does), one plain line, no traceback, no temporary file left."""
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    for served in serve(EmulatorSettings(token=TOKEN, users=2500)):
        process = subprocess.Popen(
            [sys.executable, "-m", "bulkusers", "export", "-", "--url", served.url,
             "--token", TOKEN], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            cwd=tmp_path, env=clean_env(tmp_path) | {"TMPDIR": str(scratch)})
        assert process.stdout is not None
        ready, _, _ = select.select([process.stdout], [], [], RUN_S)
        assert ready, f"export - wrote nothing within {RUN_S} s"
        assert process.stdout.readline().startswith(b"email,userName")
        process.stdout.close()  # the reader goes away with most of the export unread
        _, stderr = process.communicate(timeout=RUN_S)
        text = stderr.decode()
        assert process.returncode == 141, text
        assert "Traceback" not in text
        assert "Exception ignored" not in text
        assert "standard output was closed before the export was written in full" in text
        assert list(scratch.iterdir()) == []  # the staged export was removed


def test_export_to_a_file_writes_a_summary_beside_it(served: Served, run_cli: RunCli,
                                                     tmp_path: Path) -> None:
    """An export to users.xlsx writes users.summary.json beside it, with counts and filters."""
    seed(served, run_cli, tmp_path)
    (tmp_path / "out").mkdir()
    result = run_cli("export", "out/users.xlsx", *served.connect(), "--role", "Viewer")
    assert result.exit_code == 0, result.output
    summary = json.loads((tmp_path / "out" / "users.summary.json").read_text("utf-8"))
    assert summary["command"] == "export"
    assert summary["output"] == "out/users.xlsx"
    assert (summary["written"], summary["read"]) == (1, 4)
    assert summary["options"]["role"] == "Viewer"
    assert summary["options"]["url"] == served.url
    assert "summary: out/users.summary.json" in result.output


def test_export_to_stdout_with_a_missing_report_dir_sends_nothing(
        served: Served, run_cli: RunCli, tmp_path: Path) -> None:
    """`export -` whose summary folder does not exist: one line, exit 2, no request."""
    result = run_cli("export", "-", *served.connect(), "--report-dir", "nowhere")
    assert result.exit_code == 2, result.output
    assert "--report-dir nowhere" in result.output
    assert served.emulator.requests == []


def test_a_missing_report_dir_from_the_environment_is_named_as_set_there(
        served: Served, run_cli: RunCli, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """BULKUSERS_REPORT_DIR naming no folder: import and `export -` stop before any request,
    exit 2, in one line naming the variable (not only --report-dir); config show warns."""
    monkeypatch.setenv("BULKUSERS_REPORT_DIR", str(tmp_path / "gone"))
    source = write_csv(tmp_path / "hr.csv", ("Email", "Role"), [["a@acme.example", "viewer"]])
    named = f"--report-dir {tmp_path / 'gone'} (from env BULKUSERS_REPORT_DIR): no such folder"
    for args in (("import", str(source)), ("export", "-")):
        result = run_cli(*args, *served.connect())
        assert result.exit_code == 2, result.output
        assert named in result.output, args
    assert served.emulator.requests == []
    shown = run_cli("config", "show")
    assert f"a run with these settings would be refused: {named}" in shown.output


def test_an_unwritable_report_dir_from_a_profile_is_named_as_set_there(
        served: Served, run_cli: RunCli, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A profile's report_dir that cannot be written: import stops before any request, exit 2,
    in one line naming the profile; config show warns."""
    locked = tmp_path / "locked"
    locked.mkdir()
    (tmp_path / "bulkusers.toml").write_text(f'[profiles.p]\nreport_dir = "{locked}"\n',
                                            encoding="utf-8")
    access = os.access

    def no_writing(path: str | os.PathLike[str], mode: int, **kwargs: object) -> bool:
        # Root may write anywhere: the folder is made unwritable for the check alone.
        return False if Path(path) == locked and mode & os.W_OK else access(path, mode)

    monkeypatch.setattr(os, "access", no_writing)
    config = ("--config", str(tmp_path / "bulkusers.toml"), "--profile", "p")
    source = write_csv(tmp_path / "hr.csv", ("Email", "Role"), [["a@acme.example", "viewer"]])
    named = f"--report-dir {locked} (from profile p): the folder is not writable"
    result = run_cli("import", str(source), *served.connect(), *config)
    assert result.exit_code == 2, result.output
    assert named in result.output
    assert served.emulator.requests == []
    shown = run_cli("config", "show", *config)
    assert f"a run with these settings would be refused: {named}" in shown.output


def test_report_dir_holds_report_summary_and_undo_journal(
        served: Served, run_cli: RunCli, tmp_path: Path) -> None:
    """--report-dir puts the report, its summary and the undo journal in that folder, and
    reactivate's own report goes there too."""
    seed(served, run_cli, tmp_path)
    reports = tmp_path / "reports"
    reports.mkdir()
    leavers = write_csv(tmp_path / "leavers.csv", ("Email",), [["ann@acme.example"]])
    result = run_cli("deactivate", str(leavers), *served.connect(), "--yes",
                     "--report-dir", str(reports))
    assert result.exit_code == 0, result.output
    report = next(reports.glob("leavers.deactivate.*.report.csv"))
    stem = report.name.removesuffix(".report.csv")
    assert (reports / f"{stem}.summary.json").is_file()
    assert (reports / f"{stem}.undo.jsonl").is_file()
    assert [p.name for p in tmp_path.glob("leavers.*")] == ["leavers.csv"]  # the input only
    result = run_cli("reactivate", str(report), *served.connect(), "--report-dir",
                     str(reports))
    assert result.exit_code == 0, result.output
    again = list(reports.glob("leavers.reactivate.*.report.csv"))
    assert len(again) == 1, list(reports.iterdir())
    assert read_report(again[0])[0]["status"] == "updated"


def test_reactivate_report_name_does_not_stack(served: Served, run_cli: RunCli,
                                               tmp_path: Path) -> None:
    """Reactivating from leavers.deactivate.<time>.report.csv gives
    leavers.reactivate.<time>.report.csv, not a name with both suffixes."""
    seed(served, run_cli, tmp_path)
    leavers = write_csv(tmp_path / "leavers.csv", ("Email",), [["bob@acme.example"]])
    assert run_cli("deactivate", str(leavers), *served.connect(), "--yes").exit_code == 0
    report = next(tmp_path.glob("leavers.deactivate.*.report.csv"))
    assert run_cli("reactivate", str(report), *served.connect()).exit_code == 0
    names = sorted(p.name for p in tmp_path.glob("*.report.csv"))
    assert [n.split(".")[:2] for n in names if n.startswith("leavers")] == [
        ["leavers", "deactivate"], ["leavers", "reactivate"]]
    assert not [n for n in names if n.count(".report") > 1]


@pytest.mark.parametrize(("name", "stem"), [
    ("leavers.csv", "leavers"),
    ("leavers.deactivate.20261130T0102.report.csv", "leavers"),
    ("leavers.deactivate.20261130-010203.report.csv", "leavers"),
    ("leavers.deactivate.20261130-010203-2.report.csv", "leavers"),
    ("hr.import.20261130-010203.report.reactivate.20261130-020304.report.csv", "hr"),
    ("hr.import.20261130-010203.report.failed.csv", "hr.import.20261130-010203.report.failed"),
    ("q3.update.plan.csv", "q3.update.plan"),
    ("team.v2.xlsx", "team.v2"),
    (".report.csv", ".report"),
])
def test_report_stem_drops_only_earlier_run_suffixes(name: str, stem: str) -> None:
    """Only the suffixes a default report name adds are dropped, stacked or not."""
    assert report_stem(Path(name)) == stem


def test_default_report_name_is_built_from_the_clean_stem(tmp_path: Path) -> None:
    """A report of a report is named STEM.COMMAND.TIME.report.csv in the folder given."""
    now = datetime(2026, 11, 30, 1, 2, 3)
    path = default_report_path(Path("x/leavers.deactivate.20261130T0102.report.csv"),
                               "reactivate", tmp_path, now)
    assert path == tmp_path / "leavers.reactivate.20261130-010203.report.csv"
    path.write_text("taken", encoding="utf-8")
    again = default_report_path(Path("leavers.csv"), "reactivate", tmp_path, now)
    assert again.name == "leavers.reactivate.20261130-010203-2.report.csv"
