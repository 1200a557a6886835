"""Network failures judged and worded: which are retried, which may have landed, and the
one secret-free line each becomes; and the secret-free ``--debug`` line of each answer.

This is the client side of ``bulkusers.errors``: it is the module that knows aiohttp's
exception classes, so the exception tree itself stays free of aiohttp.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time

import aiohttp

from bulkusers.errors import ApiError, TransientApiError
from bulkusers.words import flag

#: Where --debug writes one line per answered request.
http_log = logging.getLogger("bulkusers.http")


def log_answer(method: str, path: str, query: str, status: int, started: float) -> None:
    """The --debug line of an answered request: method, path and query, status, time since
    `started` (a ``time.perf_counter()``). Never headers or bodies: they may hold secrets."""
    http_log.debug("%s %s%s -> %s in %.0f ms", method, path, f"?{query}" if query else "",
                   status, (time.perf_counter() - started) * 1000)


def is_retryable(exc: BaseException) -> bool:
    """True for failures that a later attempt may cure: connection errors, timeouts, 429/5xx."""
    if isinstance(exc, TransientApiError):
        return True
    if isinstance(exc, ApiError):
        return False
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


def is_network_error(exc: BaseException) -> bool:
    """True for a failure of the connection itself (any aiohttp client error, a timeout)."""
    return isinstance(exc, aiohttp.ClientError | asyncio.TimeoutError)


def may_have_landed(exc: BaseException) -> bool:
    """True when a request that failed this way may still have been carried out by the server:
    its connection broke after it was sent, its answer timed out, or it was answered with a
    5xx (a gateway's 502, 503 or 504 often stands for an answer it lost). False when it
    certainly was not: no connection was ever made, a 429, or a 4xx refusal."""
    if isinstance(exc, ApiError):
        return exc.status >= 500
    if isinstance(exc, aiohttp.ClientConnectorError | aiohttp.ConnectionTimeoutError):
        return False  # never connected: nothing was sent
    return is_network_error(exc)


def describe_failure(exc: BaseException) -> str:
    """A short, secret-free phrase for any failure of a request."""
    return exc.describe() if isinstance(exc, ApiError) else describe_network_error(exc)


def describe_network_error(exc: BaseException) -> str:
    """A short, secret-free phrase for a connection failure or timeout."""
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
    reason = describe_network_error(exc)
    if isinstance(exc, aiohttp.ClientConnectorCertificateError):
        advice = (f"pass {flag('--ca-bundle')} with the CA certificate (PEM) that signed "
                  "it, such as your company's CA")
    elif isinstance(exc, aiohttp.ClientSSLError):
        advice = (f"check that {flag('--url')} starts with the scheme (http or https) the "
                  "server speaks")
    else:
        advice = f"check {flag('--url')} and that the server is up"
    return f"cannot reach {url}: {reason}; {advice}"
