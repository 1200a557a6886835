"""SisenseClient against a scripted loopback server: retry rules, Retry-After, re-login, errors."""

from __future__ import annotations

import asyncio
import json

import pytest

from bulkusers import answers
from bulkusers.api import V1Api
from bulkusers.client import SisenseClient, Trace
from bulkusers.config import RetryPolicy, build_connection
from bulkusers.errors import ApiError, AuthError, ServerUnavailable, TransientApiError
from tests.scripted import Answer, Script, server

__all__ = ["server"]  # the fixture, re-exported for pytest

USERS = "/api/v1/users"
LOGIN = "/api/v1/authentication/login"
ROLES = "/api/roles"


class SleepLog:
    """Records the waits the client asks for instead of sleeping."""

    def __init__(self) -> None:
        self.waits: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)


@pytest.fixture
def sleeps() -> SleepLog:
    """A sleep stand-in that records the backoff waits."""
    return SleepLog()


def error_body(status: int, code: int, message: str) -> dict[str, object]:
    """A Sisense error answer."""
    return {"error": {"code": code, "message": message, "status": status, "httpMessage": "x"}}


def token_client(url: str, sleeps: SleepLog, attempts: int = 4) -> SisenseClient:
    """A client with a fixed token and a recorded sleep."""
    connection = build_connection(url=url, token="t0ken-value", username=None, password=None)
    return SisenseClient(connection, RetryPolicy(attempts=attempts), sleep=sleeps)


def login_client(url: str, sleeps: SleepLog, attempts: int = 4) -> SisenseClient:
    """A client that logs in with a username and password."""
    connection = build_connection(url=url, token=None, username="admin", password="pa55word")
    return SisenseClient(connection, RetryPolicy(attempts=attempts), sleep=sleeps)


async def test_503_then_success_is_retried_and_counted(server: tuple[Script, str],
                                                       sleeps: SleepLog) -> None:
    """Two 503 answers then a 201 give the created user after 3 attempts."""
    script, url = server
    busy = Answer(503, error_body(503, 1, "busy"))
    script.on("POST", USERS, busy, busy, Answer(201, {"_id": "a" * 24, "email": "x@y.z"}))
    async with token_client(url, sleeps) as client:
        trace = Trace()
        created = await V1Api(client).create_user({"email": "x@y.z"}, trace)
        assert client.stats.retries == 2
    assert created["_id"] == "a" * 24
    assert trace.attempts == 3
    assert script.seen[0][2]["Authorization"] == "Bearer t0ken-value"


async def test_every_body_is_sent_as_json_with_the_credential(server: tuple[Script, str],
                                                               sleeps: SleepLog) -> None:
    """A create, its retry and an update each carry Content-Type: application/json, the
    credential and the body as JSON; a GET carries no content type."""
    script, url = server
    busy = Answer(503, error_body(503, 1, "busy"))
    script.on("POST", USERS, busy, Answer(201, {"_id": "a" * 24, "email": "x@y.z"}))
    script.on("PATCH", USERS + "/u1", Answer(200, {"_id": "u1", "email": "x@y.z"}))
    script.on("GET", ROLES, Answer(200, []))
    async with token_client(url, sleeps) as client:
        await client.request("POST", USERS, body={"email": "x@y.z", "firstName": "Zoë"})
        await client.request("PATCH", USERS + "/u1", body={"lastName": "Lee"})
        await client.request("GET", ROLES)
    writes = [headers for method, _, headers in script.seen if method != "GET"]
    assert len(writes) == 3
    for headers in writes:
        assert headers["Content-Type"] == "application/json"
        assert headers["Authorization"] == "Bearer t0ken-value"
    assert [json.loads(body) for body in script.bodies] == [
        {"email": "x@y.z", "firstName": "Zoë"}] * 2 + [{"lastName": "Lee"}]
    (get,) = [headers for method, _, headers in script.seen if method == "GET"]
    assert "Content-Type" not in get


async def test_retry_after_is_honoured(server: tuple[Script, str], sleeps: SleepLog) -> None:
    """A 429 with Retry-After: 7 makes the client wait 7 s (plus jitter) before retrying."""
    script, url = server
    script.on("GET", ROLES, Answer(429, error_body(429, 0, "slow"), headers={"Retry-After": "7"}),
              Answer(200, []))
    async with token_client(url, sleeps) as client:
        assert await V1Api(client).roles() == []
    (wait,) = sleeps.waits
    assert 7.0 <= wait <= 7.8  # Retry-After plus a little jitter


