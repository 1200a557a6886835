"""End to end, as a hostile user and a tired admin: identity, hostile cells, workbooks, secrets,
repeated runs and dry-run lists. After each run the emulator's state is compared with the
report, row by row."""

from __future__ import annotations

import csv
import json
import os
import re
import subprocess
import sys
import zipfile
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest
from click.testing import Result
from openpyxl import Workbook, load_workbook
from openpyxl.chart import BarChart, Reference

from bulkusers.emulator.records import UserRecord
from tests.conftest import Served, read_report, summary_of, write_csv
from tests.terminal import RUN_S, answer_prompt

RunCli = Callable[..., Result]
HEADER = ("Email", "First Name", "Last Name", "Role", "Groups")
CHANGED = frozenset({"created", "updated", "deactivated", "deleted"})


# -- helpers --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Held:
    """One user as the emulator holds it."""

    email: str
    role: str
    groups: frozenset[str]
    first: str
    last: str


def held(served: Served) -> dict[str, Held]:
    """Every user the emulator holds, by id."""
    store = served.emulator.store
    return {uid: Held(u.email, store.role_name_of(uid), frozenset(store.group_names_of(uid)),
                      u.first_name, u.last_name) for uid, u in store.users.items()}


def by_email(served: Served, email: str) -> Held | None:
    """The user stored with exactly this email (no folding of any kind), or None."""
    found = [h for h in held(served).values() if h.email == email]
    assert len(found) <= 1
    return found[0] if found else None


def run(served: Served, run_cli: RunCli, command: str, path: Path, report: Path,
        *extra: str) -> Result:
    """A write command against the emulator with an explicit report path."""
    args = [command, str(path), *served.connect(), "--report", str(report)]
    if command in ("deactivate", "delete") and "--dry-run" not in extra:
        args.append("--yes")
    return run_cli(*args, *extra)


def agrees(served: Served, report: Path, before: dict[str, Held]) -> list[dict[str, str]]:
    """Assert the server's state is what the report says, line by line: a user changed only
    where its line says so, as it says, and named as the server stores it; the lines."""
    lines = sorted(read_report(report), key=lambda line: int(line["row"] or 0))
    after = held(served)
    touched: set[str] = set()
    for line in lines:
        status, uid = line["status"], line["user_id"]
        if status == "created":
            assert uid in after, line
            assert uid not in before, line
            assert after[uid].email == line["email"], line
        elif status == "deleted":
            assert uid in before, line
            assert uid not in after, line
            assert before[uid].email == line["email"], line
        elif status == "deactivated":
            assert (after[uid].role, after[uid].groups) == ("consumer", frozenset()), line
            assert before[uid].email == line["email"], line
        elif status == "updated":
            assert uid in before, line
            assert uid in after, line
            assert before[uid].email == line["email"], line
        elif uid in before:  # unchanged, skipped, failed, planned: the user is as it was
            assert after.get(uid) == before[uid], line
            assert before[uid].email == line["email"], line
        if status in CHANGED:
            touched.add(uid)
    for uid, state in before.items():
        if uid not in touched:
            assert after.get(uid) == state, (uid, state)
    for uid in after.keys() - before.keys():
        assert uid in touched, after[uid]
    return lines


def seed(served: Served, run_cli: RunCli, tmp_path: Path, rows: Sequence[Sequence[str]],
         *extra: str) -> None:
    """Create users through the CLI (rows of HEADER)."""
    source = write_csv(tmp_path / "seed.csv", HEADER, rows)
    result = run(served, run_cli, "import", source, tmp_path / "seed-report.csv", *extra)
    assert result.exit_code == 0, result.output


def plant(served: Served, email: str, *, first: str = "", last: str = "",
          role: str = "contributor", groups: Iterable[str] = ()) -> str:
    """Put a user straight into the emulator's store (spellings the API would not take)."""
    store = served.emulator.store

    def insert() -> str:
        uid = store.new_id()
        group_ids = [store._group_names[g.lower()] for g in groups]
        store.insert_user(UserRecord(id=uid, email=email, user_name=email,
                                     role_id=store.role_ids[role], tenant_id=store.tenant_id,
                                     created=store.now(), first_name=first, last_name=last,
                                     groups=group_ids))
        return uid

    return str(served.host.call(insert))


def statuses(lines: Iterable[dict[str, str]]) -> dict[str, str]:
    """email -> status."""
    return {line["email"]: line["status"] for line in lines}


# -- 1. identity: ASCII letter case only --------------------------------------------------------

#: (as the server stores a user, a spelling a mail system delivers elsewhere)
LOOKALIKES = (
    ("strasse@ex.example", "straße@ex.example"),
    ("file@ex.example", "\ufb01le@ex.example"),             # the fi ligature
    ("émile@ex.example", "Émile@ex.example"),               # non-ASCII case
    ("kate@ex.example", "\u212aate@ex.example"),            # KELVIN SIGN
    ("ivan@ex.example", "\u0131van@ex.example"),           # dotless i
    ("irma@ex.example", "İrma@ex.example"),                 # dotted capital I
    ("ann@ex.example", "\uff41nn@ex.example"),              # fullwidth a
    ("josé@ex.example", "jose\u0301@ex.example"),           # NFC on the server, NFD here
)


def seed_lookalikes(served: Served, run_cli: RunCli, tmp_path: Path) -> None:
    """The server-side spellings, each an Admin in Finance, plus bob (matched by ASCII case)."""
    rows = [[email, "Orig", "User", "Admin", "Finance"] for email, _ in LOOKALIKES]
    rows.append(["bob@ex.example", "Bob", "Ray", "Admin", "Finance"])
    seed(served, run_cli, tmp_path, rows)
    for email, _ in LOOKALIKES:
        assert by_email(served, email) is not None, email


def lookalike_file(tmp_path: Path, header: Sequence[str], rest: Sequence[str]) -> Path:
    """A file naming every lookalike spelling, and bob in other ASCII case."""
    rows = [[other, *rest] for _, other in LOOKALIKES] + [["BoB@Ex.Example", *rest]]
    return write_csv(tmp_path / "lookalikes.csv", header, rows)


@pytest.mark.parametrize(("command", "api"), [("delete", "v1"), ("deactivate", "v1"),
                                             ("delete", "legacy"), ("deactivate", "legacy")])
def test_lookalike_emails_never_remove_another_user(
        served: Served, run_cli: RunCli, tmp_path: Path, command: str, api: str) -> None:
    """delete/deactivate of lookalike spellings remove no one; an ASCII-case variant does."""
    seed_lookalikes(served, run_cli, tmp_path)
    before = held(served)
    source = lookalike_file(tmp_path, ("Email",), ())
    report = tmp_path / "r.csv"
    result = run(served, run_cli, command, source, report, "--api", api)
    assert result.exit_code == 1, result.output
    lines = agrees(served, report, before)
    done = "deleted" if command == "delete" else "deactivated"
    assert statuses(lines) == {**{other: "skipped" for _, other in LOOKALIKES},
                               "bob@ex.example": done}
    for email, _ in LOOKALIKES:
        assert by_email(served, email) == before[next(
            uid for uid, h in before.items() if h.email == email)]


@pytest.mark.parametrize("extra", [("update",), ("import", "--on-existing", "update"),
                                   ("update", "--api", "legacy")])
