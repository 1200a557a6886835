"""Carry out planned work through the API and report every row's outcome as it is known.

Executors never return results: they ``emit`` each row's result the moment it is known, so a
batch interrupted half way still accounts for the rows it finished.
"""

from __future__ import annotations

import contextlib
from collections.abc import Coroutine, Mapping
from typing import Any, assert_never

from bulkusers import lockout, verify
from bulkusers.api import UserApi, UserDict
from bulkusers.client import Trace
from bulkusers.directory import Directory, User
from bulkusers.errors import ApiError
from bulkusers.identity import identity_key
from bulkusers.journal import Journal
from bulkusers.models import RowResult, Status
from bulkusers.network import is_retryable
from bulkusers.outcomes import (
    Emit,
    Failure,
    Settled,
    Stopwatch,
    Together,
    failure_text,
    result_of,
)
from bulkusers.tasks import (
    CreateBatch,
    CreateTask,
    DeactivateTask,
    DeleteBatch,
    DeleteTask,
    UpdateTask,
    UserPatch,
    WorkItem,
)

CODE_ALREADY_EXISTS = 2004


class Executor:
    """Runs the plan's items against one API, exactly as planned.

    The directory is the snapshot the plan was made against, read only (for verification);
    what the executor learns while it runs (the real ids of groups created for the run) is its
    own record and never changes the plan.
    """

    def __init__(self, api: UserApi, directory: Directory,
                 journal: Journal | None = None,
                 group_ids: Mapping[str, str] | None = None,
                 together: Together = contextlib.nullcontext) -> None:
        self.api = api
        self.directory = directory
        self.journal = journal
        #: Stand-in group id in the plan -> the id the server gave the group (--create-groups).
        self.group_ids = dict(group_ids or {})
        #: Around the results of rows that finished at the same moment (one bulk answer):
        #: their report lines go to disk in one write.
        self._together = together

    def note(self, task: UserPatch | DeleteTask) -> None:
        if self.journal is not None:
            self.journal.note(task)

    def _resolved(self, body: Mapping[str, Any]) -> Mapping[str, Any]:
        """A planned body with the real ids of the groups created for this run."""
        groups = body.get("groups")
        if not self.group_ids or not groups:
            return body
        return {**body, "groups": [self.group_ids.get(g, g) for g in groups]}

    def run(self, item: WorkItem, emit: Emit) -> Coroutine[Any, Any, None]:
        """The coroutine that carries out one work item, emitting one result per row it
        covers. (Returned, not awaited here: a coroutine less for every item sent.)"""
        match item:
            case RowResult():
                emit(item)
                return _done()
            case CreateBatch():
                return self.create_batch(item, emit)
            case DeleteBatch():
                return self.delete_batch(item, emit)
            case CreateTask():
                return self.create(item, emit)
            case DeactivateTask():
                return lockout.deactivate(self, item, emit)
            case UpdateTask():
                return self.update(item, emit)
            case DeleteTask():
                return self.delete(item, emit)
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
                emit(result_of(task, Status.FAILED, trace, watch, cause=exc,
                             error=failure_text(exc, trace, "the user was not created")))
            return
        emit(result_of(task, Status.CREATED, trace, watch, user_id=self._created(created),
                     changes=task.changes))

    async def _already_exists(self, task: CreateTask, emit: Emit, trace: Trace,
                              watch: Stopwatch, exc: ApiError, retried: bool) -> None:
        # "Already exists" after a retry usually means an earlier attempt of ours landed but
        # its answer was lost: ask the server instead of guessing, count the user once.
        check = await verify.by_email(self.api, task.email)
        if check.user is None:
            extra = f"; {check.error}" if check.error else ""
            emit(result_of(task, Status.FAILED, trace, watch, error=exc.describe() + extra))
        elif retried:
            emit(self._confirmed_create(task, check.user, trace, watch))
        else:
            emit(result_of(task, Status.SKIPPED, trace, watch,
                         user_id=check.user.id,
                         changes="none: user already exists (created since the run started)"))

    async def _settle_create(self, task: CreateTask, emit: Emit, trace: Trace,
                             watch: Stopwatch, exc: BaseException) -> None:
        """A create whose fate is unknown: the server's directory decides its status."""
        check = await verify.by_email(self.api, task.email)
        if check.user is not None:
            emit(self._confirmed_create(task, check.user, trace, watch))
        elif check.answered:
            emit(result_of(task, Status.FAILED, trace, watch, cause=exc, error=failure_text(
                exc, trace, "checked on the server: the user does not exist, nothing was "
                            "created; a re-run creates it")))
        else:
            emit(result_of(task, Status.FAILED, trace, watch, cause=exc, error=failure_text(
                exc, trace, f"the user may have been created and {check.error}; a re-run "
                            "checks and never creates it twice")))

    def _confirmed_create(self, task: CreateTask, user: User, trace: Trace,
                          watch: Stopwatch) -> RowResult:
        differs = verify.not_applied(self._resolved(task.payload), user, self.directory)
        note = verify.CONFIRMED
        if differs:
            note += f"; the server shows other values for: {verify.names(differs)}"
        return result_of(task, Status.CREATED, trace, watch,
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
        absent: list[CreateTask] = []
        with self._together():  # no await inside: nothing else happens before the write
            for task in batch.tasks:
                user = by_email.get(identity_key(task.email))
                if user is None:
                    absent.append(task)
                else:
                    emit(result_of(task, Status.CREATED, trace, watch,
                                   user_id=self._created(user), changes=task.changes))
        for task in absent:
            # An answer without this user (v0.9 answers vary): ask the server.
            found = await self.api.find_user(task.email, trace)
            if found is None:
                emit(result_of(task, Status.FAILED, trace, watch,
                               error="the bulk create answered success without this user"))
            else:
                emit(result_of(task, Status.CREATED, trace, watch,
                               user_id=self._created(found), changes=task.changes))

    async def _found(self, task: CreateTask, emit: Emit, trace: Trace,
                     watch: Stopwatch) -> bool:
        """Emit ``created`` when a lost bulk request did create this row's user."""
        check = await verify.by_email(self.api, task.email)
        if check.user is None:
            return False
        emit(self._confirmed_create(task, check.user, trace, watch))
        return True

    # -- update, reactivate, deactivate -------------------------------------------------------

    async def patch(self, task: UserPatch, patch: Mapping[str, Any],
                     trace: Trace) -> UserDict | Failure:
        """Send a patch and check the answer shows it applied; the new user or a failure."""
        patch = self._resolved(patch)
        try:
            after = await self.api.update_user(task.user, patch, trace)
        except Exception as exc:
            if not (isinstance(exc, ApiError) or is_retryable(exc)):
                raise
            return Failure(failure_text(exc, trace, ""), exc)
        updated = User.from_api({"_id": task.user.id, **after})
        missing = verify.not_applied(patch, updated, self.directory)
        if missing:
            message = ("the server answered success but did not apply: "
                       f"{verify.names(missing)}")
            return Failure(message, ApiError(trace.http_status or 0, None, message))
        return after

    async def settle_patch(self, task: UserPatch,
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
        outcome = await self.patch(task, task.patch, trace)
        if not isinstance(outcome, Failure):
            emit(result_of(task, Status.UPDATED, trace, watch, user_id=task.user.id,
                         changes=task.changes, previous=task.previous))
            return
        if not trace.unsure:
            emit(result_of(task, Status.FAILED, trace, watch, user_id=task.user.id,
                         error=outcome.message, previous=task.previous, cause=outcome.cause))
            return
        settled = await self.settle_patch(task, task.patch)
        if settled.state == "applied":
            emit(result_of(task, Status.UPDATED, trace, watch, user_id=task.user.id,
                         changes=f"{task.changes} {verify.CONFIRMED}", previous=task.previous))
            return
        why = (f"the change may have been applied and {settled.why}; a re-run checks"
               if settled.state == "unknown" else settled.why)
        emit(result_of(task, Status.FAILED, trace, watch, user_id=task.user.id,
                     error=f"{outcome.message}; {why}", previous=task.previous,
                     changes=f"partly applied: {settled.applied}" if settled.applied else "",
                     cause=outcome.cause))

    # -- delete -------------------------------------------------------------------------------

    async def delete(self, task: DeleteTask, emit: Emit, *, noted: bool = False,
                     maybe_landed: bool = False) -> None:
        """Delete one user; a 404 for a user the run saw means it is gone: deleted. When an
        attempt may have landed unseen, a failure is checked on the server."""
        trace, watch = Trace(), Stopwatch()
        if not noted:
            self.note(task)
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
                emit(result_of(task, Status.FAILED, trace, watch, user_id=task.user.id,
                             previous=task.previous, cause=exc,
                             error=failure_text(exc, trace, "the user was not deleted")))
            return
        self._deleted(task, emit, trace, watch, "deleted")

    def _deleted(self, task: DeleteTask, emit: Emit, trace: Trace, watch: Stopwatch,
                 changes: str) -> None:
        emit(result_of(task, Status.DELETED, trace, watch, user_id=task.user.id,
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
        emit(result_of(task, Status.FAILED, trace, watch, user_id=task.user.id,
                     previous=task.previous, cause=exc,
                     error=failure_text(exc, trace, consequence)))

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
            self.note(task)
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
        with self._together():
            for task in batch.tasks:
                self._deleted(task, emit, trace, watch, "deleted")


async def _done() -> None:
    """What ``Executor.run`` gives for a row decided while planning: nothing to wait for."""
