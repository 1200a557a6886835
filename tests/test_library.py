"""The public Python API, driven against the emulator over loopback HTTP."""

from __future__ import annotations

import asyncio
import collections
import gc
import json
import re
import signal
import sqlite3
import subprocess
import sys
import threading
import warnings
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from types import FrameType
from typing import Any

import pytest

import bulkusers
from bulkusers.emulator import EmulatorSettings
from bulkusers.report import read_report
from tests.conftest import GROUPS, TOKEN, Served, serve, summary_of, write_csv
from tests.scripted import Answer, Script, server
from tests.test_readers_once import Opens
from tests.test_readers_once import write_xlsx as write_workbook

__all__ = ["server"]  # the scripted server fixture, re-exported for pytest

README = Path(__file__).resolve().parent.parent / "README.md"


@pytest.fixture
def plain() -> Iterator[Served]:
    """An emulator with the HR groups over plain HTTP (even in a TLS run of the suite)."""
    yield from serve(EmulatorSettings(token=TOKEN, groups=GROUPS), plain=True)


def connection(served: Served) -> bulkusers.Connection:
    """A connection to the served emulator."""
    return bulkusers.connect(served.emulator.url, token=TOKEN)


def stored(served: Served, email: str) -> dict[str, object] | None:
    """The emulator's record of a user, or None."""
    record: dict[str, object] | None = served.host.call(
        lambda: served.emulator.store.user_by_email(email))
    return record


def test_public_api_is_sorted_and_every_name_resolves() -> None:
    """__all__ is sorted and each of its names is importable from the package."""
    assert bulkusers.__all__ == sorted(bulkusers.__all__)
    for name in bulkusers.__all__:
        assert getattr(bulkusers, name) is not None
    with pytest.raises(AttributeError):
        _ = bulkusers.no_such_name


