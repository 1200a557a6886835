"""``bulkusers deactivate``: lock listed users out, recording what reactivate restores."""

from __future__ import annotations

from bulkusers.commands.spec import CommandSpec, per_row
from bulkusers.planner import Planner

SPEC = CommandSpec(name="deactivate", label="Deactivating",
                   prepare=per_row(Planner.plan_deactivate),
                   destructive=True, journals=True, ledgered=True)
