"""The exception tree of bulkusers, with the exit code of each branch.

::

    BulkUsersError                 anything this tool raises on purpose
    ├── UsageError                 exit 2: the run cannot start, nothing was sent
    │   ├── ConfigError            bad option, missing URL or credentials
    │   └── InputError             unreadable file, missing column, bad encoding
    ├── AbortError                 exit 3: the run stopped for a cause that is not the rows'
    │   ├── AuthError              credentials refused (401 after a re-login, or 403)
    │   ├── ServerUnavailable      the server cannot be reached or keeps failing
    │   ├── GuardTripped           a safety guard refused the plan
    │   ├── ReportUnwritable       the report cannot be written (disk full, folder gone)
    │   └── UnexpectedError        a bug: an error nothing expected, stopping the run cleanly
    └── ApiError                   one request answered with a Sisense error: fails its row
        │                          (exit 3 if it escapes: the run stopped early)
        └── TransientApiError      429, 502, 503 or 504: worth retrying

Messages never contain secrets: callers build them from URLs, status codes and the server's
error text only. Which network failures are retried, and how they are worded, is
``bulkusers.network``'s job: this module imports no aiohttp, so readers and planning can use it.
"""

from __future__ import annotations

RETRYABLE_STATUSES = frozenset({429, 502, 503, 504})

#: The exit code of ``diff`` and ``export --compare`` when the two exports differ.
EXIT_CHANGED = 4


class BulkUsersError(Exception):
    """Base of every error this tool raises on purpose."""

    exit_code = 1


class UsageError(BulkUsersError):
    """The run cannot start as asked; nothing was sent."""

    exit_code = 2


class ConfigError(UsageError):
    """An option, environment variable or profile value is wrong or missing."""


class InputError(UsageError):
    """The input file cannot be read as a user list."""


class AbortError(BulkUsersError):
    """The run was stopped for a reason that is not any single row's fault."""

    exit_code = 3


class AuthError(AbortError):
    """The server refused the credentials."""


class ServerUnavailable(AbortError):
    """The server cannot be reached, or keeps failing."""


class GuardTripped(AbortError):
    """A safety guard refused the plan before any write."""


class ReportUnwritable(AbortError):
    """The report cannot be written: no row may be sent without a record of it."""


class UnexpectedError(AbortError):
    """An error no code expected (a bug): the run stops, every row still accounted for."""


class ApiError(BulkUsersError):
    """A Sisense error answer: HTTP status, Sisense error code and message."""

    # Row-level when a row catches it; one that escapes to the command line stopped the run
    # before it finished (e.g. loading the directory), which is an abort, not failed rows.
    exit_code = 3

    def __init__(self, status: int, code: int | None, message: str, *, method: str = "",
                 path: str = "") -> None:
        self.status = status
        self.code = code
        self.message = message
        self.method = method
        self.path = path
        super().__init__(self.describe())

    def describe(self) -> str:
        """One line for a report cell: status, Sisense code and message."""
        code = f" code {self.code}" if self.code is not None else ""
        return f"HTTP {self.status}{code}: {self.message}"


class TransientApiError(ApiError):
    """An answer worth retrying (429, 502, 503, 504), with the server's ``Retry-After``."""

    def __init__(self, status: int, code: int | None, message: str, *, method: str = "",
                 path: str = "", retry_after: float | None = None) -> None:
        super().__init__(status, code, message, method=method, path=path)
        self.retry_after = retry_after

