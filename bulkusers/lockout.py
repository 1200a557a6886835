"""Deactivation, the one two-step write: lower role, no groups and an unknown password in one
patch, then every token revoked.

A step that failed is tried once more within the run (both are safe to repeat); a step whose
answer was lost is checked on the server. The row is ``deactivated`` only when every step is
known to have happened; otherwise the error says which did.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from typing import Any, Protocol

from bulkusers import verify
from bulkusers.api import UserApi, UserDict
from bulkusers.client import Trace
from bulkusers.errors import ApiError
from bulkusers.models import Status
from bulkusers.network import is_retryable
from bulkusers.outcomes import Emit, Failure, Settled, Stopwatch, failure_text, result_of
from bulkusers.results import TOKENS_KEPT_LEGACY
from bulkusers.rules import NEW_PASSWORD
from bulkusers.tasks import DeactivateTask, DeleteTask, UserPatch

#: How often one step of a deactivation is tried (each try with the client's own retries).
STEP_ROUNDS = 2


class Patcher(Protocol):
    """What deactivation needs of the sender (``execution.Executor``)."""

    api: UserApi

    def note(self, task: UserPatch | DeleteTask) -> None:
        """Write the undo journal's entry before a destructive request."""

    async def patch(self, task: UserPatch, patch: Mapping[str, Any],
                    trace: Trace) -> UserDict | Failure:
        """Send a patch and check the answer shows it applied."""

    async def settle_patch(self, task: UserPatch,
                           patch: Mapping[str, Any]) -> Settled:
        """What the server shows of a patch whose answer was lost."""


def _strong_password() -> str:
    # Long, random, and with every character class that password policies ask for.
    return secrets.token_urlsafe(32) + "aA1!"



async def deactivate(sender: Patcher, task: DeactivateTask, emit: Emit) -> None:
    """Lower role, drop groups and replace the password in one patch, then revoke tokens.

    A step that failed is tried once more within the run (both are safe to repeat); a
    step whose answer was lost is checked on the server. The row is ``deactivated`` only
    when every step is known to have happened; otherwise the error says which did.
    """
    trace, watch = Trace(), Stopwatch()
    sender.note(task)
    patched = await _deactivation_patch(sender, task, trace)
    if isinstance(patched, Failure):
        emit(result_of(task, Status.FAILED, trace, watch, user_id=task.user.id,
                     error=patched.message, previous=task.previous, cause=patched.cause))
        return
    confirmed = f" {verify.CONFIRMED}" if patched else ""
    revoked = await _revoke(sender, task, trace)
    if isinstance(revoked, Failure):
        # Never "deactivated" while tokens may still work; never "failed" without saying
        # that the role, groups and password did change.
        tokens = ("tokens perhaps not revoked (the revocation may have reached the "
                  "server unanswered)"
                  if revoked.unsure else "tokens NOT revoked")
        emit(result_of(task, Status.FAILED, trace, watch, user_id=task.user.id,
                     changes=f"{task.changes}; {tokens}{confirmed}",
                     previous=task.previous, cause=revoked.cause,
                     error=f"role, groups and password changed, but revoking the user's "
                           f"tokens failed ({revoked.message}): tokens issued before may "
                           "still work; run deactivate again for this user"))
        return
    tokens = "tokens revoked" if revoked else TOKENS_KEPT_LEGACY
    emit(result_of(task, Status.DEACTIVATED, trace, watch, user_id=task.user.id,
                 changes=f"{task.changes}; {tokens}{confirmed}", previous=task.previous))


async def _deactivation_patch(sender: Patcher, task: DeactivateTask,
                              trace: Trace) -> bool | Failure:
    """The role/groups/password step: False when its answer showed it applied, True when
    the server confirmed it after a lost answer, or why it did not (surely) happen."""
    failure = Failure("", RuntimeError("no attempt"))
    for _ in range(STEP_ROUNDS):
        patch = {k: (_strong_password() if v == NEW_PASSWORD else v)
                 for k, v in task.patch.items()}
        trace.unsure = False
        outcome = await sender.patch(task, patch, trace)
        if not isinstance(outcome, Failure):
            return False
        if not trace.unsure:
            failure = Failure(f"{outcome.message}; nothing was changed", outcome.cause)
            if not is_retryable(outcome.cause):
                return failure  # refused: the same patch would be refused again
            continue
        settled = await sender.settle_patch(task, patch)
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

async def _revoke(sender: Patcher, task: DeactivateTask, trace: Trace) -> bool | Failure:
    """The token step, tried once more if it fails (revoking twice is harmless): whether
    tokens were revoked, or why not."""
    failure = Failure("", RuntimeError("no attempt"))
    for _ in range(STEP_ROUNDS):
        trace.unsure = False
        try:
            return await sender.api.revoke_tokens(task.user.id, trace)
        except Exception as exc:
            if not (isinstance(exc, ApiError) or is_retryable(exc)):
                raise
            failure = Failure(failure_text(exc, trace, ""), exc, unsure=trace.unsure)
            if not is_retryable(exc):
                break
    return failure

