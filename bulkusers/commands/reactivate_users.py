"""``bulkusers reactivate``: give users a deactivate run locked out their recorded access back."""

from __future__ import annotations

from bulkusers.commands.spec import CommandSpec, per_row
from bulkusers.models import Row
from bulkusers.planner import Planner
from bulkusers.tasks import WorkItem


def _plan(planner: Planner, row: Row) -> WorkItem:
    # The input is a report: row numbers are its line numbers.
    return planner.plan_reactivate(planner.report_lines[row.number])


SPEC = CommandSpec(name="reactivate", label="Reactivating", prepare=per_row(_plan),
                   ledgered=True, reads_report=True)
