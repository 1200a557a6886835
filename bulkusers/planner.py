"""Per-row planning for each command against the directory snapshot: pure decisions,
nothing is sent here.

An invalid row becomes a ``skipped`` result with its reason; a valid one becomes a task that
names the exact request and a person-readable description of what it changes. The commands'
declarations (``bulkusers.commands``) name which of these methods plans their rows.
"""

from __future__ import annotations

import operator
from typing import Any

from bulkusers.directory import Group, Role, Unknown, User
from bulkusers.identity import EMAIL, identity_key
from bulkusers.journal import JournalEntry
from bulkusers.ledger import Deactivation
from bulkusers.models import Row, RowResult, Status
from bulkusers.report import ReportLine
from bulkusers.resolve import RowResolver, plain_text
from bulkusers.results import DELETED_BY_INTERRUPTED, decided
from bulkusers.rules import DEACTIVATED_ROLE, NEW_PASSWORD, Wanted
from bulkusers.safetext import quote
from bulkusers.tasks import (
    CreateTask,
    DeactivateTask,
    DeleteTask,
    UpdateTask,
    WorkItem,
    snapshot,
)
from bulkusers.words import given

#: An object's id and name (C-level calls, for every group of every created user).
_id_of = operator.attrgetter("id")
_name_of = operator.attrgetter("name")


class Planner(RowResolver):
    """Turns rows into work items for one command, against one loaded directory."""

    # -- import and update --------------------------------------------------------------------

    def plan_import(self, row: Row) -> WorkItem:
        """Create a new user, or treat an existing one as ``--on-existing`` says."""
        cells = self.header.cells(row)
        if self._common_creates:
            task = self._common_create(row, cells)
            if task is not None:
                return task
        email, user, invalid = self._user_or_problem(
            row, "create", cells[0],
            existing="update" if self.options.on_existing == "update" else None)
        if invalid is not None:
            return invalid
        if user is not None:
            if self.options.on_existing == "update":
                return self._update(row, cells, email, user)
            if self.options.on_existing == "fail":
                return decided(row, email, "create", Status.FAILED, user_id=user.id,
                               error=f"user already exists ({given('--on-existing', 'fail')})")
            return decided(row, email, "create", Status.SKIPPED, user_id=user.id,
                           changes="none: user already exists")
        wanted = self._wanted(row, cells)
        if isinstance(wanted, str):
            return decided(row, email, "create", Status.SKIPPED, error=wanted)
        return self._create(row, wanted)

    def _common_create(self, row: Row, cells: tuple[str, ...]) -> CreateTask | None:
        """The create of a common import row, planned with few calls; None for any row that
        is not one (the general path then plans it, as it would have anyway).

        A common row: sound, an ASCII email that is valid and on no other row, a new user
        whose userName is free, a role cell and a groups cell resolved before to a role and
        to writable groups (HR files repeat a few). It gets exactly the task the general
        path (``_user_or_problem``, ``_wanted``, ``_create``) makes of it, which
        tests/test_planner_common.py checks over rows of every kind. Planning's cost is
        mostly Python calls, a tenth of a microsecond each: a million-row dry run
        spends seconds in them.
        """
        (email, user_name_cell, first_name, last_name, role_cell, groups_cell, password,
         language) = cells
        if row.problem or row.recorded or not email.isascii() or not EMAIL.match(email):
            return None
        key = email.lower()  # identity_key and stored_email of an ASCII address
        repeated = self.repeats.rows
        if (repeated and key in repeated) or key in self._by_email:
            return None
        role = self._roles.get(role_cell)
        if type(role) is not Role:
            return None  # blank (the default role), unknown, or not resolved yet
        groups: tuple[Group, ...] = ()
        if groups_cell:
            resolved = self._group_cells.get(groups_cell)
            if resolved is None or type(outcome := resolved[0]) is not tuple:
                return None  # not resolved yet, or no writable group named
            groups = outcome
        if user_name_cell:
            if plain_text(user_name_cell) == "":
                return None  # (clear): the general path says why it cannot be
            user_name, name_key = user_name_cell, identity_key(user_name_cell)
        else:
            user_name, name_key = key, key
        if name_key in self._by_name or name_key in self._claimed:
            return None
        payload: dict[str, Any] = {"email": key, "userName": user_name, "roleId": role.id,
                                   "groups": [*map(_id_of, groups)]}
        # Blank or (clear), a text field is not sent: as _create sends Wanted's.
        if plain_text(first_name):
            payload["firstName"] = first_name
        if plain_text(last_name):
            payload["lastName"] = last_name
        if password:
            payload["password"] = password
        if plain_text(language):
            payload["preferences"] = {"language": language}
        changes_key = (role.name, role.display_name, *map(_name_of, groups))
        changes = (self._created_changes.get(changes_key)
                   or self._create_changes(changes_key, role, groups))
        names = self.repeats.names
        if names is None or hash(name_key) in names:
            self._claimed[name_key] = key
        return CreateTask(row, key, payload, changes)

    def _create(self, row: Row, wanted: Wanted) -> WorkItem:
        email = wanted.email
        user_name = wanted.user_name or email  # both trimmed already
        name_key = identity_key(user_name)
        holder = self.directory.user_by_name_key(name_key)
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
                                     + given("--default-role", "viewer"))
            if isinstance(found, Unknown):
                return decided(row, email, "create", Status.SKIPPED, error=found.describe())
            role = found
        groups = wanted.groups or ()
        payload: dict[str, Any] = {"email": email, "userName": user_name, "roleId": role.id,
                                   "groups": [*map(_id_of, groups)]}
        if wanted.first_name:
            payload["firstName"] = wanted.first_name
        if wanted.last_name:
            payload["lastName"] = wanted.last_name
        if wanted.password:
            payload["password"] = wanted.password
        if wanted.language:
            payload["preferences"] = {"language": wanted.language}
        # Keyed by the names the text is made of (texts hash once, where a role or group
        # value hashes through a Python call): never another combination's text, even where
        # a server gave two roles or groups one id.
        key = (role.name, role.display_name, *map(_name_of, groups))
        changes = self._created_changes.get(key) or self._create_changes(key, role, groups)
        self._claim(name_key, email)
        # By position (CreateTask's field order): keywords cost a lookup each, for every row.
        return CreateTask(row, email, payload, changes)

    def _create_changes(self, key: tuple[str, ...], role: Role,
                        groups: tuple[Group, ...]) -> str:
        """What a create sets, as the report says it (HR files repeat a few role and group
        combinations: each text is made once, kept by ``key``, the names it shows)."""
        changes = f"role {role.shown}"
        if groups:
            changes += "; groups " + " ".join(["+" + g.name for g in groups])
        self._created_changes[key] = changes
        return changes

    def plan_update(self, row: Row) -> WorkItem:
        """Send only the fields that differ; a user that already matches is ``unchanged``."""
        cells = self.header.cells(row)
        email, user, invalid = self._user_or_problem(row, "update", cells[0])
        if invalid is not None:
            return invalid
        if user is None:
            return decided(row, email, "update", Status.FAILED,
                           error="no user with this email; use import to create users")
        return self._update(row, cells, email, user)

    def _update(self, row: Row, cells: tuple[str, ...], email: str, user: User) -> WorkItem:
        """The update of ``user``, the existing user a valid row names (``cells``: the row's
        fields, Header.cells; ``email``: as the server stores it)."""
        wanted = self._wanted(row, cells)
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
            self._claim(identity_key(patch["userName"]), user.email)
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