def test_lookalike_emails_never_update_another_user(
        served: Served, run_cli: RunCli, tmp_path: Path, extra: tuple[str, ...]) -> None:
    """update and upsert never change a user via a lookalike spelling; bob@ in caps is updated."""
    seed_lookalikes(served, run_cli, tmp_path)
    before = held(served)
    source = lookalike_file(tmp_path, HEADER, ("New", "Name", "Viewer", "Sales"))
    report = tmp_path / "r.csv"
    result = run(served, run_cli, extra[0], source, report, *extra[1:])
    lines = agrees(served, report, before)
    expected = "failed" if extra[0] == "update" else "created"
    got = statuses(lines)
    assert got.pop("bob@ex.example") == "updated"
    assert set(got.values()) == {expected}
    assert len(got) == len(LOOKALIKES)
    assert result.exit_code == (1 if expected == "failed" else 0), result.output
    for email, _ in LOOKALIKES:
        assert by_email(served, email).role == "admin"  # type: ignore[union-attr]


def test_import_creates_each_lookalike_as_its_own_user(
        served: Served, run_cli: RunCli, tmp_path: Path) -> None:
    """import creates each lookalike spelling as a new user; only an ASCII-case variant exists."""
    seed_lookalikes(served, run_cli, tmp_path)
    before = held(served)
    source = lookalike_file(tmp_path, HEADER, ("New", "Name", "Viewer", "Sales"))
    report = tmp_path / "r.csv"
    result = run(served, run_cli, "import", source, report)
    assert result.exit_code == 0, result.output
    lines = agrees(served, report, before)
    got = statuses(lines)
    assert got.pop("bob@ex.example") == "skipped"
    assert set(got.values()) == {"created"}
    assert len(held(served)) == len(before) + len(LOOKALIKES)


def test_prescan_repeats_only_ascii_case_variants(
        served: Served, run_cli: RunCli, tmp_path: Path) -> None:
    """straße@/strasse@, ﬁ/fi, É/é, K/k rows are distinct users; A@ and a@ are repeats."""
    rows = [["straße@ex.example", "S", "1", "Viewer", ""],
            ["strasse@ex.example", "S", "2", "Viewer", ""],
            ["\ufb01n@ex.example", "F", "1", "Viewer", ""],
            ["fin@ex.example", "F", "2", "Viewer", ""],
            ["Éva@ex.example", "E", "1", "Viewer", ""],
            ["éva@ex.example", "E", "2", "Viewer", ""],
            ["\u212aim@ex.example", "K", "1", "Viewer", ""],
            ["kim@ex.example", "K", "2", "Viewer", ""],
            ["Dup@Ex.Example", "D", "1", "Viewer", ""],
            ["dup@ex.example", "D", "2", "Viewer", ""]]
    source = write_csv(tmp_path / "rows.csv", HEADER, rows)
    before = held(served)
    report = tmp_path / "r.csv"
    result = run(served, run_cli, "import", source, report)
    assert result.exit_code == 1, result.output
    lines = agrees(served, report, before)
    created = [line for line in lines if line["status"] == "created"]
    assert len(created) == 8
    refused = [line for line in lines if line["status"] == "skipped"]
    assert [line["row"] for line in refused] == ["10", "11"]
    assert all("also on row" in line["error"] for line in refused)


def test_reactivate_never_restores_a_lookalike(
        served: Served, run_cli: RunCli, tmp_path: Path) -> None:
    """A deactivate report whose line names straße@ (no id) does not reactivate strasse@."""
    seed(served, run_cli, tmp_path, [["strasse@ex.example", "S", "T", "Admin", "Finance"]])
    leavers = write_csv(tmp_path / "l.csv", ("Email",), [["strasse@ex.example"]])
    report = tmp_path / "d.csv"
    assert run(served, run_cli, "deactivate", leavers, report).exit_code == 0
    with report.open(encoding="utf-8-sig", newline="") as handle:
        table = list(csv.reader(handle))
    table[1][1], table[1][4] = "straße@ex.example", ""
    forged = tmp_path / "forged.csv"
    with forged.open("w", encoding="utf-8", newline="") as handle:
        csv.writer(handle).writerows(table)
    before = held(served)
    result = run_cli("reactivate", str(forged), *served.connect(), "--report",
                     str(tmp_path / "re.csv"))
    assert result.exit_code == 1, result.output
    assert held(served) == before
    assert by_email(served, "strasse@ex.example").role == "consumer"  # type: ignore[union-attr]


def test_results_name_users_as_the_server_stores_them(
        served: Served, run_cli: RunCli, tmp_path: Path) -> None:
    """Reports and dry-run lists name a user in the server's spelling, role and groups."""
    plant(served, "Mixed.Case@Ex.Example", role="admin", groups=["Finance", "Sales"])
    before = held(served)
    source = write_csv(tmp_path / "l.csv", ("Email", "Role", "Groups"),
                       [["mixed.case@ex.example", "Viewer", "Marketing"]])
    report = tmp_path / "r.csv"
    result = run(served, run_cli, "delete", source, report, "--dry-run")
    assert result.exit_code == 0, result.output
    lines = agrees(served, report, before)
    assert [line["email"] for line in lines] == ["Mixed.Case@Ex.Example"]
    listed = [text for text in result.output.splitlines() if "Mixed.Case@Ex.Example" in text]
    assert listed
    assert "Admin" in listed[0]
    assert "Finance" in listed[0]
    assert "Sales" in listed[0]
    assert "Marketing" not in result.output


# -- 2. emails as identity providers send them ----------------------------------------------


def test_create_trims_and_lower_cases_ascii_only(
        served: Served, run_cli: RunCli, tmp_path: Path) -> None:
    """import stores emails trimmed with only their ASCII letters lower-cased."""
    rows = [["  Ann.Lee@Acme.Example ", "Ann", "Lee", "Viewer", ""],
            ["ÉVA.Nagy@ACME.example", "Eva", "Nagy", "Viewer", ""],
            ["MAX@ACME.EXAMPLE", "Max", "Mu", "Viewer", ""]]
    source = write_csv(tmp_path / "new.csv", HEADER, rows)
    before = held(served)
    report = tmp_path / "r.csv"
    result = run(served, run_cli, "import", source, report)
    assert result.exit_code == 0, result.output
    lines = agrees(served, report, before)
    assert [line["email"] for line in lines] == [
        "ann.lee@acme.example", "Éva.nagy@acme.example", "max@acme.example"]
    stored = {h.email for h in held(served).values()} - {h.email for h in before.values()}
    assert stored == {"ann.lee@acme.example", "Éva.nagy@acme.example", "max@acme.example"}


def test_keep_email_case_stores_the_files_spelling(
        served: Served, run_cli: RunCli, tmp_path: Path) -> None:
    """import --keep-email-case stores Ann.Lee@Acme.Example as typed (trimmed)."""
    rows = [[" Ann.Lee@Acme.Example", "Ann", "Lee", "Viewer", ""],
            ["MAX@ACME.EXAMPLE", "Max", "Mu", "Viewer", ""]]
    source = write_csv(tmp_path / "new.csv", HEADER, rows)
    before = held(served)
    report = tmp_path / "r.csv"
    assert run(served, run_cli, "import", source, report, "--keep-email-case").exit_code == 0
    agrees(served, report, before)
    assert by_email(served, "Ann.Lee@Acme.Example") is not None
    assert by_email(served, "MAX@ACME.EXAMPLE") is not None


