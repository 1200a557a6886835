"""Planning against a directory: journal entries of an interrupted run must match the row."""

from __future__ import annotations

from pathlib import Path

from bulkusers.directory import Directory, Role, User
from bulkusers.intake import Repeats
from bulkusers.journal import Journal, JournalEntry, journal_path, read_journal
from bulkusers.models import Header, Row, RowResult, Status
from bulkusers.planner import Planner
from bulkusers.rules import PlanOptions

HEADER = Header(columns=("Email",), index={"email": 0})


def planner(prior: dict[int, JournalEntry]) -> Planner:
    """A planner over one user, with an interrupted run's journal."""
    user = User(id="u2", email="bob@x.example", user_name="bob", first_name="", last_name="",
                role_id="r1", group_ids=())
    directory = Directory([Role("r1", "consumer", "Viewer")], [], [user])
    return Planner(HEADER, directory, Repeats(), PlanOptions(), prior=prior)


def test_a_journal_entry_for_another_email_is_ignored() -> None:
    """Row 2 of this run names a missing user; an entry for row 2 of another email (another
    run's journal) must not turn it into 'deleted' with someone else's record."""
    entry = JournalEntry(row=2, email="ann@x.example", user_id="u1", action="delete",
                         previous='{"role": "admin"}')
    result = planner({2: entry}).plan_delete(Row(2, ("typo@x.example",)))
    assert isinstance(result, RowResult)
    assert result.status is Status.SKIPPED
    assert "no user with this email" in result.error


def test_the_matching_journal_entry_reports_the_interrupted_deletion() -> None:
    """The same row and email, with the user gone: deleted by the interrupted run."""
    entry = JournalEntry(row=2, email="ann@x.example", user_id="u1", action="delete",
                         previous='{"role": "admin"}')
    result = planner({2: entry}).plan_delete(Row(2, ("ann@x.example",)))
    assert isinstance(result, RowResult)
    assert (result.status, result.user_id, result.previous) == (
        Status.DELETED, "u1", '{"role": "admin"}')


def test_a_fresh_journal_replaces_an_old_one(tmp_path: Path) -> None:
    """A new run's journal starts empty even where an old run left one at the same path."""
    path = journal_path(tmp_path / "r.csv")
    path.write_text('{"row": 2, "email": "ann@x.example", "user_id": "u1", "action": '
                    '"delete", "previous": ""}\n', encoding="utf-8")
    Journal(path, fresh=True).close()
    assert read_journal(path) == {}


def test_a_rows_cells_come_in_field_order_cleaned_and_blank_where_absent() -> None:
    """Header.cells gives the canonical fields in FIELDS order: trimmed (zero-width characters
    too), "" for a field the input has no column for and for cells a short row lacks, and the
    same after a pickle round trip (the header holds a derived itemgetter)."""
    import pickle

    from bulkusers.models import FIELDS

    header = Header(columns=("Groups", "Mail", "Extra", "Role"),
                    index={"groups": 0, "email": 1, "role": 3})
    row = Row(2, (" Sales ", "\u200bJo@X.example ", "kept out", "viewer", "surplus"))
    expected = {"email": "Jo@X.example", "role": "viewer", "groups": "Sales"}
    want = tuple(expected.get(name, "") for name in FIELDS)
    assert header.cells(row) == want
    assert pickle.loads(pickle.dumps(header)).cells(row) == want
    short = Row(3, ("Finance",))
    assert header.cells(short) == tuple("Finance" if name == "groups" else ""
                                        for name in FIELDS)
    # An all-ASCII row is trimmed alike (the first row, with zero-width text, was not all
    # ASCII); text outside the fields planning reads, ASCII or not, changes nothing.
    alike = {"email": "jo@x.example", "role": "viewer", "groups": "Sales"}
    for extra in ("x", "\u00e9"):
        ascii_row = Row(4, ("\tSales\n", " jo@x.example", extra, "viewer "))
        assert header.cells(ascii_row) == tuple(alike.get(name, "") for name in FIELDS)


