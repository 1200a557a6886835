"""Lost answers end to end: a proxy lets writes reach the emulator, then loses the answer and
refuses the retries. After each run every report row is compared with what the server holds."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

from click.testing import Result

from tests.conftest import TOKEN, Served, read_report, write_csv
from tests.proxy import HELD, LOST, REFUSED, LossyProxy, lossy

__all__ = ["lossy"]
RunCli = Callable[..., Result]
USERS = "/api/v1/users"
REVOKE = "/api/v1/authentication/admin/logout"
HEADER = ("Email", "First Name", "Role", "Groups", "Password")
PEOPLE = [["ann@acme.example", "Ann", "Admin", "Finance; Sales", "Ann-Pass-1"],
          ["bob@acme.example", "Bob", "Designer", "Sales", "Bob-Pass-1"],
          ["cat@acme.example", "Cat", "Viewer", "Engineering", "Cat-Pass-1"]]
#: Three attempts per request, so "lost, 503, 503" exhausts them; quick backoff.
FAST = ("--retries", "2", "--concurrency", "1")
CONFIRMED = "confirmed on the server"


def run(run_cli: RunCli, proxy: LossyProxy, command: str, source: Path, report: Path,
        *extra: str) -> Result:
    """A write command through the proxy, with an explicit report."""
    args = [command, str(source), *proxy.connect(TOKEN), "--report", str(report), *FAST, *extra]
    if command in ("deactivate", "delete"):
        args.append("--yes")
    return run_cli(*args)


def seed(served: Served, run_cli: RunCli, tmp_path: Path) -> None:
    """Create the three people directly (no proxy)."""
    source = write_csv(tmp_path / "seed.csv", HEADER, PEOPLE)
    result = run_cli("import", str(source), *served.connect(), "--report",
                     str(tmp_path / "seed-report.csv"))
    assert result.exit_code == 0, result.output


def lines_of(report: Path) -> dict[str, dict[str, str]]:
    """email -> report line."""
    return {line["email"]: line for line in read_report(report)}


def server_users(served: Served, email: str) -> list[dict[str, object]]:
    """Every user the emulator holds with this email (never more than one is allowed)."""
    return [u.to_json() for u in served.emulator.store.users.values()
            if str(u.to_json()["email"]).lower() == email.lower()]


def role_and_groups(served: Served, email: str) -> tuple[str, set[str]]:
    """A user's role name and explicit group names as the emulator holds them."""
    (user,) = server_users(served, email)
    store = served.emulator.store
    return store.role_name_of(str(user["_id"])), store.group_names_of(str(user["_id"]))


def token_works(served: Served, token: str) -> bool:
    """Whether the emulator accepts a bearer token (GET /api/roles: 401 means refused)."""
    request = urllib.request.Request(f"{served.url}/api/roles",
                                     headers={"Authorization": f"Bearer {token}"})
    try:
        with urllib.request.urlopen(request, timeout=5) as answer:
            status = answer.status
    except urllib.error.HTTPError as exc:
        status = exc.code
    assert status in (200, 401, 403), status
    return bool(status != 401)  # 403: the token is valid, its (lowered) role may not read roles


def login(served: Served, email: str, password: str) -> str:
    """A fresh token of a user, from the emulator's login."""
    data = f"username={email}&password={password}".encode()
    request = urllib.request.Request(f"{served.url}/api/v1/authentication/login", data=data)
    with urllib.request.urlopen(request, timeout=5) as answer:
        return str(json.loads(answer.read())["access_token"])


def test_a_create_that_landed_unseen_is_created_once_and_one_that_did_not_is_failed(
        served: Served, lossy: LossyProxy, run_cli: RunCli, tmp_path: Path) -> None:
    """One by one: a create whose answer was lost, then 503s, is reported created (confirmed
    on the server); a create refused every time is failed and absent; a re-run creates the
    missing user and duplicates nobody."""
    source = write_csv(tmp_path / "hr.csv", HEADER, PEOPLE[:2])
    lossy.script("POST", USERS, LOST, REFUSED, REFUSED, REFUSED, REFUSED, REFUSED)
    report = tmp_path / "r.csv"
    result = run(run_cli, lossy, "import", source, report, "--batch-size", "1")
    assert result.exit_code == 1, result.output
    lines = lines_of(report)
    ann, bob = lines["ann@acme.example"], lines["bob@acme.example"]
    assert (ann["status"], bob["status"]) == ("created", "failed")
    assert CONFIRMED in ann["changes"]
    assert ann["user_id"] == server_users(served, "ann@acme.example")[0]["_id"]
    assert "does not exist, nothing was created" in bob["error"]
    assert len(server_users(served, "ann@acme.example")) == 1
    assert server_users(served, "bob@acme.example") == []
    assert lossy.lost == [("POST", USERS)]

    again = run(run_cli, lossy, "import", source, tmp_path / "again.csv", "--batch-size", "1")
    assert again.exit_code == 0, again.output
    assert {e: line["status"] for e, line in lines_of(tmp_path / "again.csv").items()} == {
        "ann@acme.example": "skipped", "bob@acme.example": "created"}
    assert [len(server_users(served, p[0])) for p in PEOPLE[:2]] == [1, 1]