def test_importing_the_package_loads_no_heavy_library() -> None:
    """`import bulkusers` loads none of pandas, aiohttp, openpyxl, click or rich."""
    code = ("import sys, bulkusers; print([m for m in ('pandas', 'aiohttp', 'openpyxl', "
            "'click', 'rich', 'numpy') if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=20, check=True)
    assert out.stdout.strip() == "[]"


def test_rows_from_mappings_are_created_and_each_result_reaches_the_caller(
        plain: Served, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Mappings with HR column names create users; on_result gets one final result per row;
    no report is written unless asked."""
    monkeypatch.chdir(tmp_path)
    rows = [{"Work Email": "ann@acme.example", "Role": "viewer", "Groups": "Sales"},
            {"Work Email": "bob@acme.example", "Role": "designer", "Groups": "Sales; Finance"},
            {"Work Email": "broken", "Role": "viewer", "Groups": ""}]
    seen: list[bulkusers.RowResult] = []
    summary = asyncio.run(bulkusers.run("import", connection(plain), rows=rows,
                                        on_result=seen.append))
    assert sorted((r.row.number, r.status.value) for r in seen) == [
        (1, "created"), (2, "created"), (3, "skipped")]
    assert summary.counts["created"] == 2
    assert summary.exit_code == 1
    assert stored(plain, "bob@acme.example") is not None
    assert list(tmp_path.iterdir()) == []


def test_a_second_run_creates_nobody_twice(plain: Served) -> None:
    """The same rows run again are all 'already there'."""
    rows = [{"email": "ann@acme.example", "role": "viewer"}]
    first = asyncio.run(bulkusers.run("import", connection(plain), rows=rows))
    again = asyncio.run(bulkusers.run("import", connection(plain), rows=rows))
    assert first.counts["created"] == 1
    assert again.counts["skipped"] == 1
    assert again.counts["created"] == 0


def test_dataframe_like_records_keep_their_text(plain: Served) -> None:
    """Records as a DataFrame's to_dict("records") gives them: NaN is blank (the field is left
    alone), a whole float loses its .0, keys need not be str."""
    records: list[dict[object, object]] = [
        {"email": "ann@acme.example", "role": "viewer", "userName": float("nan")},
        {"email": "bob@acme.example", "role": "viewer", "userName": 42.0}]
    summary = asyncio.run(bulkusers.run("import", connection(plain), rows=records))
    assert summary.counts["created"] == 2
    ann, bob = stored(plain, "ann@acme.example"), stored(plain, "bob@acme.example")
    assert ann is not None
    assert bob is not None
    assert ann["userName"] == "ann@acme.example"
    assert bob["userName"] == "42"


def test_values_only_python_holds_arrive_as_their_text(plain: Served) -> None:
    """A database cursor's or DataFrame's values: a Decimal employee number without its
    fraction, a time-zone-aware datetime with its offset, bytes as their UTF-8 text, a list
    of groups as a cell lists them, and pandas-like missing values (found by type name) left
    blank."""
    class NaTType:  # pandas' NaT, as far as bulkusers can tell without pandas
        def __bool__(self) -> bool:
            raise TypeError("boolean value of NA is ambiguous")

    hired = datetime(2026, 1, 2, 9, 30, tzinfo=timezone(timedelta(hours=2)))
    records: list[dict[str, object]] = [
        {"email": b"ann@acme.example", "role": "viewer", "userName": Decimal("42.00"),
         "firstName": hired, "lastName": NaTType(), "groups": ()},
        {"email": "bob@acme.example", "role": "viewer", "userName": Decimal("0.50"),
         "firstName": bytearray("Zoë".encode()), "lastName": Decimal("NaN"),
         "groups": ["Sales", "Finance", None]}]
    summary = asyncio.run(bulkusers.run("import", connection(plain), rows=records))
    assert summary.counts["created"] == 2
    ann, bob = stored(plain, "ann@acme.example"), stored(plain, "bob@acme.example")
    assert ann is not None
    assert bob is not None
    assert (ann["userName"], ann["firstName"], ann.get("lastName") or "") == (
        "42", "2026-01-02 09:30:00+02:00", "")
    assert (bob["userName"], bob["firstName"], bob.get("lastName") or "") == ("0.50", "Zoë", "")
    names = plain.host.call(lambda: plain.emulator.store.group_names_of(str(bob["_id"])))
    assert {"Sales", "Finance"} <= set(names)


def test_a_sqlite_cursor_and_named_tuples_are_rows(plain: Served) -> None:
    """A sqlite3 cursor (row_factory = sqlite3.Row), usable only on the thread that opened
    it, is read on the caller's; named tuples are rows too. A cursor of plain tuples names
    no columns: InputError naming the row's type, never its values (a password)."""
    db = sqlite3.connect(":memory:")
    db.execute("create table hr (email text, role text, password text)")
    db.execute("insert into hr values ('sql@acme.example', 'viewer', 'Sql-Secret-42')")
    db.row_factory = sqlite3.Row
    summary = asyncio.run(bulkusers.run("import", connection(plain),
                                        rows=db.execute("select * from hr")))
    assert summary.counts["created"] == 1
    assert stored(plain, "sql@acme.example") is not None
    Person = collections.namedtuple("Person", "email role")
    summary = asyncio.run(bulkusers.run("import", connection(plain),
                                        rows=[Person("tuple@acme.example", "viewer")]))
    assert summary.counts["created"] == 1
    db.row_factory = None
    with pytest.raises(bulkusers.InputError) as refused:
        asyncio.run(bulkusers.run("import", connection(plain),
                                  rows=db.execute("select * from hr")))
    assert "row 1 is a tuple, not a mapping of column names" in str(refused.value)
    assert "Sql-Secret-42" not in str(refused.value)


def test_rows_are_read_a_thousand_at_a_time_with_other_tasks_run_between(
        plain: Served) -> None:
    """The caller's other tasks run between blocks of a thousand rows, not after them all."""
    async def main() -> list[int]:
        turns = 0

        async def ticker() -> None:
            nonlocal turns
            while True:
                turns += 1
                await asyncio.sleep(0)

        def rows() -> Iterator[dict[str, str]]:
            for number in range(2_500):
                seen.append(turns)
                yield {"email": f"block{number}@acme.example", "role": "viewer"}

        seen: list[int] = []
        ticking = asyncio.create_task(ticker())
        await asyncio.sleep(0)
        await bulkusers.run("import", connection(plain), rows=rows(),
                            safety=bulkusers.Safety(dry_run=True))
        ticking.cancel()
        return seen

    seen = asyncio.run(main())
    assert len(seen) == 2_500
    assert seen[0] == seen[999] < seen[1000] == seen[1999] < seen[2000] == seen[-1]


def test_no_rows_at_all_is_a_run_of_none(plain: Served) -> None:
    """An empty list (tonight's leavers: nobody) is a run of no rows that sends nothing, not
    an error about a missing email column; sync still refuses an empty input."""
    writes = len(served_writes(plain))
    summary = asyncio.run(bulkusers.run("import", connection(plain), rows=[]))
    assert (summary.total_rows, summary.exit_code) == (0, 0)
    assert len(served_writes(plain)) == writes
    with pytest.raises(bulkusers.GuardTripped, match="sync never acts on an empty file"):
        asyncio.run(bulkusers.run("sync", connection(plain), rows=iter(()),
                                  sync=bulkusers.SyncOptions(missing="report")))


def test_a_dry_runs_results_reach_on_result_on_the_event_loops_thread(plain: Served) -> None:
    """A dry run plans in a worker thread, but on_result is called on the caller's event
    loop thread, as for a real run: it may use the running loop (here an asyncio.Queue); its
    exception still stops the run and is raised."""
    rows = [{"email": f"dry{i}@acme.example", "role": "viewer"} for i in range(30)]

    async def main() -> list[int]:
        loop_thread, threads = threading.get_ident(), set()
        queue: asyncio.Queue[bulkusers.RowResult] = asyncio.Queue()

        def on_result(result: bulkusers.RowResult) -> None:
            threads.add(threading.get_ident())
            asyncio.get_running_loop()  # raises off the loop's thread
            queue.put_nowait(result)

        await bulkusers.run("import", connection(plain), rows=rows, on_result=on_result,
                            safety=bulkusers.Safety(dry_run=True))
        assert threads == {loop_thread}
        return [queue.get_nowait().row.number for _ in range(queue.qsize())]

    assert sorted(asyncio.run(main())) == list(range(1, 31))

    def failing(result: bulkusers.RowResult) -> None:
        raise LookupError("the caller's own")

    with pytest.raises(LookupError, match="the caller's own"):
        asyncio.run(bulkusers.run("import", connection(plain), rows=rows, on_result=failing,
                                  safety=bulkusers.Safety(dry_run=True)))


def test_an_on_result_that_returns_a_coroutine_stops_the_run(plain: Served) -> None:
    """A lambda returning a coroutine passes the async check but its work would be dropped:
    the run stops at its first row and raises ConfigError, without "never awaited" noise."""
    async def later(result: bulkusers.RowResult) -> None:
        return None

    rows = [{"email": f"co{i}@acme.example", "role": "viewer"} for i in range(3)]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a coroutine never awaited would be a warning
        with pytest.raises(bulkusers.ConfigError, match="on_result returned an awaitable"):
            asyncio.run(bulkusers.run("import", connection(plain), rows=rows,
                                      on_result=lambda result: later(result)))  # type: ignore[arg-type]


def test_a_results_repr_shows_no_cell_of_its_row(plain: Served) -> None:
    """repr() of a RowResult (logged with %r) and of the summary holding it shows no input
    cell: a new user's initial password is one."""
    seen: list[bulkusers.RowResult] = []
    rows = [{"email": "pw@acme.example", "role": "no such role", "password": "Init-Pass-77"}]
    summary = asyncio.run(bulkusers.run("import", connection(plain), rows=rows,
                                        on_result=seen.append))
    assert seen
    assert summary.counts["skipped"] == 1
    assert "Init-Pass-77" not in repr(seen[0])
    assert "Init-Pass-77" not in repr(summary)


def test_a_record_with_other_keys_is_an_invalid_row_and_the_rest_go_on(plain: Served) -> None:
    """Keys the first mapping lacks make that row invalid; the other rows are sent."""
    rows = [{"email": "ann@acme.example", "role": "viewer"},
            {"email": "bob@acme.example", "role": "viewer", "manager": "ann"}]
    seen: list[bulkusers.RowResult] = []
    asyncio.run(bulkusers.run("import", connection(plain), rows=rows, on_result=seen.append))
    by_row = {r.row.number: r for r in seen}
    assert by_row[1].status is bulkusers.Status.CREATED
    assert by_row[2].status is bulkusers.Status.SKIPPED
    assert "manager" in by_row[2].error
    assert stored(plain, "bob@acme.example") is None


def test_rows_without_an_email_column_raise_input_error_and_send_nothing(
        plain: Served) -> None:
    """Bad input is an InputError with the CLI's message, before any write."""
    with pytest.raises(bulkusers.InputError, match="no email column"):
        asyncio.run(bulkusers.run("import", connection(plain), rows=[{"name": "Ann"}]))
    assert plain.emulator.writes() == []


def test_file_input_writes_a_report_only_when_asked(plain: Served, tmp_path: Path) -> None:
    """file= reads a CSV; report= writes the report and its JSON summary there."""
    source = write_csv(tmp_path / "hr.csv", ("Email", "Role"), [["ann@acme.example", "viewer"]])
    report = tmp_path / "out" / "r.csv"
    report.parent.mkdir()
    summary = asyncio.run(bulkusers.run("import", connection(plain), file=source,
                                        report=report))
    assert summary.counts["created"] == 1
    assert "created" in report.read_text(encoding="utf-8-sig")
    data = json.loads(report.with_name("r.summary.json").read_text())
    assert data["counts"]["created"] == 1


def test_dry_run_deactivation_plans_and_changes_nobody(plain: Served) -> None:
    """Safety(dry_run=True) reports 'planned' with the exact changes and sends no write."""
    asyncio.run(bulkusers.run("import", connection(plain),
                              rows=[{"email": "ann@acme.example", "role": "designer",
                                     "groups": "Sales"}]))
    writes = len(plain.emulator.writes())
    seen: list[bulkusers.RowResult] = []
    asyncio.run(bulkusers.run("deactivate", connection(plain),
                              rows=[{"email": "ann@acme.example"}],
                              safety=bulkusers.Safety(dry_run=True), on_result=seen.append))
    assert [r.status for r in seen] == [bulkusers.Status.PLANNED]
    assert "-Sales" in seen[0].changes
    assert len(plain.emulator.writes()) == writes


def test_a_dry_run_of_many_creates_reports_each_row_once_as_told(plain: Served,
                                                                  tmp_path: Path) -> None:
    """A dry run plans creates in batches (their rows recorded together): every row reaches
    on_result once, with its own line in the report in the same order, a batch holding a
    line csv must quote included, and the summary counts them all."""
    rows: list[dict[str, str]] = [{"email": f"new{n:03d}@acme.example", "role": "viewer",
                                   "groups": "Sales", "first name": "Lee, Ann" if n == 77
                                   else "Ann"} for n in range(130)]
    rows[40] = {"email": "not-an-email", "role": "viewer", "groups": "", "first name": ""}
    seen: list[bulkusers.RowResult] = []
    report = tmp_path / "plan.csv"
    summary = asyncio.run(bulkusers.run("import", connection(plain), rows=rows,
                                        safety=bulkusers.Safety(dry_run=True),
                                        on_result=seen.append, report=report))
    assert sorted(r.row.number for r in seen) == list(range(1, 131))
    by_number = {r.row.number: r for r in seen}
    assert by_number[41].status is bulkusers.Status.SKIPPED
    assert [r.status for r in seen].count(bulkusers.Status.PLANNED) == 129
    assert summary.planned == {"create": 129}
    lines = list(read_report(report))
    assert [(line.row, line.email, line.status) for line in lines] == [
        (r.row.number, r.email, r.status.value) for r in seen]
    assert '"Lee, Ann"' in report.read_text(encoding="utf-8-sig")
    assert plain.emulator.writes() == []


def test_the_callers_sigint_handler_is_left_alone(plain: Served) -> None:
    """During and after a run, SIGINT still goes to the handler the caller installed."""
    def mine(signum: int, frame: FrameType | None) -> None:
        """The caller's own handler."""

    during: list[object] = []
    previous = signal.signal(signal.SIGINT, mine)
    try:
        asyncio.run(bulkusers.run(
            "import", connection(plain), rows=[{"email": "ann@acme.example", "role": "viewer"}],
            on_result=lambda _r: during.append(signal.getsignal(signal.SIGINT))))
        assert during == [mine]
        assert signal.getsignal(signal.SIGINT) is mine
    finally:
        signal.signal(signal.SIGINT, previous)


def test_the_callers_cycle_collector_is_left_as_it_was(plain: Served) -> None:
    """A run pauses the cycle collector only while it loads the directory: during the sends
    it is on, and after the run nothing it froze stays frozen."""
    during: list[tuple[bool, int]] = []
    assert gc.isenabled()
    assert gc.get_freeze_count() == 0
    try:
        asyncio.run(bulkusers.run(
            "import", connection(plain), rows=[{"email": "gc@acme.example", "role": "viewer"}],
            on_result=lambda _r: during.append((gc.isenabled(), gc.get_freeze_count()))))
        assert len(during) == 1
        assert during[0][0] is True
        assert during[0][1] > 0  # the snapshot was left out of the collections while sending
        assert gc.isenabled()
        assert gc.get_freeze_count() == 0
    finally:  # a failure here must not leave the rest of the suite without a collector
        gc.unfreeze()
        gc.enable()


def test_readme_example_runs_as_is_against_an_emulator(tmp_path: Path) -> None:
    """The README's "Use from Python" example, run in its own interpreter against an emulator
    started with the README's options, creates its two users and skips the bad row."""
    section = README.read_text(encoding="utf-8").split("## Use from Python", 1)[1]
    code = re.search(r"```python\n(.*?)```", section, re.S)
    assert code is not None
    settings = EmulatorSettings(token="demo-token", groups=("Sales", "Finance"))
    for served in serve(settings, plain=True):
        script = code.group(1).replace("http://127.0.0.1:30845", served.emulator.url)
        out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                             timeout=30, cwd=tmp_path, check=False)
        assert out.returncode == 0, out.stderr
        lines = out.stdout.splitlines()
        assert "1 ann.lee@example.com created role Viewer; groups +Sales" in lines
        assert any(line.startswith("3 not-an-address skipped malformed email") for line in lines)
        assert lines[-1] == "created 2, skipped 1, exit code 1"
        assert stored(served, "bo.chen@example.com") is not None


