"""End to end: `bulkusers diff` and `export --compare` on exports of nights of syncs."""

from __future__ import annotations

import csv
import os
import random
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

from click.testing import Result
from openpyxl import Workbook, load_workbook

from bulkusers.errors import EXIT_CHANGED
from tests.conftest import Served, read_report, summary_of, write_csv
from tests.test_sync_e2e import STAFF, hr_file

RunCli = Callable[..., Result]
Seen = set[tuple[str, str, str, str]]


def night(run_cli: RunCli, served: Served, tmp_path: Path, name: str,
          people: Sequence[tuple[str, str, str, str, str]]) -> None:
    """Sync one HR snapshot into the emulator (scoped to corp.example)."""
    result = run_cli("sync", str(hr_file(tmp_path / f"{name}.csv", people)),
                     *served.connect(), "--scope-domain", "corp.example", "--yes",
                     "--report", str(tmp_path / f"{name}.report.csv"))
    assert result.exit_code == 0, result.output


def export(run_cli: RunCli, served: Served, output: Path) -> None:
    """Export every user."""
    result = run_cli("export", str(output), *served.connect())
    assert result.exit_code == 0, result.output


def shuffled_copy(source: Path, target: Path, seed: int) -> Path:
    """The same CSV with its rows and its columns in another order."""
    with source.open(encoding="utf-8-sig", newline="") as handle:
        rows = list(csv.reader(handle))
    order = list(range(len(rows[0])))
    rng = random.Random(seed)
    rng.shuffle(order)
    body = rows[1:]
    rng.shuffle(body)
    with target.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        for row in [rows[0], *body]:
            writer.writerow([row[i] for i in order])
    return target


def seen(path: Path) -> Seen:
    """A diff's lines as (change, email, old, new) with the fields that matter per kind."""
    found: Seen = set()
    for line in read_report(path) if path.suffix == ".csv" else xlsx_lines(path):
        kind = line["change"]
        if kind == "role":
            found.add((kind, line["email"], line["role_old"], line["role_new"]))
        elif kind == "groups":
            found.add((kind, line["email"], line["groups_removed"], line["groups_added"]))
        else:
            found.add((kind, line["email"], "", ""))
    return found


def xlsx_lines(path: Path) -> list[dict[str, str]]:
    """An XLSX diff's lines as dicts of text."""
    book = load_workbook(path, read_only=True)
    sheet = book.worksheets[0]
    rows = [["" if c is None else str(c) for c in row] for row in sheet.iter_rows(
        values_only=True)]
    book.close()
    width = len(rows[0])
    return [dict(zip(rows[0], [*row, *[""] * (width - len(row))], strict=True))
            for row in rows[1:]]


def diff(run_cli: RunCli, old: Path, new: Path, output: Path, *extra: str) -> Result:
    """Run `bulkusers diff`."""
    return run_cli("diff", str(old), str(new), "--output", str(output), *extra)