async def test_backoff_grows_and_attempts_are_bounded(server: tuple[Script, str],
                                                      sleeps: SleepLog) -> None:
    """Persistent 502s stop after 4 attempts with growing waits, raising the last error."""
    script, url = server
    script.on("GET", ROLES, Answer(502, body="Bad Gateway"))
    async with token_client(url, sleeps) as client:
        with pytest.raises(ApiError) as caught:
            await V1Api(client).roles()
    assert caught.value.status == 502
    assert script.count("GET", ROLES) == 4
    assert len(sleeps.waits) == 3
    assert sleeps.waits[2] >= 2.0  # 0.5 * 2**2 before jitter


async def test_client_errors_are_not_retried(server: tuple[Script, str],
                                             sleeps: SleepLog) -> None:
    """A 400 duplicate answer is raised at once with the Sisense code and message."""
    script, url = server
    script.on("POST", USERS, Answer(400, error_body(400, 2004, "User already exists")))
    async with token_client(url, sleeps) as client:
        trace = Trace()
        with pytest.raises(ApiError) as caught:
            await V1Api(client).create_user({"email": "x@y.z"}, trace)
    assert (caught.value.status, caught.value.code) == (400, 2004)
    assert "User already exists" in caught.value.describe()
    assert trace.attempts == 1


async def test_dropped_connections_are_retried(server: tuple[Script, str],
                                               sleeps: SleepLog) -> None:
    """A connection closed without an answer is retried like a 503."""
    script, url = server
    script.on("GET", ROLES, Answer(drop=True), Answer(200, [{"_id": "r", "name": "consumer"}]))
    async with token_client(url, sleeps) as client:
        roles = await V1Api(client).roles()
    assert roles[0]["name"] == "consumer"
    assert script.count("GET", ROLES) == 2


@pytest.mark.usefixtures("cli_words")  # its hint as the CLI words it
async def test_fixed_token_refused_aborts_with_a_hint(server: tuple[Script, str],
                                                      sleeps: SleepLog) -> None:
    """A 401 on a fixed token raises AuthError (abort), naming the option, not the token."""
    script, url = server
    script.on("GET", ROLES, Answer(401, error_body(401, 5002, "Invalid token.")))
    async with token_client(url, sleeps) as client:
        with pytest.raises(AuthError) as caught:
            await V1Api(client).roles()
    assert "--token" in str(caught.value)
    assert "t0ken-value" not in str(caught.value)
    assert script.count("GET", ROLES) == 1


async def test_login_is_repeated_once_after_a_401(server: tuple[Script, str],
                                                  sleeps: SleepLog) -> None:
    """With username/password, a 401 causes exactly one re-login and the call succeeds; no
    login carries the token it replaces (or any), and the next calls carry the new one."""
    script, url = server
    script.on("POST", LOGIN, Answer(200, {"success": True, "access_token": "first"}),
              Answer(200, {"success": True, "access_token": "second"}))
    script.on("GET", ROLES, Answer(401, error_body(401, 5002, "expired")), Answer(200, []))
    async with login_client(url, sleeps) as client:
        assert await V1Api(client).roles() == []
        assert await V1Api(client).roles() == []
    assert script.count("POST", LOGIN) == 2
    assert [h["Authorization"] for m, _, h in script.seen if m == "GET"] == [
        "Bearer first", "Bearer second", "Bearer second"]
    logins = [h for m, _, h in script.seen if m == "POST"]
    assert [h.get("Authorization") for h in logins] == [None, None]


@pytest.mark.parametrize("status", [429, 502, 503, 504])
async def test_a_busy_or_gateway_answer_to_the_login_is_retried(
        server: tuple[Script, str], sleeps: SleepLog, status: int) -> None:
    """A login answered 429, 502, 503 or 504 (a gateway's HTML page) is retried with the
    backoff, as any request is, and the call goes on with the token it then gets; when every
    try fails, the error names the status and the page, not a wrong --url."""
    script, url = server
    page = f"<html><head><title>{status} Busy</title></head></html>"
    script.on("POST", LOGIN, Answer(status, body=page),
              Answer(200, {"success": True, "access_token": "late"}))
    script.on("GET", ROLES, Answer(200, []))
    async with login_client(url, sleeps) as client:
        assert await V1Api(client).roles() == []
    assert script.count("POST", LOGIN) == 2
    assert len(sleeps.waits) == 1
    assert [h["Authorization"] for m, _, h in script.seen if m == "GET"] == ["Bearer late"]
    script.answers.clear()
    script.on("POST", LOGIN, Answer(503, body="<html><title>503 Down</title></html>"))
    async with login_client(url, sleeps, attempts=3) as client:
        with pytest.raises(TransientApiError) as caught:
            await V1Api(client).roles()
    assert caught.value.status == 503
    assert "Down" in str(caught.value.describe())
    assert "--url" not in str(caught.value.describe())


