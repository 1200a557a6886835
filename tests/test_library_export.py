"""bulkusers.export_users() and bulkusers.users(): an export from Python against the emulator,
over HTTP, with the same columns, filters and refusals as ``bulkusers export``."""

from __future__ import annotations

import asyncio
import contextlib
import csv
import re
import socket
import subprocess
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path

import openpyxl
import pytest

import bulkusers
from bulkusers.emulator import EmulatorSettings
from tests.conftest import GROUPS, TOKEN, Served, serve

PEOPLE = [
    {"email": "ann.lee@acme.example", "First Name": "Ann", "role": "viewer",
     "groups": "Sales; Finance"},
    {"email": "bo.chen@acme.example", "First Name": "Bo", "role": "designer",
     "groups": "Sales"},
    {"email": "cy.diaz@acme.example", "First Name": "Cy", "role": "viewer", "groups": ""},
]


@pytest.fixture
def peopled() -> Iterator[Served]:
    """An emulator holding PEOPLE (and its admin), created through bulkusers.run."""
    for served in serve(EmulatorSettings(token=TOKEN, groups=GROUPS), plain=True):
        summary = asyncio.run(bulkusers.run("import", connection(served), rows=PEOPLE))
        assert summary.counts["created"] == len(PEOPLE)
        yield served


def connection(served: Served) -> bulkusers.Connection:
    """A connection to the served emulator."""
    return bulkusers.connect(served.emulator.url, token=TOKEN)


async def collect(sisense: bulkusers.Connection, **filters: object,
                  ) -> list[Mapping[str, object]]:
    """Every user bulkusers.users() yields with these filters."""
    return [user async for user in bulkusers.users(sisense, **filters)]  # type: ignore[arg-type]


def test_users_yields_every_user_with_role_and_group_names(peopled: Served) -> None:
    """users() gives one dict per user with the export's columns: role and group names,
    not ids, and the admin the emulator seeds too."""
    found = asyncio.run(collect(connection(peopled)))
    by_email = {user["email"]: user for user in found}
    assert set(by_email) >= {p["email"] for p in PEOPLE}
    assert len(found) == len(PEOPLE) + 1  # and the admin
    ann = by_email["ann.lee@acme.example"]
    assert list(ann) == ["email", "userName", "firstName", "lastName", "role",
                         "roleDisplayName", "groups", "language", "active", "created",
                         "lastLogin", "lastUpdated", "id"]
    assert ann["firstName"] == "Ann"
    assert ann["role"] == "consumer"
    assert ann["roleDisplayName"] == "Viewer"
    # Its own groups first, in its order; then the built-in ones everyone is in.
    assert str(ann["groups"]).split("; ")[:2] == ["Sales", "Finance"]
    assert len(str(ann["id"])) == 24


def test_users_filters_by_role_and_group(peopled: Served) -> None:
    """role= and group= (names, any case) keep only those users; both together, both."""
    sisense = connection(peopled)
    viewers = asyncio.run(collect(sisense, role="Viewer"))
    assert {u["email"] for u in viewers} == {"ann.lee@acme.example", "cy.diaz@acme.example"}
    sales = asyncio.run(collect(sisense, group="sales"))
    assert {u["email"] for u in sales} == {"ann.lee@acme.example", "bo.chen@acme.example"}
    both = asyncio.run(collect(sisense, role="viewer", group="Sales"))
    assert [u["email"] for u in both] == ["ann.lee@acme.example"]


