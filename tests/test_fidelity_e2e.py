"""End to end against the stricter emulator: tokens that expire mid-run, gateway HTML pages,
emails the server refuses, and built-in groups listed (or not) in users' groups."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path
from typing import Any

import pytest
from click.testing import Result

from bulkusers.emulator import EmulatorSettings, Store
from tests.conftest import GROUPS, TOKEN, FakeClock, Served, read_report, serve, write_csv
from tests.test_operations_e2e import HEADER, cli_args, people, role_and_groups, statuses

RunCli = Callable[..., Result]
ADMIN, PASSWORD = "admin@example.com", "Admin-Pass-1"
LOGIN = "/api/v1/authentication/login"


def use_fake_clock(served: Served) -> None:
    """Make the served emulator's tokens age one second per request that reads the clock."""
    store = served.emulator.store
    served.host.call(lambda: setattr(store, "wall", FakeClock()))


def many_people(count: int) -> list[list[str]]:
    """`count` valid rows of new viewers."""
    return [[f"p{n:03d}@acme.example", "P", f"N{n}", "Viewer", "Sales", ""] for n in range(count)]


def error_lines(output: str) -> list[str]:
    """The lines of CLI output that state why a run stopped (``bulkusers: error``, ``aborted:``),
    each with the rest of the output after it, whitespace collapsed (a terminal wraps lines)."""
    lines = output.splitlines()
    return [" ".join("\n".join(lines[at:]).split()) for at, line in enumerate(lines)
            if line.startswith(("bulkusers: error", "aborted:"))]


# -- tokens that expire in the middle of a run ---------------------------------------------------


@pytest.fixture
def expiring() -> Iterator[Served]:
    """An emulator whose tokens (the fixed one too) expire 8 requests after issue."""
    yield from serve(EmulatorSettings(token=TOKEN, groups=GROUPS, token_ttl_s=8))


def test_login_run_logs_in_again_when_its_token_expires(expiring: Served, run_cli: RunCli,
                                                        tmp_path: Path) -> None:
    """--username/--password over a long input with a short TTL: re-logins mid-run, every row
    created, exit 0."""
    use_fake_clock(expiring)
    source = write_csv(tmp_path / "many.csv", HEADER, many_people(60))
    result = run_cli("import", str(source), "--url", expiring.url, "--username", ADMIN,
                     "--password", PASSWORD, "--batch-size", "1", "--concurrency", "4",
                     "--report", "r.csv")
    assert result.exit_code == 0, result.output
    assert set(statuses(tmp_path / "r.csv").values()) == {"created"}
    logins = [r for r in expiring.emulator.requests if r.path == LOGIN]
    assert len(logins) >= 4  # the first login and at least three after an expiry
    assert all(r.status == 200 for r in logins)
    assert 401 in {r.status for r in expiring.emulator.requests}
    store = expiring.emulator.store
    assert all(store.creations[f"p{n:03d}@acme.example"] == 1 for n in range(60))


def test_fixed_token_that_expires_aborts_with_one_line(expiring: Served, run_cli: RunCli,
                                                       tmp_path: Path) -> None:
    """A fixed --token that expires mid-run: one clear error line, exit 3, the rest
    not_attempted, no traceback."""
    use_fake_clock(expiring)
    source = write_csv(tmp_path / "many.csv", HEADER, many_people(60))
    result = run_cli("import", str(source), "--url", expiring.url, "--token", TOKEN,
                     "--batch-size", "1", "--concurrency", "2", "--report", "r.csv")
    assert result.exit_code == 3, result.output
    assert "Traceback" not in result.output
    errors = error_lines(result.output)
    assert len(errors) == 1, result.output
    assert "401" in errors[0]
    assert "expired" in errors[0]
    assert TOKEN not in result.output
    found = statuses(tmp_path / "r.csv")
    assert len(found) == 60
    assert "not_attempted" in found.values()


# -- gateway errors ------------------------------------------------------------------------------


def test_gateway_html_pages_fail_rows_in_one_line(served: Served, run_cli: RunCli,
                                                  tmp_path: Path) -> None:
    """Rows answered with a gateway's 502/504 HTML page fail with one short line: no HTML in
    the report, the summary file or the terminal."""
    served.host.call(lambda: served.emulator.faults.script("POST", "/api/v1/users",
                                                           [502, 504, 502]))
    source = write_csv(tmp_path / "few.csv", HEADER, many_people(5))
    result = run_cli(*cli_args(served, "import", source, tmp_path / "r.csv", "--batch-size", "1",
                               "--concurrency", "1", "--retries", "0"))
    assert result.exit_code == 1, result.output
    lines = read_report(tmp_path / "r.csv")
    failed = [line for line in lines if line["status"] == "failed"]
    assert len(failed) == 3
    for line in failed:
        assert line["error"].startswith(("HTTP 502: Bad Gateway", "HTTP 504: Gateway Timeout"))
        assert "gateway" in line["error"]
        assert "\n" not in line["error"]
    summaries = list(tmp_path.glob("*.summary.json"))
    texts = [result.output, (tmp_path / "r.csv").read_text(encoding="utf-8-sig"),
             *(path.read_text(encoding="utf-8") for path in summaries)]
    for text in texts:
        assert "<html" not in text.lower()
        assert "nginx" not in text
        assert "</" not in text


