"""Values the planner tests build directories and rows from: Sisense's roles and groups, users,
input rows, earlier records. Plain values only; the planner itself is built in test_planner.py."""

from __future__ import annotations

import json
from typing import Any

from bulkusers.directory import Group, Role, User
from bulkusers.journal import JournalEntry
from bulkusers.ledger import Deactivation, State
from bulkusers.models import FIELDS, Row
from bulkusers.report import ReportLine

#: Sisense's built-in roles as the v1 API lists them (id, API name, UI display name).
ROLES: tuple[Role, ...] = (
    Role("r-super", "super", "Sys. Admin"),
    Role("r-admin", "admin", "Admin"),
    Role("r-dataadmin", "dataAdmin", "Data Admin"),
    Role("r-datadesigner", "dataDesigner", "Data Designer"),
    Role("r-contributor", "contributor", "Designer"),
    Role("r-consumer", "consumer", "Viewer"),
    Role("r-tenantadmin", "tenantAdmin", "Tenant Admin"),
)
#: The same roles as the legacy API lists them: no display names.
LEGACY_ROLES: tuple[Role, ...] = tuple(Role(r.id, r.name, "") for r in ROLES)

EVERYONE = Group("g-everyone", "Everyone")
ALL_USERS = Group("g-all", "All users in system")
ADMINS = Group("g-admins", "Admins")
SALES = Group("g-sales", "Sales")
FINANCE = Group("g-finance", "Finance")
EQUIPE = Group("g-equipe", "Équipe")
MARKETING = Group("g-marketing", "Marketing")
GROUPS: tuple[Group, ...] = (EVERYONE, ALL_USERS, ADMINS, SALES, FINANCE, EQUIPE, MARKETING)


def user(user_id: str, email: str, *, user_name: str = "", first_name: str = "",
         last_name: str = "", role_id: str = "r-consumer", group_ids: tuple[str, ...] = (),
         language: str = "") -> User:
    """A user as the directory holds it (userName defaults to the email)."""
    return User(id=user_id, email=email, user_name=user_name or email, first_name=first_name,
                last_name=last_name, role_id=role_id, group_ids=group_ids, language=language)


def row(number: int, email: str, *, problem: str = "", recorded: bool = False,
        **cells: str) -> Row:
    """An input row with a column for every canonical field (``FIELDS`` order); ``cells``
    names the non-blank ones by field name (userName, firstName, role, groups...)."""
    unknown = set(cells) - set(FIELDS)
    assert not unknown, f"not input fields: {unknown}"
    values = tuple(email if name == "email" else cells.get(name, "") for name in FIELDS)
    return Row(number, values, problem=problem, recorded=recorded)


def state(**fields: Any) -> str:
    """A ``previous`` record (report JSON) holding ``fields``."""
    return json.dumps(fields)


def journal_entry(number: int, email: str, user_id: str, action: str,
                  previous: str) -> JournalEntry:
    """What an interrupted run wrote to its undo journal for row ``number``."""
    return JournalEntry(row=number, email=email, user_id=user_id, action=action,
                        previous=previous)


def deactivation(user_id: str, email: str, previous: str,
                 status: State = "done") -> Deactivation:
    """This machine's record of an earlier deactivation of a user."""
    return Deactivation(user_id=user_id, email=email, previous=previous,
                        at="2026-11-28T10:15:00+00:00", state=status)


def report_line(line: int, email: str, user_id: str, *, action: str = "deactivate",
                status: str = "deactivated", previous: dict[str, Any] | None = None) -> ReportLine:
    """One line of an earlier report, as reactivate reads it."""
    return ReportLine(line=line, row=line, email=email, action=action, status=status,
                      user_id=user_id, error="", previous=previous or {})
