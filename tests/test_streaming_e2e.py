"""A plan nothing judges whole is sent as it is made; any guard makes it whole first.

Driven through the public API against the emulator over loopback HTTP: the planner's calls
and the rows' results are logged in one sequence, which shows whether the first result came
before the last row was planned.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

import bulkusers
from bulkusers.commands import spec
from bulkusers.commands.spec import PerRow
from bulkusers.emulator import EmulatorSettings
from bulkusers.guards import Limit
from bulkusers.models import Row
from bulkusers.tasks import WorkItem
from tests.conftest import GROUPS, TOKEN, Served, read_report, serve, write_csv

ROWS = 240


@pytest.fixture
def served() -> Iterator[Served]:
    """An emulator with the HR groups and twenty existing users."""
    yield from serve(EmulatorSettings(token=TOKEN, groups=GROUPS, users=20), plain=True)


def _rows(existing: int = 0) -> list[dict[str, str]]:
    """``existing`` renames of the emulator's seeded users (their role and groups left
    blank: unchanged), then new users up to ROWS."""
    renames = [{"email": f"user{n:04d}@example.com", "First Name": f"Renamed{n}",
                "role": "", "groups": ""} for n in range(1, existing + 1)]
    new = [{"email": f"new{n:04d}@stream.example", "First Name": "New", "role": "viewer",
            "groups": "Sales"} for n in range(ROWS - existing)]
    return renames + new


def _logged(monkeypatch: pytest.MonkeyPatch, log: list[str]) -> None:
    """Log each row the run plans as "plan" in ``log``."""
    def logging_scheme(plan_row: Callable[[Row], WorkItem]) -> PerRow:
        def planned(row: Row) -> WorkItem:
            log.append("plan")
            return plan_row(row)

        return PerRow(planned)

    monkeypatch.setattr(spec, "PerRow", logging_scheme)


def _run(served: Served, log: list[str], command: str = "import", *,
         rows: list[dict[str, str]] | None = None, safety: bulkusers.Safety | None = None,
         plan: bulkusers.PlanOptions | None = None) -> bulkusers.RunSummary:
    connection = bulkusers.connect(served.emulator.url, token=TOKEN)
    return asyncio.run(bulkusers.run(
        command, connection, rows=rows or _rows(), safety=safety, plan=plan,  # type: ignore[arg-type]
        on_result=lambda result: log.append(result.status.value), batch_size=10))


def test_an_unguarded_import_sends_its_first_rows_before_the_last_row_is_planned(
        served: Served, monkeypatch: pytest.MonkeyPatch) -> None:
    """With no guard, results arrive while rows are still being planned, and every row is
    planned once and created once."""
    log: list[str] = []
    _logged(monkeypatch, log)
    summary = _run(served, log)
    assert log.count("plan") == ROWS
    assert log.count("created") == ROWS
    assert log.index("created") < len(log) - 1 - log[::-1].index("plan")
    assert summary.counts == {"created": ROWS}


def test_an_unguarded_update_streams_too_and_reports_unchanged_rows(
        served: Served, monkeypatch: pytest.MonkeyPatch) -> None:
    """update streams: renamed users are updated, an unchanged row is reported unchanged."""
    log: list[str] = []
    _logged(monkeypatch, log)
    rows = [{"email": f"user{n:04d}@example.com", "First Name": f"Renamed{n}"}
            for n in range(1, 19)] + [{"email": "user0019@example.com"}]
    summary = _run(served, log, "update", rows=rows)
    assert log.index("updated") < len(log) - 1 - log[::-1].index("plan")
    assert summary.counts == {"updated": 18, "unchanged": 1}


@pytest.mark.parametrize("guard", ["strict", "max_changes", "create_groups"])
def test_any_guard_makes_the_plan_whole_before_the_first_write(
        served: Served, monkeypatch: pytest.MonkeyPatch, guard: str) -> None:
    """--strict, --max-changes and --create-groups each judge or need the whole plan: every
    row is planned before the first result."""
    log: list[str] = []
    _logged(monkeypatch, log)
    safety = bulkusers.Safety(strict=guard == "strict",
                              max_changes=Limit(count=10_000) if guard == "max_changes"
                              else Limit())
    plan = bulkusers.PlanOptions(create_groups=guard == "create_groups")
    summary = _run(served, log, safety=safety, plan=plan)
    assert log[:ROWS] == ["plan"] * ROWS
    assert summary.counts == {"created": ROWS}


def test_a_streamed_upsert_plans_every_row_against_the_snapshot(
        served: Served, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """An upsert sent as it is made updates the existing users and creates the new ones: the
    creates of early rows never turn later rows into updates of users the run made."""
    log: list[str] = []
    _logged(monkeypatch, log)
    summary = _run(served, log, rows=_rows(existing=20),
                   plan=bulkusers.PlanOptions(on_existing="update"))
    assert summary.counts == {"updated": 20, "created": ROWS - 20}
    renamed = served.host.call(lambda: served.emulator.store.user_by_email(
        "user0007@example.com"))
    assert renamed is not None
    assert renamed["firstName"] == "Renamed7"


def test_a_stopped_streamed_run_reports_the_rows_left_without_planning_them(
        served: Served, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Cancelling a streamed import early: every row has its line in the report, the rows
    left are `not_attempted` with their email and the action they ask for, and none of them
    was planned (planning a million rows after Ctrl-C would keep the run for seconds)."""
    served.host.call(lambda: setattr(served.emulator.faults, "latency_ms", 30))
    log: list[str] = []
    _logged(monkeypatch, log)
    rows = [{"email": f"late{n:05d}@stream.example", "role": "viewer", "groups": "Sales"}
            for n in range(3000)]
    report = tmp_path / "stopped.csv"

    async def stopped_early() -> None:
        first = asyncio.Event()
        run = asyncio.ensure_future(bulkusers.run(
            "import", bulkusers.connect(served.emulator.url, token=TOKEN), rows=rows,
            report=report, on_result=lambda _: first.set(), batch_size=10))
        await first.wait()
        run.cancel()
        with pytest.raises(asyncio.CancelledError):
            await run

    asyncio.run(stopped_early())
    lines = read_report(report)
    assert sorted(int(line["row"]) for line in lines) == list(range(1, 3001))
    left = [line for line in lines if line["status"] == "not_attempted"]
    assert len(left) > 2000
    assert all(line["action"] == "create" and line["email"].startswith("late") for line in left)
    assert log.count("plan") < 1000