@pytest.mark.parametrize("command", [("update",), ("import", "--on-existing", "update")])
def test_case_only_difference_fixes_the_stored_address(
        served: Served, run_cli: RunCli, tmp_path: Path, command: tuple[str, ...]) -> None:
    """A case-only difference fixes the stored address (in changes); a re-run is unchanged."""
    for email in ("Bob.Ray@Acme.Example", "CAT@ACME.EXAMPLE", "dan@acme.example"):
        plant(served, email, first="F", last="L", role="consumer")
    source = write_csv(tmp_path / "u.csv", ("Email",),
                       [["bob.ray@acme.example"], ["Cat@Acme.Example"], ["DAN@ACME.EXAMPLE"]])
    before = held(served)
    report = tmp_path / "r.csv"
    result = run(served, run_cli, command[0], source, report, *command[1:])
    assert result.exit_code == 0, result.output
    lines = agrees(served, report, before)
    assert [(line["email"], line["status"], line["changes"]) for line in lines] == [
        ("Bob.Ray@Acme.Example", "updated",
         "email: 'Bob.Ray@Acme.Example' -> 'bob.ray@acme.example'"),
        ("CAT@ACME.EXAMPLE", "updated", "email: 'CAT@ACME.EXAMPLE' -> 'cat@acme.example'"),
        ("dan@acme.example", "unchanged", "")]
    assert by_email(served, "bob.ray@acme.example") is not None
    assert by_email(served, "cat@acme.example") is not None
    again = tmp_path / "again.csv"
    writes = len(served.emulator.writes())
    assert run(served, run_cli, command[0], source, again, *command[1:]).exit_code == 0
    assert {line["status"] for line in read_report(again)} == {"unchanged"}
    assert len(served.emulator.writes()) == writes


def test_case_fix_comes_with_other_changes_and_keep_case_opts_out(
        served: Served, run_cli: RunCli, tmp_path: Path) -> None:
    """A case fix joins other changes; update --keep-email-case stores the file's spelling."""
    plant(served, "Eve@Acme.Example", first="Eve", role="consumer")
    source = write_csv(tmp_path / "u.csv", ("Email", "First Name"),
                       [["eve@acme.example", "Evelyn"]])
    before = held(served)
    report = tmp_path / "r.csv"
    assert run(served, run_cli, "update", source, report).exit_code == 0
    line = agrees(served, report, before)[0]
    assert line["changes"] == ("email: 'Eve@Acme.Example' -> 'eve@acme.example'; "
                               "firstName: 'Eve' -> 'Evelyn'")
    assert by_email(served, "eve@acme.example") == Held("eve@acme.example", "consumer",
                                                        frozenset(), "Evelyn", "")
    shout = write_csv(tmp_path / "s.csv", ("Email",), [["EVE@ACME.EXAMPLE"]])
    before = held(served)
    kept = tmp_path / "k.csv"
    assert run(served, run_cli, "update", shout, kept, "--keep-email-case").exit_code == 0
    assert agrees(served, kept, before)[0]["changes"] == (
        "email: 'eve@acme.example' -> 'EVE@ACME.EXAMPLE'")
    assert by_email(served, "EVE@ACME.EXAMPLE") is not None


# -- 3. records win when restoring ----------------------------------------------------------


def test_reimported_delete_report_restores_the_record_not_the_file(
        served: Served, run_cli: RunCli, tmp_path: Path) -> None:
    """import DELETE-REPORT re-creates users as recorded, whatever the leavers file said."""
    seed(served, run_cli, tmp_path, [["ann@acme.example", "Ann", "Lee", "Admin", "Finance; Sales"],
                                     ["bob@acme.example", "Bob", "Ray", "Viewer", ""]])
    plant(served, "Cat.Roe@Acme.Example", first="Cat", last="Roe", role="contributor",
          groups=["Engineering"])
    leavers = write_csv(tmp_path / "leavers.csv", HEADER, [
        ["ANN@ACME.EXAMPLE", "Annie", "X", "Viewer", "Marketing"],
        ["bob@acme.example", "Robert", "", "Admin", "Finance; Leadership"],
        ["cat.roe@acme.example", "", "Y", "Viewer", "(clear)"]])
    originals = {h.email: h for h in held(served).values()}
    deleted = tmp_path / "deleted.csv"
    assert run(served, run_cli, "delete", leavers, deleted).exit_code == 0
    before = held(served)
    restored = tmp_path / "restored.csv"
    result = run(served, run_cli, "import", deleted, restored)
    assert result.exit_code == 0, result.output
    lines = agrees(served, restored, before)
    assert statuses(lines) == {"ann@acme.example": "created", "bob@acme.example": "created",
                               "Cat.Roe@Acme.Example": "created"}
    for email in ("ann@acme.example", "bob@acme.example", "Cat.Roe@Acme.Example"):
        assert by_email(served, email) == originals[email]


def test_delete_of_a_deactivated_user_records_the_state_before_deactivation(
        served: Served, run_cli: RunCli, tmp_path: Path) -> None:
    """Deleting a deactivated user records, and restores, its state before deactivation."""
    seed(served, run_cli, tmp_path, [["ann@acme.example", "Ann", "Lee", "Admin", "Finance; Sales"]])
    original = by_email(served, "ann@acme.example")
    leavers = write_csv(tmp_path / "leavers.csv", ("Email",), [["ann@acme.example"]])
    assert run(served, run_cli, "deactivate", leavers, tmp_path / "d.csv").exit_code == 0
    deleted = tmp_path / "deleted.csv"
    assert run(served, run_cli, "delete", leavers, deleted).exit_code == 0
    assert json.loads(read_report(deleted)[0]["previous"])["role"] == "admin"
    before = held(served)
    restored = tmp_path / "restored.csv"
    assert run(served, run_cli, "import", deleted, restored).exit_code == 0
    agrees(served, restored, before)
    assert by_email(served, "ann@acme.example") == original


# -- 5. bounded by design --------------------------------------------------------------------

#: Any character repeated this often: a message quoting a long piece of a huge cell.
LONG_QUOTE = re.compile(r"(.)\1{100,}")


def write_xlsx(path: Path, header: Sequence[str], rows: Sequence[Sequence[object]]) -> Path:
    """Write a one-sheet workbook with openpyxl (formulas stored without values). Texts over
    Excel's 32,767 characters, which openpyxl would cut, are put into the XML afterwards."""
    book = Workbook()
    sheet = book.active
    assert sheet is not None
    big: dict[str, str] = {}
    for row in [list(header), *rows]:
        cells = list(row)
        for i, cell in enumerate(cells):
            if isinstance(cell, str) and len(cell) > 32_767:
                marker = f"BIGCELL{len(big)}MARK"
                big[marker] = cell
                cells[i] = marker
        sheet.append(cells)
    book.save(path)
    if big:
        with zipfile.ZipFile(path) as source:
            parts = {name: source.read(name) for name in source.namelist()}
        for name, data in parts.items():
            if name.endswith(".xml"):
                for marker, text in big.items():
                    data = data.replace(marker.encode(), text.encode())
                parts[name] = data
        with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as target:
            for name, data in parts.items():
                target.writestr(name, data)
    return path


