"""Stage 4 of a run: the plan, an immutable value made in one pass over the rows.

For every input row the plan holds either a decided outcome (a ``RowResult``: invalid,
unchanged, already there) or the exact request it will send (a task, or a batch of tasks).
The guards (``--strict``, ``--max-changes``, ``--max-missing``, the prompt) and a dry run judge
its counts, and the sender carries out exactly its items, in order. Nothing the sender learns
(new ids, deletions) flows back into it.

When nothing judges the plan whole (an import or update without ``--strict``,
``--max-changes`` or ``--create-groups``), a ``PlanStream`` hands the same items to the sender
as they are made, so the first requests leave while later rows are still being planned.
"""

from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field

from bulkusers.errors import UnexpectedError
from bulkusers.frozen import frozen
from bulkusers.models import Row, RowResult, Status
from bulkusers.spool import Spool
from bulkusers.tasks import CreateTask, Task, WorkItem, batched, tasks_of

#: How many invalid rows a plan keeps as examples.
PREVIEW_SIZE = 5
#: How many affected users a confirmation prompt and a dry run name.
TARGETS_SHOWN = 20
#: Actions that take access away: the prompt asks before them.
DESTRUCTIVE_ACTIONS = frozenset({"deactivate", "delete"})


@dataclass(slots=True)
class Preflight:
    """What a plan would do, counted over the whole input (the guards' view of it)."""

    actions: Counter[str] = field(default_factory=Counter)
    invalid: int = 0
    failed: int = 0
    examples: list[RowResult] = field(default_factory=list)
    #: The first users a destructive plan affects, described as the server stores them.
    targets: list[str] = field(default_factory=list)
    #: Deactivations and deletes of users the input does not list (sync's out-of-file users).
    removals: int = 0

    @property
    def writes(self) -> int:
        """Rows that would send a write."""
        return sum(self.actions.values())

    @property
    def destructive(self) -> int:
        """Rows that would deactivate or delete a user."""
        return sum(n for action, n in self.actions.items() if action in DESTRUCTIVE_ACTIONS)

    def first_problem(self) -> str:
        """The first invalid row, described on one line."""
        if not self.examples:
            return ""
        first = self.examples[0]
        return f"row {first.row.number}: {first.error}"

    def add(self, item: WorkItem, describe: Callable[[Task], str]) -> None:
        """Count one item of the plan."""
        if type(item) is CreateTask:
            # The item of every row of a per-row import: never destructive, counted at once.
            self.actions[item.action] += 1
            return
        if isinstance(item, RowResult):
            if item.status is Status.UNCHANGED or (item.status is Status.SKIPPED
                                                   and not item.error):
                return  # nothing to send and nothing wrong
            # A planned failure (an update of an unknown user) is as wrong as a bad email
            # for --strict; both are shown as examples.
            if item.status is Status.FAILED:
                self.failed += 1
            else:
                self.invalid += 1
            if len(self.examples) < PREVIEW_SIZE:
                self.examples.append(item)
            return
        tasks = tasks_of(item)
        # The tasks of one item share an action (a batch holds creates or deletes): a batch
        # of 50 creates is counted at once.
        action = tasks[0].action
        self.actions[action] += len(tasks)
        if action in DESTRUCTIVE_ACTIONS:
            for task in tasks:
                if task.row.number < 0:
                    self.removals += 1
                if len(self.targets) < TARGETS_SHOWN:
                    self.targets.append(describe(task))


@frozen
class Plan:
    """Every row's decided outcome or exact request, in order, with its counts.

    Iterate it as often as needed: it gives the same items each time.
    """

    items: Spool[WorkItem]
    counts: Preflight
    #: Groups to create before the first row is sent (``--create-groups``), by name; the plan's
    #: requests name them by their stand-in ids until the sender learns the real ones.
    new_groups: tuple[str, ...] = ()

    def __iter__(self) -> Iterator[WorkItem]:
        return iter(self.items)

    def replay(self, sink: Callable[[WorkItem], None]) -> Plan:
        """Hand every item to ``sink``, in order (a plan made whole, then written as a dry
        run's report); returns the plan."""
        for item in self:
            sink(item)
        return self


def make_plan(rows: Iterable[Row], plan_row: Callable[[Row], WorkItem],
              tail: Iterable[WorkItem], *, batch_size: int,
              describe: Callable[[Task], str], skip: frozenset[int] = frozenset(),
              new_groups: Callable[[], tuple[str, ...]] = tuple,
              sink: Callable[[WorkItem], None] | None = None,
              stop: Stop | None = None) -> Plan:
    """Plan every row not in ``skip``, then the ``tail`` (sync's out-of-file users), batched,
    counted, and kept in a spool; one pass.

    With ``sink`` (a dry run, which nothing judges and nothing sends) each item goes there as
    it is made instead of into the spool: the plan is written as it is made. ``stop`` (see
    ``planned_items``) ends the planning early.
    """
    spool: Spool[WorkItem] = Spool(weigh=_rows_in)
    counts = Preflight()
    keep = spool.append if sink is None else sink
    for item in planned_items(rows, plan_row, tail, batch_size=batch_size, skip=skip,
                              stop=stop):
        counts.add(item, describe)
        keep(item)
    return Plan(items=spool.close(), counts=counts, new_groups=new_groups())


