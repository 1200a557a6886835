"""Fault injection, the request log and the Sisense error envelope, for the emulator's middlewares.

`Faults` holds the knobs (latency, a random 503 rate answered with an nginx-like HTML page, a cap
on requests in flight answered with 429 and ``Retry-After``) and deterministic scripts for tests
(the next N matching requests get given statuses, or have their connection dropped). The knobs
are plain attributes, so a test can change them while the server runs.
"""

from __future__ import annotations

import asyncio
import logging
import random
from dataclasses import dataclass
from http import HTTPStatus

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

from bulkusers.emulator.capacity import Capacity
from bulkusers.emulator.records import Json, StoreError
from bulkusers.frozen import frozen

#: Status recorded for a request whose connection was dropped on purpose (it got no answer).
DROPPED = 0
_log = logging.getLogger(__name__)


class DroppedConnection(Exception):
    """Raised after a scripted fault closed the connection, so no layer tries to answer it."""


@frozen
class RequestRecord:
    """One request the emulator received, with the status it was answered with (0: dropped)."""

    method: str
    path: str
    query: str
    status: int


@dataclass(slots=True)
class _Script:
    """Scripted outcomes for the next requests matching a method and a path prefix."""

    method: str
    path_prefix: str
    outcomes: list[int]  # statuses to answer with; DROPPED closes the connection
    retry_after: float | None

    def matches(self, request: web.Request) -> bool:
        method_ok = self.method in ("*", request.method)
        return method_ok and request.path.startswith(self.path_prefix)


def error_body(status: int, code: int, message: str, **extra: str) -> Json:
    """Build the Sisense error envelope ``{"error": {code, message, status, httpMessage}}``."""
    error: Json = {"code": code, "message": message, "status": status,
                   "httpMessage": HTTPStatus(status).phrase}
    error.update(extra)
    return {"error": error}


def format_retry_after(seconds: float) -> str:
    """Write a ``Retry-After`` value as given: ``"2"`` for whole seconds, ``"0.2"`` otherwise."""
    return str(int(seconds)) if float(seconds).is_integer() else str(seconds)


#: Statuses a reverse proxy in front of Sisense answers itself, with its own HTML page.
GATEWAY_STATUSES = frozenset({502, 503, 504})


def gateway_page(status: int) -> str:
    """The HTML error page nginx (the usual proxy and ingress in front of Sisense) serves."""
    title = f"{status} {HTTPStatus(status).phrase}"
    return (f"<html>\r\n<head><title>{title}</title></head>\r\n<body>\r\n"
            f"<center><h1>{title}</h1></center>\r\n<hr><center>nginx</center>\r\n"
            "</body>\r\n</html>\r\n")


def fault_response(status: int, retry_after: float | None = None) -> web.Response:
    """An injected fault's answer; 429/503 carry ``Retry-After``.

    502, 503 and 504 come from the gateway, not from Sisense, so they are nginx's HTML pages,
    not the JSON error envelope (inferred from nginx and ingress defaults: sisense-api.md
    section 12). Other statuses use the Sisense envelope.
    """
    headers = {}
    if retry_after is not None and status in (429, 503):
        headers["Retry-After"] = format_retry_after(retry_after)
    if status in GATEWAY_STATUSES:
        return web.Response(status=status, text=gateway_page(status), content_type="text/html",
                            headers=headers)
    phrase = HTTPStatus(status).phrase
    body = error_body(status, status, f"{phrase} (injected by the emulator)")
    return web.json_response(body, status=status, headers=headers)