@pytest.mark.parametrize("suffix", ["csv", "xlsx"])
def test_huge_cells_make_only_their_row_invalid_and_are_never_quoted(
        served: Served, run_cli: RunCli, tmp_path: Path, suffix: str) -> None:
    """A 5 MiB cell makes only its row invalid, with a reason that does not quote it."""
    huge = 5 * 1024 * 1024
    header = (*HEADER, "Notes")
    rows = [["ok1@acme.example", "Ok", "One", "Viewer", "", ""],
            ["e" * huge + "@acme.example", "Big", "Email", "Viewer", "", ""],
            ["big.name@acme.example", "N" * huge, "Name", "Viewer", "", ""],
            ["big.note@acme.example", "Big", "Note", "Viewer", "", "z" * huge],
            ["ok2@acme.example", "Ok", "Two", "Viewer", "", ""]]
    source = tmp_path / f"huge.{suffix}"
    if suffix == "csv":
        write_csv(source, header, rows)
    else:
        write_xlsx(source, header, rows)
    before = held(served)
    report = tmp_path / "r.csv"
    result = run(served, run_cli, "import", source, report, "--dry-run")
    assert result.exit_code == 1, result.output[:2000]
    lines = agrees(served, report, before)
    assert [line["status"] for line in lines] == ["planned", "skipped", "skipped", "skipped",
                                                  "planned"]
    for line in lines[1:4]:
        assert "--max-cell-bytes" in line["error"], line["error"]
        assert len(line["error"]) < 300, line["error"]
    texts = [result.output, report.read_text(encoding="utf-8-sig"),
             json.dumps(summary_of(report))]
    assert [m.group()[:20] for t in texts if (m := LONG_QUOTE.search(t))] == []
    assert len(result.output) < 20_000  # not folded over many lines either
    assert report.stat().st_size < 10_000
    applied = tmp_path / "applied.csv"
    assert run(served, run_cli, "import", source, applied).exit_code == 1
    lines = agrees(served, applied, before)
    assert [line["status"] for line in lines] == ["created", "skipped", "skipped", "skipped",
                                                  "created"]


def test_max_cell_bytes_counts_utf8_bytes(served: Served, run_cli: RunCli,
                                          tmp_path: Path) -> None:
    """--max-cell-bytes counts UTF-8 bytes: 60 'é' are over 100, 100 ASCII letters are not."""
    rows = [["ok@acme.example", "a" * 100, "L", "Viewer", ""],
            ["accent@acme.example", "é" * 60, "L", "Viewer", ""]]
    source = write_csv(tmp_path / "c.csv", HEADER, rows)
    before = held(served)
    report = tmp_path / "r.csv"
    assert run(served, run_cli, "import", source, report, "--max-cell-bytes", "100"
               ).exit_code == 1
    lines = agrees(served, report, before)
    assert [line["status"] for line in lines] == ["created", "skipped"]
    assert "120" in lines[1]["error"]
    assert "100" in lines[1]["error"]


# -- 6. blank-looking is blank ---------------------------------------------------------------

BLANK_LOOKING = (";", " | ", ";;", " ; | ", "|;|", "Everyone", "All users in system; Admins",
                 "everyone | ADMINS", "\u200b", "\u00a0", "\u200b; \u00a0", "\ufeff|\u2060")


@pytest.mark.parametrize("command", [("update", "--groups", "replace"),
                                     ("import", "--on-existing", "update", "--groups",
                                      "replace")])
def test_blank_looking_group_cells_leave_groups_alone(
        served: Served, run_cli: RunCli, tmp_path: Path, command: tuple[str, ...]) -> None:
    """--groups replace with a blank-looking cell keeps groups; only (clear) empties them."""
    clearing = ("(clear)", " (CLEAR) ")
    mixed = ("(clear); Sales", "Sales | (clear)", "(clear);(clear);Finance")
    cells = (*BLANK_LOOKING, *clearing, *mixed)
    seed(served, run_cli, tmp_path, [[f"u{i}@acme.example", "U", str(i), "Admin",
                                      "Finance; Sales"] for i in range(len(cells))])
    source = write_csv(tmp_path / "g.csv", ("Email", "Groups"),
                       [[f"u{i}@acme.example", cell] for i, cell in enumerate(cells)])
    before = held(served)
    report = tmp_path / "r.csv"
    result = run(served, run_cli, command[0], source, report, *command[1:])
    assert result.exit_code == 1, result.output
    lines = agrees(served, report, before)
    expected = (["unchanged"] * len(BLANK_LOOKING) + ["updated"] * len(clearing)
                + ["skipped"] * len(mixed))
    assert [line["status"] for line in lines] == expected
    for i, cell in enumerate(cells):
        groups = by_email(served, f"u{i}@acme.example").groups  # type: ignore[union-attr]
        assert groups == (frozenset() if cell in clearing else {"Finance", "Sales"}), cell
    assert all("(clear)" in line["error"] for line in lines[-len(mixed):])


# -- 7. control characters, anywhere ---------------------------------------------------------

#: What no output may carry raw: C0 (but LF; CR only before LF), DEL, C1, bidi controls.
RAW_CONTROL = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")
#: Hostile texts: NUL, a screen clear, DEL, NEL, a C1 CSI, BEL, a right-to-left override,
#: a backspace, a form feed.
HOSTILE = ("\x00", "\x1b[2J", "\x7f", "\x85", "\x9b31m", "\x07", "\u202e", "\x08", "\x0c")
#: The ones an XLSX file (XML) can hold.
XML_HOSTILE = ("\x7f", "\x85", "\x9b31m", "\u202e", "\u2066")


def assert_inert(data: bytes, what: str) -> str:
    """Assert ``data`` is UTF-8 without a raw control character (CRLF line ends allowed)."""
    text = data.decode("utf-8").replace("\r\n", "\n")
    found = RAW_CONTROL.search(text)
    assert found is None, (what, text[max(0, found.start() - 60): found.end() + 60])
    return text