def test_gateway_down_aborts_in_one_line(run_cli: RunCli, tmp_path: Path) -> None:
    """Every answer a 503 HTML page (--error-rate 1): exit 3 with one line naming the gateway
    and how many tries were made."""
    for served in serve(EmulatorSettings(token=TOKEN, error_rate=1.0)):
        result = run_cli("export", "out.csv", *served.connect(), "--retries", "0")
        assert result.exit_code == 3, result.output
        errors = error_lines(result.output)
        assert len(errors) == 1, result.output
        message = " ".join(result.output[result.output.index("bulkusers: error"):].split())
        assert "503" in message
        assert "gateway" in message
        assert "(--retries 0: tried once)" in message  # not "keeps answering" after one try
        assert "<" not in result.output


# -- emails the server refuses -------------------------------------------------------------------


def test_refused_emails_are_row_problems(served: Served, run_cli: RunCli, tmp_path: Path) -> None:
    """Emails the server's pattern refuses are reported on their own rows; the others are
    created (exit 1)."""
    rows = [["ok1@acme.example", "A", "B", "Viewer", "", ""],
            ["a..b@acme.example", "A", "B", "Viewer", "", ""],
            ["ok2@acme.example", "A", "B", "Viewer", "", ""],
            [".dot@acme.example", "A", "B", "Viewer", "", ""],
            ["x@acme.c", "A", "B", "Viewer", "", ""]]
    source = write_csv(tmp_path / "emails.csv", HEADER, rows)
    result = run_cli(*cli_args(served, "import", source, tmp_path / "r.csv"))
    assert result.exit_code == 1, result.output
    lines = {line["email"]: line for line in read_report(tmp_path / "r.csv")}
    assert lines["ok1@acme.example"]["status"] == lines["ok2@acme.example"]["status"] == "created"
    for bad in ("a..b@acme.example", ".dot@acme.example", "x@acme.c"):
        assert lines[bad]["status"] in ("failed", "skipped"), lines[bad]
        assert "email" in lines[bad]["error"].lower(), lines[bad]
        assert served.emulator.store.user_by_email(bad) is None


# -- built-in groups both ways -------------------------------------------------------------------


class GroupSpy:
    """Records the group ids of every user body the store is asked to create or update."""

    def __init__(self, store: Store) -> None:
        self.seen: list[str] = []
        create, update = store.create_users, store.update_user

        def spy_create(bodies: list[object], **kwargs: Any) -> Any:
            self._note(bodies)
            return create(bodies, **kwargs)

        def spy_update(user_id: str, body: object, **kwargs: Any) -> Any:
            self._note([body])
            return update(user_id, body, **kwargs)

        store.create_users = spy_create  # type: ignore[method-assign]
        store.update_user = spy_update  # type: ignore[method-assign]

    def _note(self, bodies: list[object]) -> None:
        for body in bodies:
            if isinstance(body, dict) and isinstance(body.get("groups"), list):
                self.seen += [str(g) for g in body["groups"]]


@pytest.fixture(params=[False, True], ids=["everyone-hidden", "everyone-listed"])
def both_ways(request: pytest.FixtureRequest) -> Iterator[tuple[Served, GroupSpy]]:
    """An emulator that lists Everyone in users' groups, or not; and a spy on written groups."""
    for served in serve(EmulatorSettings(token=TOKEN, groups=GROUPS,
                                         list_everyone=request.param)):
        yield served, served.host.call(partial(GroupSpy, served.emulator.store))


def builtin_ids(served: Served) -> set[str]:
    """Ids of the built-in groups."""
    store = served.emulator.store
    return {g for g, group in store.groups.items() if group.builtin}