@pytest.mark.parametrize("name", ["hr.csv", "hr.xlsx"])
@pytest.mark.parametrize("how", ["import --create-groups", "sync", "dry run", "strict refusal"])
def test_a_whole_run_reads_its_input_from_disk_once(
        plain: Served, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str,
        how: str) -> None:
    """Hash, count, repeated emails, planning (also with --create-groups, which planned the
    rows a third time), sync's "who is in the file", the guards and the send: one open of the
    input file for the whole run."""
    rows = [["email", "role", "groups"]] + [
        [f"u{n}@acme.example", "viewer", "Sales; Brand New"] for n in range(30)]
    rows.append(["u1@acme.example", "viewer", ""])  # a repeated email: both rows invalid
    path = tmp_path / name
    if name.endswith(".csv"):
        with path.open("w", encoding="utf-8") as handle:
            handle.writelines(",".join(row) + "\n" for row in rows)
    else:
        write_workbook(path, rows)
    opens = Opens(monkeypatch, path)
    plan = bulkusers.PlanOptions(create_groups=True)
    if how == "sync":
        summary = asyncio.run(bulkusers.run(
            "sync", connection(plain), file=path, plan=plan,
            sync=bulkusers.SyncOptions(missing="report", domains=("acme.example",))))
    else:
        safety = bulkusers.Safety(dry_run=how == "dry run", strict=how == "strict refusal")
        summary = asyncio.run(bulkusers.run("import", connection(plain), file=path, plan=plan,
                                            safety=safety))
    assert opens.count == 1
    assert summary.total_rows >= 31
    assert summary.counts["skipped"] >= 2  # the repeated email's rows, found in the one read