def test_a_bulk_create_that_landed_unseen_is_checked_row_by_row(
        served: Served, lossy: LossyProxy, run_cli: RunCli, tmp_path: Path) -> None:
    """A bulk create whose answer was lost, then 503s: every row is created (confirmed on the
    server), each user exists once, and no row is sent again."""
    source = write_csv(tmp_path / "hr.csv", HEADER, PEOPLE)
    lossy.script("POST", f"{USERS}/bulk", LOST, REFUSED, REFUSED)
    report = tmp_path / "r.csv"
    result = run(run_cli, lossy, "import", source, report, "--batch-size", "3")
    assert result.exit_code == 0, result.output
    for email, line in lines_of(report).items():
        assert (line["status"], CONFIRMED in line["changes"]) == ("created", True), line
        (user,) = server_users(served, email)
        assert line["user_id"] == user["_id"]
    assert role_and_groups(served, "ann@acme.example") == ("admin", {"Finance", "Sales"})
    creates = [r for r in served.emulator.writes() if r.method == "POST"]
    assert [r.path for r in creates] == [f"{USERS}/bulk"]  # only the lost one reached it


def test_a_bulk_create_refused_every_time_sends_rows_alone(
        served: Served, lossy: LossyProxy, run_cli: RunCli, tmp_path: Path) -> None:
    """A bulk create answered 503 on every attempt (it may have landed) is checked row by row:
    the server has none of them, so each is created alone, once."""
    source = write_csv(tmp_path / "hr.csv", HEADER, PEOPLE)
    lossy.script("POST", f"{USERS}/bulk", REFUSED, REFUSED, REFUSED)
    report = tmp_path / "r.csv"
    result = run(run_cli, lossy, "import", source, report, "--batch-size", "3")
    assert result.exit_code == 0, result.output
    assert {line["status"] for line in lines_of(report).values()} == {"created"}
    assert [len(server_users(served, p[0])) for p in PEOPLE] == [1, 1, 1]


def test_an_update_whose_answer_was_lost_or_held_is_confirmed_on_the_server(
        served: Served, lossy: LossyProxy, run_cli: RunCli, tmp_path: Path) -> None:
    """PATCHes that landed but whose answers were lost (connection dropped; held past the
    client's timeout), then 503s, are reported updated; one refused every time is failed and
    the server still holds the old role."""
    seed(served, run_cli, tmp_path)
    source = write_csv(tmp_path / "up.csv", ("Email", "Role"),
                       [["ann@acme.example", "Viewer"], ["bob@acme.example", "Viewer"],
                        ["cat@acme.example", "Designer"]])
    lossy.script("PATCH", f"{USERS}/", LOST, REFUSED, REFUSED, HELD, REFUSED, REFUSED,
                 REFUSED, REFUSED, REFUSED, exact=False)
    report = tmp_path / "r.csv"
    result = run(run_cli, lossy, "update", source, report, "--timeout", "1")
    assert result.exit_code == 1, result.output
    lines = lines_of(report)
    assert [lines[p[0]]["status"] for p in PEOPLE] == ["updated", "updated", "failed"]
    assert all(CONFIRMED in lines[p[0]]["changes"] for p in PEOPLE[:2])
    assert role_and_groups(served, "ann@acme.example")[0] == "consumer"
    assert role_and_groups(served, "bob@acme.example")[0] == "consumer"
    assert role_and_groups(served, "cat@acme.example")[0] == "consumer"  # unchanged
    assert "nothing of it was applied" in lines["cat@acme.example"]["error"]
    assert len(lossy.lost) == 2