def _results(rows: list[Row], stop_after: int | None) -> list[RowResult]:
    """The items planned_items makes of ``rows`` when the stop gives its reason once
    ``stop_after`` rows were planned (never, with None); every row is "planned" as a
    skipped result naming it, every row left as a not-attempted one."""
    from bulkusers.plan import STOP_BLOCK, Stop, planned_items
    from bulkusers.results import decided, not_planned

    seen: list[int] = []

    def plan_row(row: Row) -> RowResult:
        seen.append(row.number)
        return decided(row, f"u{row.number}@x.example", "create", Status.SKIPPED, error="x")

    def reason() -> str | None:
        return "stopped" if stop_after is not None and len(seen) >= stop_after else None

    stop = Stop(reason, lambda row, why: not_planned(row, f"u{row.number}@x.example",
                                                    "create", why))
    items = list(planned_items(rows, plan_row, (), batch_size=50, stop=stop))
    assert len(seen) <= (stop_after or len(rows)) + STOP_BLOCK
    return [item for item in items if isinstance(item, RowResult)]


def test_planning_stops_a_block_after_the_stop_and_reports_the_rest_unplanned() -> None:
    """With a stop, rows are planned until it gives a reason (within one block); every row
    after that is reported not attempted with that reason, unplanned, in order."""
    from bulkusers.plan import STOP_BLOCK

    rows = [Row(n, (f"u{n}@x.example",)) for n in range(2, 2 + 3 * STOP_BLOCK + 7)]
    everything = _results(rows, None)
    assert [r.status for r in everything] == [Status.SKIPPED] * len(rows)
    stopped = _results(rows, STOP_BLOCK + 1)
    assert [r.row.number for r in stopped] == [row.number for row in rows]
    statuses = [r.status for r in stopped]
    planned = statuses.count(Status.SKIPPED)
    assert planned == 2 * STOP_BLOCK  # the block under way when the stop came is finished
    assert statuses[planned:] == [Status.NOT_ATTEMPTED] * (len(rows) - planned)
    assert {r.error for r in stopped[planned:]} == {"stopped"}
    at_once = _results(rows, 0)
    assert {r.status for r in at_once} == {Status.NOT_ATTEMPTED}


def test_a_stopped_resume_keeps_leaving_out_the_rows_it_skips() -> None:
    """A dry run of a resume stopped at once plans nothing: the rows left are reported
    unplanned, and the rows the earlier run finished stay left out; never stopped, it plans
    every row but those."""
    from bulkusers.plan import Stop, planned_items
    from bulkusers.results import not_planned

    rows = [Row(n, (f"u{n}@x.example",)) for n in range(2, 12)]
    planned: list[int] = []

    def plan_row(row: Row) -> RowResult:
        planned.append(row.number)
        return not_planned(row, "", "create", "planned")

    stop = Stop(lambda: "stopped", lambda row, why: not_planned(row, "", "create", why))
    items = list(planned_items(rows, plan_row, (), batch_size=1, skip=frozenset({3, 5}),
                               stop=stop))
    assert planned == []
    assert [item.row.number for item in items if isinstance(item, RowResult)] == [
        2, 4, *range(6, 12)]
    # Never stopped: the rows the earlier run finished are not planned again either.
    never = Stop(lambda: None, lambda row, why: not_planned(row, "", "create", why))
    list(planned_items(rows, plan_row, (), batch_size=1, skip=frozenset({3, 5}), stop=never))
    assert planned == [2, 4, *range(6, 12)]


def test_a_batch_of_creates_is_reported_planned_as_each_create_alone() -> None:
    """A dry run's batch of creates gives, row for row, the results its creates give one by
    one."""
    from bulkusers.results import planned
    from bulkusers.tasks import CreateBatch, CreateTask

    tasks = tuple(CreateTask(Row(n, (f"u{n}@x.example",)), f"u{n}@x.example",
                             {"email": f"u{n}@x.example"}, f"role Viewer; groups +G{n}")
                  for n in range(2, 7))
    alone = [result for task in tasks for result in planned(task)]
    assert planned(CreateBatch(tasks)) == alone
    assert [r.status for r in alone] == [Status.PLANNED] * 5
    assert [r.changes for r in alone] == [f"role Viewer; groups +G{n}" for n in range(2, 7)]
