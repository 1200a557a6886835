"""The exception tree of bulkusers and the retry rule.

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
error text only.
"""

from __future__ import annotations

import asyncio
import os
import socket

RETRYABLE_STATUSES = frozenset({429, 502, 503, 504})


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


def is_retryable(exc: BaseException) -> bool:
    """True for failures that a later attempt may cure: connection errors, timeouts, 429/5xx."""
    if isinstance(exc, TransientApiError):
        return True
    if isinstance(exc, ApiError):
        return False
    import aiohttp  # here, not at the top: readers and planning import this module too

    if isinstance(exc, aiohttp.ClientSSLError):
        return False  # a certificate or TLS set-up failure is the same on every attempt
    return isinstance(exc, aiohttp.ClientConnectionError | aiohttp.ClientPayloadError
                      | asyncio.TimeoutError)


def server_failing(exc: BaseException) -> bool:
    """True for failures that say the server is down or broken (the circuit breaker counts
    them): connection errors, timeouts and 5xx, but not 429, which says "slow down"."""
    if isinstance(exc, TransientApiError) and exc.status == 429:
        return False
    return is_retryable(exc)


def may_have_landed(exc: BaseException) -> bool:
    """True when a request that failed this way may still have been carried out by the server:
    its connection broke after it was sent, its answer timed out, or it was answered with a
    5xx (a gateway's 502, 503 or 504 often stands for an answer it lost). False when it
    certainly was not: no connection was ever made, a 429, or a 4xx refusal."""
    if isinstance(exc, ApiError):
        return exc.status >= 500
    import aiohttp

    if isinstance(exc, aiohttp.ClientConnectorError | aiohttp.ConnectionTimeoutError):
        return False  # never connected: nothing was sent
    return isinstance(exc, aiohttp.ClientError | asyncio.TimeoutError)


def describe_failure(exc: BaseException) -> str:
    """A short, secret-free phrase for any failure of a request."""
    return exc.describe() if isinstance(exc, ApiError) else describe_network_error(exc)


def describe_network_error(exc: BaseException) -> str:
    """A short, secret-free phrase for a connection failure or timeout."""
    import aiohttp

    if isinstance(exc, asyncio.TimeoutError):
        return "timed out"
    if isinstance(exc, aiohttp.ClientConnectorCertificateError):
        cause = exc.certificate_error
        reason = getattr(cause, "verify_message", None) or getattr(cause, "reason", None)
        return (f"the TLS certificate of {exc.host}:{exc.port} is not trusted"
                + (f" ({reason})" if reason else ""))
    if isinstance(exc, aiohttp.ClientConnectorSSLError):
        reason = getattr(exc.os_error, "reason", None) or exc.os_error.strerror
        return f"TLS with {exc.host}:{exc.port} failed" + (f" ({reason})" if reason else "")
    if isinstance(exc, aiohttp.ClientConnectorError):
        error = exc.os_error
        if isinstance(error, socket.gaierror):
            # Resolver errors carry negative EAI_* codes that os.strerror cannot name.
            return f"cannot resolve the host name {exc.host!r} ({error.strerror})"
        # asyncio puts its own phrase in strerror; the errno's standard text reads better.
        reason = os.strerror(error.errno) if error.errno else error.strerror or "refused"
        return f"connection to {exc.host}:{exc.port} failed ({reason})"
    if isinstance(exc, aiohttp.ServerDisconnectedError):
        return "the server closed the connection without answering"
    text = str(exc)
    return exc.__class__.__name__ + (f": {text}" if text else "")


def unreachable_message(url: str, exc: BaseException) -> str:
    """One line for a server that could not be reached, with the advice that fits the cause."""
    import aiohttp

    reason = describe_network_error(exc)
    if isinstance(exc, aiohttp.ClientConnectorCertificateError):
        advice = ("pass --ca-bundle with the CA certificate (PEM) that signed it, such as your "
                  "company's CA")
    elif isinstance(exc, aiohttp.ClientSSLError):
        advice = "check that --url starts with the scheme (http or https) the server speaks"
    else:
        advice = "check --url and that the server is up"
    return f"cannot reach {url}: {reason}; {advice}"
