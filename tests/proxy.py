"""A reverse proxy on loopback that lets scripted requests reach the server and loses the answer.

It models what the emulator's own faults cannot: a request the server carried out whose answer
never came back (a gateway that dropped the connection, or held the answer until the client
gave up), followed by refusals of the retries. Requests no script matches pass through.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field

import aiohttp
import pytest
from aiohttp import web

from tests.conftest import Served
from tests.loopback import AppThread
from tests.terminal import RUN_S

#: Forward the request, then close the connection without answering.
LOST = "lost"
#: Forward the request, then hold the answer until the client gives up (its --timeout).
HELD = "held"
#: Answer 503 (Retry-After: 0, so retries are quick) without forwarding.
REFUSED = 503
Outcome = str | int
_FORWARDED_HEADERS = ("Authorization", "Content-Type", "Accept", "x-api-key")


@dataclass
class _Script:
    method: str
    path: str
    outcomes: list[Outcome]
    exact: bool

    def matches(self, request: web.Request) -> bool:
        path_ok = request.path == self.path if self.exact else request.path.startswith(self.path)
        return request.method == self.method and path_ok and bool(self.outcomes)


@dataclass
class LossyProxy:
    """The proxy's scripts and what it did; `url` is what the CLI is pointed at."""

    upstream: str
    url: str = ""
    scripts: list[_Script] = field(default_factory=list)
    #: (method, path) of every request forwarded whose answer was then lost.
    lost: list[tuple[str, str]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def script(self, method: str, path: str, *outcomes: Outcome, exact: bool = True) -> None:
        """Give the next matching requests these outcomes, in order (then they pass)."""
        with self.lock:
            self.scripts.append(_Script(method.upper(), path, list(outcomes), exact))

    def _next(self, request: web.Request) -> Outcome | None:
        with self.lock:
            for script in self.scripts:
                if script.matches(request):
                    return script.outcomes.pop(0)
        return None

    def connect(self, token: str) -> list[str]:
        """The CLI's connection options through the proxy."""
        return ["--url", self.url, "--token", token]

    async def handle(self, request: web.Request) -> web.StreamResponse:
        """Forward, refuse or lose one request as scripted."""
        outcome = self._next(request)
        if outcome == REFUSED:
            return web.json_response(
                {"error": {"code": 503, "message": "Service Unavailable (proxy)",
                           "status": 503, "httpMessage": "Service Unavailable"}},
                status=503, headers={"Retry-After": "0"})
        body = await request.read()
        headers = {k: v for k, v in request.headers.items() if k in _FORWARDED_HEADERS}
        session: aiohttp.ClientSession = request.app[SESSION]
        async with session.request(request.method, self.upstream + request.path_qs,
                                   data=body or None, headers=headers) as answer:
            payload = await answer.read()
            status, content_type = answer.status, answer.content_type
        if outcome in (LOST, HELD):
            with self.lock:
                self.lost.append((request.method, request.path))
            if outcome == HELD:
                # The client times out first; the bound keeps a client that never does from
                # hanging the test.
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(request.app[RELEASE].wait(), timeout=RUN_S)
            if request.transport is not None:  # None once the client hung up itself
                request.transport.close()
            return web.Response()
        return web.Response(status=status, body=payload,
                            content_type=content_type if payload else None)


SESSION = web.AppKey("session", aiohttp.ClientSession)
RELEASE = web.AppKey("release", asyncio.Event)


def _proxy_app(proxy: LossyProxy) -> web.Application:
    """The proxy as an application (made on the serving thread's loop)."""
    app = web.Application()
    app[SESSION] = aiohttp.ClientSession()
    app[RELEASE] = asyncio.Event()
    app.router.add_route("*", "/{tail:.*}", proxy.handle)

    async def release(app: web.Application) -> None:
        app[RELEASE].set()  # held answers end before the server waits for its handlers

    async def close(app: web.Application) -> None:
        await app[SESSION].close()

    app.on_shutdown.append(release)
    app.on_cleanup.append(close)
    return app


@pytest.fixture
def lossy(served: Served) -> Iterator[LossyProxy]:
    """A lossy proxy in front of the `served` emulator."""
    proxy = LossyProxy(upstream=served.url)
    host = AppThread(lambda: _proxy_app(proxy))
    proxy.url = host.start()
    try:
        yield proxy
    finally:
        host.stop()
