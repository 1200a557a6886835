"""End to end: upsert, update, deactivate, reactivate and delete against the emulator's state."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Iterator
from pathlib import Path

import aiohttp
import pytest
from click.testing import Result

from bulkusers.emulator import EmulatorSettings
from tests.conftest import GROUPS, TOKEN, Served, read_report, serve, write_csv

RunCli = Callable[..., Result]
HEADER = ("Email", "First Name", "Last Name", "Role", "Groups", "Password")


def people() -> list[list[str]]:
    """Five users with roles and groups."""
    return [
        ["ann@acme.example", "Ann", "Lee", "Admin", "Finance; Sales", "Ann-Pass-1"],
        ["bob@acme.example", "Bob", "Ray", "Viewer", "Sales", "Bob-Pass-1"],
        ["cat@acme.example", "Cat", "Roe", "Designer", "Engineering", "Cat-Pass-1"],
        ["dan@acme.example", "Dan", "Poe", "Viewer", "Marketing", "Dan-Pass-1"],
        ["eve@acme.example", "Eve", "Fox", "Viewer", "", "Eve-Pass-1"],
    ]


def cli_args(served: Served, command: str, path: Path, report: Path, *extra: str) -> list[str]:
    """A write command against the served emulator with an explicit report path."""
    args = [command, str(path), "--url", served.url, "--token", TOKEN, "--report", str(report)]
    if command in ("deactivate", "delete"):
        args.append("--yes")  # tests run off a terminal, where destructive runs need it
    return [*args, *extra]


def seed(served: Served, run_cli: RunCli, tmp_path: Path) -> None:
    """Import the five people."""
    source = write_csv(tmp_path / "seed.csv", HEADER, people())
    result = run_cli(*cli_args(served, "import", source, tmp_path / "seed-report.csv"))
    assert result.exit_code == 0, result.output


def role_and_groups(served: Served, email: str) -> tuple[str, set[str]]:
    """A user's role name and explicit group names, read from the emulator's store."""
    user = served.emulator.store.user_by_email(email)
    assert user is not None, email
    store = served.emulator.store
    return store.role_name_of(user["_id"]), store.group_names_of(user["_id"])


def statuses(report: Path) -> dict[str, str]:
    """email -> status of a report."""
    return {line["email"]: line["status"] for line in read_report(report)}


def test_upsert_touches_only_changed_users_and_second_run_sends_nothing(
        served: Served, run_cli: RunCli, tmp_path: Path) -> None:
    """--on-existing update changes exactly the differing fields; a re-run is all unchanged
    and sends no write."""
    seed(served, run_cli, tmp_path)
    changed = people()
    changed[1][3] = "Designer"            # bob: role
    changed[2][4] = "Engineering; Sales"  # cat: a group more
    changed[3][1] = "Daniel"              # dan: first name
    changed.append(["fay@acme.example", "Fay", "New", "Viewer", "Sales", ""])  # a new user
    source = write_csv(tmp_path / "changed.csv", HEADER, changed)
    report = tmp_path / "upsert.csv"
    result = run_cli(*cli_args(served, "import", source, report, "--on-existing", "update"))
    assert result.exit_code == 0, result.output
    assert statuses(report) == {"ann@acme.example": "unchanged", "bob@acme.example": "updated",
                                "cat@acme.example": "updated", "dan@acme.example": "updated",
                                "eve@acme.example": "unchanged", "fay@acme.example": "created"}
    changes = {line["email"]: line["changes"] for line in read_report(report)}
    assert changes["bob@acme.example"] == "role: Viewer -> Designer"
    assert changes["cat@acme.example"] == "groups: +Sales"
    assert changes["dan@acme.example"] == "firstName: 'Dan' -> 'Daniel'"
    assert role_and_groups(served, "bob@acme.example") == ("contributor", {"Sales"})
    assert role_and_groups(served, "cat@acme.example")[1] == {"Engineering", "Sales"}
    dan = served.emulator.store.user_by_email("dan@acme.example")
    assert dan is not None
    assert dan["firstName"] == "Daniel"
    writes_before = len(served.emulator.writes())
    again = tmp_path / "again.csv"
    result = run_cli(*cli_args(served, "import", source, again, "--on-existing", "update"))
    assert result.exit_code == 0, result.output
    assert set(statuses(again).values()) == {"unchanged"}
    assert len(served.emulator.writes()) == writes_before


def test_groups_add_replace_and_clear(served: Served, run_cli: RunCli, tmp_path: Path) -> None:
    """update --groups add adds to the current groups, replace sets them, (clear) empties."""
    seed(served, run_cli, tmp_path)
    sheet = ("Email", "Groups")
    add = write_csv(tmp_path / "add.csv", sheet, [["ann@acme.example", "Marketing"]])
    assert run_cli(*cli_args(served, "update", add, tmp_path / "r1.csv")).exit_code == 0
    assert role_and_groups(served, "ann@acme.example")[1] == {"Finance", "Sales", "Marketing"}
    assert run_cli(*cli_args(served, "update", add, tmp_path / "r2.csv", "--groups",
                             "replace")).exit_code == 0
    assert role_and_groups(served, "ann@acme.example")[1] == {"Marketing"}
    assert read_report(tmp_path / "r2.csv")[0]["changes"] == "groups: -Finance -Sales"
    clear = write_csv(tmp_path / "clear.csv", sheet, [["ann@acme.example", "(clear)"]])
    assert run_cli(*cli_args(served, "update", clear, tmp_path / "r3.csv")).exit_code == 0
    assert role_and_groups(served, "ann@acme.example")[1] == set()


def test_update_of_unknown_user_fails_and_blank_cells_change_nothing(
        served: Served, run_cli: RunCli, tmp_path: Path) -> None:
    """update: an email with no user is failed (exit 1); blank cells leave fields alone."""
    seed(served, run_cli, tmp_path)
    source = write_csv(tmp_path / "u.csv", ("Email", "First Name", "Role"),
                       [["nobody@acme.example", "X", "viewer"], ["ann@acme.example", "", ""]])
    report = tmp_path / "u-report.csv"
    result = run_cli(*cli_args(served, "update", source, report))
    assert result.exit_code == 1
    assert statuses(report) == {"nobody@acme.example": "failed",
                                "ann@acme.example": "unchanged"}
    assert role_and_groups(served, "ann@acme.example") == ("admin", {"Finance", "Sales"})


def test_refused_bulk_batch_falls_back_to_one_request_per_row(
        served: Served, run_cli: RunCli, tmp_path: Path) -> None:
    """When the all-or-nothing bulk create is refused, every row gets its own outcome."""
    rows = [["a1@acme.example", "A", "1", "viewer", "Sales", ""],
            ["a2@acme.example", "A", "2", "viewer", "Sales", ""],
            ["a3@acme.example", "A", "3", "viewer", "Sales", ""]]
    source = write_csv(tmp_path / "b.csv", HEADER, rows)
    report = tmp_path / "b-report.csv"
    served.host.call(lambda: served.emulator.faults.script("POST", "/api/v1/users/bulk", [400]))
    result = run_cli(*cli_args(served, "import", source, report))
    assert result.exit_code == 0
    assert statuses(report) == dict.fromkeys(r[0] for r in rows) | {
        r[0]: "created" for r in rows}
    posts = [(r.path, r.status) for r in served.emulator.writes() if r.method == "POST"]
    assert posts[0] == ("/api/v1/users/bulk", 400)
    assert [p for p, _ in posts[1:]] == ["/api/v1/users"] * 3


def test_rows_asking_for_one_username_conflict_while_planning(
        served: Served, run_cli: RunCli, tmp_path: Path) -> None:
    """Two rows wanting one new userName: the later is invalid before anything is sent, the
    earlier is created in the bulk request; no request is refused."""
    sheet = (*HEADER, "Username")
    body = [["a1@acme.example", "A", "1", "viewer", "Sales", "", ""],
            ["a2@acme.example", "A", "2", "viewer", "Sales", "", "Shared"],
            ["a3@acme.example", "A", "3", "viewer", "Sales", "", "shared"]]
    source = write_csv(tmp_path / "b.csv", sheet, body)
    report = tmp_path / "b-report.csv"
    result = run_cli(*cli_args(served, "import", source, report))
    assert result.exit_code == 1
    assert statuses(report) == {"a1@acme.example": "created", "a2@acme.example": "created",
                                "a3@acme.example": "skipped"}
    skipped = next(line for line in read_report(report) if line["status"] == "skipped")
    assert "'shared'" in skipped["error"]
    assert "a2@acme.example" in skipped["error"]
    posts = [(r.path, r.status) for r in served.emulator.writes() if r.method == "POST"]
    assert posts == [("/api/v1/users/bulk", 201)]


async def login(url: str, email: str, password: str) -> tuple[int, str]:
    """Log in at the emulator; (status, token or "")."""
    async with aiohttp.ClientSession() as session, session.post(
            f"{url}/api/v1/authentication/login",
            data={"username": email, "password": password}) as response:
        body = await response.json()
        return response.status, body.get("access_token", "") if response.status == 200 else ""


async def roles_with(url: str, token: str) -> int:
    """The status of GET /api/roles with a Bearer token."""
    async with aiohttp.ClientSession() as session, session.get(
            f"{url}/api/roles", headers={"Authorization": f"Bearer {token}"}) as response:
        return response.status


def test_deactivate_locks_users_out_and_reactivate_restores_them(
        served: Served, run_cli: RunCli, tmp_path: Path) -> None:
    """After deactivate the user's login and earlier token are refused, role and groups are
    gone and recorded; reactivate puts role and groups back."""
    seed(served, run_cli, tmp_path)
    # The emulator serves from its own thread, so a fresh loop here is fine.
    status, ann_token = asyncio.run(login(served.url, "ann@acme.example", "Ann-Pass-1"))
    assert status == 200
    leavers = write_csv(tmp_path / "leavers.csv", ("Email",),
                        [["ann@acme.example"], ["cat@acme.example"], ["admin@example.com"],
                         ["ghost@acme.example"]])
    report = tmp_path / "deactivated.csv"
    result = run_cli(*cli_args(served, "deactivate", leavers, report))
    assert result.exit_code == 1  # the super user and the unknown email need attention
    lines = {line["email"]: line for line in read_report(report)}
    assert lines["ann@acme.example"]["status"] == "deactivated"
    assert lines["cat@acme.example"]["status"] == "deactivated"
    assert lines["admin@example.com"]["status"] == "skipped"
    assert "super user" in lines["admin@example.com"]["error"]
    assert lines["ghost@acme.example"]["status"] == "skipped"
    previous = json.loads(lines["ann@acme.example"]["previous"])
    assert (previous["role"], sorted(previous["groups"])) == ("admin", ["Finance", "Sales"])
    assert role_and_groups(served, "ann@acme.example") == ("consumer", set())
    assert not served.emulator.store.check_password("ann@acme.example", "Ann-Pass-1")
    assert asyncio.run(login(served.url, "ann@acme.example", "Ann-Pass-1")) == (401, "")
    assert asyncio.run(roles_with(served.url, ann_token)) == 401
    assert role_and_groups(served, "admin@example.com")[0] == "super"

    restored = tmp_path / "reactivated.csv"
    result = run_cli("reactivate", str(report), "--url", served.url, "--token", TOKEN,
                     "--report", str(restored))
    assert result.exit_code == 0, result.output
    assert statuses(restored)["ann@acme.example"] == "updated"
    assert role_and_groups(served, "ann@acme.example") == ("admin", {"Finance", "Sales"})
    assert role_and_groups(served, "cat@acme.example") == ("contributor", {"Engineering"})


def test_the_account_running_the_tool_is_never_deactivated(
        served: Served, run_cli: RunCli, tmp_path: Path) -> None:
    """An admin logged in with --username is skipped when the list names them."""
    seed(served, run_cli, tmp_path)
    leavers = write_csv(tmp_path / "leavers.csv", ("Email",), [["ann@acme.example"]])
    report = tmp_path / "r.csv"
    result = run_cli("deactivate", str(leavers), "--url", served.url, "--username",
                     "ann@acme.example", "--password", "Ann-Pass-1", "--report", str(report),
                     "--yes")
    assert result.exit_code == 1
    (line,) = read_report(report)
    assert line["status"] == "skipped"
    assert "account running bulkusers" in line["error"]
    assert role_and_groups(served, "ann@acme.example") == ("admin", {"Finance", "Sales"})


def test_delete_keeps_records_and_its_report_recreates_the_users(
        served: Served, run_cli: RunCli, tmp_path: Path) -> None:
    """delete removes the users (never the super user), and importing its report into the
    same server re-creates them with their roles and groups."""
    seed(served, run_cli, tmp_path)
    leavers = write_csv(tmp_path / "leavers.csv", ("Email",),
                        [["ann@acme.example"], ["bob@acme.example"], ["admin@example.com"]])
    report = tmp_path / "deleted.csv"
    result = run_cli(*cli_args(served, "delete", leavers, report))
    assert result.exit_code == 1  # the super user row needs attention
    assert statuses(report) == {"ann@acme.example": "deleted", "bob@acme.example": "deleted",
                                "admin@example.com": "skipped"}
    store = served.emulator.store
    assert store.user_by_email("ann@acme.example") is None
    assert store.user_by_email("admin@example.com") is not None
    assert ("DELETE", "/api/v1/users/bulk") in [(r.method, r.path)
                                                for r in served.emulator.writes()]
    again = tmp_path / "recreated.csv"
    result = run_cli(*cli_args(served, "import", report, again))
    assert result.exit_code == 0, result.output
    assert statuses(again)["ann@acme.example"] == "created"
    assert role_and_groups(served, "ann@acme.example") == ("admin", {"Finance", "Sales"})
    assert role_and_groups(served, "bob@acme.example") == ("consumer", {"Sales"})
    ann = store.user_by_email("ann@acme.example")
    assert ann is not None
    assert (ann["firstName"], ann["lastName"]) == ("Ann", "Lee")


@pytest.fixture
def legacy() -> Iterator[Served]:
    """An emulator that accepts the pre-6.5 x-api-key JWT signed with a known secret."""
    yield from serve(EmulatorSettings(groups=GROUPS, api_secret="rest-api-secret-0123456789"))


def test_legacy_api_with_jwt_imports_updates_and_deletes(
        legacy: Served, run_cli: RunCli, tmp_path: Path) -> None:
    """--api legacy with the x-api-key JWT drives the v0.9 endpoints for every operation."""
    auth = ["--url", legacy.url, "--api", "legacy", "--api-secret",
            "rest-api-secret-0123456789", "--username", "admin@example.com", "--password",
            "Admin-Pass-1"]
    source = write_csv(tmp_path / "seed.csv", HEADER, people())
    result = run_cli("import", str(source), *auth, "--report", str(tmp_path / "1.csv"))
    assert result.exit_code == 0, result.output
    assert role_and_groups(legacy, "ann@acme.example") == ("admin", {"Finance", "Sales"})
    paths = {(r.method, r.path) for r in legacy.emulator.writes()}
    assert ("POST", "/api/users") in paths
    assert not any(p.startswith("/api/v1/users") for _, p in paths)

    moved = write_csv(tmp_path / "moved.csv", ("Email", "Role", "Groups"),
                      [["bob@acme.example", "designer", "Marketing"]])
    result = run_cli("update", str(moved), *auth, "--groups", "replace", "--report",
                     str(tmp_path / "2.csv"))
    assert result.exit_code == 0, result.output
    assert role_and_groups(legacy, "bob@acme.example") == ("contributor", {"Marketing"})

    leavers = write_csv(tmp_path / "leavers.csv", ("Email",), [["dan@acme.example"]])
    result = run_cli("delete", str(leavers), *auth, "--report", str(tmp_path / "3.csv"),
                     "--yes")
    assert result.exit_code == 0, result.output
    assert legacy.emulator.store.user_by_email("dan@acme.example") is None
    assert "rest-api-secret" not in result.output


def test_an_api_secret_given_to_the_v1_api_is_named_as_unused(
        served: Served, run_cli: RunCli, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """--api-secret (or SISENSE_API_SECRET) with --api v1 is never used: the run goes on with
    the token and one warning says so, naming where the secret came from and --api legacy;
    with --api legacy there is no such warning."""
    source = write_csv(tmp_path / "seed.csv", HEADER, people())
    flag = run_cli("import", str(source), *served.connect(), "--api-secret",
                   "unused-secret-0123456789", "--report", "1.csv")
    assert flag.exit_code == 0, flag.output
    assert ("--api-secret is not used with --api v1: it signs the x-api-key JWT of pre-6.5 "
            "servers; add --api legacy for such a server, or drop it") in flag.output
    assert "unused-secret" not in flag.output
    monkeypatch.setenv("SISENSE_API_SECRET", "unused-secret-0123456789")
    env = run_cli("import", str(source), *served.connect(), "--report", "2.csv")
    assert env.exit_code == 0, env.output
    assert "--api-secret (from env SISENSE_API_SECRET) is not used with --api v1" in env.output


def test_legacy_jwt_with_wrong_secret_aborts(legacy: Served, run_cli: RunCli,
                                             tmp_path: Path) -> None:
    """A JWT signed with the wrong secret is refused at once: exit 3, nothing written, and
    the one line names the JWT, its email and the three settings to check (never the
    secret), not a token or a login."""
    source = write_csv(tmp_path / "seed.csv", HEADER, people())
    result = run_cli("import", str(source), "--url", legacy.url, "--api", "legacy",
                     "--api-secret", "wrong-secret-0123456789abcdef", "--username",
                     "admin@example.com", "--password", "Admin-Pass-1")
    assert result.exit_code == 3
    assert legacy.emulator.writes() == []
    assert "is not used with --api v1" not in result.output
    assert ("the server refuses the x-api-key JWT signed for 'admin@example.com' (HTTP 401); "
            "check --api-secret") in result.output
    assert "--username and --password" in result.output
    assert "wrong-secret" not in result.output
    assert "Admin-Pass-1" not in result.output
    assert "token" not in result.output.replace("REST API token", "")
    assert "fresh login" not in result.output
