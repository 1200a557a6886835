"""End to end: `bulkusers export` through the CLI against the emulator over loopback HTTP."""

from __future__ import annotations

import urllib.request
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import parse_qs, urlencode

import pytest
from click.testing import Result
from openpyxl import load_workbook

from bulkusers.emulator import LOGIN_PATH, EmulatorSettings
from bulkusers.emulator.records import iso
from bulkusers.exportfile import COLUMNS, inactive_before
from bulkusers.readers import open_table
from tests.conftest import GROUPS, TOKEN, Served, read_report, serve, write_csv

RunCli = Callable[..., Result]
BUILTIN = {"Everyone", "All users in system"}
PEOPLE_HEADER = ("Work Email", "First Name", "Surname", "Role", "Groups", "Password")
PEOPLE = [
    ["ann.lee@acme.example", "Ann", "Lee", "Viewer", "Finance; Sales", "Ann-Pass-123"],
    ["bo.chan@acme.example", "Bo", "Chan", "designer", "Engineering", ""],
    ["cy.diaz@acme.example", "Cy", "Díaz", "Admin", "Leadership|Sales", ""],
    ["dee.eve@acme.example", "=1+2", "+44 20 7946 0001", "Data Designer", "", ""],
]


@pytest.fixture
def seeded() -> Iterator[Served]:
    """An emulator with 25 generated users and the HR groups: the export's source."""
    yield from serve(EmulatorSettings(token=TOKEN, users=25, groups=GROUPS))



def add_people(run_cli: RunCli, served: Served, tmp_path: Path) -> None:
    """Create PEOPLE through `bulkusers import` (roles by display name or alias)."""
    source = write_csv(tmp_path / "people.csv", PEOPLE_HEADER, PEOPLE)
    result = run_cli("import", str(source), *served.connect(), "--report",
                     str(tmp_path / "people.report.csv"))
    assert result.exit_code == 0, result.output


def expected_groups(served: Served, email: str) -> set[str]:
    """The groups the group side of the emulator shows for a user, computed ones included."""
    store = served.emulator.store
    user = store.find_user(email)
    found = store.group_names_of(user.id) | BUILTIN
    if store.role_name_of(user.id) in ("super", "admin"):
        found.add("Admins")
    return found


def groups_of(line: dict[str, str]) -> set[str]:
    """The group names of an export line."""
    return {name.strip() for name in line["groups"].split(";") if name.strip()}


def by_email(lines: list[dict[str, str]]) -> dict[str, dict[str, str]]:
    """Export lines keyed by email, checking each email appears once."""
    keyed = {line["email"]: line for line in lines}
    assert len(keyed) == len(lines)
    return keyed


def exported(run_cli: RunCli, served: Served, output: Path, *extra: str) -> list[dict[str, str]]:
    """Run an export that must succeed; its CSV lines."""
    result = run_cli("export", str(output), *served.connect(), *extra)
    assert result.exit_code == 0, result.output
    return read_report(output)


def test_csv_lists_every_user_with_role_groups_and_dates(
        seeded: Served, run_cli: RunCli, tmp_path: Path) -> None:
    """One line per user with API role names, group names incl. computed ones, and dates."""
    add_people(run_cli, seeded, tmp_path)
    output = tmp_path / "users.csv"
    result = run_cli("export", str(output), *seeded.connect())
    assert result.exit_code == 0, result.output
    assert f"30 users written to {output}" in result.output
    assert output.read_bytes().startswith(b"\xef\xbb\xbf")
    lines = read_report(output)
    assert tuple(lines[0]) == COLUMNS
    store = seeded.emulator.store
    assert len(lines) == len(store.users) == 1 + 25 + len(PEOPLE)
    for email, line in by_email(lines).items():
        record = store.find_user(email)
        assert line["id"] == record.id
        assert line["role"] == store.role_name_of(record.id)
        assert groups_of(line) == expected_groups(seeded, email)
        assert line["lastLogin"] == (record.last_login or "")
        assert line["created"] == record.created
        assert line["active"] == ("TRUE" if record.active else "FALSE")
    keyed = by_email(lines)
    assert groups_of(keyed["admin@example.com"]) == BUILTIN | {"Admins"}
    assert (keyed["admin@example.com"]["role"],
            keyed["admin@example.com"]["roleDisplayName"]) == ("super", "Sys. Admin")
    ann = keyed["ann.lee@acme.example"]
    assert (ann["role"], ann["roleDisplayName"]) == ("consumer", "Viewer")
    assert groups_of(ann) == {"Finance", "Sales"} | BUILTIN
    assert "Admins" in groups_of(keyed["cy.diaz@acme.example"])
    assert keyed["dee.eve@acme.example"]["firstName"] == "'=1+2"  # formula-safe
    assert keyed["dee.eve@acme.example"]["lastName"] == "'+44 20 7946 0001"
    assert any(line["lastLogin"] for line in lines)
    assert any(not line["lastLogin"] for line in lines)
    header = open_table(output).header
    assert all(header.has(name) for name in ("email", "userName", "firstName", "lastName",
                                             "role", "groups", "language"))


