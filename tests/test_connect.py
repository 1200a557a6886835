"""A run checks the server and loads its directory in the same round trips; when both fail,
the check's verdict (the clearer one) is what the run reports. Against a scripted loopback
server."""

from __future__ import annotations

import pytest

import bulkusers
from tests.scripted import Answer, Script, server

__all__ = ["server"]  # the fixture, re-exported for pytest

ROLES = [{"_id": "65f1000000000000000000a1", "name": "consumer", "displayName": "Viewer"}]
ADMIN = {"_id": "65f1000000000000000000b1", "email": "admin@example.com",
         "userName": "admin@example.com", "roleId": "65f1000000000000000000a2"}
ROWS = [{"email": "ann@acme.example", "role": "viewer"}]


def _directory(script: Script, *, roles: Answer, users: Answer) -> None:
    """A server whose roles and users answer as given, the rest as an empty Sisense."""
    script.on("GET", "/api/roles", roles)
    script.on("GET", "/api/v1/users", users)
    script.on("GET", "/api/v1/groups", Answer(200, []))
    script.on("GET", "/api/users/loggedin", Answer(200, ADMIN))
    script.on("GET", "/api/users/count", Answer(200, {"count": 0}))
    script.on("POST", "/api/v1/users/bulk", Answer(201, []))
    script.on("POST", "/api/v1/users", Answer(201, {"_id": "65f1000000000000000000c1",
                                                    "email": "ann@acme.example"}))


async def _arun(url: str) -> bulkusers.RunSummary:
    return await bulkusers.run(
        "import", bulkusers.connect(url, token="t0ken"), rows=ROWS,
        retry=bulkusers.RetryPolicy(attempts=1), safety=bulkusers.Safety(dry_run=True))


async def test_the_first_pages_leave_before_the_check_is_answered(
        server: tuple[Script, str]) -> None:
    """The users are asked for while the check (GET /api/roles) is still unanswered: the
    check costs no round trip of its own; the run goes on as usual."""
    script, url = server
    _directory(script, roles=Answer(200, ROLES, delay=0.3), users=Answer(200, []))
    summary = await _arun(url)
    assert summary.counts == {"planned": 1}
    events = script.events
    assert events.index("arrived GET /api/v1/users") < events.index("answered GET /api/roles")


async def test_the_checks_verdict_comes_first_when_the_load_fails_sooner(
        server: tuple[Script, str]) -> None:
    """/api/roles answers 404 late, the users fail at once: the run says the URL has no
    Sisense API (the check's verdict), not that reading users failed."""
    script, url = server
    _directory(script, roles=Answer(404, {"error": "Not Found"}, delay=0.3),
               users=Answer(500, {"error": {"code": 1, "message": "boom"}}))
    with pytest.raises(bulkusers.ServerUnavailable, match="has no Sisense API"):
        await _arun(url)
    assert script.events.index("answered GET /api/v1/users") < script.events.index(
        "answered GET /api/roles")


async def test_a_failing_load_after_a_good_check_is_reported_as_the_load(
        server: tuple[Script, str]) -> None:
    """The check passes and the users fail: one line saying that reading users failed and
    nothing was sent."""
    script, url = server
    _directory(script, roles=Answer(200, ROLES),
               users=Answer(400, {"error": {"code": 1, "message": "bad query"}}))
    with pytest.raises(bulkusers.ServerUnavailable,
                       match=r"reading roles, groups and users .* failed .*nothing was sent"):
        await _arun(url)


async def test_a_load_that_loses_the_connection_after_a_good_check_is_one_clear_error(
        server: tuple[Script, str]) -> None:
    """The check passes, then the server drops the connection on the users' page: the run
    stops with one clear ServerUnavailable (exit 3); no raw aiohttp.ServerDisconnectedError
    escapes (which the CLI would show as an internal error, exit 70)."""
    script, url = server
    _directory(script, roles=Answer(200, ROLES), users=Answer(drop=True))
    with pytest.raises(bulkusers.ServerUnavailable):
        await _arun(url)