def test_users_refuses_unknown_names_and_bad_numbers_with_config_errors(
        peopled: Served) -> None:
    """An unknown role or group, an inactive_days below 1 or a page size of 0 is a
    ConfigError naming it."""
    sisense = connection(peopled)
    with pytest.raises(bulkusers.ConfigError, match="Wizard"):
        asyncio.run(collect(sisense, role="Wizard"))
    with pytest.raises(bulkusers.ConfigError, match="Nowhere"):
        asyncio.run(collect(sisense, group="Nowhere"))
    with pytest.raises(bulkusers.ConfigError, match="1 or more, not -1"):
        asyncio.run(collect(sisense, inactive_days=-1))
    with pytest.raises(bulkusers.ConfigError, match="1 or more, not 0"):
        asyncio.run(collect(sisense, inactive_days=0))  # as the CLI's --inactive-days
    with pytest.raises(bulkusers.ConfigError, match="page size"):
        asyncio.run(collect(sisense, page_size=0))
    with pytest.raises(bulkusers.ConfigError, match="from 1 to 10,000"):
        asyncio.run(collect(sisense, page_size=10_001))  # the CLI's --page-size allows no more


def test_users_may_stop_early_and_close_at_once(peopled: Served) -> None:
    """Leaving the loop after the first user, inside contextlib.aclosing, ends the read
    cleanly: no error, no warning of an unclosed session."""
    async def first() -> Mapping[str, object]:
        async with contextlib.aclosing(bulkusers.users(connection(peopled),
                                                       page_size=1)) as found:
            async for user in found:
                return user
        raise AssertionError("no user")

    with warnings_as_errors():
        assert "@" in str(asyncio.run(first())["email"])


@contextlib.contextmanager
def warnings_as_errors() -> Iterator[None]:
    """Any warning (an unclosed aiohttp session, say) fails the block."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        yield


def test_export_writes_a_csv_the_import_reads(peopled: Served, tmp_path: Path) -> None:
    """export() to .csv: every user once with role and group names, the counts returned,
    and the file is valid input for an import (every row already there)."""
    output = tmp_path / "users.csv"
    result = asyncio.run(bulkusers.export_users(connection(peopled), output))
    assert isinstance(result, bulkusers.ExportResult)
    assert result.path == output
    assert result.written == result.read == len(PEOPLE) + 1
    with output.open(encoding="utf-8-sig", newline="") as handle:
        rows = list(csv.DictReader(handle))
    bo = next(row for row in rows if row["email"] == "bo.chen@acme.example")
    assert (bo["role"], bo["firstName"]) == ("contributor", "Bo")
    assert bo["groups"].split("; ")[0] == "Sales"
    again = asyncio.run(bulkusers.run("import", connection(peopled), file=output))
    assert again.counts["created"] == 0
    assert again.already_there == len(PEOPLE) + 1


def test_export_writes_xlsx_and_filters(peopled: Served, tmp_path: Path) -> None:
    """export() to .xlsx with group=: a workbook holding the header and the group's
    users only; written counts them, read counts every user."""
    output = tmp_path / "sales.xlsx"
    result = asyncio.run(bulkusers.export_users(connection(peopled), output, group="Sales"))
    assert (result.written, result.read) == (2, len(PEOPLE) + 1)
    sheet = openpyxl.load_workbook(output, read_only=True).active
    assert sheet is not None
    values = [list(row) for row in sheet.iter_rows(values_only=True)]
    assert values[0][0] == "email"
    assert sorted(str(row[0]) for row in values[1:]) == ["ann.lee@acme.example",
                                                         "bo.chen@acme.example"]


def test_export_refuses_stdout_and_other_suffixes(peopled: Served, tmp_path: Path) -> None:
    """'-' (the CLI's standard output) and a name not ending .csv or .xlsx are ConfigErrors,
    and nothing is written."""
    with pytest.raises(bulkusers.ConfigError, match=r"bulkusers\.users"):
        asyncio.run(bulkusers.export_users(connection(peopled), "-"))
    with pytest.raises(bulkusers.ConfigError, match=r"\.csv or \.xlsx"):
        asyncio.run(bulkusers.export_users(connection(peopled), tmp_path / "users.txt"))
    assert list(tmp_path.iterdir()) == []


def test_export_to_an_unreachable_server_writes_nothing(tmp_path: Path) -> None:
    """A server that is not there: ServerUnavailable naming the address, no file."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    sisense = bulkusers.connect(f"http://127.0.0.1:{port}", token=TOKEN)
    output = tmp_path / "users.csv"
    with pytest.raises(bulkusers.ServerUnavailable, match=f"127.0.0.1:{port}"):
        asyncio.run(bulkusers.export_users(sisense, output,
                                     retry=bulkusers.RetryPolicy(attempts=1)))
    assert not output.exists()


def test_readme_export_example_runs_as_is_against_an_emulator(tmp_path: Path) -> None:
    """The README's "Exports from Python" example, run in its own interpreter against an
    emulator holding users: it writes the Sales workbook and prints the viewers."""
    readme = Path(__file__).resolve().parent.parent / "README.md"
    section = readme.read_text(encoding="utf-8").split("### Exports from Python", 1)[1]
    code = re.search(r"```python\n(.*?)```", section, re.S)
    assert code is not None
    for served in serve(EmulatorSettings(token="demo-token", groups=("Sales", "Finance")),
                        plain=True):
        sisense = bulkusers.connect(served.emulator.url, token="demo-token")
        asyncio.run(bulkusers.run("import", sisense, rows=PEOPLE[:2]))
        script = code.group(1).replace("http://127.0.0.1:30845", served.emulator.url)
        out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                             timeout=30, cwd=tmp_path, check=False)
        assert out.returncode == 0, out.stderr
        lines = out.stdout.splitlines()
        assert lines[0] == f"2 of 3 users written to {Path('users.xlsx')}"
        assert (tmp_path / "users.xlsx").exists()
        assert [line.split()[0] for line in lines[1:]] == ["ann.lee@acme.example"]