def test_csv_round_trip_into_an_empty_emulator(
        seeded: Served, served: Served, run_cli: RunCli, tmp_path: Path) -> None:
    """Importing the export into a second emulator gives the same emails, roles and groups."""
    add_people(run_cli, seeded, tmp_path)
    output = tmp_path / "users.csv"
    exported(run_cli, seeded, output)
    result = run_cli("import", str(output), *served.connect(), "--report",
                     str(tmp_path / "round.report.csv"))
    assert result.exit_code == 0, result.output
    source, target = seeded.emulator.store, served.emulator.store
    emails = {u.email for u in source.users.values()}
    assert {u.email for u in target.users.values()} == emails
    for email in emails:
        before, after = source.find_user(email), target.find_user(email)
        assert target.role_name_of(after.id) == source.role_name_of(before.id)
        assert target.group_names_of(after.id) == source.group_names_of(before.id)
        assert (after.first_name, after.last_name) == (before.first_name, before.last_name)


def test_xlsx_has_date_cells_text_ids_and_imports(
        seeded: Served, served: Served, run_cli: RunCli, tmp_path: Path) -> None:
    """XLSX: dates are datetimes, ids and '=' values are text cells; it imports elsewhere."""
    add_people(run_cli, seeded, tmp_path)
    output = tmp_path / "users.xlsx"
    result = run_cli("export", str(output), *seeded.connect())
    assert result.exit_code == 0, result.output
    book = load_workbook(output)
    sheet = book.active
    assert sheet is not None
    rows = list(sheet.iter_rows())
    assert tuple(cell.value for cell in rows[0]) == COLUMNS
    assert len(rows) == 1 + len(seeded.emulator.store.users)
    column = {name: index for index, name in enumerate(COLUMNS)}
    store = seeded.emulator.store
    for row in rows[1:]:
        email = str(row[column["email"]].value)
        record = store.find_user(email)
        created = row[column["created"]]
        assert isinstance(created.value, datetime)
        assert created.is_date
        assert created.value == datetime.fromisoformat(record.created).replace(tzinfo=None)
        ident = row[column["id"]]
        assert (ident.value, ident.data_type) == (record.id, "s")
        assert row[column["active"]].value is record.active
        login = row[column["lastLogin"]].value
        assert login is None if record.last_login is None else isinstance(login, datetime)
    dee = next(r for r in rows if r[column["email"]].value == "dee.eve@acme.example")
    assert (dee[column["firstName"]].value, dee[column["firstName"]].data_type) == ("=1+2", "s")
    assert dee[column["lastName"]].value == "+44 20 7946 0001"
    book.close()
    result = run_cli("import", str(output), *served.connect(), "--report",
                     str(tmp_path / "xlsx.report.csv"))
    assert result.exit_code == 0, result.output
    target = served.emulator.store
    assert {u.email for u in target.users.values()} == {u.email for u in store.users.values()}
    copied = target.find_user("dee.eve@acme.example")
    assert (copied.first_name, copied.last_name) == ("=1+2", "+44 20 7946 0001")
    assert target.role_name_of(copied.id) == "dataDesigner"
    assert target.group_names_of(target.find_user("cy.diaz@acme.example").id) == {
        "Leadership", "Sales"}


