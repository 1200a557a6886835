"""The emulator is never kinder than Sisense: emails, x-api-key scope and age, token expiry, role
permissions, gateway error pages, v0.9 group writes and trailing slashes (HTTP on loopback)."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

import aiohttp
import pytest

from bulkusers.emulator import Emulator, EmulatorSettings, running_emulator
from tests.conftest import FakeClock
from tests.test_emulator import assert_error, call, group_id, new_user, role_id, user_id
from tests.test_emulator_legacy import api_key, creds

TOKEN = "strict-token"
SECRET = "rest-api-secret-of-at-least-32-bytes"
USERS, LOGIN = "/api/v1/users", "/api/v1/authentication/login"


@pytest.fixture
async def emulator() -> AsyncIterator[Emulator]:
    """An emulator with a fixed token, an x-api-key secret, 6 users and two groups."""
    settings = EmulatorSettings(token=TOKEN, users=6, groups=("Sales", "Finance"), seed=3,
                                api_secret=SECRET, legacy_max_age_s=120)
    async with running_emulator(settings) as emu:
        yield emu


@pytest.fixture
async def session(emulator: Emulator) -> AsyncIterator[aiohttp.ClientSession]:
    """A client session authenticated with the fixed token."""
    async with aiohttp.ClientSession(emulator.url,
                                     headers={"Authorization": f"Bearer {TOKEN}"}) as client:
        yield client


# -- emails --------------------------------------------------------------------------------------


@pytest.mark.parametrize("email", ["a..b@x.com", "a,b@x.com", ".a@x.com", "a@b.c", "a b@x.com",
                                   "a@x..com", "<a>@x.com", "a@münchen.de"])
async def test_email_pattern_of_the_spec_refuses(
        emulator: Emulator, session: aiohttp.ClientSession, email: str) -> None:
    """Addresses the specification's email pattern refuses are refused (400) on create."""
    assert_error(await call(session, "POST", USERS, json=new_user(emulator, email)), 400, 600)
    assert emulator.store.user_by_email(email) is None


@pytest.mark.parametrize("email", ['"q q"@x.com', "jane@corp", "o'brien@x.co.uk", "josé@x.com",
                                   "a@[10.0.0.1]", "A.B-C+d@Sub.Example.ORG"])
async def test_email_pattern_accepts(emulator: Emulator, session: aiohttp.ClientSession,
                                     email: str) -> None:
    """Addresses the pattern accepts are created, and one without a top-level domain too."""
    status, _ = await call(session, "POST", USERS, json=new_user(emulator, email))
    assert status == 201


async def test_email_pattern_applies_to_updates_and_v09(
        emulator: Emulator, session: aiohttp.ClientSession) -> None:
    """A PATCH, a v0.9 create and a v0.9 PUT are held to the same pattern."""
    someone = user_id(emulator, "user0001@example.com")
    assert_error(await call(session, "PATCH", f"{USERS}/{someone}", json={"email": "a..b@x.com"}),
                 400, 600)
    assert_error(await call(session, "POST", "/api/users", json=[{"email": "a@b.c"}]), 400, 600)
    assert_error(await call(session, "PUT", "/api/users/user0001@example.com",
                            json={"email": ".a@x.com"}), 400, 600)


# -- x-api-key -----------------------------------------------------------------------------------


async def test_api_key_is_refused_on_v1_paths(emulator: Emulator) -> None:
    """A valid x-api-key works on /api/users but is 401 on /api/v1/users."""
    async with aiohttp.ClientSession(emulator.url,
                                     headers={"x-api-key": api_key(creds())}) as client:
        assert (await call(client, "GET", "/api/users"))[0] == 200
        status, body = await call(client, "GET", USERS)
    assert_error((status, body), 401, 5002)
    assert "v0.9" in body["error"]["message"]


@pytest.mark.parametrize(("age", "accepted"), [(0, True), (100, True), (125, False),
                                               (86_400, False)])
async def test_api_key_older_than_the_maximum_age_is_refused(emulator: Emulator, age: int,
                                                             accepted: bool) -> None:
    """An x-api-key whose iat is older than legacy_max_age_s (120 s here) is 401."""
    claims = {**creds(), "iat": int(time.time()) - age}
    async with aiohttp.ClientSession(emulator.url,
                                     headers={"x-api-key": api_key(claims)}) as client:
        status, _ = await call(client, "GET", "/api/users/loggedin")
    assert status == (200 if accepted else 401)


