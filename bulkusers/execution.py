"""Carry out planned work through the API and report every row's outcome as it is known.

Executors never return results: they ``emit`` each row's result the moment it is known, so a
batch interrupted half way still accounts for the rows it finished.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from bulkusers.api import UserApi, UserDict
from bulkusers.client import Trace
from bulkusers.directory import Directory, User
from bulkusers.errors import ApiError, describe_network_error, is_retryable, server_failing
from bulkusers.identity import identity_key
from bulkusers.journal import Journal
from bulkusers.models import RowResult, Status
from bulkusers.operations import NEW_PASSWORD
from bulkusers.tasks import (
    CreateBatch,
    CreateTask,
    DeactivateTask,
    DeleteBatch,
    DeleteTask,
    Task,
    UpdateTask,
    WorkItem,
)
from bulkusers.words import count

CODE_ALREADY_EXISTS = 2004
Emit = Callable[[RowResult], None]


class Stopwatch:
    """Milliseconds since construction, for the report's ``elapsed_ms``."""

    def __init__(self) -> None:
        self._start = time.perf_counter()

    def ms(self) -> float:
        """Elapsed milliseconds, rounded to 0.1."""
        return round((time.perf_counter() - self._start) * 1000, 1)


def _result(task: Task, status: Status, trace: Trace, watch: Stopwatch, *, user_id: str = "",
            error: str = "", changes: str = "", previous: str = "",
            cause: BaseException | None = None) -> RowResult:
    return RowResult(row=task.row, email=task.email, action=task.action, status=status,
                     user_id=user_id, http_status=trace.http_status, error=error,
                     attempts=trace.attempts, elapsed_ms=watch.ms(), changes=changes,
                     previous=previous, transient=cause is not None and server_failing(cause))


@dataclass(frozen=True, slots=True)
class Failure:
    """Why a request did not do its job, and the error behind it (which tells whether the
    server, not the row, was to blame)."""

    message: str
    cause: BaseException


def _network_failure(exc: BaseException, trace: Trace, consequence: str) -> str:
    return (f"{describe_network_error(exc)} after {count(trace.attempts, 'attempt')}; "
            f"{consequence}")


def _strong_password() -> str:
    # Long, random, and with every character class that password policies ask for.
    return secrets.token_urlsafe(32) + "aA1!"


