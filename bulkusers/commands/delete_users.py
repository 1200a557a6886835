"""``bulkusers delete``: delete listed users, keeping each full record in the report."""

from __future__ import annotations

from bulkusers.commands.spec import CommandSpec, per_row
from bulkusers.planner import Planner

SPEC = CommandSpec(name="delete", label="Deleting", prepare=per_row(Planner.plan_delete),
                   destructive=True, journals=True, ledgered=True)