class CallbackBug(Exception):
    """The caller's own error, raised from on_result."""


@pytest.mark.parametrize(("batch_size", "dry_run"), [(1, False), (50, False), (50, True)])
def test_an_on_result_that_raises_stops_the_run_and_misreports_no_row(
        plain: Served, tmp_path: Path, batch_size: int, dry_run: bool) -> None:
    """on_result raising on the first result: run() raises that error once the run has
    stopped; the report has one line per row, every user the server created is reported
    created (none 'failed' for the callback's error), the rest not attempted, and the JSON
    summary says why the run stopped."""
    rows = [{"email": f"cb{n}@acme.example", "role": "viewer"} for n in range(120)]
    told: list[bulkusers.RowResult] = []

    def on_result(result: bulkusers.RowResult) -> None:
        told.append(result)
        raise CallbackBug("callback bug")

    report = tmp_path / "r.csv"
    with pytest.raises(CallbackBug):
        asyncio.run(bulkusers.run("import", connection(plain), rows=rows, on_result=on_result,
                                  report=report, batch_size=batch_size,
                                  safety=bulkusers.Safety(dry_run=dry_run)))
    assert len(told) == 1  # never told again after it raised
    lines = list(read_report(report))
    assert sorted(line.row for line in lines) == list(range(1, 121))
    created = {line.email for line in lines if line.status == "created"}
    assert all(stored(plain, f"cb{n}@acme.example") is None
               for n in range(120) if f"cb{n}@acme.example" not in created)
    assert {line.status for line in lines} <= {"created", "planned", "not_attempted"}
    if batch_size == 1 or dry_run:
        # The run stopped: rows were left unsent (a single bulk answer of all 120 rows could
        # not show it), and a real run created fewer users than it had rows.
        assert "not_attempted" in {line.status for line in lines}
        assert len(created) < 120
    assert "callback bug" not in " ".join(line.error for line in lines
                                          if line.status != "not_attempted")
    summary = summary_of(report)
    assert "telling a row's result raised CallbackBug" in summary["aborted"]
    assert summary["exit_code"] == 3


