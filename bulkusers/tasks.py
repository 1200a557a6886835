"""Planned work: what one row (or a batch of rows) will send, decided before anything is sent."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import field
from typing import Any

import orjson

from bulkusers.directory import BUILTIN_GROUPS, Directory, User
from bulkusers.frozen import frozen
from bulkusers.models import Row, RowResult
from bulkusers.safetext import CONTROL
from bulkusers.spool import spooled


@spooled
@frozen
class CreateTask:
    """Create one user with a fully resolved payload."""

    row: Row
    email: str
    #: Never in a repr: it holds the new user's password.
    payload: Mapping[str, Any] = field(repr=False)
    changes: str
    action: str = "create"


@frozen
class UserPatch:
    """What an update and a deactivation share: a partial update of one existing user, with
    the user's state before it (``previous``). Never planned itself: its two kinds are
    siblings, so a ``match`` over tasks does not depend on the order of its cases."""

    row: Row
    email: str
    user: User
    #: Never in a repr: a deactivation's holds the unknown password it sets.
    patch: Mapping[str, Any] = field(repr=False)
    changes: str
    previous: str
    action: str


@spooled
@frozen
class UpdateTask(UserPatch):
    """Send a partial update to one existing user (also used by reactivate)."""

    action: str = "update"


@spooled
@frozen
class DeactivateTask(UserPatch):
    """Lock one user out: lowest role, no groups, a new unknown password, tokens revoked."""

    action: str = "deactivate"


@spooled
@frozen
class DeleteTask:
    """Delete one user, whose full record is kept in ``previous``."""

    row: Row
    email: str
    user: User
    previous: str
    action: str = "delete"


@spooled
@frozen
class CreateBatch:
    """Creates sent together in one all-or-nothing bulk request."""

    tasks: tuple[CreateTask, ...]


@spooled
@frozen
class DeleteBatch:
    """Deletes sent together in one all-or-nothing bulk request."""

    tasks: tuple[DeleteTask, ...]


Task = CreateTask | UpdateTask | DeactivateTask | DeleteTask
WorkItem = Task | CreateBatch | DeleteBatch | RowResult


def tasks_of(item: WorkItem) -> tuple[Task, ...]:
    """The single tasks an item stands for (none for an already decided row)."""
    if isinstance(item, CreateBatch | DeleteBatch):
        return item.tasks
    if isinstance(item, RowResult):
        return ()
    return (item,)


def batched(items: Iterable[WorkItem], size: int) -> Iterator[WorkItem]:
    """Group consecutive-in-time creates and deletes into batches of ``size``; keep the rest."""
    if size <= 1:
        yield from items
        return
    creates: list[CreateTask] = []
    deletes: list[DeleteTask] = []
    for item in items:
        if isinstance(item, CreateTask):
            creates.append(item)
            if len(creates) == size:
                yield CreateBatch(tuple(creates))
                creates = []
        elif isinstance(item, DeleteTask):
            deletes.append(item)
            if len(deletes) == size:
                yield DeleteBatch(tuple(deletes))
                deletes = []
        else:
            yield item
    if creates:
        yield CreateBatch(tuple(creates)) if len(creates) > 1 else creates[0]
    if deletes:
        yield DeleteBatch(tuple(deletes)) if len(deletes) > 1 else deletes[0]


def snapshot(user: User, directory: Directory) -> str:
    """A user's state as JSON for the report's ``previous`` column (names, not ids)."""
    # Built-in groups are computed, never written, and listed in a user's groups by some servers
    # only (Everyone): left out, the record is the same whichever server it came from.
    groups = directory.group_names(
        g for g in user.group_ids
        if not ((group := directory.group_by_id(g)) is not None and group.builtin))
    state: dict[str, Any] = {
        "id": user.id, "email": user.email, "userName": user.user_name,
        "firstName": user.first_name, "lastName": user.last_name,
        "role": directory.role_name(user.role_id), "groups": groups,
    }
    if user.language:
        state["language"] = user.language
    if user.active is not None:
        state["active"] = user.active
    try:
        # orjson: a tenth of json's time, for every updated or removed row; compact.
        text = orjson.dumps(state).decode()
    except TypeError:  # what orjson refuses (a lone surrogate): json's way
        text = json.dumps(state, ensure_ascii=False)
    # JSON leaves DEL, C1 and bidi controls raw, which no report may carry; written there as
    # visible \x.. escapes they would make the record unreadable. JSON's own escapes read back
    # exactly.
    return CONTROL.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


def describe(user: User, directory: Directory) -> str:
    """One line naming a user as the server stores it: email, role (as the UI names it) and
    groups, for the confirmation prompt and a dry run's list."""
    role = directory.role_by_id(user.role_id)
    role_name = role.shown if role else user.role_id or "no role"
    groups = [name for name in directory.group_names(user.group_ids)
              if name.casefold() not in BUILTIN_GROUPS]
    return f"{user.email}  {role_name}  groups: {', '.join(groups) if groups else '(none)'}"
