"""``bulkusers update``: send each listed user only the fields that differ."""

from __future__ import annotations

from bulkusers.commands.spec import CommandSpec, per_row
from bulkusers.planner import Planner

SPEC = CommandSpec(name="update", label="Updating", streams=True, row_action="update",
                   prepare=per_row(Planner.plan_update),
                   resume_options=("groups", "create_groups"))