def test_diffs_of_nightly_exports_show_the_known_changes(served: Served, run_cli: RunCli,
                                                         tmp_path: Path) -> None:
    """Exports taken after each night's sync differ by exactly that night's hires, leavers,
    role and group changes (the computed Admins membership of a promoted user is not a group
    change), whatever the format and the order of rows and columns; the JSON summary counts
    them and the exit code is 4."""
    people = dict(STAFF)
    night(run_cli, served, tmp_path, "n1", list(people.values()))
    export(run_cli, served, tmp_path / "e1.csv")
    export(run_cli, served, tmp_path / "e1.xlsx")
    del people["dan"]
    people["bob"] = ("bob@corp.example", "Bob", "Ray", "Admin", "Sales")
    people["cat"] = ("cat@corp.example", "Cat", "Roe", "Designer", "Finance|Leadership")
    people["kim"] = ("kim@corp.example", "Kim", "Ng", "Viewer", "Sales")
    night(run_cli, served, tmp_path, "n2", list(people.values()))
    export(run_cli, served, tmp_path / "e2.csv")
    export(run_cli, served, tmp_path / "e2.xlsx")
    expected2: Seen = {
        ("added", "kim@corp.example", "", ""),
        ("role", "bob@corp.example", "consumer", "admin"),
        ("role", "dan@corp.example", "contributor", "consumer"),
        ("groups", "dan@corp.example", "Marketing; Sales", ""),
        ("groups", "cat@corp.example", "Engineering", "Finance; Leadership"),
    }
    pairs = [(tmp_path / "e1.csv", tmp_path / "e2.csv", tmp_path / "d.csv"),
             (tmp_path / "e1.xlsx", tmp_path / "e2.xlsx", tmp_path / "d.xlsx"),
             (shuffled_copy(tmp_path / "e1.csv", tmp_path / "s1.csv", 1), tmp_path / "e2.xlsx",
              tmp_path / "ds.csv"),
             (tmp_path / "e1.xlsx", shuffled_copy(tmp_path / "e2.csv", tmp_path / "s2.csv", 2),
              tmp_path / "dx.xlsx")]
    for old, new, output in pairs:
        result = diff(run_cli, old, new, output)
        assert result.exit_code == EXIT_CHANGED, result.output
        assert seen(output) == expected2, (old, new)
        summary = summary_of(output)
        assert summary["counts"] == {"added": 1, "removed": 0, "role": 2, "groups": 2,
                                     "inactive": 0}
        assert summary["exit_code"] == EXIT_CHANGED
    # Night 3: eve is deleted, dan is rehired as a designer in Marketing.
    del people["eve"]
    people["dan"] = ("dan@corp.example", "Dan", "Poe", "Designer", "Marketing")
    result = run_cli("sync", str(hr_file(tmp_path / "n3.csv", list(people.values()))),
                     *served.connect(), "--scope-domain", "corp.example", "--yes",
                     "--missing", "delete", "--report", str(tmp_path / "n3.report.csv"))
    assert result.exit_code == 0, result.output
    export(run_cli, served, tmp_path / "e3.csv")
    result = diff(run_cli, tmp_path / "e2.csv", tmp_path / "e3.csv", tmp_path / "d3.csv")
    assert result.exit_code == EXIT_CHANGED
    assert seen(tmp_path / "d3.csv") == {
        ("removed", "eve@corp.example", "", ""),
        ("role", "dan@corp.example", "consumer", "contributor"),
        ("groups", "dan@corp.example", "", "Marketing"),
    }
    same = diff(run_cli, tmp_path / "e3.csv", shuffled_copy(tmp_path / "e3.csv",
                                                            tmp_path / "s3.csv", 3),
                tmp_path / "none.csv")
    assert same.exit_code == 0, same.output
    assert read_report(tmp_path / "none.csv") == []


def test_export_compare_writes_the_changes_and_exits_4_only_when_something_changed(
        served: Served, run_cli: RunCli, tmp_path: Path) -> None:
    """export --compare PREVIOUS exports, then writes the changes beside OUTPUT: exit 4
    after a change, 0 when nothing changed."""
    people = dict(STAFF)
    night(run_cli, served, tmp_path, "n1", list(people.values()))
    export(run_cli, served, tmp_path / "monday.xlsx")
    people["gus"] = ("gus@corp.example", "Gus", "Kim", "Designer", "Sales")
    night(run_cli, served, tmp_path, "n2", list(people.values()))
    result = run_cli("export", str(tmp_path / "tuesday.xlsx"), *served.connect(),
                     "--compare", str(tmp_path / "monday.xlsx"))
    assert result.exit_code == EXIT_CHANGED, result.output
    assert (tmp_path / "tuesday.xlsx").is_file()
    assert seen(tmp_path / "tuesday.changes.xlsx") == {
        ("role", "gus@corp.example", "consumer", "contributor")}
    result = run_cli("export", str(tmp_path / "wednesday.csv"), *served.connect(),
                     "--compare", str(tmp_path / "tuesday.xlsx"), "--changes",
                     str(tmp_path / "wed-changes.csv"))
    assert result.exit_code == 0, result.output
    assert read_report(tmp_path / "wed-changes.csv") == []
    counts = summary_of(tmp_path / "wed-changes.csv")["counts"]
    assert set(counts.values()) == {0}