# -- token expiry --------------------------------------------------------------------------------


async def test_tokens_expire_after_the_ttl() -> None:
    """With token_ttl_s, a login token and the fixed token answer 200, then 401 once expired."""
    settings = EmulatorSettings(token=TOKEN, token_ttl_s=4)
    async with running_emulator(settings) as emulator, aiohttp.ClientSession(emulator.url) as anon:
        emulator.store.wall = FakeClock()  # one second a read: every request reads it once

        async def five_reads(token: str) -> list[int]:
            seen = []
            for _ in range(5):
                answer = await call(anon, "GET", "/api/roles",
                                    headers={"Authorization": f"Bearer {token}"})
                seen.append(answer[0])
            assert_error(answer, 401, 5002)
            return seen

        status, body = await call(anon, "POST", LOGIN, data={
            "username": "admin@example.com", "password": "Admin-Pass-1"})
        assert status == 200
        # Issued at t, valid while the clock reads below t + 4: three reads pass, then 401.
        assert await five_reads(body["access_token"]) == [200, 200, 200, 401, 401]
        emulator.store.issue_token(user_id(emulator, "admin@example.com"), fixed=TOKEN)
        assert await five_reads(TOKEN) == [200, 200, 200, 401, 401]


async def test_tokens_never_expire_without_a_ttl(emulator: Emulator,
                                                 session: aiohttp.ClientSession) -> None:
    """Without token_ttl_s a token stays valid however far the clock moves."""
    emulator.store.wall = lambda: time.time() + 10 * 365 * 86_400
    assert (await call(session, "GET", "/api/roles"))[0] == 200


# -- permissions ---------------------------------------------------------------------------------


def token_of(emulator: Emulator, email: str, role: str) -> dict[str, str]:
    """Bearer headers of a user given this role."""
    someone = user_id(emulator, email)
    emulator.store.update_user(someone, {"roleId": role_id(emulator, role)})
    return {"Authorization": f"Bearer {emulator.store.issue_token(someone)}"}


@pytest.mark.parametrize(("role", "reads", "writes"), [
    ("consumer", 403, 403), ("contributor", 200, 403), ("dataDesigner", 200, 403),
    ("dataAdmin", 200, 403), ("tenantAdmin", 200, 201), ("admin", 200, 201)])
async def test_roles_and_user_writes_by_role(emulator: Emulator, role: str, reads: int,
                                             writes: int) -> None:
    """/api/roles and user reads need a designer or admin role; user writes an admin-like one."""
    headers = token_of(emulator, "user0002@example.com", role)
    async with aiohttp.ClientSession(emulator.url, headers=headers) as client:
        assert (await call(client, "GET", "/api/roles"))[0] == reads
        assert (await call(client, "GET", USERS))[0] == reads
        assert (await call(client, "GET", "/api/users"))[0] == reads
        assert (await call(client, "GET", "/api/users/loggedin"))[0] == 200
        created = await call(client, "POST", USERS, json=new_user(emulator, f"{role}@x.com"))
        assert created[0] == writes
        legacy = await call(client, "POST", "/api/users", json=[{"email": f"{role}9@x.com"}])
        assert legacy[0] == (200 if writes == 201 else 403)
        for answer in (created, legacy):
            if answer[0] == 403:
                assert_error(answer, 403, 5003)


# -- gateway errors ------------------------------------------------------------------------------


@pytest.mark.parametrize("status", [502, 503, 504])
async def test_gateway_errors_are_html_pages(emulator: Emulator, session: aiohttp.ClientSession,
                                             status: int) -> None:
    """Injected 502/503/504 answers are nginx-like HTML pages, not Sisense's JSON envelope."""
    emulator.faults.script("GET", USERS, [status])
    async with session.get(USERS) as response:
        text = await response.text()
        assert response.status == status
        assert response.content_type == "text/html"
    assert text.startswith("<html>")
    assert f"<title>{status} " in text
    assert "nginx" in text