class Faults:
    """Fault knobs and scripts; `middleware` applies them to every request."""

    def __init__(self, *, latency_ms: float = 0.0, error_rate: float = 0.0,
                 max_inflight: int | None = None, retry_after_s: float = 1.0,
                 seed: int = 0) -> None:
        self.latency_ms = latency_ms
        self.error_rate = error_rate
        self.max_inflight = max_inflight
        self.retry_after_s = retry_after_s
        self.rng = random.Random(seed)
        self.inflight = 0
        self.peak_inflight = 0  # lets tests check how much concurrency a client really used
        #: Requests served at once (the rest queue); None: every request is served at once.
        self.capacity: Capacity | None = None
        #: At most this many items per page of a list, whatever ``limit`` asks (a server that
        #: caps its pages); None: as many as asked.
        self.page_cap: int | None = None
        self._scripts: list[_Script] = []

    def script(self, method: str, path_prefix: str, statuses: list[int],
               retry_after: float | None = None) -> None:
        """Answer the next ``len(statuses)`` requests matching method and path with these statuses.

        `method` is an HTTP method or ``"*"``. Scripts are consulted in the order they were added.
        """
        self._scripts.append(_Script(method.upper(), path_prefix, list(statuses), retry_after))

    def drop(self, method: str, path_prefix: str, count: int = 1) -> None:
        """Close the connection without answering the next `count` matching requests."""
        self._scripts.append(_Script(method.upper(), path_prefix, [DROPPED] * count, None))

    def clear(self) -> None:
        """Forget every pending script."""
        self._scripts.clear()

    def _next_scripted(self, request: web.Request) -> tuple[int, float | None] | None:
        for script in self._scripts:
            if script.outcomes and script.matches(request):
                outcome = script.outcomes.pop(0)
                if not script.outcomes:
                    self._scripts.remove(script)
                return outcome, script.retry_after
        return None

    @web.middleware
    async def middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        """Apply, in order: the in-flight cap, scripts, the capacity queue, latency, the random
        error rate."""
        self.inflight += 1
        self.peak_inflight = max(self.peak_inflight, self.inflight)
        try:
            if self.max_inflight is not None and self.inflight > self.max_inflight:
                return fault_response(429, self.retry_after_s)
            scripted = self._next_scripted(request)
            if scripted is not None:
                status, retry_after = scripted
                if status == DROPPED:
                    _drop_connection(request)
                return fault_response(status, retry_after)
            if self.capacity is not None:
                # Behind the in-flight cap, like a gateway's limit in front of a busy server.
                return await self.capacity.serve(lambda: self._serve(request, handler),
                                                 fault_response)
            return await self._serve(request, handler)
        finally:
            self.inflight -= 1

    async def _serve(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        """The server's own work: the latency, the random error rate, the handler."""
        if self.latency_ms > 0:
            await asyncio.sleep(self.latency_ms / 1000)
        if self.error_rate > 0 and self.rng.random() < self.error_rate:
            return fault_response(503)
        return await handler(request)


def _drop_connection(request: web.Request) -> None:
    """Close the socket under the request and abort its handling."""
    if request.protocol is not None:
        request.protocol.force_close()
    if request.transport is not None:
        request.transport.close()
    raise DroppedConnection(f"{request.method} {request.path} dropped by a scripted fault")


def request_log_middleware(log: list[RequestRecord]) -> Middleware:
    """A middleware (to install outermost) appending every request and its final status to `log`."""

    @web.middleware
    async def record(request: web.Request, handler: Handler) -> web.StreamResponse:
        status = 500  # what aiohttp answers when a handler fails unexpectedly
        try:
            response = await handler(request)
            status = response.status
            return response
        except web.HTTPException as exc:
            status = exc.status
            raise
        except DroppedConnection:
            # The socket is closed: aiohttp's attempt to write this placeholder fails quietly,
            # whereas letting the exception escape would log a traceback for a planned fault.
            status = DROPPED
            return web.Response(status=500)
        except asyncio.CancelledError:
            status = DROPPED
            raise
        finally:
            log.append(RequestRecord(request.method, request.path, request.query_string, status))

    return record


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Answer every failure with the Sisense error envelope instead of aiohttp's HTML pages."""
    try:
        return await handler(request)
    except StoreError as exc:
        body = error_body(exc.status, exc.code, exc.message, **exc.extra)
        return web.json_response(body, status=exc.status)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        message = "Route not found" if exc.status == 404 else exc.reason
        allow = {"Allow": exc.headers["Allow"]} if "Allow" in exc.headers else None
        return web.json_response(error_body(exc.status, exc.status, message),
                                 status=exc.status, headers=allow)
    except DroppedConnection:
        raise
    except Exception:
        _log.exception("emulator handler failed on %s %s", request.method, request.path)
        return web.json_response(error_body(500, 500, "Internal emulator error"), status=500)