def test_export_compare_without_a_previous_export_still_exports_and_exits_0(
        served: Served, run_cli: RunCli, tmp_path: Path) -> None:
    """A first night (PREVIOUS does not exist): the export is written, one warning names
    PREVIOUS, the summary says nothing was compared, exit 0; the next night compares."""
    night(run_cli, served, tmp_path, "n1", list(STAFF.values()))
    first = run_cli("--quiet", "export", str(tmp_path / "users-day2.xlsx"), *served.connect(),
                    "--compare", str(tmp_path / "users-day1.xlsx"))
    assert first.exit_code == 0, first.output
    assert first.output.splitlines() == [
        f"bulkusers: warning: --compare {tmp_path / 'users-day1.xlsx'}: no such file, so "
        "nothing was compared (the first run, or the previous one did not export); the "
        "export was written and is the next run's PREVIOUS"]
    assert (tmp_path / "users-day2.xlsx").is_file()
    assert not (tmp_path / "users-day2.changes.xlsx").exists()
    summary = summary_of(tmp_path / "users-day2.xlsx")
    assert summary["exit_code"] == 0
    assert summary["compare"] == {
        "previous": str(tmp_path / "users-day1.xlsx"), "compared": False, "changes": None,
        "changed": None, "reason": f"{tmp_path / 'users-day1.xlsx'}: no such file"}
    second = run_cli("export", str(tmp_path / "users-day3.xlsx"), *served.connect(),
                     "--compare", str(tmp_path / "users-day2.xlsx"))
    assert second.exit_code == 0, second.output
    summary = summary_of(tmp_path / "users-day3.xlsx")
    assert summary["compare"]["compared"] is True
    assert summary["compare"]["changed"] == 0


def test_an_unreadable_previous_export_is_an_error_after_the_export_is_written(
        served: Served, run_cli: RunCli, tmp_path: Path) -> None:
    """PREVIOUS exists but is not an export: tonight's export is still written (it is the
    next night's PREVIOUS), then one error line, exit 2, and the summary says why."""
    previous = write_csv(tmp_path / "users-day1.csv", ("name", "role"), [["Ann", "viewer"]])
    result = run_cli("export", str(tmp_path / "users-day2.csv"), *served.connect(),
                     "--compare", str(previous))
    assert result.exit_code == 2, result.output
    assert (tmp_path / "users-day2.csv").is_file()
    errors = [line for line in result.output.splitlines() if "error" in line]
    assert len(errors) == 1
    assert errors[0].startswith(f"bulkusers: error: {previous}")
    assert errors[0].endswith("; the export was written, nothing was compared")
    summary = summary_of(tmp_path / "users-day2.csv")
    assert summary["exit_code"] == 2
    assert summary["compare"]["compared"] is False
    assert summary["compare"]["reason"].startswith(str(previous))


def handmade(path: Path, rows: Sequence[Sequence[str]], taken: datetime) -> Path:
    """An export-shaped CSV written by hand, with its modification time set to `taken`."""
    write_csv(path, ("email", "role", "groups", "created", "lastLogin"), rows)
    stamp = taken.timestamp()
    os.utime(path, (stamp, stamp))
    return path