def test_role_and_group_filters(seeded: Served, run_cli: RunCli, tmp_path: Path) -> None:
    """--role by display name or alias and --group (explicit or computed) select the members."""
    add_people(run_cli, seeded, tmp_path)
    store = seeded.emulator.store
    viewers = exported(run_cli, seeded, tmp_path / "viewers.csv", "--role", "Viewer")
    assert {line["role"] for line in viewers} == {"consumer"}
    assert len(viewers) == sum(store.role_name_of(u) == "consumer" for u in store.users)
    designers = exported(run_cli, seeded, tmp_path / "designers.csv", "--role", "designer")
    assert [line["email"] for line in designers] == ["bo.chan@acme.example"]
    sales = exported(run_cli, seeded, tmp_path / "sales.csv", "--group", "sales")
    members = {u.email for u in store.users.values() if "Sales" in store.group_names_of(u.id)}
    assert {line["email"] for line in sales} == members
    assert {"ann.lee@acme.example", "cy.diaz@acme.example"} <= members
    admins = exported(run_cli, seeded, tmp_path / "admins.csv", "--group", "Admins")
    assert {line["email"] for line in admins} == {"admin@example.com", "cy.diaz@acme.example"}
    both = exported(run_cli, seeded, tmp_path / "both.csv", "--group", "Sales", "--role", "admin")
    assert [line["email"] for line in both] == ["cy.diaz@acme.example"]


def test_unknown_role_or_group_exits_2_with_a_hint(
        served: Served, run_cli: RunCli, tmp_path: Path) -> None:
    """An unknown --role or --group: exit 2, a 'did you mean' hint, and no file written."""
    result = run_cli("export", "users.csv", *served.connect(), "--role", "Viewr")
    assert result.exit_code == 2
    assert "unknown role 'Viewr' (did you mean 'Viewer'?)" in result.output
    result = run_cli("export", "users.csv", *served.connect(), "--group", "Finanse")
    assert result.exit_code == 2
    assert "did you mean 'Finance'?" in result.output
    assert list(tmp_path.iterdir()) == []


def test_inactive_days_selects_old_and_never_seen_users(
        served: Served, run_cli: RunCli, tmp_path: Path) -> None:
    """--inactive-days keeps users last seen before the cutoff, and those who never signed in
    counted from their creation (as diff counts them): not a new account, nor a recent one;
    a user with neither date readable is kept."""
    add_people(run_cli, served, tmp_path)
    store = served.emulator.store
    login = urllib.request.Request(
        served.url + LOGIN_PATH, method="POST",
        data=urlencode({"username": "ann.lee@acme.example", "password": "Ann-Pass-123"}).encode())
    with urllib.request.urlopen(login, timeout=5) as answer:
        assert answer.status == 200
    old = iso(datetime.now(UTC) - timedelta(days=45))
    bo, cy, dee = (store.find_user(f"{name}@acme.example")
                   for name in ("bo.chan", "cy.diaz", "dee.eve"))
    admin = store.find_user("admin@example.com")

    def age() -> None:
        bo.last_login = old  # signed in 45 days ago
        cy.created = old  # created 45 days ago, never signed in
        admin.last_login, admin.created = "", "garbled"  # neither date readable
    served.host.call(age)  # dee: created today, never signed in
    lines = exported(run_cli, served, tmp_path / "inactive.csv", "--inactive-days", "30")
    assert {line["email"] for line in lines} == {
        "admin@example.com", "bo.chan@acme.example", "cy.diaz@acme.example"}
    assert dee.last_login in (None, "")
    assert by_email(lines)["bo.chan@acme.example"]["lastLogin"] == old
    recent = exported(run_cli, served, tmp_path / "sixty.csv", "--inactive-days", "60")
    assert "bo.chan@acme.example" not in {line["email"] for line in recent}
    everyone = exported(run_cli, served, tmp_path / "all.csv")
    assert by_email(everyone)["ann.lee@acme.example"]["lastLogin"]


@pytest.mark.parametrize(("last_login", "created", "inactive"), [
    ("2026-01-01T00:00:00Z", "2020-01-01T00:00:00Z", True),    # signed in before the cutoff
    ("2026-03-01T00:00:00Z", "2020-01-01T00:00:00Z", False),   # after it
    ("", "2026-01-01T00:00:00Z", True),                        # never, created before it
    ("", "2026-03-01T00:00:00Z", False),                       # never, created after it
    ("not a date", "2026-03-01T00:00:00Z", True),              # unreadable: no activity shown
    ("", "", True),                                            # no date at all
])
def test_one_inactivity_rule_for_export_and_diff(last_login: str, created: str,
                                                 inactive: bool) -> None:
    """Inactive before a cutoff: by lastLogin; never signed in, by created; a lastLogin that
    cannot be read, or no date at all, proves no recent activity."""
    cutoff = datetime(2026, 2, 1, tzinfo=UTC)
    assert inactive_before(last_login, created, cutoff) is inactive


