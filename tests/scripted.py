"""A scripted HTTP server on loopback for client-level tests.

aioresponses cannot build responses for aiohttp 3.14 (ClientResponse gained a required
argument), so client tests script a real aiohttp server on 127.0.0.1 instead.
"""

from __future__ import annotations

import asyncio
import json
from collections import defaultdict, deque
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer


@dataclass
class Answer:
    """One scripted answer: status, JSON or text body, headers; or a dropped connection."""

    status: int = 200
    payload: Any = None
    body: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    drop: bool = False
    #: Seconds the server takes before answering.
    delay: float = 0.0


class Script:
    """Answers per (method, path) in order; the last one repeats; records what was asked."""

    def __init__(self) -> None:
        self.answers: dict[tuple[str, str], deque[Answer]] = defaultdict(deque)
        self.seen: list[tuple[str, str, dict[str, str]]] = []
        #: The bodies of the requests that carried one, in the order they arrived.
        self.bodies: list[bytes] = []
        #: "arrived GET /path" and "answered GET /path", in the order they happened.
        self.events: list[str] = []

    def on(self, method: str, path: str, *answers: Answer) -> None:
        """Queue answers for a route."""
        self.answers[(method, path)].extend(answers)

    def count(self, method: str, path: str) -> int:
        """How many requests a route received."""
        return sum(1 for m, p, _ in self.seen if (m, p) == (method, path))

    async def handle(self, request: web.Request) -> web.StreamResponse:
        """Serve the next scripted answer for this route."""
        self.seen.append((request.method, request.path, dict(request.headers)))
        if request.can_read_body:
            self.bodies.append(await request.read())
        self.events.append(f"arrived {request.method} {request.path}")
        queue = self.answers[(request.method, request.path)]
        answer = queue.popleft() if len(queue) > 1 else queue[0]
        if answer.delay:
            await asyncio.sleep(answer.delay)
        self.events.append(f"answered {request.method} {request.path}")
        if answer.drop:
            assert request.transport is not None
            request.transport.close()
            return web.Response()
        text = answer.body if answer.body is not None else json.dumps(answer.payload)
        ctype = "text/html" if answer.body is not None else "application/json"
        return web.Response(status=answer.status, text=text, headers=answer.headers,
                            content_type=ctype)


@pytest.fixture
async def server() -> AsyncIterator[tuple[Script, str]]:
    """A scripted server on a free loopback port."""
    script = Script()
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", script.handle)
    test_server = TestServer(app, host="127.0.0.1", port=0)
    await test_server.start_server()
    try:
        yield script, str(test_server.make_url("")).rstrip("/")
    finally:
        await test_server.close()

