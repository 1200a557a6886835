"""An HTTP exchange's bytes as the client needs them: a request body encoded as JSON, and an
answer turned into its parsed JSON or into the Sisense error it carries (with one short line
for a proxy's HTML page instead of the page)."""

from __future__ import annotations

import json
import re
from typing import Any

import orjson

from bulkusers.errors import (
    RETRYABLE_STATUSES,
    ApiError,
    ServerUnavailable,
    TransientApiError,
)
from bulkusers.words import flag

JSON = Any


def _retry_after(value: str | None) -> float | None:
    """A ``Retry-After`` in seconds, or None."""
    # Sisense sends none today; a proxy or our emulator may send seconds (HTTP-dates are rare
    # from API gateways and not worth a parser: backoff covers them).
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None


def encode_body(body: JSON) -> bytes:
    """A request body as JSON (orjson: several times faster than json, the same document)."""
    try:
        return orjson.dumps(body)
    except TypeError:  # what orjson refuses (a lone surrogate, a big int): json's way
        return json.dumps(body).encode()


def decode(raw: bytes) -> JSON:
    """An answer's JSON; ValueError when it is none (json's verdict on what orjson refuses)."""
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        return json.loads(raw)


def read_answer(status: int, reason: str, raw: bytes, method: str, url: str, path: str,
            retry_after: str | None) -> JSON:
    """An answer's parsed JSON (None when empty), or the Sisense error it carries raised."""
    if status < 300:
        if not raw or raw.isspace():
            return None
        try:
            return decode(raw)
        except ValueError:
            raise ServerUnavailable(
                f"{method} {url} answered HTTP {status} with a body that is not JSON; is "
                f"{flag('--url')} the address of a Sisense server?") from None
    raise _error_from(status, reason, raw, method, path, _retry_after(retry_after))


_TITLE = re.compile(rb"<title[^>]*>(.*?)</title>", re.IGNORECASE | re.DOTALL)
_GATEWAY_STATUSES = frozenset({502, 503, 504})


def _not_json_message(status: int, reason: str, body: bytes) -> str:
    """One line for an error answer that is not Sisense's JSON, such as a proxy's HTML page.

    Never the page itself: it would flood the report and the terminal. Its ``<title>`` (e.g.
    ``502 Bad Gateway``) is kept when short, as it often names the cause better than the reason.
    """
    found = _TITLE.search(body[:4096])
    title = " ".join(found.group(1).decode("utf-8", "replace").split()) if found else ""
    title = title.removeprefix(f"{status} ")  # "HTTP 502: 502 Bad Gateway" says it twice
    what = title if title and len(title) <= 80 and "<" not in title else reason
    if status in _GATEWAY_STATUSES:
        # A gateway (nginx, an ingress, a load balancer) answered for Sisense: the server
        # behind it is down, restarting or too slow.
        return f"{what} (an HTML page from the proxy or gateway in front of Sisense)"
    return (f"{what} (the answer is an HTML or text page, not Sisense's JSON; is "
            f"{flag('--url')} right?)")


def describe_answer(status: int, reason: str, body: bytes) -> str:
    """An error answer's message: Sisense's own, else one line for a page that is not JSON."""
    return _code_and_message(status, reason, body)[1]


def _code_and_message(status: int, reason: str, body: bytes) -> tuple[int | None, str]:
    code: int | None = None
    message = reason or "error"
    try:
        parsed = json.loads(body) if body else None
    except ValueError:
        parsed = None
    if isinstance(parsed, dict):
        error = parsed.get("error")
        if isinstance(error, dict):
            raw_code = error.get("code")
            code = raw_code if isinstance(raw_code, int) else None
            message = str(error.get("message") or message)
        elif isinstance(parsed.get("message"), str):
            message = parsed["message"]
    elif body:
        message = _not_json_message(status, message, body)
    return code, message


def _error_from(status: int, reason: str, body: bytes, method: str, path: str,
                retry_after: float | None) -> ApiError:
    code, message = _code_and_message(status, reason, body)
    if status in RETRYABLE_STATUSES:
        return TransientApiError(status, code, message, method=method, path=path,
                                 retry_after=retry_after)
    return ApiError(status, code, message, method=method, path=path)