async def test_a_401_after_relogin_aborts(server: tuple[Script, str], sleeps: SleepLog) -> None:
    """A 401 that a fresh login does not cure aborts instead of retrying forever."""
    script, url = server
    script.on("POST", LOGIN, Answer(200, {"success": True, "access_token": "a"}))
    script.on("GET", ROLES, Answer(401, error_body(401, 5002, "no")))
    async with login_client(url, sleeps, attempts=5) as client:
        with pytest.raises(AuthError):
            await V1Api(client).roles()
    assert script.count("GET", ROLES) == 2
    assert sleeps.waits == []


async def test_bad_password_is_an_auth_error_without_the_password(
        server: tuple[Script, str], sleeps: SleepLog) -> None:
    """A refused login names the user and the fix, never the password."""
    script, url = server
    script.on("POST", LOGIN, Answer(401, error_body(401, 1, "Invalid credentials")))
    async with login_client(url, sleeps) as client:
        with pytest.raises(AuthError) as caught:
            await V1Api(client).roles()
    assert "admin" in str(caught.value)
    assert "pa55word" not in str(caught.value)


async def test_403_aborts_the_run(server: tuple[Script, str], sleeps: SleepLog) -> None:
    """A 403 means the account lacks rights: an abort, not a per-row failure."""
    script, url = server
    script.on("POST", USERS, Answer(403, error_body(403, 1, "Forbidden")))
    async with token_client(url, sleeps) as client:
        with pytest.raises(AuthError, match="403"):
            await V1Api(client).create_user({"email": "x@y.z"}, Trace())


async def test_html_answer_is_reported_as_not_sisense(server: tuple[Script, str],
                                                      sleeps: SleepLog) -> None:
    """A 200 HTML page (a wrong URL) is a clear ServerUnavailable, not a JSON traceback."""
    script, url = server
    script.on("GET", ROLES, Answer(200, body="<html>login</html>"))
    async with token_client(url, sleeps) as client:
        with pytest.raises(ServerUnavailable, match="not JSON"):
            await V1Api(client).roles()


async def test_users_are_paged_and_never_repeated(server: tuple[Script, str],
                                                  sleeps: SleepLog) -> None:
    """iter_users pages with skip/limit until a short page and drops repeated ids."""
    script, url = server
    script.on("GET", USERS, Answer(200, [{"_id": "1"}, {"_id": "2"}]),
              Answer(200, [{"_id": "2"}, {"_id": "3"}]), Answer(200, [{"_id": "4"}]))
    async with token_client(url, sleeps) as client:
        ids = [u["_id"] async for u in V1Api(client).iter_users(page_size=2)]
    assert ids == ["1", "2", "3", "4"]
    # Pages are asked for ahead, concurrently: at most as many past the end as before it.
    assert 3 <= script.count("GET", USERS) <= 4


async def test_a_count_of_users_too_low_does_not_end_the_paging(
        server: tuple[Script, str], sleeps: SleepLog) -> None:
    """GET /api/users/count is a hint only: a count lower than the users there are (or none
    at all) still pages on to the first short page."""
    script, url = server
    script.on("GET", "/api/users/count", Answer(200, {"collection": "users", "count": 1}))
    script.on("GET", USERS, Answer(200, [{"_id": "1"}, {"_id": "2"}]),
              Answer(200, [{"_id": "3"}, {"_id": "4"}]), Answer(200, [{"_id": "5"}]),
              Answer(200, []))
    async with token_client(url, sleeps) as client:
        ids = [u["_id"] async for u in V1Api(client).iter_users(page_size=2)]
    assert ids == ["1", "2", "3", "4", "5"]


@pytest.mark.usefixtures("cli_words")  # its hint as the CLI words it
async def test_unreachable_server_is_one_clear_abort(sleeps: SleepLog) -> None:
    """A closed port gives ServerUnavailable naming the address and the fix."""
    async with token_client("http://127.0.0.1:9", sleeps, attempts=2) as client:
        with pytest.raises(ServerUnavailable, match=r"127\.0\.0\.1:9.*--url"):
            await client.check()


@pytest.mark.parametrize("body", [
    {"email": "zoë@acme.example", "groups": ["g1", "g2"], "active": True, "n": 3},
    [{"email": "a@acme.example"}, {"email": "b@acme.example"}],
    {"odd": "\ud800 lone surrogate", "big": 2**70},
])
def test_bodies_encode_to_the_json_document_json_would_send(body: object) -> None:
    """Every request body is the same JSON document json.dumps makes, also for values the
    fast encoder refuses (a lone surrogate, an integer beyond 64 bits)."""
    assert json.loads(answers.encode_body(body)) == json.loads(json.dumps(body))