def test_a_deactivation_whose_patch_answer_was_lost_completes(
        served: Served, lossy: LossyProxy, run_cli: RunCli, tmp_path: Path) -> None:
    """The role/groups/password PATCH lands but its answer is lost, then 503s: the server
    shows it applied, the tokens are still revoked, the row is deactivated and the user's
    earlier token is refused."""
    seed(served, run_cli, tmp_path)
    token = login(served, "ann@acme.example", "Ann-Pass-1")
    leavers = write_csv(tmp_path / "leavers.csv", ("Email",), [["ann@acme.example"]])
    lossy.script("PATCH", f"{USERS}/", LOST, REFUSED, REFUSED, exact=False)
    report = tmp_path / "r.csv"
    result = run(run_cli, lossy, "deactivate", leavers, report)
    assert result.exit_code == 0, result.output
    line = lines_of(report)["ann@acme.example"]
    assert line["status"] == "deactivated", line
    assert "tokens revoked" in line["changes"]
    assert CONFIRMED in line["changes"]
    assert role_and_groups(served, "ann@acme.example") == ("consumer", set())
    assert not token_works(served, token)
    assert json.loads(line["previous"])["role"] == "admin"


def test_a_deactivation_whose_token_step_keeps_failing_names_that_step(
        served: Served, lossy: LossyProxy, run_cli: RunCli, tmp_path: Path) -> None:
    """Revoking the tokens fails on every try (of two rounds): the row is failed, not
    deactivated; it says the role, groups and password changed and the tokens were not
    revoked, which is true (the old token still works); deactivate again completes it."""
    seed(served, run_cli, tmp_path)
    token = login(served, "bob@acme.example", "Bob-Pass-1")
    leavers = write_csv(tmp_path / "leavers.csv", ("Email",), [["bob@acme.example"]])
    lossy.script("GET", REVOKE, *[REFUSED] * 6)
    report = tmp_path / "r.csv"
    result = run(run_cli, lossy, "deactivate", leavers, report)
    assert result.exit_code == 1, result.output
    line = lines_of(report)["bob@acme.example"]
    assert line["status"] == "failed"
    assert "role, groups and password changed" in line["error"]
    assert "revoking the user's tokens failed" in line["error"]
    assert "not revoked" in line["changes"]
    assert role_and_groups(served, "bob@acme.example") == ("consumer", set())
    assert token_works(served, token)  # what the report says: tokens not revoked

    again = tmp_path / "again.csv"
    assert run(run_cli, lossy, "deactivate", leavers, again).exit_code == 0
    line = lines_of(again)["bob@acme.example"]
    assert line["status"] == "deactivated", line
    assert json.loads(line["previous"])["role"] == "contributor"  # the first record is kept
    assert not token_works(served, token)


def test_a_token_step_whose_answer_was_lost_is_done_again_within_the_run(
        served: Served, lossy: LossyProxy, run_cli: RunCli, tmp_path: Path) -> None:
    """The revocation lands but its answer is lost, then 503s until the first round of retries
    is spent; the run revokes again in a second round: deactivated, old token refused."""
    seed(served, run_cli, tmp_path)
    token = login(served, "cat@acme.example", "Cat-Pass-1")
    leavers = write_csv(tmp_path / "leavers.csv", ("Email",), [["cat@acme.example"]])
    # Enough refusals to exhaust the first round's three attempts (aiohttp itself may
    # repeat a GET whose connection dropped), not the second's.
    lossy.script("GET", REVOKE, LOST, *[REFUSED] * 4)
    report = tmp_path / "r.csv"
    result = run(run_cli, lossy, "deactivate", leavers, report)
    assert result.exit_code == 0, result.output
    assert lines_of(report)["cat@acme.example"]["status"] == "deactivated"
    assert not token_works(served, token)
    assert lossy.lost == [("GET", REVOKE)]


def test_a_reactivation_whose_answer_was_lost_is_confirmed(
        served: Served, lossy: LossyProxy, run_cli: RunCli, tmp_path: Path) -> None:
    """reactivate: the PATCH lands, its answer is lost, then 503s: the row is updated
    (confirmed on the server), which holds the recorded role and groups again."""
    seed(served, run_cli, tmp_path)
    leavers = write_csv(tmp_path / "leavers.csv", ("Email",), [["ann@acme.example"]])
    deactivated = tmp_path / "deactivated.csv"
    assert run(run_cli, lossy, "deactivate", leavers, deactivated).exit_code == 0
    lossy.script("PATCH", f"{USERS}/", LOST, REFUSED, REFUSED, exact=False)
    report = tmp_path / "r.csv"
    result = run_cli("reactivate", str(deactivated), *lossy.connect(TOKEN), "--report",
                     str(report), *FAST)
    assert result.exit_code == 0, result.output
    line = lines_of(report)["ann@acme.example"]
    assert (line["status"], CONFIRMED in line["changes"]) == ("updated", True), line
    assert role_and_groups(served, "ann@acme.example") == ("admin", {"Finance", "Sales"})