def test_newly_inactive_users_are_judged_at_each_exports_time(run_cli: RunCli,
                                                             tmp_path: Path) -> None:
    """--inactive-days lists users who crossed the line between OLD's and NEW's times; a
    user who never signed in counts from its creation; the long inactive and the new are
    not listed as newly inactive."""
    new_time = datetime(2026, 11, 30, 3, 0, tzinfo=UTC)
    old_time = new_time - timedelta(days=1)

    def ago(days: float) -> str:
        return (new_time - timedelta(days=days)).isoformat().replace("+00:00", "Z")

    old_rows = [["crossed@x.example", "consumer", "", ago(400), ago(90.5)],
                ["long@x.example", "consumer", "", ago(400), ago(200)],
                ["never@x.example", "consumer", "", ago(90.5), ""],
                ["fresh@x.example", "consumer", "", ago(10), ""],
                ["busy@x.example", "consumer", "", ago(400), ago(95)]]
    new_rows = [row[:] for row in old_rows]
    new_rows[4][4] = ago(0.5)  # busy signed in again
    new_rows.append(["hired@x.example", "consumer", "", ago(200), ""])
    old = handmade(tmp_path / "old.csv", old_rows, old_time)
    new = handmade(tmp_path / "new.csv", new_rows, new_time)
    result = diff(run_cli, old, new, tmp_path / "d.csv", "--inactive-days", "90")
    assert result.exit_code == EXIT_CHANGED
    assert seen(tmp_path / "d.csv") == {("inactive", "crossed@x.example", "", ""),
                                        ("inactive", "never@x.example", "", ""),
                                        ("added", "hired@x.example", "", "")}
    plain = diff(run_cli, old, new, tmp_path / "p.csv")
    assert seen(tmp_path / "p.csv") == {("added", "hired@x.example", "", "")}
    assert plain.exit_code == EXIT_CHANGED


def test_inactive_days_past_the_calendars_start_is_no_internal_error(
        run_cli: RunCli, tmp_path: Path) -> None:
    """--inactive-days 800000 (before year 1) judges no readable date inactive and only the
    user with no readable date, instead of ending in an OverflowError (exit 70)."""
    new_time = datetime(2026, 11, 30, 3, 0, tzinfo=UTC)
    rows = [["dated@x.example", "consumer", "", "2020-01-01T00:00:00Z", ""],
            ["undated@x.example", "consumer", "", "", ""]]
    old = handmade(tmp_path / "old.csv", rows, new_time - timedelta(days=1))
    new = handmade(tmp_path / "new.csv", [*rows, ["new@x.example", "consumer", "", "", ""]],
                   new_time)
    result = diff(run_cli, old, new, tmp_path / "d.csv", "--inactive-days", "800000")
    assert result.exit_code == EXIT_CHANGED, result.output
    assert seen(tmp_path / "d.csv") == {("added", "new@x.example", "", "")}


def test_cells_are_formula_safe_and_emails_match_ignoring_ascii_case_only(
        run_cli: RunCli, tmp_path: Path) -> None:
    """Group names that look like formulas are neutralised in CSV and text in XLSX; ANN@
    and ann@ are one user, while straße@ and strasse@ are two."""
    taken = datetime(2026, 11, 30, tzinfo=UTC)
    old = handmade(tmp_path / "old.csv", [["ANN@x.example", "consumer", "Sales", "", ""],
                                         ["strasse@x.example", "consumer", "", "", ""]], taken)
    new = handmade(tmp_path / "new.csv", [["ann@X.example", "consumer", "=1+2; Sales", "", ""],
                                         ["straße@x.example", "consumer", "", "", ""]], taken)
    assert diff(run_cli, old, new, tmp_path / "d.csv").exit_code == EXIT_CHANGED
    with (tmp_path / "d.csv").open(encoding="utf-8-sig", newline="") as handle:
        text = handle.read()
    assert "'=1+2" in text
    assert seen(tmp_path / "d.csv") == {("groups", "ann@X.example", "", "'=1+2"),
                                        ("removed", "strasse@x.example", "", ""),
                                        ("added", "straße@x.example", "", "")}
    assert diff(run_cli, old, new, tmp_path / "d.xlsx").exit_code == EXIT_CHANGED
    book = load_workbook(tmp_path / "d.xlsx")
    cells = [c for row in book.worksheets[0].iter_rows() for c in row if c.value == "=1+2"]
    assert cells
    assert all(c.data_type == "s" for c in cells)