def test_builtin_groups_both_ways_import_update_deactivate_reactivate(
        both_ways: tuple[Served, GroupSpy], run_cli: RunCli, tmp_path: Path) -> None:
    """Whether or not users' groups list Everyone: import, update (add, replace), deactivate
    and reactivate are right, report no spurious change and never write a built-in group."""
    served, spy = both_ways
    listed = served.emulator.store.list_everyone
    seeded = [*people(), ["gus@acme.example", "Gus", "Hay", "Viewer", "Everyone; Sales", ""]]
    source = write_csv(tmp_path / "seed.csv", HEADER, seeded)
    result = run_cli(*cli_args(served, "import", source, tmp_path / "1.csv"))
    assert result.exit_code == 0, result.output
    user = served.emulator.store.user_by_email("gus@acme.example")
    assert user is not None
    assert (served.emulator.store.everyone_id in user["groups"]) is listed
    assert role_and_groups(served, "gus@acme.example") == ("consumer", {"Sales"})

    again = tmp_path / "2.csv"
    result = run_cli(*cli_args(served, "import", source, again, "--on-existing", "update"))
    assert result.exit_code == 0, result.output
    assert set(statuses(again).values()) == {"unchanged"}

    add = write_csv(tmp_path / "add.csv", ("Email", "Groups"),
                    [["bob@acme.example", "Finance"], ["gus@acme.example", "Everyone; Sales"]])
    report = tmp_path / "3.csv"
    result = run_cli(*cli_args(served, "update", add, report))
    assert result.exit_code == 0, result.output
    changes = {line["email"]: (line["status"], line["changes"]) for line in read_report(report)}
    assert changes["bob@acme.example"] == ("updated", "groups: +Finance")
    assert changes["gus@acme.example"][0] == "unchanged"
    assert role_and_groups(served, "bob@acme.example")[1] == {"Finance", "Sales"}

    replace = write_csv(tmp_path / "replace.csv", ("Email", "Groups"),
                        [["ann@acme.example", "Sales"], ["bob@acme.example", "Finance; Sales"]])
    report = tmp_path / "4.csv"
    result = run_cli(*cli_args(served, "update", replace, report, "--groups", "replace"))
    assert result.exit_code == 0, result.output
    changes = {line["email"]: (line["status"], line["changes"]) for line in read_report(report)}
    assert changes["ann@acme.example"] == ("updated", "groups: -Finance")
    assert changes["bob@acme.example"][0] == "unchanged"
    assert role_and_groups(served, "ann@acme.example")[1] == {"Sales"}

    leavers = write_csv(tmp_path / "leavers.csv", ("Email",),
                        [["ann@acme.example"], ["gus@acme.example"]])
    report = tmp_path / "5.csv"
    result = run_cli(*cli_args(served, "deactivate", leavers, report))
    assert result.exit_code == 0, result.output
    lines = {line["email"]: line for line in read_report(report)}
    assert {line["status"] for line in lines.values()} == {"deactivated"}
    assert json.loads(lines["gus@acme.example"]["previous"])["groups"] == ["Sales"]
    assert "Everyone" not in lines["gus@acme.example"]["changes"]
    assert role_and_groups(served, "gus@acme.example") == ("consumer", set())

    restored = tmp_path / "6.csv"
    result = run_cli("reactivate", str(report), *served.connect(), "--report", str(restored))
    assert result.exit_code == 0, result.output
    assert role_and_groups(served, "ann@acme.example") == ("admin", {"Sales"})
    assert role_and_groups(served, "gus@acme.example") == ("consumer", {"Sales"})
    for path in (tmp_path / f"{n}.csv" for n in range(1, 7)):
        for line in read_report(path):
            assert "Everyone" not in line["changes"], (path.name, line)
    assert not set(spy.seen) & builtin_ids(served)


def exported_groups(served: Served, run_cli: RunCli, path: Path) -> dict[str, str]:
    """email -> groups cell of a CSV export of the served emulator."""
    result = run_cli("export", str(path), *served.connect())
    assert result.exit_code == 0, result.output
    return {line["email"]: line["groups"] for line in read_report(path)}


def test_export_shows_the_same_groups_both_ways(run_cli: RunCli, tmp_path: Path) -> None:
    """An export lists the same group names whether or not users' groups list Everyone."""
    exports = []
    for listed in (False, True):
        for served in serve(EmulatorSettings(token=TOKEN, groups=GROUPS, users=12, seed=9,
                                             list_everyone=listed)):
            exports.append(exported_groups(served, run_cli, tmp_path / f"{listed}.csv"))
    hidden, shown = exports
    assert hidden == shown
    assert all(cell.split("; ").count("Everyone") == 1 for cell in shown.values())


# -- accounts of lower roles ---------------------------------------------------------------------


@pytest.mark.parametrize(("role", "refused"), [("consumer", "GET /api/roles"),
                                               ("contributor", "POST /api/v1/users/bulk")])
def test_lower_roles_abort_in_one_line(served: Served, run_cli: RunCli, tmp_path: Path,
                                       role: str, refused: str) -> None:
    """Run as a Viewer (refused the roles) or a Designer (refused the create): exit 3, one
    line naming the refused call and the admin role, no user created."""
    store = served.emulator.store

    def make_account() -> None:
        store.create_users([{"email": "low@acme.example", "password": "Low-Pass-123",
                             "roleId": store.role_ids[role]}], bulk=False)

    served.host.call(make_account)
    source = write_csv(tmp_path / "few.csv", HEADER, many_people(3))
    result = run_cli("import", str(source), "--url", served.url, "--username",
                     "low@acme.example", "--password", "Low-Pass-123", "--report", "r.csv")
    assert result.exit_code == 3, result.output
    errors = error_lines(result.output)
    assert len(errors) == 1, result.output
    assert "403" in errors[0]
    assert refused in errors[0]
    assert "admin role" in errors[0]
    assert not any(store.creations[f"p{n:03d}@acme.example"] for n in range(3))