class Executor:
    """Runs work items against one API and keeps the directory in step with the server."""

    def __init__(self, api: UserApi, directory: Directory,
                 journal: Journal | None = None) -> None:
        self.api = api
        self.directory = directory
        self.journal = journal

    def _note(self, task: UpdateTask | DeleteTask) -> None:
        if self.journal is not None:
            self.journal.note(task)

    async def run(self, item: WorkItem, emit: Emit) -> None:
        """Carry out one work item, emitting one result per row it covers."""
        if isinstance(item, RowResult):
            emit(item)
        elif isinstance(item, CreateBatch):
            await self.create_batch(item, emit)
        elif isinstance(item, DeleteBatch):
            await self.delete_batch(item, emit)
        elif isinstance(item, CreateTask):
            await self.create(item, emit)
        elif isinstance(item, DeactivateTask):  # before UpdateTask: it is one
            await self.deactivate(item, emit)
        elif isinstance(item, UpdateTask):
            await self.update(item, emit)
        else:
            await self.delete(item, emit)

    # -- create -------------------------------------------------------------------------------

    def _created(self, task: CreateTask, created: Mapping[str, Any]) -> str:
        self.directory.remember(User.from_api({**task.payload, **created}))
        return str(created.get("_id", ""))

    async def create(self, task: CreateTask, emit: Emit, *, maybe_landed: bool = False) -> None:
        """Create one user; an 'already exists' after a possibly landed attempt is verified."""
        trace, watch = Trace(), Stopwatch()
        try:
            created = await self.api.create_user(task.payload, trace)
        except ApiError as exc:
            if exc.code != CODE_ALREADY_EXISTS:
                emit(_result(task, Status.FAILED, trace, watch, error=exc.describe(),
                             cause=exc))
                return
            # "Already exists" after a retry usually means an earlier attempt of ours landed
            # but its answer was lost: ask the server instead of guessing, count the user once.
            retried = maybe_landed or trace.attempts > 1
            existing = await self.api.find_user(task.email, trace)
            if existing is None:
                emit(_result(task, Status.FAILED, trace, watch, error=exc.describe()))
            elif retried:
                emit(_result(task, Status.CREATED, trace, watch,
                             user_id=self._created(task, existing),
                             changes=task.changes + " (confirmed on the server after a retry)"))
            else:
                emit(_result(task, Status.SKIPPED, trace, watch,
                             user_id=self._created(task, existing),
                             changes="none: user already exists (created since the run "
                                     "started)"))
            return
        except Exception as exc:
            if not is_retryable(exc):
                raise
            emit(_result(task, Status.FAILED, trace, watch, error=_network_failure(
                exc, trace, "the user may exist, a re-run checks"), cause=exc))
            return
        emit(_result(task, Status.CREATED, trace, watch, user_id=self._created(task, created),
                     changes=task.changes))

    async def create_batch(self, batch: CreateBatch, emit: Emit) -> None:
        """Create many users in one request; if it is refused, each row is tried alone."""
        trace, watch = Trace(), Stopwatch()
        try:
            created = await self.api.create_users([t.payload for t in batch.tasks], trace)
        except ApiError as exc:
            # All-or-nothing: one bad row refuses the batch. Alone, each row gets its own
            # status; after retried transient errors an earlier attempt may have landed.
            maybe_landed = trace.attempts > 1 or exc.status >= 500 or exc.status == 429
            for task in batch.tasks:
                await self.create(task, emit, maybe_landed=maybe_landed)
            return
        except Exception as exc:
            if not is_retryable(exc):
                raise
            for task in batch.tasks:
                await self.create(task, emit, maybe_landed=True)
            return
        by_email = {identity_key(str(u.get("email", ""))): u for u in created}
        for task in batch.tasks:
            user = by_email.get(identity_key(task.email))
            if user is None:
                # An answer without this user (v0.9 answers vary): ask the server.
                user = await self.api.find_user(task.email, trace)
            if user is None:
                emit(_result(task, Status.FAILED, trace, watch,
                             error="the bulk create answered success without this user"))
            else:
                emit(_result(task, Status.CREATED, trace, watch,
                             user_id=self._created(task, user), changes=task.changes))

    # -- update, deactivate -------------------------------------------------------------------

    async def _patch(self, task: UpdateTask, patch: Mapping[str, Any],
                     trace: Trace) -> UserDict | Failure:
        """Send a patch and check the answer shows it applied; the new user or a failure."""
        try:
            after = await self.api.update_user(task.user, patch, trace)
        except ApiError as exc:
            return Failure(exc.describe(), exc)
        except Exception as exc:
            if not is_retryable(exc):
                raise
            return Failure(_network_failure(exc, trace, "the change may have been applied, "
                                                        "a re-run checks"), exc)
        updated = User.from_api({"_id": task.user.id, **after})
        missing = _not_applied(patch, updated, self.directory)
        if missing:
            message = f"the server answered success but did not apply: {', '.join(missing)}"
            return Failure(message, ApiError(trace.http_status or 0, None, message))
        self.directory.remember(updated)
        return after

    async def update(self, task: UpdateTask, emit: Emit) -> None:
        """Apply an update and verify it from the server's answer."""
        trace, watch = Trace(), Stopwatch()
        outcome = await self._patch(task, task.patch, trace)
        if isinstance(outcome, Failure):
            emit(_result(task, Status.FAILED, trace, watch, user_id=task.user.id,
                         error=outcome.message, previous=task.previous, cause=outcome.cause))
            return
        emit(_result(task, Status.UPDATED, trace, watch, user_id=task.user.id,
                     changes=task.changes, previous=task.previous))

    async def deactivate(self, task: DeactivateTask, emit: Emit) -> None:
        """Lower role, drop groups, replace the password, revoke tokens; verify each."""
        trace, watch = Trace(), Stopwatch()
        patch = {k: (_strong_password() if v == NEW_PASSWORD else v)
                 for k, v in task.patch.items()}
        self._note(task)
        outcome = await self._patch(task, patch, trace)
        if isinstance(outcome, Failure):
            emit(_result(task, Status.FAILED, trace, watch, user_id=task.user.id,
                         error=outcome.message, previous=task.previous, cause=outcome.cause))
            return
        try:
            revoked = await self.api.revoke_tokens(task.user.id, trace)
        except Exception as exc:
            if not (isinstance(exc, ApiError) or is_retryable(exc)):
                raise
            reason = exc.describe() if isinstance(exc, ApiError) else describe_network_error(exc)
            emit(_result(task, Status.FAILED, trace, watch, user_id=task.user.id,
                         changes=task.changes, previous=task.previous,
                         error=f"role, groups and password changed, but revoking the tokens "
                               f"failed ({reason}); run deactivate again", cause=exc))
            return
        tokens = "tokens revoked" if revoked else "tokens not revoked (the v0.9 API cannot)"
        emit(_result(task, Status.DEACTIVATED, trace, watch, user_id=task.user.id,
                     changes=f"{task.changes}; {tokens}", previous=task.previous))

    # -- delete -------------------------------------------------------------------------------

    async def delete(self, task: DeleteTask, emit: Emit, *, noted: bool = False) -> None:
        """Delete one user; a 404 for a user the run saw means it is gone: deleted."""
        trace, watch = Trace(), Stopwatch()
        if not noted:
            self._note(task)
        try:
            await self.api.delete_user(task.user.id, trace)
        except ApiError as exc:
            if exc.status == 404:
                # The user existed when the run began. An earlier attempt of ours may have
                # landed unseen (aiohttp itself repeats an idempotent request whose
                # connection dropped), or someone else removed it: either way it is gone.
                self.directory.forget(task.user)
                emit(_result(task, Status.DELETED, trace, watch, user_id=task.user.id,
                             changes="deleted (the server no longer had the user when "
                                     "asked)", previous=task.previous))
            else:
                emit(_result(task, Status.FAILED, trace, watch, user_id=task.user.id,
                             error=exc.describe(), previous=task.previous, cause=exc))
            return
        except Exception as exc:
            if not is_retryable(exc):
                raise
            emit(_result(task, Status.FAILED, trace, watch, user_id=task.user.id,
                         previous=task.previous, cause=exc, error=_network_failure(
                             exc, trace, "the user may be deleted, a re-run checks")))
            return
        self.directory.forget(task.user)
        emit(_result(task, Status.DELETED, trace, watch, user_id=task.user.id,
                     changes="deleted", previous=task.previous))

    async def delete_batch(self, batch: DeleteBatch, emit: Emit) -> None:
        """Delete many users in one request; if it is refused, each row is tried alone."""
        trace, watch = Trace(), Stopwatch()
        for task in batch.tasks:
            self._note(task)
        try:
            await self.api.delete_users([t.user.id for t in batch.tasks], trace)
        except Exception as exc:
            if not (isinstance(exc, ApiError) or is_retryable(exc)):
                raise
            # Alone, each row gets its own outcome (the batch may also have landed unseen).
            for task in batch.tasks:
                await self.delete(task, emit, noted=True)
            return
        for task in batch.tasks:
            self.directory.forget(task.user)
            emit(_result(task, Status.DELETED, trace, watch, user_id=task.user.id,
                         changes="deleted", previous=task.previous))


def _not_applied(patch: Mapping[str, Any], after: User, directory: Directory) -> list[str]:
    """Fields of a patch that the server's answer does not show."""
    missing = []
    if "roleId" in patch and after.role_id and after.role_id != patch["roleId"]:
        missing.append("role")
    if "groups" in patch:
        explicit = {g for g in after.group_ids
                    if not ((group := directory.group_by_id(g)) and group.builtin)}
        if explicit != set(patch["groups"]):
            missing.append("groups")
    for key, value in (("firstName", after.first_name), ("lastName", after.last_name),
                       ("userName", after.user_name), ("email", after.email)):
        if key in patch and value != patch[key]:
            missing.append(key)
    return missing