@pytest.mark.parametrize("raised", [KeyboardInterrupt, SystemExit])
@pytest.mark.parametrize(("batch_size", "dry_run"), [(1, False), (50, False), (1, True)])
def test_an_on_result_that_raises_keyboardinterrupt_stops_the_run_like_any_error(
        plain: Served, tmp_path: Path, raised: type[BaseException], batch_size: int,
        dry_run: bool) -> None:
    """on_result raising KeyboardInterrupt or SystemExit on its third result: the caller gets
    that very exception once the report has every row and the summary says why the run
    stopped; nothing hangs (a dry run's planning thread used to wait forever) and no lock is
    left beside the report."""
    rows = [{"email": f"ki{n}@acme.example", "role": "viewer"} for n in range(150)]
    told: list[bulkusers.RowResult] = []

    def on_result(result: bulkusers.RowResult) -> None:
        told.append(result)
        if len(told) == 3:
            raise raised()

    report = tmp_path / "k.csv"
    outcome: list[BaseException] = []

    def caller() -> None:
        # Its own thread and loop: a KeyboardInterrupt that escaped would end this thread,
        # not the test session, and a hang is seen by the join below.
        try:
            asyncio.run(bulkusers.run("import", connection(plain), rows=rows,
                                      on_result=on_result, report=report,
                                      batch_size=batch_size,
                                      safety=bulkusers.Safety(dry_run=dry_run)))
        except BaseException as exc:  # what reached the caller is the point
            outcome.append(exc)

    thread = threading.Thread(target=caller, daemon=True)
    thread.start()
    thread.join(timeout=30)
    assert not thread.is_alive(), "the run hung after on_result raised"
    assert [type(exc) for exc in outcome] == [raised]
    assert len(told) == 3  # never told again after it raised
    lines = list(read_report(report))
    assert sorted(line.row for line in lines) == list(range(1, 151))
    summary = summary_of(report)
    assert f"telling a row's result raised {raised.__name__};" in summary["aborted"]
    assert summary["exit_code"] == 3
    assert summary["counts"]["not_attempted"] + summary["counts"]["created"] \
        + summary["counts"]["planned"] == 150
    assert not list(tmp_path.glob("*.lock"))


def test_a_cancelled_run_writes_its_final_summary(tmp_path: Path) -> None:
    """Cancelling the task of a run with a report: every row is in the report and the JSON
    summary is the final one (ended, interrupted, counts that match the report)."""
    report = tmp_path / "c.csv"
    rows = [{"email": f"cx{n}@acme.example", "role": "viewer"} for n in range(400)]

    async def cancel_midway(served: Served) -> None:
        some_done = asyncio.Event()
        done: list[bulkusers.RowResult] = []

        def on_result(result: bulkusers.RowResult) -> None:
            done.append(result)
            if len(done) >= 5:
                some_done.set()

        task = asyncio.create_task(bulkusers.run(
            "import", connection(served), rows=rows, report=report, batch_size=1,
            concurrency=2, on_result=on_result))
        await some_done.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    for served in serve(EmulatorSettings(token=TOKEN, groups=GROUPS, latency_ms=20.0),
                        plain=True):
        asyncio.run(asyncio.wait_for(cancel_midway(served), timeout=60))
    lines = list(read_report(report))
    assert sorted(line.row for line in lines) == list(range(1, 401))
    summary = summary_of(report)
    assert summary["ended"] is not None
    assert summary["interrupted"] is True
    assert summary["exit_code"] == 130
    statuses = [line.status for line in lines]
    counted = {status: n for status, n in summary["counts"].items() if n}
    assert counted == {s: statuses.count(s) for s in set(statuses)}