def test_deletes_whose_answers_were_lost_are_deleted_and_refused_ones_are_kept(
        served: Served, lossy: LossyProxy, run_cli: RunCli, tmp_path: Path) -> None:
    """One by one: a DELETE that landed unseen, then 503s, is deleted (the server no longer
    has the user); one refused every time is failed and the user is still there."""
    seed(served, run_cli, tmp_path)
    leavers = write_csv(tmp_path / "leavers.csv", ("Email",),
                        [["ann@acme.example"], ["bob@acme.example"]])
    # aiohttp itself may repeat a DELETE whose connection dropped: refusals to spare.
    lossy.script("DELETE", f"{USERS}/", LOST, *[REFUSED] * 8, exact=False)
    report = tmp_path / "r.csv"
    result = run(run_cli, lossy, "delete", leavers, report, "--batch-size", "1")
    assert result.exit_code == 1, result.output
    lines = lines_of(report)
    assert lines["ann@acme.example"]["status"] == "deleted"
    assert server_users(served, "ann@acme.example") == []
    assert lines["bob@acme.example"]["status"] == "failed"
    assert "still exists, nothing was deleted" in lines["bob@acme.example"]["error"]
    assert len(server_users(served, "bob@acme.example")) == 1


def test_a_bulk_delete_that_landed_unseen_is_checked_user_by_user(
        served: Served, lossy: LossyProxy, run_cli: RunCli, tmp_path: Path) -> None:
    """A bulk DELETE whose answer was lost, then 503s: each row is checked on the server and
    reported deleted (confirmed) with its record; nothing is sent again."""
    seed(served, run_cli, tmp_path)
    leavers = write_csv(tmp_path / "leavers.csv", ("Email",), [[p[0]] for p in PEOPLE])
    lossy.script("DELETE", f"{USERS}/bulk", LOST, *[REFUSED] * 4)  # aiohttp may repeat it
    report = tmp_path / "r.csv"
    result = run(run_cli, lossy, "delete", leavers, report, "--batch-size", "3")
    assert result.exit_code == 0, result.output
    for email, line in lines_of(report).items():
        assert (line["status"], CONFIRMED in line["changes"]) == ("deleted", True), line
        assert json.loads(line["previous"])["email"] == email
        assert server_users(served, email) == []
    deletes = [r for r in served.emulator.writes() if r.method == "DELETE"]
    assert [r.path for r in deletes] == [f"{USERS}/bulk"]


def test_the_legacy_api_settles_lost_creates_updates_and_deletes_the_same_way(
        served: Served, lossy: LossyProxy, run_cli: RunCli, tmp_path: Path) -> None:
    """--api legacy: a create (POST /api/users), an update (PUT /api/users/{id}) and a bulk
    delete (POST /api/users/delete) whose answers were lost, then 503s, are each confirmed on
    the server and reported with their success status."""
    legacy = ("--api", "legacy")
    source = write_csv(tmp_path / "hr.csv", HEADER, PEOPLE[:2])
    lossy.script("POST", "/api/users", LOST, *[REFUSED] * 4)
    created = tmp_path / "created.csv"
    result = run(run_cli, lossy, "import", source, created, "--batch-size", "2", *legacy)
    assert result.exit_code == 0, result.output
    assert {line["status"] for line in lines_of(created).values()} == {"created"}
    assert [len(server_users(served, p[0])) for p in PEOPLE[:2]] == [1, 1]

    moved = write_csv(tmp_path / "moved.csv", ("Email", "Role"), [["ann@acme.example", "Viewer"]])
    lossy.script("PUT", "/api/users/", LOST, *[REFUSED] * 4, exact=False)
    updated = tmp_path / "updated.csv"
    result = run(run_cli, lossy, "update", moved, updated, *legacy)
    assert result.exit_code == 0, result.output
    line = lines_of(updated)["ann@acme.example"]
    assert (line["status"], CONFIRMED in line["changes"]) == ("updated", True), line
    assert role_and_groups(served, "ann@acme.example")[0] == "consumer"

    leavers = write_csv(tmp_path / "leavers.csv", ("Email",), [[p[0]] for p in PEOPLE[:2]])
    lossy.script("POST", "/api/users/delete", LOST, *[REFUSED] * 4)
    deleted = tmp_path / "deleted.csv"
    result = run(run_cli, lossy, "delete", leavers, deleted, "--batch-size", "2", *legacy)
    assert result.exit_code == 0, result.output
    assert {line["status"] for line in lines_of(deleted).values()} == {"deleted"}
    assert [server_users(served, p[0]) for p in PEOPLE[:2]] == [[], []]
    assert len(lossy.lost) == 3  # each of the three writes landed unseen