@pytest.mark.parametrize("arguments", [
    {"output": None}, {"output": 5}, {"role": 5}, {"group": ["Sales"]},
    {"inactive_days": "90"}, {"inactive_days": 1.5}, {"inactive_days": True},
    {"page_size": "10"}, {"page_size": None}, {"page_size": 2.5}, {"retry": 3},
    {"connection": "http://127.0.0.1:30845"}, {"connection": None},
])
def test_arguments_of_the_wrong_kind_are_config_errors(arguments: dict[str, object],
                                                        tmp_path: Path) -> None:
    """export_users() and users() refuse an argument of the wrong kind with a ConfigError
    naming it, before anything is sent, never a TypeError from deep inside."""
    sisense = bulkusers.connect("http://127.0.0.1:9", token=TOKEN)  # never reached
    given: dict[str, object] = {"connection": sisense, "output": tmp_path / "users.csv",
                                "retry": bulkusers.RetryPolicy(attempts=1), **arguments}
    name = next(iter(arguments))
    with pytest.raises(bulkusers.ConfigError, match=name):
        asyncio.run(bulkusers.export_users(**given))  # type: ignore[arg-type]
    given.pop("output")
    if name != "output":
        with pytest.raises(bulkusers.ConfigError, match=name):
            asyncio.run(collect(given.pop("connection"), **given))  # type: ignore[arg-type]
    assert list(tmp_path.iterdir()) == []


def test_inactive_days_beyond_the_calendar_keeps_only_undated_users(peopled: Served) -> None:
    """inactive_days too large for a date (1,000,000) is no OverflowError: no sign-in is
    that old, so only users without a readable date are kept (none here)."""
    assert asyncio.run(collect(connection(peopled), inactive_days=1_000_000)) == []


def test_users_closed_by_aclosing_leaves_no_task_of_the_read_behind() -> None:
    """Leaving users() inside contextlib.aclosing ends the whole read before the block
    ends: no page request or generator clean-up is left pending on the caller's loop."""
    settings = EmulatorSettings(token=TOKEN, groups=GROUPS, users=300)

    async def first(sisense: bulkusers.Connection) -> set[asyncio.Task[object]]:
        async with contextlib.aclosing(bulkusers.users(sisense, page_size=5)) as found:
            async for _ in found:
                break
        return {t for t in asyncio.all_tasks() if t is not asyncio.current_task()}

    for served in serve(settings, plain=True):
        assert asyncio.run(first(connection(served))) == set()


