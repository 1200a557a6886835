"""Pre-flight: the whole plan counted before the first write, and the guards that judge it."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from bulkusers.errors import GuardTripped
from bulkusers.models import RowResult, Status
from bulkusers.tasks import Task, WorkItem, tasks_of
from bulkusers.words import count

#: How many invalid rows a pre-flight keeps as examples.
PREVIEW_SIZE = 5
#: How many affected users a confirmation prompt and a dry run name.
TARGETS_SHOWN = 20
DESTRUCTIVE = frozenset({"deactivate", "delete"})


@dataclass(slots=True)
class Preflight:
    """What the plan would do, counted over the whole input."""

    actions: Counter[str] = field(default_factory=Counter)
    invalid: int = 0
    failed: int = 0
    examples: list[RowResult] = field(default_factory=list)
    #: The first users a destructive plan affects, described as the server stores them.
    targets: list[str] = field(default_factory=list)

    @property
    def writes(self) -> int:
        """Rows that would send a write."""
        return sum(self.actions.values())

    @property
    def destructive(self) -> int:
        """Rows that would deactivate or delete a user."""
        return sum(n for action, n in self.actions.items() if action in DESTRUCTIVE)

    def first_problem(self) -> str:
        """The first invalid row, described on one line."""
        if not self.examples:
            return ""
        first = self.examples[0]
        return f"row {first.row.number}: {first.error}"


def count_plan(items: Iterable[WorkItem],
               describe: Callable[[Task], str] = lambda task: task.email) -> Preflight:
    """Walk a whole plan without sending anything and count what it would do."""
    found = Preflight()
    for item in items:
        if isinstance(item, RowResult):
            if item.status is Status.UNCHANGED or (item.status is Status.SKIPPED
                                                   and not item.error):
                continue  # nothing to send and nothing wrong
            # A planned failure (an update of an unknown user) is as wrong as a bad email
            # for --strict; both are shown as examples.
            if item.status is Status.FAILED:
                found.failed += 1
            else:
                found.invalid += 1
            if len(found.examples) < PREVIEW_SIZE:
                found.examples.append(item)
            continue
        for task in tasks_of(item):
            found.actions[task.action] += 1
            if task.action in DESTRUCTIVE and len(found.targets) < TARGETS_SHOWN:
                found.targets.append(describe(task))
    return found


@dataclass(frozen=True, slots=True)
class Limit:
    """``--max-changes``: a number of writes, or a percentage of the directory's users."""

    count: int | None = None
    percent: float | None = None

    @classmethod
    def parse(cls, text: str) -> Limit:
        """Read "250" or "5%"; ValueError with a hint otherwise."""
        cleaned = text.strip()
        try:
            if cleaned.endswith("%"):
                percent = float(cleaned[:-1])
                if not 0 <= percent <= 100:
                    raise ValueError
                return cls(percent=percent)
            count = int(cleaned)
            if count < 0:
                raise ValueError
            return cls(count=count)
        except ValueError:
            raise ValueError(f"--max-changes {text!r} is not a number of changes (250) or "
                             "a percentage of the directory (5%)") from None

    def allowed(self, directory_users: int) -> int | None:
        """The most writes allowed, or None for no limit."""
        if self.count is not None:
            return self.count
        if self.percent is not None:
            return int(directory_users * self.percent / 100)
        return None


def check_limit(plan: Preflight, limit: Limit, directory_users: int) -> None:
    """Abort before any write when the plan changes more than ``--max-changes`` allows."""
    allowed = limit.allowed(directory_users)
    if allowed is not None and plan.writes > allowed:
        shown = f"{limit.percent:g}% of {count(directory_users, 'user')} = {allowed}" \
            if limit.percent is not None else str(allowed)
        raise GuardTripped(f"the plan would change {count(plan.writes, 'user')}, more than "
                           f"--max-changes allows ({shown}); nothing was sent. Check the "
                           "input, or raise --max-changes")


Confirm = Callable[[str, Preflight], bool]


def check_confirmation(command: str, plan: Preflight, confirm: Confirm | None) -> None:
    """Ask before a destructive run; a 'no' aborts before any write."""
    if confirm is None or plan.destructive == 0:
        return
    if not confirm(command, plan):
        raise GuardTripped(f"{command} not confirmed; nothing was sent")