def cli_process(args: Sequence[str], cwd: Path) -> tuple[int, bytes, bytes]:
    """Run the CLI in a real process off a terminal; (exit code, stdout, stderr bytes)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SISENSE_")}
    done = subprocess.run([sys.executable, "-m", "bulkusers", *args], cwd=cwd, env=env,
                          capture_output=True, timeout=RUN_S, check=False)
    return done.returncode, done.stdout, done.stderr


def hostile_rows(controls: Sequence[str]) -> tuple[list[list[str]], list[str]]:
    """Rows with one control text in one column each (email, names, role, groups, ignored
    column), and the clean rows between them; (rows, emails of the clean rows)."""
    rows: list[list[str]] = []
    clean: list[str] = []
    for i, bad in enumerate(controls):
        column = i % 6
        cells = [f"h{i}@acme.example", "Hal", "Ho", "Viewer", "Sales", "note"]
        cells[column] = {0: f"h{i}{bad}x@acme.example", 1: f"Ha{bad}l", 2: f"H{bad}o",
                         3: f"View{bad}er", 4: f"Sales; Fin{bad}ance", 5: f"n{bad}ote"}[column]
        rows.append(cells)
        rows.append([f"c{i}@acme.example", "Cal", "Co", "Viewer", "Sales", "fine"])
        clean.append(f"c{i}@acme.example")
    return rows, clean


@pytest.mark.parametrize("where", ["top", "after-64k"])
def test_control_characters_make_their_row_invalid_and_never_reach_output(
        served: Served, tmp_path: Path, where: str) -> None:
    """A control character in any cell skips its row and reaches no output raw."""
    rows, clean = hostile_rows(HOSTILE)
    if where == "after-64k":
        padding = [[f"pad{i}@acme.example", "P", "Ad", "Viewer", "", "p" * 30_000]
                   for i in range(3)]
        rows = padding + rows
        clean = [row[0] for row in padding] + clean
    source = write_csv(tmp_path / "hostile.csv", (*HEADER, "Notes"), rows)
    before = held(served)
    report = tmp_path / "r.csv"
    code, out, err = cli_process(["import", str(source), *served.connect(), "--report",
                                  str(report)], tmp_path)
    assert code == 1, err
    assert_inert(out, "stdout")
    terminal = assert_inert(err, "stderr")
    assert "Traceback" not in terminal
    lines = agrees(served, report, before)
    got = statuses(lines)
    assert sorted(e for e, s in got.items() if s == "created") == sorted(clean)
    skipped = [line for line in lines if line["status"] == "skipped"]
    assert len(skipped) == len(HOSTILE)
    assert all("control character" in line["error"] for line in skipped)
    assert_inert(report.read_bytes(), "report")
    assert_inert(report.with_name("r.summary.json").read_bytes(), "summary")
    for user in served.emulator.store.users.values():
        assert not RAW_CONTROL.search(user.email + user.first_name + user.last_name)


def test_control_characters_in_a_workbook(served: Served, run_cli: RunCli,
                                          tmp_path: Path) -> None:
    """The control characters an XLSX can hold (DEL, C1, bidi) make their row invalid too."""
    rows, clean = hostile_rows(XML_HOSTILE)
    source = write_xlsx(tmp_path / "hostile.xlsx", (*HEADER, "Notes"), rows)
    before = held(served)
    report = tmp_path / "r.csv"
    result = run(served, run_cli, "import", source, report)
    assert result.exit_code == 1, result.output
    lines = agrees(served, report, before)
    assert sorted(e for e, s in statuses(lines).items() if s == "created") == sorted(clean)
    assert sum(line["status"] == "skipped" for line in lines) == len(XML_HOSTILE)
    assert_inert(report.read_bytes(), "report")
    assert_inert(result.output.encode(), "terminal")


def test_control_characters_the_server_holds_never_reach_output(
        served: Served, tmp_path: Path) -> None:
    """Control characters the server holds are escaped in exports, dry runs and reports."""
    store = served.emulator.store
    served.host.call(lambda: store._add_group("Evil\x1b[2JGroup\u202e", None))
    plant(served, "evil\x1b]0;pwned\x07@ex.example", first="Nul\x00Name", last="C1\x9bRev",
          role="admin")
    plant(served, "victim@ex.example", first="Vic", last="Tim", role="admin",
          groups=["Evil\x1b[2JGroup\u202e", "Sales"])
    for name in ("all.csv", "all.xlsx"):
        code, out, err = cli_process(["export", name, *served.connect()], tmp_path)
        assert code == 0, err
        assert_inert(out + err, f"export {name} terminal")
    exported = assert_inert((tmp_path / "all.csv").read_bytes(), "csv export")
    assert "\\x1b" in exported
    assert "\\x00" in exported
    book = load_workbook(tmp_path / "all.xlsx", read_only=True)
    sheet = book.active
    assert sheet is not None
    values = [str(v) for row in sheet.iter_rows(values_only=True) for v in row if v is not None]
    book.close()
    assert not any(RAW_CONTROL.search(v) for v in values)
    assert "evil\\x1b]0;pwned\\x07@ex.example" in values
    leavers = write_csv(tmp_path / "l.csv", ("Email",), [["victim@ex.example"]])
    code, out, err = cli_process(["deactivate", str(leavers), *served.connect(), "--dry-run",
                                  "--report", str(tmp_path / "plan.csv")], tmp_path)
    assert code == 0, err
    terminal = assert_inert(out + err, "dry run")
    assert "victim@ex.example" in terminal
    assert "Evil\\x1b[2JGroup" in terminal
    before = held(served)
    report = tmp_path / "d.csv"
    code, out, err = cli_process(["deactivate", str(leavers), *served.connect(), "--yes",
                                  "--report", str(report)], tmp_path)
    assert code == 0, err
    assert_inert(out + err, "deactivate")
    assert_inert(report.read_bytes(), "deactivate report")
    assert_inert(report.with_name("d.summary.json").read_bytes(), "summary")
    agrees(served, report, before)


# -- 8. workbooks as Excel users make them ---------------------------------------------------


def sheet_rows(book: Workbook, title: str, rows: Sequence[Sequence[object]]) -> None:
    """Add a sheet holding HEADER and ``rows``."""
    sheet = book.create_sheet(title)
    sheet.append(list(HEADER))
    for row in rows:
        sheet.append(list(row))


@pytest.mark.parametrize("layout", ["hidden-first", "active-second", "chart-active"])
def test_workbook_default_sheet_is_the_active_visible_one(
        served: Served, run_cli: RunCli, tmp_path: Path, layout: str) -> None:
    """Without --sheet the active visible sheet is read; the terminal and summary name it."""
    book = Workbook()
    assert book.active is not None
    book.remove(book.active)
    sheet_rows(book, "Scratch", [["wrong@acme.example", "W", "R", "Admin", ""]])
    sheet_rows(book, "Users", [["right@acme.example", "R", "I", "Viewer", ""]])
    sheet_rows(book, "Old", [["old@acme.example", "O", "L", "Admin", ""]])
    if layout == "hidden-first":
        book["Scratch"].sheet_state = "hidden"
        book.active = 0  # Excel would open on the first visible sheet
    elif layout == "chart-active":
        book["Scratch"].sheet_state = "hidden"
        chart = BarChart()
        chart.add_data(Reference(book["Users"], min_col=2, min_row=1, max_row=2))
        book.create_chartsheet("Dashboard", 0).add_chart(chart)
        book.active = 0  # a chart cover sheet: the first visible worksheet holds the users
    else:
        book.active = 1
    source = tmp_path / "book.xlsx"
    book.save(source)
    before = held(served)
    report = tmp_path / "r.csv"
    result = run(served, run_cli, "import", source, report)
    assert result.exit_code == 0, result.output
    assert statuses(agrees(served, report, before)) == {"right@acme.example": "created"}
    assert summary_of(report)["sheet"] == "Users"
    assert "sheet read: 'Users'" in result.output


def test_uncached_formulas_make_their_row_invalid_and_every_row_has_a_line(
        served: Served, run_cli: RunCli, tmp_path: Path) -> None:
    """A formula without a saved value invalidates its row; every sheet row gets one line."""
    rows: list[list[object]] = [
        ["ok1@acme.example", "Ok", "One", "Viewer", "", ""],
        ['=LOWER("F1@ACME.EXAMPLE")', "F", "One", "Viewer", "", ""],
        ["f2@acme.example", '=PROPER("ann")', "Two", "Viewer", "", ""],
        [],
        ["f3@acme.example", "F", "Three", "Viewer", "", "=1+1"],
        ["", "", "", "", "", "=NOW()"],
        ["ok2@acme.example", "Ok", "Two", "Viewer", "", ""],
    ]
    source = write_xlsx(tmp_path / "f.xlsx", (*HEADER, "Notes"), rows)
    book = load_workbook(source, read_only=True)
    sheet = book.active
    assert sheet is not None
    expected = [str(number) for number, row in enumerate(sheet.iter_rows(values_only=True),
                                                         start=1)
                if number > 1 and any(v not in (None, "") for v in row)]
    book.close()
    before = held(served)
    report = tmp_path / "r.csv"
    result = run(served, run_cli, "import", source, report)
    assert result.exit_code == 1, result.output
    lines = agrees(served, report, before)
    assert [line["row"] for line in lines] == expected == ["2", "3", "4", "6", "7", "8"]
    assert [line["status"] for line in lines] == ["created", "skipped", "skipped", "skipped",
                                                  "skipped", "created"]
    assert all("formula without a saved value" in line["error"] for line in lines[1:5])


# -- 9. secret-looking columns ---------------------------------------------------------------

SECRET_COLUMNS = ("API Key", "apiKey", "Client Secret", "Access Token", "Credentials", "PIN",
                  "Temp Pwd", "passphrase", "x-api-key", "SSH_PRIVATE_KEY", "OTP",
                  "License Key", "Session Cookie", "Bearer", "Recovery Code", "Kennwort",
                  "Initial PW")


def test_secret_looking_columns_are_masked_everywhere(
        served: Served, run_cli: RunCli, tmp_path: Path) -> None:
    """Secret-looking columns are *** in the report and their values appear in no output."""
    header = (*HEADER, "Department", *SECRET_COLUMNS)
    secrets = [[f"V{c}r{r}-{'q' * 6}" for c in range(len(SECRET_COLUMNS))] for r in range(3)]
    rows = [["ok@acme.example", "Ok", "Y", "Viewer", "", "Sales", *secrets[0]],
            ["bad-email", "Bad", "E", "Viewer", "", "Sales", *secrets[1]],
            ["role@acme.example", "Bad", "R", "Wizard", "", "Sales", *secrets[2]]]
    source = write_csv(tmp_path / "s.csv", header, rows)
    before = held(served)
    report = tmp_path / "r.csv"
    result = run(served, run_cli, "import", source, report)
    assert result.exit_code == 1, result.output
    lines = agrees(served, report, before)
    for line in lines:
        assert [line[name] for name in SECRET_COLUMNS] == ["***"] * len(SECRET_COLUMNS)
        assert line["Department"] == "Sales"
    texts = (report.read_text(encoding="utf-8-sig"), result.output,
             report.with_name("r.summary.json").read_text(encoding="utf-8"))
    for value in (v for row in secrets for v in row):
        assert not any(value in text for text in texts), value
    masked = summary_of(report)["masked_columns"]
    assert isinstance(masked, list)
    assert set(SECRET_COLUMNS) <= set(masked)


# -- 10. repeated and mismatched runs --------------------------------------------------------


def test_second_deactivation_keeps_the_first_record_and_reactivate_restores_it(
        served: Served, run_cli: RunCli, tmp_path: Path) -> None:
    """A second deactivation keeps the first record, which reactivate restores."""
    seed(served, run_cli, tmp_path, [["ann@acme.example", "Ann", "Lee", "Admin", "Finance; Sales"],
                                     ["bob@acme.example", "Bob", "Ray", "Designer", "Engineering"],
                                     ["cat@acme.example", "Cat", "Roe", "Viewer", "Marketing"]])
    original = {h.email: h for h in held(served).values()}
    leavers = write_csv(tmp_path / "l.csv", ("Email",),
                        [["Ann@Acme.Example"], ["bob@acme.example"], ["cat@acme.example"]])
    first, second = tmp_path / "first.csv", tmp_path / "second.csv"
    before = held(served)
    assert run(served, run_cli, "deactivate", leavers, first).exit_code == 0
    recorded = {line["email"]: line["previous"] for line in agrees(served, first, before)}
    before = held(served)
    writes = len(served.emulator.writes())
    assert run(served, run_cli, "deactivate", leavers, second).exit_code == 0
    lines = agrees(served, second, before)
    assert len(served.emulator.writes()) == writes
    for line in lines:
        assert line["status"] == "unchanged", line
        assert "already deactivated" in line["changes"]
        assert line["previous"] == recorded[line["email"]]
    before = held(served)
    restored = tmp_path / "restored.csv"
    assert run_cli("reactivate", str(second), *served.connect(), "--report",
                   str(restored)).exit_code == 0
    agrees(served, restored, before)
    assert {h.email: h for h in held(served).values()} == original
    # Given other access since, a new deactivation records that state, not the old one.
    change = write_csv(tmp_path / "c.csv", ("Email", "Role", "Groups"),
                       [["ann@acme.example", "Designer", "Leadership"]])
    assert run(served, run_cli, "update", change, tmp_path / "u.csv", "--groups",
               "replace").exit_code == 0
    third = tmp_path / "third.csv"
    assert run(served, run_cli, "deactivate", leavers, third).exit_code == 0
    previous = {line["email"]: json.loads(line["previous"]) for line in read_report(third)}
    assert (previous["ann@acme.example"]["role"], previous["ann@acme.example"]["groups"]) == (
        "contributor", ["Leadership"])
    assert run_cli("reactivate", str(third), *served.connect(), "--report",
                   str(tmp_path / "again.csv")).exit_code == 0
    ann = by_email(served, "ann@acme.example")
    assert ann is not None
    assert (ann.role, ann.groups) == ("contributor", frozenset({"Leadership"}))


def test_reactivate_refuses_a_report_of_another_command(
        served: Served, run_cli: RunCli, tmp_path: Path) -> None:
    """reactivate given another command's or a dry run's report exits 2 in one line."""
    seed(served, run_cli, tmp_path, [["ann@acme.example", "Ann", "Lee", "Admin", "Finance"],
                                     ["bob@acme.example", "Bob", "Ray", "Admin", "Sales"]])
    one = write_csv(tmp_path / "one.csv", ("Email", "First Name"), [["ann@acme.example", "An"]])
    assert run(served, run_cli, "update", one, tmp_path / "update.csv").exit_code == 0
    bob = write_csv(tmp_path / "bob.csv", ("Email",), [["bob@acme.example"]])
    assert run(served, run_cli, "deactivate", bob, tmp_path / "deact.csv").exit_code == 0
    assert run_cli("reactivate", str(tmp_path / "deact.csv"), *served.connect(), "--report",
                   str(tmp_path / "react.csv")).exit_code == 0
    assert run(served, run_cli, "delete", bob, tmp_path / "delete.csv").exit_code == 0
    # A dry run's records are the state before a deactivation that never happened: ann is
    # promoted since, and "restoring" that record would demote her again.
    ann = write_csv(tmp_path / "ann.csv", ("Email", "Role"), [["ann@acme.example", "Designer"]])
    assert run(served, run_cli, "deactivate", ann, tmp_path / "plan.csv",
               "--dry-run").exit_code == 0
    assert run(served, run_cli, "update", ann, tmp_path / "promote.csv").exit_code == 0
    writes = len(served.emulator.writes())
    state = held(served)
    for name in ("seed-report.csv", "update.csv", "react.csv", "delete.csv", "plan.csv",
                 "bob.csv"):
        result = run_cli("reactivate", str(tmp_path / name), *served.connect())
        assert result.exit_code == 2, (name, result.output)
        assert len(result.output.strip().splitlines()) == 1, result.output
        assert "report" in result.output
    assert len(served.emulator.writes()) == writes
    assert held(served) == state


def test_reactivate_waits_for_the_deactivation_still_writing_its_report(
        served: Served, run_cli: RunCli, tmp_path: Path) -> None:
    """reactivate of a report another run still holds (the deactivation writing it) is
    refused in one line, nothing sent; once that run has ended it restores the user."""
    from bulkusers.reportlock import holding

    seed(served, run_cli, tmp_path, [["bob@acme.example", "Bob", "Ray", "Admin", "Sales"]])
    bob = write_csv(tmp_path / "bob.csv", ("Email",), [["bob@acme.example"]])
    report = tmp_path / "deact.csv"
    assert run(served, run_cli, "deactivate", bob, report).exit_code == 0
    writes = len(served.emulator.writes())
    with holding(report):  # as the deactivation does while it runs
        busy = run_cli("reactivate", str(report), *served.connect())
    assert busy.exit_code == 2, busy.output
    assert "another bulkusers run is writing this report" in busy.output
    assert len(served.emulator.writes()) == writes
    done = run_cli("reactivate", str(report), *served.connect(), "--report",
                   str(tmp_path / "react.csv"))
    assert done.exit_code == 0, done.output


# -- 11. dry runs show who -------------------------------------------------------------------


@pytest.mark.parametrize("command", ["deactivate", "delete"])
def test_dry_run_lists_the_affected_users_as_the_server_holds_them(
        served: Served, run_cli: RunCli, tmp_path: Path, command: str) -> None:
    """Dry runs list the first 20 affected users as stored, and where the rest are."""
    for i in range(25):
        plant(served, f"User{i:02d}@Acme.Example", role="contributor",
              groups=["Finance", "Sales"] if i % 2 else ["Marketing"])
    rows = [[f"user{i:02d}@acme.example", "Viewer", "Leadership"] for i in range(25)]
    source = write_csv(tmp_path / "l.csv", ("Email", "Role", "Groups"), rows)
    before = held(served)
    report = tmp_path / "plan.csv"
    result = run(served, run_cli, command, source, report, "--dry-run")
    assert result.exit_code == 0, result.output
    agrees(served, report, before)
    listed = [line.strip() for line in result.stderr.splitlines()
              if re.match(r"\s+User\d\d@Acme\.Example", line)]
    assert [line.split()[0] for line in listed] == [f"User{i:02d}@Acme.Example"
                                                   for i in range(20)]
    assert all("Designer" in line and "Leadership" not in line for line in listed)
    assert "Finance, Sales" in listed[1]
    assert "Marketing" in listed[0]
    assert "5 more" in result.stderr
    assert str(report) in result.stderr.replace("\n", "")
    few = write_csv(tmp_path / "few.csv", ("Email",), [["user03@acme.example"]])
    result = run(served, run_cli, command, few, tmp_path / "few-plan.csv", "--dry-run",
                 "--quiet")
    assert result.exit_code == 0, result.output
    assert "User03@Acme.Example  Designer  groups: Finance, Sales" in result.stderr
    assert "more" not in result.stderr
    assert held(served) == before


def prompt(args: Sequence[str], cwd: Path, answer: bytes) -> tuple[int, str]:
    """Run the CLI on a terminal, answer its confirmation; (exit code, what it showed).
    Fails within seconds if the prompt or the end never comes."""
    return answer_prompt(list(args), cwd, answer)


def test_prompt_lists_users_as_the_server_holds_them(served: Served, tmp_path: Path) -> None:
    """The prompt lists users as stored (email, role, groups); answering no sends nothing."""
    plant(served, "Ann.Lee@Acme.Example", role="admin", groups=["Finance", "Sales"])
    source = write_csv(tmp_path / "l.csv", ("Email", "Role"), [["ANN.LEE@ACME.EXAMPLE", "Viewer"]])
    writes = len(served.emulator.writes())
    code, text = prompt(["delete", str(source), *served.connect()], tmp_path, b"n\n")
    assert code == 3, text
    line = next(line for line in text.splitlines() if "Ann.Lee@Acme.Example" in line)
    assert "Admin" in line
    assert "Finance" in line
    assert "Sales" in line
    assert "ANN.LEE@ACME.EXAMPLE" not in text
    assert len(served.emulator.writes()) == writes


# -- found while testing ---------------------------------------------------------------------


def test_hostile_column_names_reach_no_output_raw_or_whole(
        served: Served, tmp_path: Path) -> None:
    """Hostile or huge column names reach the report escaped and the terminal as excerpts."""
    header = ("Email", "First Name", "Role", "Notes\x1b[2J\u202e", "N" * 5_000)
    source = write_csv(tmp_path / "h.csv", header, [["a@acme.example", "A", "Viewer", "n", "x"]])
    report = tmp_path / "r.csv"
    code, out, err = cli_process(["import", str(source), *served.connect(), "--report",
                                  str(report)], tmp_path)
    assert code == 0, err
    terminal = assert_inert(out + err, "terminal")
    assert not LONG_QUOTE.search(terminal)
    assert "Notes\\x1b[2J\\u202e" in terminal
    assert_inert(report.read_bytes(), "report")
    assert_inert(report.with_name("r.summary.json").read_bytes(), "summary")


def test_a_very_long_email_is_shown_as_an_excerpt(served: Served, run_cli: RunCli,
                                                  tmp_path: Path) -> None:
    """A 60,000-character email is shown on the terminal and in errors only as an excerpt."""
    source = write_csv(tmp_path / "e.csv", ("Email", "First Name", "Role"),
                       [["b" * 60_000 + "@acme.example", "B", "Wizard" * 5_000],
                        ["ok@acme.example", "O", "Viewer"]])
    before = held(served)
    report = tmp_path / "r.csv"
    result = run(served, run_cli, "import", source, report)
    assert result.exit_code == 1, result.output[-2000:]
    terminal = result.output
    assert not LONG_QUOTE.search(terminal)
    assert terminal.count("b") < 500  # folded over many lines, it would still be all there
    lines = agrees(served, report, before)
    assert [line["status"] for line in lines] == ["skipped", "created"]
    assert not LONG_QUOTE.search(lines[0]["error"])
    assert not LONG_QUOTE.search(json.dumps(summary_of(report)))


def test_excel_error_values_make_their_row_invalid(
        served: Served, run_cli: RunCli, tmp_path: Path) -> None:
    """An Excel error value (#N/A, #REF!...) makes its row invalid; it never becomes a name."""
    rows = [["ok1@acme.example", "Ok", "One", "Viewer", "", ""],
            ["e1@acme.example", "#N/A", "One", "Viewer", "", ""],
            ["e2@acme.example", "E", "#REF!", "Viewer", "", ""],
            ["e3@acme.example", "E", "Three", "Viewer", "#DIV/0!", ""],
            ["e4@acme.example", "E", "Four", "Viewer", "", "#VALUE!"],
            ["ok2@acme.example", "Ok", "Two", "Viewer", "", ""]]
    source = write_xlsx(tmp_path / "e.xlsx", (*HEADER, "Notes"), rows)
    before = held(served)
    report = tmp_path / "r.csv"
    result = run(served, run_cli, "import", source, report, "--create-groups")
    assert result.exit_code == 1, result.output
    lines = agrees(served, report, before)
    assert [line["status"] for line in lines] == ["created", "skipped", "skipped", "skipped",
                                                  "skipped", "created"]
    assert all("error value" in line["error"] for line in lines[1:5])
    assert "#N/A" in lines[1]["error"]
    assert served.emulator.store.group_by_name("#DIV/0!") is None


def test_lookalike_group_names_never_meet(served: Served, run_cli: RunCli,
                                          tmp_path: Path) -> None:
    """A row naming Strasse (or field) never joins Straße (or ﬁeld); ASCII case still matches."""
    store = served.emulator.store
    served.host.call(lambda: [store._add_group(name, None)
                              for name in ("Straße", "Strasse", "\ufb01eld", "field")])
    for i in range(5):
        plant(served, f"g{i}@acme.example", role="consumer")
    rows = [["g0@acme.example", "Strasse"], ["g1@acme.example", "Straße"],
            ["g2@acme.example", "field"], ["g3@acme.example", "\ufb01eld"],
            ["g4@acme.example", "STRASSE; Straße; FIELD"]]
    source = write_csv(tmp_path / "g.csv", ("Email", "Groups"), rows)
    before = held(served)
    report = tmp_path / "r.csv"
    assert run(served, run_cli, "update", source, report).exit_code == 0
    agrees(served, report, before)
    got = {h.email: h.groups for h in held(served).values()}
    assert got["g0@acme.example"] == {"Strasse"}
    assert got["g1@acme.example"] == {"Straße"}
    assert got["g2@acme.example"] == {"field"}
    assert got["g3@acme.example"] == {"\ufb01eld"}
    assert got["g4@acme.example"] == {"Strasse", "Straße", "field"}


def test_records_of_users_with_control_characters_restore_exactly(
        served: Served, run_cli: RunCli, tmp_path: Path) -> None:
    """Records holding control characters stay valid JSON and reactivate restores them."""
    store = served.emulator.store
    odd = ("Odd\x7fGroup", "C1\x85Group", "Bidi\u202eGroup", "Esc\x1b[1mGroup")
    served.host.call(lambda: [store._add_group(name, None) for name in odd])
    plant(served, "odd@acme.example", first="Fi\x85rst", last="La\x1bst", role="admin",
          groups=odd)
    original = by_email(served, "odd@acme.example")
    leavers = write_csv(tmp_path / "l.csv", ("Email",), [["odd@acme.example"]])
    deactivated = tmp_path / "d.csv"
    assert run(served, run_cli, "deactivate", leavers, deactivated).exit_code == 0
    assert_inert(deactivated.read_bytes(), "deactivate report")
    restored = tmp_path / "re.csv"
    result = run_cli("reactivate", str(deactivated), *served.connect(), "--report", str(restored))
    assert result.exit_code == 0, result.output
    now = by_email(served, "odd@acme.example")
    assert now is not None
    assert original is not None
    assert (now.role, now.groups) == (original.role, original.groups)
    deleted = tmp_path / "del.csv"
    assert run(served, run_cli, "delete", leavers, deleted).exit_code == 0
    assert_inert(deleted.read_bytes(), "delete report")
    assert set(json.loads(read_report(deleted)[0]["previous"])["groups"]) == set(odd)
    before = held(served)
    back = tmp_path / "back.csv"
    assert run(served, run_cli, "import", deleted, back).exit_code == 1
    line = agrees(served, back, before)[0]
    assert line["status"] == "skipped"
    assert "control character" in line["error"]
    assert_inert(back.read_bytes(), "import report")


@pytest.mark.parametrize("command", ["update", "deactivate", "delete"])
def test_hostile_cells_stop_only_their_row_in_every_command(
        served: Served, run_cli: RunCli, tmp_path: Path, command: str) -> None:
    """Hostile cells stop only their row in update, deactivate and delete files too."""
    seed(served, run_cli, tmp_path, [[f"u{i}@acme.example", "U", str(i), "Admin", "Finance"]
                                     for i in range(6)])
    rows: list[list[object]] = [
        ["u0@acme.example", "New", "fine"],
        ["u1@acme.example", "New", "n\x1b[2Jote"],
        ["u2@acme.example", "N\x00ew", ""],
        ["u3@acme.example", "New", "z" * 70_000],
        ["u4@acme.example", "New", "=1+1"],
        ["u5@acme.example", "New", "\u202efine"]]
    source = write_xlsx(tmp_path / "f.xlsx", ("Email", "First Name", "Notes"),
                        [r for r in rows if "\x00" not in str(r[1]) and "\x1b" not in str(r[2])])
    csv_rows = [[str(c) for c in r] for r in rows if r[2] != "=1+1"]
    for path in (source, write_csv(tmp_path / "f.csv", ("Email", "First Name", "Notes"),
                                   csv_rows)):
        before = held(served)
        report = tmp_path / f"r-{path.suffix[1:]}.csv"
        result = run(served, run_cli, command, path, report)
        assert result.exit_code == 1, result.output
        lines = agrees(served, report, before)
        done = [line["email"] for line in lines if line["status"] in CHANGED]
        assert done == (["u0@acme.example"] if path is source else []), lines
        assert {line["status"] for line in lines[1:]} <= {"skipped"}
        assert_inert(report.read_bytes(), "report")


@pytest.mark.parametrize("command", ["deactivate", "delete", "reactivate"])
def test_unwritable_records_folder_stops_before_anything_is_sent(
        served: Served, run_cli: RunCli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        command: str) -> None:
    """A deactivation-records folder that cannot be written stops the run in one line (exit 3)
    before any request, instead of failing every row."""
    seed(served, run_cli, tmp_path, [["a@acme.example", "A", "B", "Admin", "Finance"]])
    leavers = write_csv(tmp_path / "l.csv", ("Email",), [["a@acme.example"]])
    source = leavers
    if command == "reactivate":
        source = tmp_path / "d.csv"
        assert run(served, run_cli, "deactivate", leavers, source).exit_code == 0
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("x", encoding="utf-8")
    monkeypatch.setenv("BULKUSERS_STATE_DIR", str(blocker / "state"))
    writes, state = len(served.emulator.writes()), held(served)
    args = [command, str(source), *served.connect(), "--report", str(tmp_path / "r.csv")]
    result = run_cli(*args, *(["--yes"] if command != "reactivate" else []))
    assert result.exit_code == 3, result.output
    assert "BULKUSERS_STATE_DIR" in result.output
    assert "nothing was sent" in result.output
    assert len(served.emulator.writes()) == writes
    assert held(served) == state


@pytest.mark.parametrize(("suffix", "size"), [("csv", 100_000), ("xlsx", 5 * 1024 * 1024)])
def test_a_huge_column_name_refuses_the_file_in_one_line(
        served: Served, run_cli: RunCli, tmp_path: Path, suffix: str, size: int) -> None:
    """A header cell over --max-cell-bytes refuses the file in one short line (exit 2)."""
    header = ("Email", "First Name", "H" * size)
    rows = [["a@acme.example", "A", "x"]]
    source = tmp_path / f"h.{suffix}"
    if suffix == "csv":
        write_csv(source, header, rows)
    else:
        write_xlsx(source, header, rows)
    writes = len(served.emulator.writes())
    result = run(served, run_cli, "import", source, tmp_path / "r.csv")
    assert result.exit_code == 2, result.output[:500]
    assert "--max-cell-bytes" in result.output
    assert len(result.output) < 500
    assert len(served.emulator.writes()) == writes


def test_a_very_long_group_name_is_shown_as_an_excerpt(
        served: Served, run_cli: RunCli, tmp_path: Path) -> None:
    """--create-groups with a 60,000-character group name shows only an excerpt of it."""
    name = "G" * 60_000
    source = write_csv(tmp_path / "g.csv", HEADER, [["a@acme.example", "A", "B", "Viewer", name]])
    result = run(served, run_cli, "import", source, tmp_path / "r.csv", "--create-groups",
                 "--dry-run")
    assert result.exit_code == 0, result.output[-500:]
    assert result.output.count("G") < 500
    assert "60,000 characters" in result.output


def test_rows_are_judged_by_the_servers_own_email_rule(
        served: Served, run_cli: RunCli, tmp_path: Path) -> None:
    """An address Sisense's specification refuses is an invalid row before anything is sent,
    and one it accepts (no top-level domain, a quoted local part) is created."""
    refused = ["a..b@acme.example", "a,b@acme.example", ".a@acme.example", "a@b.c",
               "a b@acme.example", "a@acme..example"]
    accepted = ["jane@corp", '"q q"@acme.example', "straße@acme.example"]
    rows = [[email, "F", "L", "Viewer", ""] for email in refused + accepted]
    source = write_csv(tmp_path / "emails.csv", HEADER, rows)
    before = held(served)
    report = tmp_path / "r.csv"
    result = run(served, run_cli, "import", source, report)
    assert result.exit_code == 1, result.output
    lines = agrees(served, report, before)
    assert [(line["status"], line["attempts"]) for line in lines] == (
        [("skipped", "0")] * len(refused) + [("created", "1")] * len(accepted))
    assert all("malformed email" in line["error"] for line in lines[:len(refused)])