def test_diff_exports_finds_what_changed_between_two_exports(peopled: Served,
                                                             tmp_path: Path) -> None:
    """Two exports taken before and after a night's changes (a hire, a leaver, a new role,
    a new group): diff_exports returns exactly those changes, the CLI's diff finds the same,
    and output= gets them as the CLI writes them."""
    sisense = connection(peopled)
    before = tmp_path / "before.csv"
    asyncio.run(bulkusers.export_users(sisense, before))
    night = [{"email": "ann.lee@acme.example", "role": "designer", "groups": "Sales; Finance"},
             {"email": "bo.chen@acme.example", "role": "designer", "groups": "Sales; Finance"},
             {"email": "di.evans@acme.example", "role": "viewer", "groups": ""}]
    asyncio.run(bulkusers.run("update", sisense, rows=night[:2]))
    asyncio.run(bulkusers.run("import", sisense, rows=night[2:]))
    asyncio.run(bulkusers.run("delete", sisense, rows=[{"email": "cy.diaz@acme.example"}],
                              report=tmp_path / "delete.csv"))
    after = tmp_path / "after.xlsx"  # the formats may differ
    asyncio.run(bulkusers.export_users(sisense, after))
    output = tmp_path / "changes.csv"
    changes = bulkusers.diff_exports(before, after, output=output)
    assert all(isinstance(change, bulkusers.Change) for change in changes)
    assert [(c.change, c.email) for c in changes] == [
        ("added", "di.evans@acme.example"), ("removed", "cy.diaz@acme.example"),
        ("role", "ann.lee@acme.example"), ("groups", "bo.chen@acme.example")]
    assert (changes[2].role_old, changes[2].role_new) == ("consumer", "contributor")
    assert changes[3].groups_added == "Finance"
    with output.open(encoding="utf-8-sig", newline="") as handle:
        written = [(row["change"], row["email"]) for row in csv.DictReader(handle)]
    assert written == [(c.change, c.email) for c in changes]
    cli = subprocess.run([sys.executable, "-m", "bulkusers", "diff", str(before), str(after),
                          "--output", "-", "--quiet"], capture_output=True, text=True,
                         timeout=60, check=False)
    assert cli.returncode == 4, cli.stderr
    assert [line.split(",")[:2] for line in cli.stdout.splitlines()[1:]] == [
        [c.change, c.email] for c in changes]


def test_diff_exports_refuses_bad_arguments_and_unreadable_exports(tmp_path: Path) -> None:
    """An output that is not .csv or .xlsx, or is one of the inputs, an inactive_days below
    1, a file name of the wrong kind: ConfigError; a missing export: InputError naming it;
    and nothing written."""
    old = tmp_path / "old.csv"
    old.write_text("email,role,groups\nann@x.example,consumer,\n", encoding="utf-8")
    with pytest.raises(bulkusers.ConfigError, match=r"must end in \.csv or \.xlsx"):
        bulkusers.diff_exports(old, old, output=tmp_path / "changes.txt")
    with pytest.raises(bulkusers.ConfigError, match="one of the compared files"):
        bulkusers.diff_exports(old, old, output=old)
    with pytest.raises(bulkusers.ConfigError, match="1 or more, not 0"):
        bulkusers.diff_exports(old, old, inactive_days=0)
    with pytest.raises(bulkusers.ConfigError, match="old is a NoneType"):
        bulkusers.diff_exports(None, old)  # type: ignore[arg-type]
    with pytest.raises(bulkusers.InputError, match=r"nowhere\.csv"):
        bulkusers.diff_exports(tmp_path / "nowhere.csv", old)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["old.csv"]
    assert bulkusers.diff_exports(old, old) == []  # the same export: nothing changed
