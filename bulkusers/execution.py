"""Carry out planned tasks through the client and turn every outcome into a ``RowResult``."""

from __future__ import annotations

from bulkusers.client import SisenseClient, Trace
from bulkusers.directory import Directory
from bulkusers.errors import ApiError, describe_network_error, is_retryable
from bulkusers.models import RowResult, Status
from bulkusers.operations import CreateTask, Stopwatch, user_from_created

CODE_ALREADY_EXISTS = 2004


async def execute_create(task: CreateTask, client: SisenseClient,
                         directory: Directory) -> RowResult:
    """Create the task's user; a retried create that meets 'already exists' is verified."""
    trace = Trace()
    watch = Stopwatch()

    def result(status: Status, *, user_id: str = "", error: str = "",
               changes: str = "") -> RowResult:
        return RowResult(row=task.row, email=task.email, action="create", status=status,
                         user_id=user_id, http_status=trace.http_status, error=error,
                         attempts=trace.attempts, elapsed_ms=watch.ms(), changes=changes)

    try:
        created = await client.create_user(task.payload, trace)
    except ApiError as exc:
        if exc.code != CODE_ALREADY_EXISTS:
            return result(Status.FAILED, error=exc.describe())
        # "Already exists" after a retry usually means our earlier attempt landed but its
        # answer was lost; ask the server instead of guessing, and count the user once.
        retried = trace.attempts > 1
        existing = await client.find_user(task.email, trace)
        if existing is None:
            return result(Status.FAILED, error=exc.describe())
        directory.remember(user_from_created(existing, task))
        user_id = str(existing.get("_id", ""))
        if retried:
            return result(Status.CREATED, user_id=user_id,
                          changes=task.changes + " (confirmed on the server after a retry)")
        return result(Status.SKIPPED, user_id=user_id,
                      changes="none: user already exists (created since the run started)")
    except Exception as exc:
        if not is_retryable(exc):
            raise
        return result(Status.FAILED, error=f"{describe_network_error(exc)} after "
                      f"{trace.attempts} attempts; the user may exist, a re-run checks")
    directory.remember(user_from_created(created, task))
    return result(Status.CREATED, user_id=str(created.get("_id", "")), changes=task.changes)
