"""Carry out planned work through the API and report every row's outcome as it is known.

Executors never return results: they ``emit`` each row's result the moment it is known, so a
batch interrupted half way still accounts for the rows it finished.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal, assert_never

from bulkusers import verify
from bulkusers.api import UserApi, UserDict
from bulkusers.client import Trace
from bulkusers.directory import Directory, User
from bulkusers.errors import ApiError
from bulkusers.identity import identity_key
from bulkusers.journal import Journal
from bulkusers.models import RowResult, Status
from bulkusers.network import describe_failure, is_retryable, server_failing
from bulkusers.results import TOKENS_KEPT_LEGACY, attempted
from bulkusers.rules import NEW_PASSWORD
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
#: How often one step of a deactivation is tried (each try with the client's own retries).
STEP_ROUNDS = 2
Emit = Callable[[RowResult], None]


class Stopwatch:
    """Milliseconds since construction, for the report's ``elapsed_ms``."""

    __slots__ = ("_start",)

    def __init__(self) -> None:
        self._start = time.perf_counter()

    def ms(self) -> float:
        """Elapsed milliseconds, rounded to 0.1."""
        return round((time.perf_counter() - self._start) * 1000, 1)


def _result(task: Task, status: Status, trace: Trace, watch: Stopwatch, *, user_id: str = "",
            error: str = "", changes: str = "", previous: str = "",
            cause: BaseException | None = None) -> RowResult:
    return attempted(task, status, http_status=trace.http_status, attempts=trace.attempts,
                     elapsed_ms=watch.ms(), user_id=user_id, error=error, changes=changes,
                     previous=previous, transient=cause is not None and server_failing(cause))


@dataclass(frozen=True, slots=True)
class Failure:
    """Why a request did not do its job, and the error behind it (which tells whether the
    server, not the row, was to blame)."""

    message: str
    cause: BaseException
    #: The server may have carried the request out all the same (its answer was lost).
    unsure: bool = False


def _strong_password() -> str:
    # Long, random, and with every character class that password policies ask for.
    return secrets.token_urlsafe(32) + "aA1!"