def test_stdout_output_and_bad_inputs(run_cli: RunCli, tmp_path: Path) -> None:
    """-o - writes CSV to stdout; a missing file, a file without an email column or a
    repeated email is one line and exit 2."""
    taken = datetime(2026, 11, 30, tzinfo=UTC)
    old = handmade(tmp_path / "old.csv", [["a@x.example", "consumer", "", "", ""]], taken)
    new = handmade(tmp_path / "new.csv", [["a@x.example", "admin", "", "", ""]], taken)
    result = run_cli("diff", str(old), str(new), "-o", "-", "--quiet")
    assert result.exit_code == EXIT_CHANGED
    assert "role,a@x.example,consumer,admin" in result.output
    repeated = handmade(tmp_path / "rep.csv", [["a@x.example", "consumer", "", "", ""],
                                              ["A@x.example", "admin", "", "", ""]], taken)
    noemail = write_csv(tmp_path / "noemail.csv", ("name", "role"), [["a", "consumer"]])
    book = Workbook()
    book.save(tmp_path / "empty.xlsx")
    for bad in (tmp_path / "missing.csv", repeated, noemail, tmp_path / "empty.xlsx"):
        result = diff(run_cli, old, bad, tmp_path / "out.csv")
        assert result.exit_code == 2, (bad, result.output)
        assert "Traceback" not in result.output
        assert len(result.output.strip().splitlines()) == 1
    wrong = diff(run_cli, old, new, tmp_path / "out.txt")
    assert wrong.exit_code == 2
    assert ".csv or .xlsx" in wrong.output


def test_times_read_the_same_from_a_csv_export_and_an_xlsx_one(run_cli: RunCli,
                                                                tmp_path: Path) -> None:
    """A user's lastLogin shows as the server writes it (ISO 8601, UTC, "Z") whether OLD is
    the CSV export, whose cell is that text, or the XLSX export, whose date cell reads back
    as "2023-08-30 10:17:00"."""
    stamp = "2023-08-30T10:17:00.000Z"
    as_csv = handmade(tmp_path / "old.csv", [["gone@x.example", "consumer", "", stamp, stamp],
                                             ["kept@x.example", "consumer", "", stamp, ""]],
                      datetime(2026, 11, 29, tzinfo=UTC))
    book = Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.append(["email", "role", "groups", "created", "lastLogin"])
    moment = datetime(2023, 8, 30, 10, 17)  # an export's date cells hold UTC, without a zone
    for email, login in (("gone@x.example", moment), ("kept@x.example", None)):
        sheet.append([email, "consumer", "", moment, login])
        for cell in sheet[sheet.max_row][3:]:
            cell.number_format = "yyyy-mm-dd hh:mm:ss"
    book.save(tmp_path / "old.xlsx")
    new = handmade(tmp_path / "new.csv", [["kept@x.example", "consumer", "", stamp, ""]],
                   datetime(2026, 11, 30, tzinfo=UTC))
    shown = []
    for old in (as_csv, tmp_path / "old.xlsx"):
        output = tmp_path / f"d-{old.suffix[1:]}.csv"
        assert diff(run_cli, old, new, output).exit_code == EXIT_CHANGED
        (line,) = read_report(output)
        shown.append((line["change"], line["email"], line["lastLogin_old"]))
    assert shown == [("removed", "gone@x.example", stamp)] * 2


def test_a_previous_export_that_links_to_nowhere_is_an_error_not_a_first_night(
        served: Served, run_cli: RunCli, tmp_path: Path) -> None:
    """PREVIOUS a symbolic link whose target is gone (a moved archive) is a mistake, not the
    first night: the export is written, then one error line and exit 2."""
    previous = tmp_path / "users-day1.csv"
    previous.symlink_to(tmp_path / "archive" / "gone.csv")
    result = run_cli("export", str(tmp_path / "users-day2.csv"), *served.connect(),
                     "--compare", str(previous))
    assert result.exit_code == 2, result.output
    assert (tmp_path / "users-day2.csv").is_file()
    assert "nothing was compared" in result.output
    assert "warning" not in result.output