@pytest.mark.parametrize("raw", [b'{"_id": "u1", "name": "Zo\xc3\xab"}', b"[1, 2.5, null]",
                                 b'{"n": NaN}', b'{"n": -Infinity}'])
def test_answers_decode_as_json_decodes_them(raw: bytes) -> None:
    """An answer parses to what json.loads makes of it, also where the fast decoder refuses.
    (An integer beyond 64 bits, which Sisense's JavaScript cannot send, becomes a float.)"""
    assert repr(answers.decode(raw)) == repr(json.loads(raw))


def test_an_answer_that_is_not_json_is_a_value_error() -> None:
    """Text that no JSON parser accepts raises ValueError, which the client turns into one
    clear line."""
    with pytest.raises(ValueError, match="Expecting value"):
        answers.decode(b"<html>hello</html>")


async def test_a_request_waiting_to_be_retried_rests_at_the_gate_only_while_it_waits(
        server: tuple[Script, str]) -> None:
    """During the backoff before a retry the gate counts the request as resting (so another
    pool worker may take a row), and no longer: after the retry, and after a wait that was
    cancelled (a second Ctrl-C), the count is back at 0."""
    script, url = server
    busy = Answer(503, error_body(503, 1, "busy"))
    script.on("POST", USERS, busy, Answer(201, {"_id": "a" * 24, "email": "x@y.z"}), busy)
    resting: list[int] = []
    waiting, hang = asyncio.Event(), asyncio.Event()

    async def sleep(seconds: float) -> None:
        resting.append(client.gate.resting)
        if len(resting) > 1:
            waiting.set()
            await hang.wait()  # the second wait is cancelled

    connection = build_connection(url=url, token="t0ken-value", username=None, password=None)
    async with SisenseClient(connection, RetryPolicy(attempts=4), sleep=sleep) as client:
        await V1Api(client).create_user({"email": "x@y.z"}, Trace())
        assert (resting, client.gate.resting) == ([1], 0)
        second = asyncio.create_task(V1Api(client).create_user({"email": "x@y.z"}, Trace()))
        await asyncio.wait_for(waiting.wait(), timeout=5)
        second.cancel()
        with pytest.raises(asyncio.CancelledError):
            await second
        assert (resting, client.gate.resting) == ([1, 1], 0)


async def test_a_request_unanswered_within_the_timeout_gives_up_and_is_retried(
        server: tuple[Script, str], sleeps: SleepLog) -> None:
    """A server that takes longer than timeout_s: the request times out after about that
    long (not the server's 5 s), is retried, and the next try's answer is taken."""
    script, url = server
    script.on("POST", USERS, Answer(201, {"_id": "b" * 24}, delay=5),
              Answer(201, {"_id": "c" * 24}))
    connection = build_connection(url=url, token="t0ken-value", username=None, password=None)
    started = asyncio.get_running_loop().time()
    async with SisenseClient(connection, RetryPolicy(attempts=2, timeout_s=0.3),
                             sleep=sleeps) as client:
        trace = Trace()
        created = await V1Api(client).create_user({"email": "x@y.z"}, trace)
        assert client.gate.inflight == 0  # the timed-out try left the gate
    took = asyncio.get_running_loop().time() - started
    assert created["_id"] == "c" * 24
    assert trace.attempts == 2
    assert 0.3 <= took < 2


async def test_a_request_unanswered_within_the_timeout_is_a_timeout_error(
        server: tuple[Script, str], sleeps: SleepLog) -> None:
    """With no retries left, the caller gets TimeoutError, not a cancellation."""
    script, url = server
    script.on("GET", USERS, Answer(200, [], delay=5))
    connection = build_connection(url=url, token="t0ken-value", username=None, password=None)
    async with SisenseClient(connection, RetryPolicy(attempts=1, timeout_s=0.2),
                             sleep=sleeps) as client:
        with pytest.raises(TimeoutError):
            await client.request("GET", USERS)


async def test_a_cancellation_while_the_client_closes_stays_a_cancellation(
        server: tuple[Script, str], sleeps: SleepLog) -> None:
    """A task cancelled while __aexit__ waits for the watchdog's end is cancelled, and the
    session is closed all the same."""
    _script, url = server
    client = token_client(url, sleeps)
    await client.__aenter__()
    await asyncio.sleep(0)  # the watchdog asleep
    closing = asyncio.create_task(client.__aexit__(None, None, None))
    await asyncio.sleep(0)  # __aexit__ waits for the watchdog to end
    closing.cancel()
    outcome = (await asyncio.gather(closing, return_exceptions=True))[0]
    assert isinstance(outcome, asyncio.CancelledError)
    assert client._session is None