class PlanStream:
    """A plan handed to the sender item by item as it is made, for a run in which nothing
    judges the plan whole before the first write (see ``CommandSpec.streams``).

    The items are the very ones ``make_plan`` would keep, planned against the same snapshot;
    ``counts`` grow as they are taken, and are whole once the stream is drained. Once the
    run stops taking rows (Ctrl-C, an abort), ``halt`` turns the rows left into
    ``unplanned(row, reason)`` results without planning them: they are only reported.
    """

    def __init__(self, rows: Iterable[Row], plan_row: Callable[[Row], WorkItem],
                 tail: Iterable[WorkItem], *, batch_size: int, skip: frozenset[int],
                 describe: Callable[[Task], str],
                 unplanned: Callable[[Row, str], WorkItem]) -> None:
        self.counts = Preflight()
        self._describe = describe
        self._plan_row = plan_row
        self._unplanned = unplanned
        self._items = planned_items(rows, self._row, tail, batch_size=batch_size, skip=skip)
        self._halted: str | None = None
        #: Why planning failed, when a row could not be planned (the run is then aborted).
        self.failure: UnexpectedError | None = None

    def _row(self, row: Row) -> WorkItem:
        if self._halted is not None:
            return self._unplanned(row, self._halted)
        try:
            return self._plan_row(row)
        except Exception as exc:
            # A defect: writes have gone out already, so the run stops the way an abort does
            # (every row reported, the rest not planned) instead of losing the rows left.
            self.failure = UnexpectedError(f"planning row {row.number} failed "
                                           f"({exc.__class__.__name__}: {exc})")
            reason = f"run aborted: {self.failure}"
            self.halt(reason)
            return self._unplanned(row, reason)

    def halt(self, reason: str) -> None:
        """Plan no more rows: those left become ``unplanned(row, reason)``."""
        self._halted = reason

    def __iter__(self) -> Iterator[WorkItem]:
        add, describe = self.counts.add, self._describe
        for item in self._items:
            if self._halted is None:
                add(item, describe)
            yield item

    def made(self) -> Plan:
        """The plan as made, its counts whole (its items were sent, none kept)."""
        return Plan(items=Spool[WorkItem]().close(), counts=self.counts)


@frozen
class Stop:
    """How planning learns it is to end early (a dry run stopped by Ctrl-C): ``reason()`` is
    None while it goes on; once it gives a reason, the rows left are not planned but become
    ``unplanned(row, reason)``, only to be reported."""

    reason: Callable[[], str | None]
    unplanned: Callable[[Row, str], WorkItem]


#: Rows planned between two looks at ``Stop.reason``: the usual run keeps its one C-level map
#: per block, and a stop is seen within a few milliseconds.
STOP_BLOCK = 2_000


def planned_items(rows: Iterable[Row], plan_row: Callable[[Row], WorkItem],
                  tail: Iterable[WorkItem], *, batch_size: int,
                  skip: frozenset[int] = frozenset(),
                  stop: Stop | None = None) -> Iterator[WorkItem]:
    """The plan's items in order, each made when it is asked for: every row not in ``skip``,
    then the ``tail``, creates and deletes batched by ``batch_size``; with ``stop``, the rows
    left once it says so are reported, not planned."""
    def planned() -> Iterator[WorkItem]:
        if stop is not None:
            yield from _until_stopped(iter(rows), plan_row, stop, skip)
        elif skip:
            for row in rows:
                if row.number not in skip:
                    yield plan_row(row)
        else:
            # The usual run, not a resume: every row is planned, one C-level map.
            yield from map(plan_row, rows)
        yield from tail

    return batched(planned(), batch_size)


def _until_stopped(rows: Iterator[Row], plan_row: Callable[[Row], WorkItem], stop: Stop,
                   skip: frozenset[int]) -> Iterator[WorkItem]:
    """Plan the rows not in ``skip`` a block at a time until ``stop`` gives a reason; the
    rest unplanned (those in ``skip`` still left out)."""
    while (reason := stop.reason()) is None:
        block = list(itertools.islice(rows, STOP_BLOCK))
        if not block:
            return
        if skip:
            block = [row for row in block if row.number not in skip]
        yield from map(plan_row, block)
    unplanned = stop.unplanned
    for row in rows:
        if row.number not in skip:
            yield unplanned(row, reason)


def _rows_in(item: WorkItem) -> int:
    """How many input rows an item of the plan holds (a batch holds many)."""
    return len(tasks_of(item)) or 1