def _csv(path: Path, count: int) -> Path:
    """``count`` new users, each a viewer in Sales."""
    return write_csv(path, ("email", "role", "groups"),
                     [[f"late{n:05d}@stream.example", "viewer", "Sales"] for n in range(count)])


def test_a_planning_failure_mid_stream_still_reports_every_row(
        served: Served, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """A row whose planning raises after the first writes went out: the run is aborted (exit
    3, the reason named), the rows sent keep their lines, and every other row still gets one
    (not_attempted), as a stop does."""
    def failing_scheme(plan_row: Callable[[Row], WorkItem]) -> PerRow:
        def plan(row: Row) -> WorkItem:
            if row.number == 200:
                raise OSError("spool block unreadable")
            return plan_row(row)

        return PerRow(plan)

    monkeypatch.setattr(spec, "PerRow", failing_scheme)
    report = tmp_path / "r.csv"
    summary = asyncio.run(bulkusers.run(
        "import", bulkusers.connect(served.emulator.url, token=TOKEN),
        file=_csv(tmp_path / "in.csv", 400), report=report, batch_size=10))
    assert summary.exit_code == 3
    assert "planning row 200 failed (OSError: spool block unreadable)" in summary.aborted
    lines = read_report(report)
    assert sorted(int(line["row"]) for line in lines) == list(range(2, 402))  # file lines
    assert {line["status"] for line in lines} == {"created", "not_attempted"}


def test_a_cancelled_streamed_import_resumes_into_every_user_once(
        served: Served, tmp_path: Path) -> None:
    """Cancel a streamed import early, then --resume it: every user exists once and the
    report ends with one final line per row."""
    served.host.call(lambda: setattr(served.emulator.faults, "latency_ms", 30))
    source = _csv(tmp_path / "in.csv", 1500)
    report = tmp_path / "r.csv"
    connection = bulkusers.connect(served.emulator.url, token=TOKEN)

    async def stopped_early() -> None:
        first = asyncio.Event()
        run = asyncio.ensure_future(bulkusers.run(
            "import", connection, file=source, report=report,
            on_result=lambda _: first.set(), batch_size=10))
        await first.wait()
        await asyncio.sleep(0.05)
        run.cancel()
        with pytest.raises(asyncio.CancelledError):
            await run

    asyncio.run(stopped_early())
    assert any(line["status"] == "not_attempted" for line in read_report(report))
    summary = asyncio.run(bulkusers.run("import", connection, file=source, report=report,
                                        safety=bulkusers.Safety(resume=report), batch_size=10))
    last: dict[str, str] = {}
    for line in read_report(report):
        last[line["row"]] = line["status"]
    assert sorted(map(int, last)) == list(range(2, 1502))
    assert set(last.values()) <= {"created", "skipped"}, summary.counts
    emails = served.host.call(lambda: [u.email for u in served.emulator.store.users.values()])
    late = [e for e in emails if e.startswith("late")]
    assert len(late) == len(set(late)) == 1500
