"""Per-row planning against the directory: pure decisions, nothing is sent here.

An invalid row becomes a ``skipped`` result with its reason; a valid one becomes a task that
names the exact request and a person-readable description of what it changes.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from bulkusers.directory import Directory, Group, Role, Unknown, User
from bulkusers.identity import EMAIL, identity_key, stored_email
from bulkusers.intake import Repeats
from bulkusers.journal import JournalEntry
from bulkusers.ledger import Deactivation
from bulkusers.models import Header, Row, RowResult, Status
from bulkusers.report import ReportLine
from bulkusers.results import DELETED_BY_INTERRUPTED, decided
from bulkusers.safetext import clean, quote
from bulkusers.tasks import (
    CreateTask,
    DeactivateTask,
    DeleteTask,
    UpdateTask,
    WorkItem,
    snapshot,
)

GROUP_SEPARATORS = re.compile(r"[;|]")
#: Characters that show nothing (zero-width spaces and joiners, soft hyphen, word joiner,
#: byte-order mark, direction marks): inside an address they make a look-alike of another.
INVISIBLE = re.compile("[\u00ad\u180e\u200b-\u200f\u2060-\u2064\ufeff]")
#: A cell holding exactly this (any case) empties the field; a blank cell leaves it alone.
CLEAR = "(clear)"
#: The role a deactivated user is given: Viewer, the least a Sisense user can hold.
DEACTIVATED_ROLE = "consumer"
#: Marks where execution puts a fresh random password; planning stays deterministic.
NEW_PASSWORD = "<random>"
#: How a plan names a group that --create-groups creates before the first write.
NEW_GROUP_ID = "(new group) "

OnExisting = Literal["skip", "update", "fail"]
GroupsMode = Literal["add", "replace"]


@dataclass(frozen=True, slots=True)
class PlanOptions:
    """How rows are turned into tasks."""

    default_role: str | None = None
    on_existing: OnExisting = "skip"
    groups_mode: GroupsMode = "add"
    create_groups: bool = False
    #: Create and update emails exactly as typed instead of in lower case (--keep-email-case).
    keep_email_case: bool = False


def split_groups(cell: str) -> list[str]:
    """Group names from a cell separated by ``;`` or ``|``, blank-looking parts dropped, order
    kept; a cell of separators only names no group."""
    names: list[str] = []
    for part in GROUP_SEPARATORS.split(cell):
        name = clean(part)
        if name and identity_key(name) not in (identity_key(n) for n in names):
            names.append(name)
    return names


def _is_clear(text: str) -> bool:
    # Most cells are far from 7 characters: only those near it can be "(clear)".
    return len(text) >= len(CLEAR) and clean(text).casefold() == CLEAR


def _clears_alone(cell: str) -> bool:
    """True for a groups cell that holds (clear) and separators only, such as "(clear);"."""
    if CLEAR not in cell.casefold():
        return False
    names = split_groups(cell)
    return bool(names) and all(_is_clear(name) for name in names)


@dataclass(frozen=True, slots=True)
class Wanted:
    """What a row asks for. None: leave alone (blank cell); "" or []: clear it."""

    #: The address as it is to be stored (trimmed; lower case unless --keep-email-case).
    email: str
    user_name: str | None
    first_name: str | None
    last_name: str | None
    role: Role | None
    groups: tuple[Group, ...] | None
    password: str
    language: str | None
    clear_groups: bool = False


class Planner:
    """Turns rows into work items for one command, against one loaded directory."""

    def __init__(self, header: Header, directory: Directory, repeats: Repeats,
                 options: PlanOptions, protected: Mapping[str, str] | None = None,
                 prior: Mapping[int, JournalEntry] | None = None,
                 deactivated: Mapping[str, Deactivation] | None = None,
                 report_lines: Mapping[int, ReportLine] | None = None) -> None:
        self.header = header
        self.directory = directory
        self.repeats = repeats
        self.options = options
        #: user id -> why it must never be deactivated or deleted
        self.protected = dict(protected or {})
        #: Group names rows asked for that the server does not have, by matching key. With
        #: --create-groups the plan names each by a stand-in (see ``new_groups``).
        self.missing_groups: dict[str, str] = {}
        self._stand_ins: dict[str, Group] = {}
        #: userNames rows planned so far will hold (matching key -> the row's email): a later
        #: row asking for one is a conflict found while planning, not a refusal mid-run.
        self._claimed: dict[str, str] = {}
        self._group_cells: dict[str, tuple[tuple[Group, ...] | str | None]] = {}
        #: reactivate's input: the lines of an earlier report, by line number.
        self.report_lines = dict(report_lines or {})
        #: What an interrupted run of this command was about to do, by row (--resume).
        self.prior = dict(prior or {})
        #: Users bulkusers deactivated earlier on this server, by id, with their records.
        self.deactivated = dict(deactivated or {})

    # -- shared validation --------------------------------------------------------------------

    def _key_problem(self, row: Row, email: str) -> str:
        if not email:
            return "no email; every row needs one"
        if not EMAIL.match(email):
            return f"malformed email {quote(email)}"
        if INVISIBLE.search(email):
            # It would create an account whose address looks exactly like another's.
            return f"email {quote(email)} holds an invisible character; retype it"
        others = self.repeats.other_rows(email, row.number)
        if others:
            return f"email also on row {', '.join(map(str, others))}; keep one row per user"
        return ""

    def _wanted(self, row: Row) -> Wanted | str:
        cells = self.header.fields(row)

        def value(_row: Row, name: str) -> str:
            return cells.get(name, "")

        def plain(name: str) -> str | None:
            cell = cells.get(name, "")
            return None if not cell else "" if _is_clear(cell) else cell

        role: Role | None = None
        role_cell = value(row, "role")
        if role_cell:
            if _is_clear(role_cell):
                return f"the role cannot be cleared ({CLEAR}); name a role such as viewer"
            found = self.directory.role(role_cell)
            if isinstance(found, Unknown):
                return found.describe()
            role = found
        groups_cell = value(row, "groups")
        clear_groups = _is_clear(groups_cell) or _clears_alone(groups_cell)
        groups: tuple[Group, ...] | None = None
        if clear_groups:
            groups = ()
        elif groups_cell:
            resolved = self._group_cell(groups_cell)
            if isinstance(resolved, str):
                return resolved
            groups = resolved
        user_name = plain("userName")
        if user_name == "":
            return f"the userName cannot be cleared ({CLEAR})"
        email = stored_email(value(row, "email"),
                             keep_case=self.options.keep_email_case or row.recorded)
        return Wanted(email=email, user_name=user_name, first_name=plain("firstName"),
                      last_name=plain("lastName"), role=role, groups=groups,
                      password=value(row, "password"), language=plain("language"),
                      clear_groups=clear_groups)

    def _group_cell(self, cell: str) -> tuple[Group, ...] | str | None:
        """The groups a (non-blank, non-clear) groups cell names; None when it names no
        writable group; why not. HR files repeat a few cells: each is resolved once."""
        known = self._group_cells.get(cell)
        if known is not None:
            return known[0]
        names = split_groups(cell)
        outcome: tuple[Group, ...] | str | None
        if any(_is_clear(name) for name in names):
            outcome = (f"{CLEAR} must be alone in the groups cell; remove the group names to "
                       "empty the groups, or remove (clear) to keep them")
        else:
            resolved = self._groups("; ".join(names))
            # A cell that names no writable group (only separators, or only built-in groups
            # that Sisense computes) looks blank: it leaves the groups alone. Only (clear)
            # empties them.
            outcome = resolved if isinstance(resolved, str) else resolved or None
        self._group_cells[cell] = (outcome,)
        return outcome

    def _groups(self, cell: str) -> tuple[Group, ...] | str:
        groups: list[Group] = []
        problems: list[str] = []
        for name in split_groups(cell):
            found = self.directory.group(name)
            if isinstance(found, Unknown) and self.options.create_groups:
                found = self._stand_in(name)
            if isinstance(found, Unknown):
                self.missing_groups.setdefault(identity_key(name), name)
                problems.append(found.describe())
            elif not found.builtin and found not in groups:
                # Built-in memberships are computed by Sisense; writing them is refused.
                # A group named twice (by name and by id) is one membership.
                groups.append(found)
        if not problems:
            return tuple(groups)
        hint = "" if self.options.create_groups else "; fix the name or pass --create-groups"
        return "; ".join(problems) + hint

    def _stand_in(self, name: str) -> Group:
        """The group a row names that the server lacks, to be created before the first write
        (--create-groups): the plan names it by a stand-in id the sender replaces."""
        key = identity_key(name)
        if key not in self._stand_ins:
            self.missing_groups[key] = name
            self._stand_ins[key] = Group(id=f"{NEW_GROUP_ID}{name}", name=name)
        return self._stand_ins[key]

    def new_groups(self) -> tuple[str, ...]:
        """The groups the plan needs created first (--create-groups), sorted by name."""
        return tuple(sorted((g.name for g in self._stand_ins.values()), key=str.casefold))

    def _group_names(self, group_ids: list[str]) -> list[str]:
        stand_ins = {g.id: g.name for g in self._stand_ins.values()}
        return [stand_ins.get(g) or self.directory.group_names([g])[0] for g in group_ids]

    def _claimed_by_another(self, user_name: str, email: str) -> str:
        """Why this row's user cannot have a userName an earlier row will give its user."""
        holder = self._claimed.get(identity_key(user_name))
        if holder is not None and identity_key(holder) != identity_key(email):
            return f"userName {quote(user_name)} is also wanted by {holder} on an earlier row"
        return ""

    def _claim(self, user_name: str, email: str) -> None:
        """Reserve a userName for a row that will be sent (a refused row holds nothing)."""
        self._claimed[identity_key(user_name)] = email

    def _user_or_problem(self, row: Row, action: str) -> tuple[str, User | None, RowResult | None]:
        email = self.header.value(row, "email")
        problem = row.problem or self._key_problem(row, email)
        if problem:
            return email, None, decided(row, email, action, Status.SKIPPED, error=problem)
        user = self.directory.user_by_email(email)
        # Results name a user as the server stores it, so the operator sees who is affected,
        # not only how the file spelt the address.
        return (user.email if user else email), user, None

    # -- import and update --------------------------------------------------------------------

    def plan_import(self, row: Row) -> WorkItem:
        """Create a new user, or treat an existing one as ``--on-existing`` says."""
        email, user, invalid = self._user_or_problem(row, "create")
        if invalid is not None:
            return invalid
        if user is not None:
            if self.options.on_existing == "update":
                return self.plan_update(row)
            if self.options.on_existing == "fail":
                return decided(row, email, "create", Status.FAILED, user_id=user.id,
                               error="user already exists (--on-existing fail)")
            return decided(row, email, "create", Status.SKIPPED, user_id=user.id,
                           changes="none: user already exists")
        wanted = self._wanted(row)
        if isinstance(wanted, str):
            return decided(row, email, "create", Status.SKIPPED, error=wanted)
        return self._create(row, wanted)

    def _create(self, row: Row, wanted: Wanted) -> WorkItem:
        email = wanted.email
        user_name = wanted.user_name or email
        holder = self.directory.user_by_name(user_name)
        if holder is not None:
            return decided(row, email, "create", Status.SKIPPED,
                           error=f"userName {quote(user_name)} is taken by {holder.email}")
        conflict = self._claimed_by_another(user_name, email)
        if conflict:
            return decided(row, email, "create", Status.SKIPPED, error=conflict)
        role = wanted.role
        if role is None:
            fallback = self.options.default_role
            found = self.directory.role(fallback) if fallback else None
            if found is None:
                return decided(row, email, "create", Status.SKIPPED,
                               error="no role; fill the role column or pass "
                                     "--default-role viewer")
            if isinstance(found, Unknown):
                return decided(row, email, "create", Status.SKIPPED, error=found.describe())
            role = found
        groups = wanted.groups or ()
        payload: dict[str, Any] = {"email": email, "userName": user_name, "roleId": role.id,
                                   "groups": [g.id for g in groups]}
        if wanted.first_name:
            payload["firstName"] = wanted.first_name
        if wanted.last_name:
            payload["lastName"] = wanted.last_name
        if wanted.password:
            payload["password"] = wanted.password
        if wanted.language:
            payload["preferences"] = {"language": wanted.language}
        changes = f"role {role.shown}"
        if groups:
            changes += "; groups " + " ".join("+" + g.name for g in groups)
        self._claim(user_name, email)
        return CreateTask(row=row, email=email, payload=payload, changes=changes)

    def plan_update(self, row: Row) -> WorkItem:
        """Send only the fields that differ; a user that already matches is ``unchanged``."""
        email, user, invalid = self._user_or_problem(row, "update")
        if invalid is not None:
            return invalid
        if user is None:
            return decided(row, email, "update", Status.FAILED,
                           error="no user with this email; use import to create users")
        wanted = self._wanted(row)
        if isinstance(wanted, str):
            return decided(row, email, "update", Status.SKIPPED, user_id=user.id, error=wanted)
        diff = self._diff(user, wanted)
        if isinstance(diff, str):
            return decided(row, email, "update", Status.SKIPPED, user_id=user.id, error=diff)
        patch, changes = diff
        if not patch:
            return decided(row, email, "update", Status.UNCHANGED, user_id=user.id)
        return UpdateTask(row=row, email=email, user=user, patch=patch,
                          changes="; ".join(changes),
                          previous=snapshot(user, self.directory))

    def _diff(self, user: User, wanted: Wanted) -> tuple[dict[str, Any], list[str]] | str:
        patch: dict[str, Any] = {}
        changes: list[str] = []
        if wanted.email != user.email:
            # The row matched this user, so only letter case differs: store it as wanted.
            patch["email"] = wanted.email
            changes.append(f"email: {quote(user.email)} -> {quote(wanted.email)}")
        if wanted.user_name is not None and wanted.user_name != user.user_name:
            holder = self.directory.user_by_name(wanted.user_name)
            if holder is not None and holder.id != user.id:
                return f"userName {quote(wanted.user_name)} is taken by {holder.email}"
            conflict = self._claimed_by_another(wanted.user_name, user.email)
            if conflict:
                return conflict
            patch["userName"] = wanted.user_name
            changes.append(f"userName: {quote(user.user_name)} -> {quote(wanted.user_name)}")
        for key, label, old, new in (("firstName", "firstName", user.first_name,
                                      wanted.first_name),
                                     ("lastName", "lastName", user.last_name, wanted.last_name)):
            if new is not None and new != old:
                patch[key] = new
                changes.append(f"{label}: {quote(old)} -> {quote(new)}")
        if wanted.role is not None and wanted.role.id != user.role_id:
            if user.id in self.protected:
                return f"refusing to change the role of {self.protected[user.id]}"
            patch["roleId"] = wanted.role.id
            changes.append(self._role_change(user.role_id, wanted.role))
        if wanted.groups is not None:
            group_change = self._group_change(user, wanted.groups, wanted.clear_groups)
            if group_change is not None:
                patch["groups"], description = group_change
                changes.append(description)
        if wanted.language is not None and wanted.language != user.language:
            patch["preferences"] = {"language": wanted.language or None}
            changes.append(f"language: {quote(user.language)} -> {quote(wanted.language)}")
        if "userName" in patch:
            self._claim(patch["userName"], user.email)
        return patch, changes

    def _group_change(self, user: User, named: tuple[Group, ...],
                      clear: bool) -> tuple[list[str], str] | None:
        current = [g for g in user.group_ids if not self._builtin(g)]
        named_ids = [g.id for g in named]
        if self.options.groups_mode == "replace" or clear:
            wanted = named_ids
        else:
            wanted = current + [g for g in named_ids if g not in current]
        if set(wanted) == set(current):
            return None
        added = [g for g in wanted if g not in current]
        removed = [g for g in current if g not in wanted]
        names = self._group_names
        parts = [f"+{n}" for n in names(added)] + [f"-{n}" for n in names(removed)]
        return wanted, "groups: " + " ".join(parts)

    def _role_change(self, old_role_id: str, new: Role) -> str:
        return f"role: {self.directory.role_shown(old_role_id)} -> {new.shown}"

    def _builtin(self, group_id: str) -> bool:
        group = self.directory.group_by_id(group_id)
        return group is not None and group.builtin

    # -- deactivate and delete ----------------------------------------------------------------

    def _target(self, row: Row, action: str) -> tuple[str, User] | RowResult:
        email, user, invalid = self._user_or_problem(row, action)
        if invalid is not None:
            return invalid
        if user is None:
            return decided(row, email, action, Status.SKIPPED,
                           error="no user with this email")
        if user.id in self.protected:
            return decided(row, email, action, Status.SKIPPED, user_id=user.id,
                           error=f"refusing to {action} {self.protected[user.id]}")
        return email, user

    def _earlier_attempt(self, row: Row, action: str) -> JournalEntry | None:
        entry = self.prior.get(row.number)
        if entry is None or entry.action != action:
            return None
        # Same row number and same email, or it is not this row's record.
        same = identity_key(entry.email) == identity_key(self.header.value(row, "email"))
        return entry if same else None

    def plan_deactivate(self, row: Row) -> WorkItem:
        """Lowest role, no groups, an unknown new password, every token revoked."""
        target = self._target(row, "deactivate")
        if isinstance(target, RowResult):
            return target
        email, user = target
        viewer = self.directory.role(DEACTIVATED_ROLE)
        if isinstance(viewer, Unknown):
            return decided(row, email, "deactivate", Status.FAILED, user_id=user.id,
                           error="the server has no 'consumer' (Viewer) role")
        patch: dict[str, Any] = {"roleId": viewer.id, "groups": [], "password": NEW_PASSWORD}
        changes = []
        if user.role_id != viewer.id:
            changes.append(self._role_change(user.role_id, viewer))
        groups = [g for g in user.group_ids if not self._builtin(g)]
        if groups:
            changes.append("groups: " + " ".join(f"-{n}" for n in
                                                 self.directory.group_names(groups)))
        changes.append("password replaced")
        # A resumed run keeps the state from before the interrupted attempt, not the
        # half-deactivated state it may have left: that is what reactivate must restore.
        earlier = self._earlier_attempt(row, "deactivate")
        record = self._deactivation(user)
        if earlier is None and record is not None and record.state == "done":
            return decided(row, email, "deactivate", Status.UNCHANGED, user_id=user.id,
                           previous=record.previous,
                           changes=f"none: already deactivated {record.describe()}; the record "
                                   "of that deactivation is kept for reactivate")
        previous = (earlier.previous if earlier else record.previous if record
                    else snapshot(user, self.directory))
        return DeactivateTask(row=row, email=email, user=user, patch=patch,
                              changes="; ".join(changes), previous=previous)

    def plan_delete(self, row: Row) -> WorkItem:
        """Delete the user, keeping its full record in the report."""
        earlier = self._earlier_attempt(row, "delete")
        email = self.header.value(row, "email")
        if earlier is not None and self.directory.user_by_email(email) is None:
            # The interrupted run sent this delete; its answer never reached the report.
            return decided(row, email, "delete", Status.DELETED, user_id=earlier.user_id,
                           previous=earlier.previous, changes=DELETED_BY_INTERRUPTED)
        target = self._target(row, "delete")
        if isinstance(target, RowResult):
            return target
        email, user = target
        # A user bulkusers deactivated is recorded with the state it had before: a delete
        # report that re-creates it should give that back, not the deactivated shell.
        record = self._deactivation(user)
        return DeleteTask(row=row, email=email, user=user,
                          previous=record.previous if record else snapshot(user,
                                                                           self.directory))

    def _deactivation(self, user: User) -> Deactivation | None:
        """The record of an earlier deactivation of this user, while it is still deactivated
        (Viewer, no groups); None when there is none or the user was given access again."""
        record = self.deactivated.get(user.id)
        if record is None or not record.previous:
            return None
        viewer = self.directory.role(DEACTIVATED_ROLE)
        still = (not isinstance(viewer, Unknown) and user.role_id == viewer.id
                 and not any(not self._builtin(g) for g in user.group_ids))
        return record if still else None

    # -- reactivate ---------------------------------------------------------------------------

    def plan_reactivate(self, line: ReportLine) -> WorkItem:
        """Give a user deactivated by an earlier run its recorded role and groups back."""
        row = Row(line.line, ())
        email = line.email
        if line.action != "deactivate" or not line.previous:
            return decided(row, email, "reactivate", Status.SKIPPED, user_id=line.user_id,
                           changes="none: that run did not deactivate this user")
        user = self.directory.user_by_id(line.user_id) or self.directory.user_by_email(email)
        if user is None:
            return decided(row, email, "reactivate", Status.FAILED, user_id=line.user_id,
                           error="the user no longer exists; re-create it with import")
        role = self.directory.role(str(line.previous.get("role", "")))
        if isinstance(role, Unknown):
            return decided(row, email, "reactivate", Status.FAILED, user_id=user.id,
                           error=f"recorded role: {role.describe()}")
        names = [str(n) for n in line.previous.get("groups") or []]
        groups = self._groups("; ".join(names)) if names else ()
        if isinstance(groups, str):
            return decided(row, email, "reactivate", Status.FAILED, user_id=user.id,
                           error=f"recorded groups: {groups}")
        patch: dict[str, Any] = {}
        changes: list[str] = []
        if role.id != user.role_id:
            patch["roleId"] = role.id
            changes.append(self._role_change(user.role_id, role))
        group_change = self._group_change(user, groups, clear=True)
        if group_change is not None:
            patch["groups"], description = group_change
            changes.append(description)
        if not patch:
            return decided(row, email, "reactivate", Status.UNCHANGED, user_id=user.id)
        return UpdateTask(row=row, email=email, user=user, patch=patch,
                          changes="; ".join(changes), previous=snapshot(user, self.directory),
                          action="reactivate")


def protected_users(directory: Directory, me: Mapping[str, Any] | None) -> dict[str, str]:
    """Users no run may deactivate or delete: the ``super`` user(s) and the account in use."""
    protected: dict[str, str] = {}
    super_role = directory.role("super")
    if not isinstance(super_role, Unknown):
        for user in directory.users():
            if user.role_id == super_role.id:
                protected[user.id] = f"the super user {user.email}"
    if me and me.get("_id"):
        me_id = str(me["_id"])
        running = f"the account running bulkusers ({me.get('email', '')})"
        protected[me_id] = f"{protected[me_id]}, {running}" if me_id in protected else running
    return protected