async def test_error_rate_answers_html_503(emulator: Emulator,
                                           session: aiohttp.ClientSession) -> None:
    """error_rate 1 answers every call with the HTML 503 page."""
    emulator.faults.error_rate = 1.0
    status, text = await call(session, "GET", "/api/roles")
    assert status == 503
    assert "<h1>503 Service Unavailable</h1>" in text


# -- v0.9 group writes ---------------------------------------------------------------------------


async def test_v09_group_put_renames_by_id_or_name(emulator: Emulator,
                                                   session: aiohttp.ClientSession) -> None:
    """PUT /api/groups/{id or name} renames a group (200, no body); built-ins and taken names
    are refused."""
    sales = group_id(emulator, "Sales")
    assert await call(session, "PUT", f"/api/groups/{sales}", json={"name": "Sales EMEA"}) == (
        200, None)
    assert emulator.store.groups[sales].name == "Sales EMEA"
    assert await call(session, "PUT", "/api/groups/sales emea", json={"name": "Sales"}) == (
        200, None)
    assert emulator.store.group_by_name("Sales") is not None
    assert_error(await call(session, "PUT", "/api/groups/Sales", json={"name": "finance"}),
                 400, 2204)
    assert_error(await call(session, "PUT", "/api/groups/Everyone", json={"name": "All"}),
                 400, 2211)
    assert (await call(session, "PUT", "/api/groups/Nope", json={"name": "X"}))[0] == 404


async def test_v09_group_delete_one_and_many(emulator: Emulator,
                                             session: aiohttp.ClientSession) -> None:
    """DELETE /api/groups/{x} and DELETE /api/groups with a body of ids (or names) answer 200;
    a built-in or unknown group refuses the whole request."""
    store = emulator.store
    store.create_groups([{"name": n} for n in ("Temp1", "Temp2", "Temp3", "Temp4")])
    member = user_id(emulator, "user0003@example.com")
    store.update_user(member, {"groups": [group_id(emulator, "Temp1")]})
    assert await call(session, "DELETE", "/api/groups/Temp1") == (200, None)
    assert store.group_by_name("Temp1") is None
    assert store.users[member].groups == []
    ids = [group_id(emulator, "Temp2"), group_id(emulator, "Temp3")]
    assert_error(await call(session, "DELETE", "/api/groups",
                            json={"groups": [*ids, group_id(emulator, "Admins")]}), 400, 2211)
    assert (await call(session, "DELETE", "/api/groups", json={"groups": [*ids, "Nope"]}))[0] \
        == 404
    assert store.group_by_name("Temp2") is not None
    assert await call(session, "DELETE", "/api/groups",
                      json={"groups": ids, "deleteAdUsers": False}) == (200, None)
    assert await call(session, "DELETE", "/api/groups", json=["Temp4"]) == (200, None)
    assert {g["name"] for g in [store.groups[g].to_json() for g in store.groups]} == {
        "Everyone", "All users in system", "Admins", "Sales", "Finance"}
    assert_error(await call(session, "DELETE", "/api/groups", json={"groups": []}), 400, 2002)


# -- trailing slashes ----------------------------------------------------------------------------


@pytest.mark.parametrize(("method", "path", "status"), [
    ("GET", "/api/roles/", 200), ("GET", "/api/v1/users/", 200), ("GET", "/api/v1/groups/", 200),
    ("GET", "/api/users/", 200), ("GET", "/api/users/count/", 200),
    ("GET", "/api/users/loggedin/", 200), ("GET", "/api/users/user0001@example.com/", 200),
    ("GET", "/api/groups/Sales/users/", 200), ("POST", "/api/v1/groups/", 201)])
async def test_trailing_slashes_are_accepted(session: aiohttp.ClientSession, method: str,
                                             path: str, status: int) -> None:
    """Every path answers the same with a trailing slash, fixed paths before {key} ones."""
    body = {"name": "Slash"} if method == "POST" else None
    answer = await call(session, method, path, json=body)
    assert answer[0] == status
    if path == "/api/users/count/":
        assert answer[1]["collection"] == "users"


async def test_trailing_slash_login(emulator: Emulator) -> None:
    """The login path takes a trailing slash too, without a token."""
    async with aiohttp.ClientSession(emulator.url) as anon:
        status, _ = await call(anon, "POST", LOGIN + "/", data={
            "username": "admin", "password": "Admin-Pass-1"})
    assert status == 200

