"""What a command is, declared in one place: how it plans, whether it is destructive, its
label, and what records it keeps."""

from __future__ import annotations

from collections import Counter
from collections.abc import Awaitable, Callable, Iterable, Mapping
from pathlib import Path
from types import MethodType
from typing import TYPE_CHECKING, Protocol

from bulkusers.frozen import frozen
from bulkusers.intake import Intake
from bulkusers.models import Row
from bulkusers.plan import Preflight
from bulkusers.planner import Planner
from bulkusers.rules import OnExisting, PlanOptions
from bulkusers.tasks import WorkItem

if TYPE_CHECKING:
    from bulkusers.api import UserApi
    from bulkusers.sync import SyncOptions


class Scheme(Protocol):
    """How a command turns a run's rows into the plan."""

    def plan_row(self, row: Row) -> WorkItem:
        """One input row: a decided outcome or the exact request."""

    def tail(self) -> Iterable[WorkItem]:
        """Work for no input row, planned after the rows (sync's out-of-file users)."""

    @property
    def extra_rows(self) -> int:
        """How many report lines the tail adds."""

    def refusal(self, counts: Preflight) -> str:
        """The command's own guard over the whole plan: why it refuses ("" when it does not)."""

    def carry_over(self, counts: Counter[str]) -> int:
        """Count the tail's lines an interrupted run finished; how many there are."""


@frozen
class Setting:
    """What a command may use to prepare its planning."""

    api: UserApi
    planner: Planner
    intake: Intake
    protected: Mapping[str, str]
    sync: SyncOptions | None
    #: The report of the run being resumed, if any.
    resumed: Path | None


@frozen
class PerRow:
    """The scheme of a command that plans each row on its own and nothing else."""

    #: Plan one row: the planner's bound method itself, called for every row without a
    #: frame of ours around it.
    plan_row: Callable[[Row], WorkItem]

    def tail(self) -> Iterable[WorkItem]:
        """Nothing after the rows."""
        return ()

    @property
    def extra_rows(self) -> int:
        """No lines beyond the input's."""
        return 0

    def refusal(self, counts: Preflight) -> str:
        """No guard of its own."""
        return ""

    def carry_over(self, counts: Counter[str]) -> int:
        """Nothing to carry."""
        return 0


def per_row(method: Callable[[Planner, Row], WorkItem]) -> Callable[[Setting],
                                                                      Awaitable[Scheme]]:
    """A ``prepare`` for a command whose rows are planned by one ``Planner`` method."""
    async def prepare(setting: Setting) -> Scheme:
        return PerRow(MethodType(method, setting.planner))

    return prepare


@frozen
class CommandSpec:
    """One command's declaration: everything the run core needs to know about it."""

    name: str
    #: The progress bar's verb ("Importing").
    label: str
    prepare: Callable[[Setting], Awaitable[Scheme]]
    #: It takes access away: affected users are listed, the prompt asks first.
    destructive: bool = False
    #: It keeps an undo journal of its destructive requests (written before each).
    journals: bool = False
    #: It reads and keeps this machine's deactivation records (ledger.py).
    ledgered: bool = False
    #: Its input is the report of an earlier run, not a table (reactivate).
    reads_report: bool = False
    #: Nothing of its own judges its plan whole (no refusal of its own, never a destructive
    #: action): when the run sets no guard either (--strict, --max-changes) and creates no
    #: groups, its rows are sent as they are planned (plan.PlanStream).
    streams: bool = False
    #: The action its rows ask for, named on the report line of a row a streamed run stopped
    #: before planning ("create" for import).
    row_action: str = ""
    #: It refuses an input without data rows, whatever --allow-empty says (sync).
    refuses_empty: bool = False
    #: Its options (keys of ``RunConfig.options()``) that change what a row means: a resumed
    #: run must repeat them, beside the connection's and the reading's.
    resume_options: tuple[str, ...] = ()
    #: Its planning modes where the run's options leave them unset (None), as the CLI's
    #: defaults for it are.
    default_plan: PlanOptions = PlanOptions(on_existing="skip", groups_mode="add")
    #: The one ``on_existing`` it plans with, whatever is asked (sync updates the users its
    #: file lists); None: the run's own choice.
    on_existing: OnExisting | None = None