@pytest.mark.parametrize("plan", [None, bulkusers.PlanOptions(default_role="viewer")])
def test_a_python_sync_updates_what_differs_as_the_cli_does(
        plain: Served, plan: bulkusers.PlanOptions | None) -> None:
    """A sync from Python with no plan, or one that leaves the modes unset, updates an
    existing user whose role and groups differ (groups replaced), as `bulkusers sync` does,
    instead of skipping it as an import would."""
    asyncio.run(bulkusers.run("import", connection(plain), rows=[
        {"email": "alice@acme.example", "role": "Designer", "groups": "Finance"}]))
    seen: list[bulkusers.RowResult] = []
    asyncio.run(bulkusers.run(
        "sync", connection(plain), rows=[{"email": "alice@acme.example", "role": "viewer",
                                          "groups": "Sales"}],
        plan=plan, sync=bulkusers.SyncOptions(missing="report"), on_result=seen.append,
        safety=bulkusers.Safety(dry_run=True)))
    (alice,) = [r for r in seen if r.email == "alice@acme.example"]
    assert (alice.action, alice.status.value) == ("update", "planned")
    assert "groups: +Sales -Finance" in alice.changes


def _bad_settings(served: Served) -> dict[str, tuple[Callable[[], object], str]]:
    """Calls with one setting a Python caller got wrong, by what is wrong, each with what its
    error must name."""
    c = connection(served)
    rows = [{"email": "x@acme.example"}]

    def run(**kwargs: Any) -> Callable[[], object]:
        command = kwargs.pop("command", "import")
        return lambda: asyncio.run(bulkusers.run(command, c, rows=rows, **kwargs))

    return {
        "unknown command": (run(command="nuke"), "no command 'nuke'"),
        "on_existing": (lambda: bulkusers.PlanOptions(on_existing="merge"),  # type: ignore[arg-type]
                        "on_existing='merge'"),
        "groups_mode": (lambda: bulkusers.PlanOptions(groups_mode="set"),  # type: ignore[arg-type]
                        "groups_mode='set'"),
        "api": (lambda: bulkusers.connect(served.emulator.url, token=TOKEN, api="v2"),  # type: ignore[arg-type]
                "connect()'s api 'v2'"),
        "url": (lambda: bulkusers.connect("ftp://sisense.example", token=TOKEN),
                "connect()'s url 'ftp://sisense.example' is not an http(s) URL"),
        "insecure and a CA": (lambda: bulkusers.connect(served.emulator.url, token=TOKEN,
                                                        insecure=True, ca_bundle="ca.pem"),
                              "connect(): insecure=True and ca_bundle= contradict"),
        "limit": (lambda: bulkusers.Limit(count=-1), "Limit(count=-1)"),
        "percent": (lambda: bulkusers.Limit(percent=150), "Limit(percent=150)"),
        "attempts": (lambda: bulkusers.RetryPolicy(attempts=-3), "attempts=-3"),
        "concurrency word": (run(concurrency="fast"), "concurrency='fast'"),
        "concurrency 0": (run(concurrency=0), "concurrency=0"),
        "over the maximum": (run(concurrency=32, max_concurrency=8),
                             "above max_concurrency=8"),
        "batch 0": (run(batch_size=0), "batch_size=0"),
        "sync that skips": (run(command="sync", plan=bulkusers.PlanOptions(on_existing="skip"),
                                sync=bulkusers.SyncOptions(missing="report")),
                            "sync plans with on_existing='update', not 'skip'"),
        "no credentials": (lambda: bulkusers.connect(served.emulator.url),
                           "connect(): no credentials; give token=, or username= and password="),
        "token and a password": (lambda: bulkusers.connect(served.emulator.url, token=TOKEN,
                                                           username="a", password="b"),
                                 "give token= or username= and password=, not both"),
        "a username alone": (lambda: bulkusers.connect(served.emulator.url, username="a"),
                             "connect(): username= given without password="),
        "legacy without a password": (
            lambda: bulkusers.connect(served.emulator.url, api="legacy", api_secret="s",
                                      username="a"),
            "give username= and password= with api_secret="),
        "connection a URL": (lambda: asyncio.run(bulkusers.run(
            "import", served.emulator.url, rows=rows)), "connection is a str"),  # type: ignore[arg-type]
        "plan a dict": (run(plan={"on_existing": "update"}), "plan is a dict"),
        "safety a dict": (run(safety={"dry_run": True}), "safety is a dict"),
        "sync on import": (run(sync=bulkusers.SyncOptions(missing="report")),
                           "sync= is for the sync command, not import"),
        "rows one dict": (lambda: asyncio.run(bulkusers.run("import", c, rows=rows[0])),  # type: ignore[arg-type]
                          "rows is one dict"),
        "maximum 0": (run(max_concurrency=0), "max_concurrency=0"),
        "async __call__": (run(on_result=_AsyncCallable()), "on_result is an async function"),
        "resume and another report": (
            run(safety=bulkusers.Safety(resume=Path("old.csv")), report="new.csv"),
            "appends to the report it continues; leave report= out"),
        "deactivate without a report": (run(command="deactivate"),
                                        "deactivate keeps its undo journal beside its report"),
        "sync removing without a report": (
            run(command="sync", sync=bulkusers.SyncOptions(missing="delete",
                                                           domains=("acme.example",))),
            "sync keeps its undo journal beside its report"),
    }


