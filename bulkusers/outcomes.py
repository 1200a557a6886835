"""What the sender knows of one request: its stopwatch, its failure, a lost answer settled,
and the row result built from them (through ``results.attempted``)."""

from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Literal

from bulkusers.client import Trace
from bulkusers.frozen import frozen
from bulkusers.models import RowResult, Status
from bulkusers.network import describe_failure, server_failing
from bulkusers.results import attempted
from bulkusers.tasks import Task
from bulkusers.words import count

#: Receives each row's result the moment it is known.
Emit = Callable[[RowResult], None]
#: Makes a context in which the emitted results are written to the report together, once it
#: ends (rows that finished at the same moment).
Together = Callable[[], AbstractContextManager[None]]


class Stopwatch:
    """Milliseconds since construction, for the report's ``elapsed_ms``."""

    __slots__ = ("_start",)

    def __init__(self) -> None:
        self._start = time.perf_counter()

    def ms(self) -> float:
        """Elapsed milliseconds, rounded to 0.1."""
        return round((time.perf_counter() - self._start) * 1000, 1)


def result_of(task: Task, status: Status, trace: Trace, watch: Stopwatch, *, user_id: str = "",
            error: str = "", changes: str = "", previous: str = "",
            cause: BaseException | None = None) -> RowResult:
    """A row the sender tried: its answer's status and attempts from ``trace``, its time from
    ``watch``; ``cause`` marks a failure as the server's (for the circuit breaker)."""
    return attempted(task, status, trace.http_status, trace.attempts, watch.ms(), user_id,
                     error, changes, previous, cause is not None and server_failing(cause))


@frozen
class Failure:
    """Why a request did not do its job, and the error behind it (which tells whether the
    server, not the row, was to blame)."""

    message: str
    cause: BaseException
    #: The server may have carried the request out all the same (its answer was lost).
    unsure: bool = False


@frozen
class Settled:
    """A patch whose answer was lost, checked on the server."""

    #: applied (all of it shows), partly, not_applied, gone (no such user), unknown (the
    #: server could not be asked).
    state: Literal["applied", "partly", "not_applied", "gone", "unknown"]
    why: str
    #: The fields that did change, when only some did ("" otherwise).
    applied: str = ""


def failure_text(exc: BaseException, trace: Trace, consequence: str) -> str:
    """One line for a failed request: the error, the attempts it took, what follows."""
    reason = describe_failure(exc)
    if trace.attempts > 1:
        reason += f" after {count(trace.attempts, 'attempt')}"
    return f"{reason}; {consequence}" if consequence else reason