class Executor:
    """Runs the plan's items against one API, exactly as planned.

    The directory is the snapshot the plan was made against, read only (for verification);
    what the executor learns while it runs (the real ids of groups created for the run) is its
    own record and never changes the plan.
    """

    def __init__(self, api: UserApi, directory: Directory,
                 journal: Journal | None = None,
                 group_ids: Mapping[str, str] | None = None) -> None:
        self.api = api
        self.directory = directory
        self.journal = journal
        #: Stand-in group id in the plan -> the id the server gave the group (--create-groups).
        self.group_ids = dict(group_ids or {})

    def _note(self, task: UpdateTask | DeactivateTask | DeleteTask) -> None:
        if self.journal is not None:
            self.journal.note(task)

    def _resolved(self, body: Mapping[str, Any]) -> Mapping[str, Any]:
        """A planned body with the real ids of the groups created for this run."""
        groups = body.get("groups")
        if not self.group_ids or not groups:
            return body
        return {**body, "groups": [self.group_ids.get(g, g) for g in groups]}

    async def run(self, item: WorkItem, emit: Emit) -> None:
        """Carry out one work item, emitting one result per row it covers."""
        match item:
            case RowResult():
                emit(item)
            case CreateBatch():
                await self.create_batch(item, emit)
            case DeleteBatch():
                await self.delete_batch(item, emit)
            case CreateTask():
                await self.create(item, emit)
            case DeactivateTask():
                await self.deactivate(item, emit)
            case UpdateTask():
                await self.update(item, emit)
            case DeleteTask():
                await self.delete(item, emit)
            case _:
                assert_never(item)

    # -- create -------------------------------------------------------------------------------

    @staticmethod
    def _created(created: Mapping[str, Any]) -> str:
        return str(created.get("_id", ""))

    async def create(self, task: CreateTask, emit: Emit, *, maybe_landed: bool = False) -> None:
        """Create one user. When an attempt (or the bulk request this row came from) may have
        landed unseen, a failure is checked on the server before it is reported."""
        trace, watch = Trace(), Stopwatch()
        try:
            created = await self.api.create_user(self._resolved(task.payload), trace)
        except Exception as exc:
            if not (isinstance(exc, ApiError) or is_retryable(exc)):
                raise
            if isinstance(exc, ApiError) and exc.code == CODE_ALREADY_EXISTS:
                await self._already_exists(task, emit, trace, watch, exc,
                                           maybe_landed or trace.unsure or trace.attempts > 1)
            elif maybe_landed or trace.unsure:
                await self._settle_create(task, emit, trace, watch, exc)
            else:
                emit(_result(task, Status.FAILED, trace, watch, cause=exc,
                             error=_failure(exc, trace, "the user was not created")))
            return
        emit(_result(task, Status.CREATED, trace, watch, user_id=self._created(created),
                     changes=task.changes))

    async def _already_exists(self, task: CreateTask, emit: Emit, trace: Trace,
                              watch: Stopwatch, exc: ApiError, retried: bool) -> None:
        # "Already exists" after a retry usually means an earlier attempt of ours landed but
        # its answer was lost: ask the server instead of guessing, count the user once.
        check = await verify.by_email(self.api, task.email)
        if check.user is None:
            extra = f"; {check.error}" if check.error else ""
            emit(_result(task, Status.FAILED, trace, watch, error=exc.describe() + extra))
        elif retried:
            emit(self._confirmed_create(task, check.user, trace, watch))
        else:
            emit(_result(task, Status.SKIPPED, trace, watch,
                         user_id=check.user.id,
                         changes="none: user already exists (created since the run started)"))

    async def _settle_create(self, task: CreateTask, emit: Emit, trace: Trace,
                             watch: Stopwatch, exc: BaseException) -> None:
        """A create whose fate is unknown: the server's directory decides its status."""
        check = await verify.by_email(self.api, task.email)
        if check.user is not None:
            emit(self._confirmed_create(task, check.user, trace, watch))
        elif check.answered:
            emit(_result(task, Status.FAILED, trace, watch, cause=exc, error=_failure(
                exc, trace, "checked on the server: the user does not exist, nothing was "
                            "created; a re-run creates it")))
        else:
            emit(_result(task, Status.FAILED, trace, watch, cause=exc, error=_failure(
                exc, trace, f"the user may have been created and {check.error}; a re-run "
                            "checks and never creates it twice")))

    def _confirmed_create(self, task: CreateTask, user: User, trace: Trace,
                          watch: Stopwatch) -> RowResult:
        differs = verify.not_applied(self._resolved(task.payload), user, self.directory)
        note = verify.CONFIRMED
        if differs:
            note += f"; the server shows other values for: {verify.names(differs)}"
        return _result(task, Status.CREATED, trace, watch,
                       user_id=user.id,
                       changes=f"{task.changes} {note}".strip())

    async def create_batch(self, batch: CreateBatch, emit: Emit) -> None:
        """Create many users in one request; if it fails, each row is settled alone."""
        trace, watch = Trace(), Stopwatch()
        try:
            created = await self.api.create_users([self._resolved(t.payload)
                                                   for t in batch.tasks], trace)
        except Exception as exc:
            if not (isinstance(exc, ApiError) or is_retryable(exc)):
                raise
            # All-or-nothing: one bad row refuses the batch. Alone, each row gets its own
            # status; a batch that may have landed unseen is first checked row by row, and
            # only the users the server does not have are sent again.
            maybe_landed = trace.unsure or trace.attempts > 1
            for task in batch.tasks:
                if maybe_landed and await self._found(task, emit, trace, watch):
                    continue
                await self.create(task, emit, maybe_landed=maybe_landed)
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
                             user_id=self._created(user), changes=task.changes))

    async def _found(self, task: CreateTask, emit: Emit, trace: Trace,
                     watch: Stopwatch) -> bool:
        """Emit ``created`` when a lost bulk request did create this row's user."""
        check = await verify.by_email(self.api, task.email)
        if check.user is None:
            return False
        emit(self._confirmed_create(task, check.user, trace, watch))
        return True

    # -- update, reactivate, deactivate -------------------------------------------------------

    async def _patch(self, task: UpdateTask | DeactivateTask, patch: Mapping[str, Any],
                     trace: Trace) -> UserDict | Failure:
        """Send a patch and check the answer shows it applied; the new user or a failure."""
        patch = self._resolved(patch)
        try:
            after = await self.api.update_user(task.user, patch, trace)
        except Exception as exc:
            if not (isinstance(exc, ApiError) or is_retryable(exc)):
                raise
            return Failure(_failure(exc, trace, ""), exc)
        updated = User.from_api({"_id": task.user.id, **after})
        missing = verify.not_applied(patch, updated, self.directory)
        if missing:
            message = ("the server answered success but did not apply: "
                       f"{verify.names(missing)}")
            return Failure(message, ApiError(trace.http_status or 0, None, message))
        return after

    async def _settle_patch(self, task: UpdateTask | DeactivateTask,
                            patch: Mapping[str, Any]) -> Settled:
        """What the server shows of a patch whose answer was lost."""
        patch = self._resolved(patch)
        check = await verify.by_id(self.api, task.user.id)
        if not check.answered:
            return Settled("unknown", check.error)
        if check.user is None:
            return Settled("gone", "checked on the server: the user no longer exists")
        missing = verify.not_applied(patch, check.user, self.directory)
        if not missing:
            return Settled("applied", "")
        applied = [key for key in verify.checkable(patch) if key not in missing]
        if not applied:
            return Settled("not_applied", "checked on the server: nothing of it was applied")
        return Settled("partly", f"checked on the server: partly applied: "
                                 f"{verify.names(applied)} changed; not applied: "
                                 f"{verify.names(missing)}", verify.names(applied))

    async def update(self, task: UpdateTask, emit: Emit) -> None:
        """Apply an update (or a reactivation) and verify it; when its answer was lost, the
        server's copy of the user decides the status."""
        trace, watch = Trace(), Stopwatch()
        outcome = await self._patch(task, task.patch, trace)
        if not isinstance(outcome, Failure):
            emit(_result(task, Status.UPDATED, trace, watch, user_id=task.user.id,
                         changes=task.changes, previous=task.previous))
            return
        if not trace.unsure:
            emit(_result(task, Status.FAILED, trace, watch, user_id=task.user.id,
                         error=outcome.message, previous=task.previous, cause=outcome.cause))
            return
        settled = await self._settle_patch(task, task.patch)
        if settled.state == "applied":
            emit(_result(task, Status.UPDATED, trace, watch, user_id=task.user.id,
                         changes=f"{task.changes} {verify.CONFIRMED}", previous=task.previous))
            return
        why = (f"the change may have been applied and {settled.why}; a re-run checks"
               if settled.state == "unknown" else settled.why)
        emit(_result(task, Status.FAILED, trace, watch, user_id=task.user.id,
                     error=f"{outcome.message}; {why}", previous=task.previous,
                     changes=f"partly applied: {settled.applied}" if settled.applied else "",
                     cause=outcome.cause))

    async def deactivate(self, task: DeactivateTask, emit: Emit) -> None:
        """Lower role, drop groups and replace the password in one patch, then revoke tokens.

        A step that failed is tried once more within the run (both are safe to repeat); a
        step whose answer was lost is checked on the server. The row is ``deactivated`` only
        when every step is known to have happened; otherwise the error says which did.
        """
        trace, watch = Trace(), Stopwatch()
        self._note(task)
        patched = await self._deactivation_patch(task, trace)
        if isinstance(patched, Failure):
            emit(_result(task, Status.FAILED, trace, watch, user_id=task.user.id,
                         error=patched.message, previous=task.previous, cause=patched.cause))
            return
        confirmed = f" {verify.CONFIRMED}" if patched else ""
        revoked = await self._revoke(task, trace)
        if isinstance(revoked, Failure):
            # Never "deactivated" while tokens may still work; never "failed" without saying
            # that the role, groups and password did change.
            tokens = ("tokens perhaps not revoked (the revocation may have reached the "
                      "server unanswered)"
                      if revoked.unsure else "tokens NOT revoked")
            emit(_result(task, Status.FAILED, trace, watch, user_id=task.user.id,
                         changes=f"{task.changes}; {tokens}{confirmed}",
                         previous=task.previous, cause=revoked.cause,
                         error=f"role, groups and password changed, but revoking the user's "
                               f"tokens failed ({revoked.message}): tokens issued before may "
                               "still work; run deactivate again for this user"))
            return
        tokens = "tokens revoked" if revoked else TOKENS_KEPT_LEGACY
        emit(_result(task, Status.DEACTIVATED, trace, watch, user_id=task.user.id,
                     changes=f"{task.changes}; {tokens}{confirmed}", previous=task.previous))

    async def _deactivation_patch(self, task: DeactivateTask, trace: Trace) -> bool | Failure:
        """The role/groups/password step: False when its answer showed it applied, True when
        the server confirmed it after a lost answer, or why it did not (surely) happen."""
        failure = Failure("", RuntimeError("no attempt"))
        for _ in range(STEP_ROUNDS):
            patch = {k: (_strong_password() if v == NEW_PASSWORD else v)
                     for k, v in task.patch.items()}
            trace.unsure = False
            outcome = await self._patch(task, patch, trace)
            if not isinstance(outcome, Failure):
                return False
            if not trace.unsure:
                failure = Failure(f"{outcome.message}; nothing was changed", outcome.cause)
                if not is_retryable(outcome.cause):
                    return failure  # refused: the same patch would be refused again
                continue
            settled = await self._settle_patch(task, patch)
            if settled.state == "applied":
                return True
            if settled.state == "gone":
                return Failure(f"{outcome.message}; {settled.why}", outcome.cause)
            if settled.state == "not_applied":
                message = f"{outcome.message}; {settled.why}; nothing was changed"
            elif settled.state == "partly":
                message = (f"{outcome.message}; {settled.why}; tokens not revoked; run "
                           "deactivate again for this user")
            else:
                message = (f"{outcome.message}; the role, groups and password may have "
                           f"changed and {settled.why}; tokens not revoked; run deactivate "
                           "again for this user")
            failure = Failure(message, outcome.cause)
        return failure

    async def _revoke(self, task: DeactivateTask, trace: Trace) -> bool | Failure:
        """The token step, tried once more if it fails (revoking twice is harmless): whether
        tokens were revoked, or why not."""
        failure = Failure("", RuntimeError("no attempt"))
        for _ in range(STEP_ROUNDS):
            trace.unsure = False
            try:
                return await self.api.revoke_tokens(task.user.id, trace)
            except Exception as exc:
                if not (isinstance(exc, ApiError) or is_retryable(exc)):
                    raise
                failure = Failure(_failure(exc, trace, ""), exc, unsure=trace.unsure)
                if not is_retryable(exc):
                    break
        return failure

    # -- delete -------------------------------------------------------------------------------

    async def delete(self, task: DeleteTask, emit: Emit, *, noted: bool = False,
                     maybe_landed: bool = False) -> None:
        """Delete one user; a 404 for a user the run saw means it is gone: deleted. When an
        attempt may have landed unseen, a failure is checked on the server."""
        trace, watch = Trace(), Stopwatch()
        if not noted:
            self._note(task)
        try:
            await self.api.delete_user(task.user.id, trace)
        except Exception as exc:
            if not (isinstance(exc, ApiError) or is_retryable(exc)):
                raise
            if isinstance(exc, ApiError) and exc.status == 404:
                # The user existed when the run began. An earlier attempt of ours may have
                # landed unseen (aiohttp itself repeats an idempotent request whose
                # connection dropped), or someone else removed it: either way it is gone.
                self._deleted(task, emit, trace, watch, "deleted (the server no longer had "
                                                        "the user when asked)")
            elif maybe_landed or trace.unsure:
                await self._settle_delete(task, emit, trace, watch, exc)
            else:
                emit(_result(task, Status.FAILED, trace, watch, user_id=task.user.id,
                             previous=task.previous, cause=exc,
                             error=_failure(exc, trace, "the user was not deleted")))
            return
        self._deleted(task, emit, trace, watch, "deleted")

    def _deleted(self, task: DeleteTask, emit: Emit, trace: Trace, watch: Stopwatch,
                 changes: str) -> None:
        emit(_result(task, Status.DELETED, trace, watch, user_id=task.user.id,
                     changes=changes, previous=task.previous))

    async def _settle_delete(self, task: DeleteTask, emit: Emit, trace: Trace,
                             watch: Stopwatch, exc: BaseException) -> None:
        """A delete whose fate is unknown: whether the server still has the user decides."""
        check = await verify.by_id(self.api, task.user.id)
        if check.answered and check.user is None:
            self._deleted(task, emit, trace, watch, f"deleted {verify.CONFIRMED}")
            return
        consequence = ("checked on the server: the user still exists, nothing was deleted; "
                       "a re-run deletes it" if check.answered else
                       f"the user may have been deleted and {check.error}; a re-run checks")
        emit(_result(task, Status.FAILED, trace, watch, user_id=task.user.id,
                     previous=task.previous, cause=exc,
                     error=_failure(exc, trace, consequence)))

    async def _gone(self, task: DeleteTask, emit: Emit, trace: Trace,
                    watch: Stopwatch) -> bool:
        """Emit ``deleted`` when a lost bulk request did delete this row's user."""
        check = await verify.by_id(self.api, task.user.id)
        if not check.answered or check.user is not None:
            return False
        self._deleted(task, emit, trace, watch, f"deleted {verify.CONFIRMED}")
        return True

    async def delete_batch(self, batch: DeleteBatch, emit: Emit) -> None:
        """Delete many users in one request; if it fails, each row is settled alone."""
        trace, watch = Trace(), Stopwatch()
        for task in batch.tasks:
            self._note(task)
        try:
            await self.api.delete_users([t.user.id for t in batch.tasks], trace)
        except Exception as exc:
            if not (isinstance(exc, ApiError) or is_retryable(exc)):
                raise
            # Alone, each row gets its own outcome; a batch that may have landed unseen is
            # first checked user by user, and only the users still there are sent again.
            maybe_landed = trace.unsure
            for task in batch.tasks:
                if maybe_landed and await self._gone(task, emit, trace, watch):
                    continue
                await self.delete(task, emit, noted=True, maybe_landed=maybe_landed)
            return
        for task in batch.tasks:
            self._deleted(task, emit, trace, watch, "deleted")


@dataclass(frozen=True, slots=True)
class Settled:
    """A patch whose answer was lost, checked on the server."""

    #: applied (all of it shows), partly, not_applied, gone (no such user), unknown (the
    #: server could not be asked).
    state: Literal["applied", "partly", "not_applied", "gone", "unknown"]
    why: str
    #: The fields that did change, when only some did ("" otherwise).
    applied: str = ""


def _failure(exc: BaseException, trace: Trace, consequence: str) -> str:
    """One line for a failed request: the error, the attempts it took, what follows."""
    reason = describe_failure(exc)
    if trace.attempts > 1:
        reason += f" after {count(trace.attempts, 'attempt')}"
    return f"{reason}; {consequence}" if consequence else reason