class _AsyncCallable:
    """An object whose __call__ is async: as dropped as an async function."""

    async def __call__(self, result: bulkusers.RowResult) -> None:
        return None


def test_settings_a_python_caller_got_wrong_are_config_errors(plain: Served) -> None:
    """Each wrong setting from Python (an unknown command or mode, an API, a negative limit,
    a concurrency that is no number or over its maximum, a sync told to skip, an argument of
    the wrong kind, a removal with no report to keep its undo journal) raises ConfigError
    naming it, and nothing is sent."""
    writes = len(served_writes(plain))
    for what, (call, named) in _bad_settings(plain).items():
        with pytest.raises(bulkusers.ConfigError) as refused:
            call()
        assert named in str(refused.value), what
        assert len(served_writes(plain)) == writes, what


def served_writes(served: Served) -> list[object]:
    """The write requests the emulator has received."""
    found: list[object] = served.host.call(lambda: served.emulator.writes())
    return found


def test_a_fixed_concurrency_is_its_own_maximum_unless_one_is_given(plain: Served) -> None:
    """concurrency=100 with no max_concurrency runs (the default maximum bounds only "auto");
    the same with max_concurrency=8 is a ConfigError."""
    rows = [{"email": "fixed@acme.example", "role": "viewer"}]
    summary = asyncio.run(bulkusers.run("import", connection(plain), rows=rows,
                                        concurrency=100, safety=bulkusers.Safety(dry_run=True)))
    assert summary.concurrency["maximum"] == 100
    with pytest.raises(bulkusers.ConfigError, match="above max_concurrency=8"):
        asyncio.run(bulkusers.run("import", connection(plain), rows=rows, concurrency=100,
                                  max_concurrency=8))


def test_an_async_on_result_is_refused_before_anything_is_sent(plain: Served) -> None:
    """An async on_result would be called and its coroutine dropped, no result reaching the
    caller: it is a ConfigError, nothing sent."""
    async def on_result(result: bulkusers.RowResult) -> None:
        return None

    writes = len(served_writes(plain))
    with pytest.raises(bulkusers.ConfigError, match="on_result is an async function"):
        asyncio.run(bulkusers.run("import", connection(plain),
                                  rows=[{"email": "a@acme.example", "role": "viewer"}],
                                  on_result=on_result))  # type: ignore[arg-type]
    assert len(served_writes(plain)) == writes


def test_a_mapping_that_spells_a_column_otherwise_is_that_column(plain: Served) -> None:
    """A later mapping whose keys spell the first one's columns otherwise ("email" for
    "Email") is read as those columns and sent; one with a key naming no column, or with a
    column spelt twice, is invalid, and its report line still shows the cells it shares with
    the first (under the first's own key)."""
    rows = [{"Email": "ann@acme.example", "Role": "viewer"},
            {"email": "bob@acme.example", "role": "viewer"},
            {"EMAIL": "cid@acme.example", "Role": "viewer", "manager": "ann"},
            {"Email": "dan@acme.example", "email": "eve@acme.example", "Role": "viewer"}]
    seen: list[bulkusers.RowResult] = []
    asyncio.run(bulkusers.run("import", connection(plain), rows=rows, on_result=seen.append))
    by_row = {r.row.number: r for r in seen}
    assert by_row[2].status is bulkusers.Status.CREATED
    assert stored(plain, "bob@acme.example") is not None
    assert by_row[3].status is bulkusers.Status.SKIPPED
    assert "manager" in by_row[3].error
    assert by_row[3].email == "cid@acme.example"
    assert by_row[3].row.values == ("cid@acme.example", "viewer")
    # Both spellings in one mapping: the first's own key is the column, the other is extra.
    assert by_row[4].status is bulkusers.Status.SKIPPED
    assert "email" in by_row[4].error
    assert by_row[4].email == "dan@acme.example"
    assert stored(plain, "eve@acme.example") is None


