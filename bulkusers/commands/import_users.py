"""``bulkusers import``: create the users a file lists; existing ones as --on-existing says."""

from __future__ import annotations

from bulkusers.commands.spec import CommandSpec, per_row
from bulkusers.planner import Planner

SPEC = CommandSpec(name="import", label="Importing", streams=True, row_action="create",
                   prepare=per_row(Planner.plan_import),
                   resume_options=("default_role", "on_existing", "groups", "create_groups"))
