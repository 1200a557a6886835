"""Every row's result is built here, with the texts that several stages share.

Planning decides some rows outright (``decided``); a dry run reports the plan (``planned``);
the sender reports what the server did (``attempted``) or that a row never got an answer
(``unfinished``). Nothing else constructs a ``RowResult``.
"""

from __future__ import annotations

from typing import assert_never

from bulkusers.models import Row, RowResult, Status
from bulkusers.tasks import (
    CreateBatch,
    CreateTask,
    DeactivateTask,
    DeleteTask,
    Task,
    UpdateTask,
    WorkItem,
    tasks_of,
)

#: A row the run never sent: Ctrl-C, or the run stopped before its turn.
NOT_SENT = "interrupted before it was sent"
#: A row whose request was cancelled while waiting for its answer.
IN_FLIGHT = "interrupted while in flight; a re-run checks whether it was applied"
#: A delete an interrupted run sent whose answer never reached its report.
DELETED_BY_INTERRUPTED = ("deleted (by the interrupted run; confirmed: the user no longer "
                          "exists)")
#: A deactivation an interrupted run finished whose answer never reached its report.
DEACTIVATED_BY_INTERRUPTED = "deactivated (by the interrupted run; confirmed by its record)"
#: What a deactivation says about tokens on the v0.9 API, which cannot revoke them.
TOKENS_KEPT_LEGACY = "tokens not revoked (the v0.9 API cannot)"


def decided(row: Row, email: str, action: str, status: Status, *, user_id: str = "",
            error: str = "", changes: str = "", previous: str = "") -> RowResult:
    """A row whose outcome planning already knows: nothing will be sent for it."""
    return RowResult(row=row, email=email, action=action, status=status, user_id=user_id,
                     error=error, changes=changes, previous=previous)


def not_planned(row: Row, email: str, action: str, reason: str) -> RowResult:
    """A row a run stopped before planning (a plan sent as it is made): ``not_attempted``."""
    return RowResult(row=row, email=email, action=action, status=Status.NOT_ATTEMPTED,
                     error=reason)


def planned(item: WorkItem, *, revokes_tokens: bool = True) -> list[RowResult]:
    """What a dry run reports for an item: each row ``planned`` with its exact changes."""
    if isinstance(item, RowResult):
        return [item]
    if type(item) is CreateBatch:
        # A dry run's usual item, 50 creates: one C-level map, no dispatch a row.
        return list(map(_planned_create, item.tasks))
    return [_planned(task, revokes_tokens) for task in tasks_of(item)]


def _planned_create(task: CreateTask) -> RowResult:
    # By position (RowResult's field order: row, email, action, status, user_id, http_status,
    # error, attempts, elapsed_ms, changes): made for every row of a dry run, where keywords
    # cost a lookup each.
    return RowResult(task.row, task.email, task.action, Status.PLANNED, "", None, "", 0, 0.0,
                     task.changes)


def _planned(task: Task, revokes_tokens: bool) -> RowResult:
    match task:
        case CreateTask():
            return _planned_create(task)
        case DeactivateTask():
            tokens = "tokens revoked" if revokes_tokens else TOKENS_KEPT_LEGACY
            changes = f"{task.changes}; {tokens}"
        case UpdateTask():
            changes = task.changes
        case DeleteTask():
            changes = "deleted"
        case _:
            assert_never(task)
    return RowResult(row=task.row, email=task.email, action=task.action, status=Status.PLANNED,
                     user_id=task.user.id, changes=changes, previous=task.previous)


def attempted(task: Task, status: Status, http_status: int | None, attempts: int,
              elapsed_ms: float, user_id: str = "", error: str = "", changes: str = "",
              previous: str = "", transient: bool = False) -> RowResult:
    """A row the sender tried: what the server answered, after how many attempts. (Its
    arguments are positional: it is called for every row sent, where keywords cost a
    lookup each.)"""
    # By position, in RowResult's field order: made for every row sent.
    return RowResult(task.row, task.email, task.action, status, user_id, http_status, error,
                     attempts, elapsed_ms, changes, previous, transient)


def unfinished(task: Task, status: Status, reason: str, *,
               transient: bool = False) -> RowResult:
    """A row with no answer: keeps the user's id and previous state, so it can be undone."""
    if isinstance(task, CreateTask):
        return RowResult(row=task.row, email=task.email, action=task.action, status=status,
                         error=reason, transient=transient)
    return RowResult(row=task.row, email=task.email, action=task.action, status=status,
                     error=reason, user_id=task.user.id, previous=task.previous,
                     transient=transient)


def unfinished_rows(item: WorkItem, done: set[int], reason: str) -> list[RowResult]:
    """Every row of an item without an outcome yet, as ``not_attempted``."""
    if isinstance(item, RowResult):
        return [] if item.row.number in done else [item]
    return [unfinished(task, Status.NOT_ATTEMPTED, reason) for task in tasks_of(item)
            if task.row.number not in done]