def test_messages_to_a_python_caller_name_its_arguments_not_cli_flags(
        plain: Served, tmp_path: Path) -> None:
    """Errors, refusals and row texts a Python caller gets name what they wrote (PlanOptions,
    Safety, SyncOptions, ReadOptions, connect()'s arguments, report, role...), never a
    command-line flag."""
    sisense = connection(plain)
    seen: list[str] = []

    def refused(call: Any) -> str:
        with pytest.raises(bulkusers.BulkUsersError) as caught:
            asyncio.run(call)
        return str(caught.value)

    seen.append(refused(bulkusers.run(
        "import", sisense, rows=[{"email": "a@acme.example"}],
        plan=bulkusers.PlanOptions(default_role="wizard"))))
    assert seen[-1].startswith("PlanOptions(default_role=...) 'wizard': ")
    taken = tmp_path / "taken.csv"
    taken.write_text("x\n", encoding="utf-8")
    seen.append(refused(bulkusers.run("import", sisense, rows=[{"email": "a@acme.example"}],
                                      report=taken)))
    assert "continue that run with Safety(resume=...)" in seen[-1]
    seen.append(refused(bulkusers.run(
        "import", sisense, rows=[{"email": f"g{n}@acme.example", "role": "viewer"}
                                 for n in range(3)],
        safety=bulkusers.Safety(max_changes=bulkusers.Limit(count=1)))))
    assert "raise Safety(max_changes=...)" in seen[-1]
    with pytest.raises(bulkusers.ConfigError) as caught:
        bulkusers.SyncOptions(missing="delete")
    seen.append(str(caught.value))
    assert 'missing=\'delete\' needs a scope' in seen[-1]
    seen.append(refused(_first_user(sisense, role="wizard")))
    assert seen[-1].startswith("role: ")

    strict = asyncio.run(bulkusers.run(
        "import", sisense, rows=[{"email": "not-an-address", "role": "viewer"}],
        safety=bulkusers.Safety(strict=True)))
    seen.append(strict.refused)
    assert "run without Safety(strict=True)" in seen[-1]
    rows = [{"email": "nr@acme.example", "role": "", "groups": ""},
            {"email": "ng@acme.example", "role": "viewer", "groups": "Nowhere"}]
    results: list[bulkusers.RowResult] = []
    asyncio.run(bulkusers.run("import", sisense, rows=rows, on_result=results.append))
    seen.extend(result.error for result in results)
    assert any("PlanOptions(default_role='viewer')" in text for text in seen)
    assert any("pass PlanOptions(create_groups=True)" in text for text in seen)

    latin = tmp_path / "latin.csv"
    latin.write_bytes("email,role,First Name\nzoe@acme.example,viewer,Zoë\n".encode("cp1252"))
    seen.append(refused(bulkusers.run("import", sisense, file=latin)))
    assert "pass ReadOptions(encoding='cp1252')" in seen[-1]
    titled = tmp_path / "titled.csv"
    titled.write_text("HR export 2026-11\nemail,role\nzoe@acme.example,viewer\n",
                      encoding="utf-8")
    seen.append(refused(bulkusers.run("import", sisense, file=titled)))
    assert seen[-1].endswith("pass ReadOptions(header_row=2)")
    tabbed = tmp_path / "tabbed.csv"
    tabbed.write_text("Email\tRole,Groups\nzoe@acme.example\tviewer,Sales\n", encoding="utf-8")
    seen.append(refused(bulkusers.run("import", sisense, file=tabbed)))
    assert seen[-1].endswith("pass ReadOptions(delimiter='\\t')")
    rehearsal = tmp_path / "rehearsal.csv"
    asyncio.run(bulkusers.run("import", sisense, rows=rows, report=rehearsal,
                              safety=bulkusers.Safety(dry_run=True)))
    seen.append(refused(bulkusers.run("import", sisense, rows=rows, report=rehearsal,
                                      safety=bulkusers.Safety(resume=rehearsal))))
    assert seen[-1].endswith("that was a dry run, nothing to resume; run without "
                             "Safety(dry_run=True)")
    ran = tmp_path / "ran.csv"
    asyncio.run(bulkusers.run("import", sisense, rows=rows, report=ran,
                              plan=bulkusers.PlanOptions(on_existing="update")))
    seen.append(refused(bulkusers.run("import", sisense, rows=rows, report=ran,
                                      safety=bulkusers.Safety(resume=ran))))
    assert ("that run used PlanOptions(on_existing='update'), where this one has "
            "PlanOptions(on_existing='skip'); resume with exactly that run's options "
            f"(connect(url={plain.emulator.url!r}), PlanOptions(on_existing='update'))"
            ) in seen[-1]
    wrong_token = bulkusers.connect(plain.emulator.url, token="not-the-token")
    seen.append(refused(bulkusers.run("import", wrong_token, rows=[{"email": "a@b.example"}])))
    assert "check connect()'s token" in seen[-1]
    assert not [text for text in seen if re.search(r"--[a-z]", text)]


async def _first_user(sisense: bulkusers.Connection, **filters: Any) -> object:
    """The first user bulkusers.users() yields with these filters."""
    async for user in bulkusers.users(sisense, **filters):
        return user
    return None


async def test_a_server_refusing_the_check_names_connects_url_not_the_flag(
        server: tuple[Script, str]) -> None:
    """GET /api/roles refused with a non-404 error tells a Python caller to check connect()'s
    url, not --url."""
    script, url = server
    script.on("GET", "/api/roles", Answer(400, {"error": {"code": 1, "message": "no"}}))
    script.on("GET", "/api/v1/users", Answer(200, []))
    script.on("GET", "/api/v1/groups", Answer(200, []))
    script.on("GET", "/api/users/loggedin", Answer(200, {"_id": "65f1000000000000000000b1"}))
    script.on("GET", "/api/users/count", Answer(200, {"count": 0}))
    with pytest.raises(bulkusers.ServerUnavailable) as caught:
        await bulkusers.run("import", bulkusers.connect(url, token=TOKEN),
                            rows=[{"email": "ann@acme.example", "role": "viewer"}],
                            retry=bulkusers.RetryPolicy(attempts=1))
    assert "check connect()'s url and the server's health" in str(caught.value)
    assert "--url" not in str(caught.value)
