"""``bulkusers sync``: make Sisense match an HR file within a scope (see ``bulkusers.sync``)."""

from __future__ import annotations

from bulkusers.commands.spec import CommandSpec, Scheme, Setting
from bulkusers.rules import PlanOptions
from bulkusers.sync import REPORT_ONLY, Reconciler


async def _prepare(setting: Setting) -> Scheme:
    return await Reconciler.prepare(setting.api, setting.planner, setting.intake.header,
                                    setting.intake.rows,
                                    setting.sync or REPORT_ONLY,
                                    setting.protected, setting.resumed)


SPEC = CommandSpec(name="sync", label="Syncing", prepare=_prepare, journals=True,
                   ledgered=True, refuses_empty=True,
                   resume_options=("default_role", "groups", "create_groups", "missing",
                                   "scope_domains", "scope_groups"),
                   default_plan=PlanOptions(on_existing="update", groups_mode="replace"),
                   on_existing="update")