def test_paging_reads_every_user_once_with_skip_and_limit(
        seeded: Served, run_cli: RunCli, tmp_path: Path) -> None:
    """--page-size 7 over 26 users: each exported once, every users request has a limit."""
    lines = exported(run_cli, seeded, tmp_path / "users.csv", "--page-size", "7")
    assert len(by_email(lines)) == 26
    pages = [parse_qs(r.query) for r in seeded.emulator.requests
             if (r.method, r.path) == ("GET", "/api/v1/users")]
    assert {page["limit"][0] for page in pages} == {"7"}
    # Pages after the first are asked for ahead, concurrently: never more past the end than
    # before it, each skip once.
    skips = sorted(int(page["skip"][0]) for page in pages)
    assert skips[:4] == [0, 7, 14, 21]
    assert skips == list(range(0, 7 * len(skips), 7))
    assert len(skips) <= 8


def test_bad_suffix_exits_2_and_writes_nothing(
        served: Served, run_cli: RunCli, tmp_path: Path) -> None:
    """An OUTPUT that is not .csv or .xlsx: one error line, exit 2, no file, no request."""
    result = run_cli("export", "users.json", *served.connect())
    assert result.exit_code == 2
    assert "must end in .csv or .xlsx" in result.output
    assert list(tmp_path.iterdir()) == []
    assert served.emulator.requests == []


def test_refused_token_exits_3_and_leaves_no_file(
        served: Served, run_cli: RunCli, tmp_path: Path) -> None:
    """A wrong token: exit 3, and neither the output nor a temporary file is left behind."""
    result = run_cli("export", "users.xlsx", "--url", served.url, "--token", "wrong-token")
    assert result.exit_code == 3
    assert "refused the token" in result.output
    assert "wrong-token" not in result.output
    assert list(tmp_path.iterdir()) == []


def test_failure_while_paging_keeps_the_previous_export(
        served: Served, run_cli: RunCli, tmp_path: Path) -> None:
    """A server failure mid-export: exit 3, the earlier file untouched, no temporary file."""
    output = tmp_path / "users.csv"
    output.write_text("yesterday's export\n", encoding="utf-8")
    served.host.call(lambda: served.emulator.faults.script("GET", "/api/v1/users", [503]))
    result = run_cli("export", str(output), *served.connect(), "--retries", "0")
    assert result.exit_code == 3, result.output
    assert "HTTP 503" in result.output
    assert output.read_text(encoding="utf-8") == "yesterday's export\n"
    assert list(tmp_path.iterdir()) == [output]


def test_legacy_api_exports_roles_and_all_groups(
        served: Served, run_cli: RunCli, tmp_path: Path) -> None:
    """With --api legacy the export pages GET /api/users and resolves roles and groups,
    computed built-in memberships included."""
    add_people(run_cli, served, tmp_path)
    lines = exported(run_cli, served, tmp_path / "legacy.csv", "--api", "legacy",
                     "--page-size", "2")
    keyed = by_email(lines)
    assert len(keyed) == 1 + len(PEOPLE)
    assert (keyed["cy.diaz@acme.example"]["role"], groups_of(keyed["cy.diaz@acme.example"])) == (
        "admin", {"Leadership", "Sales", "Admins", "Everyone", "All users in system"})
    assert keyed["ann.lee@acme.example"]["roleDisplayName"] == "Viewer"
    pages = [parse_qs(r.query) for r in served.emulator.requests
             if (r.method, r.path) == ("GET", "/api/users")]
    assert {page["limit"][0] for page in pages} == {"2"}
    assert 3 <= len(pages) <= 6  # pages asked ahead: never more past the end than before it
    assert "Admins" in groups_of(keyed["admin@example.com"])
    admins = exported(run_cli, served, tmp_path / "admins.csv", "--api", "legacy",
                      "--group", "Admins")
    assert {line["email"] for line in admins} == {"admin@example.com", "cy.diaz@acme.example"}
