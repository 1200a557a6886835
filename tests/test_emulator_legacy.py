"""Tests of the emulator's v0.9 routes and legacy ``x-api-key`` auth, over HTTP on loopback."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import quote_plus

import aiohttp
import jwt
import pytest

from bulkusers.emulator import Emulator, EmulatorSettings, running_emulator
from tests.test_emulator import assert_error, call, group_id, role_id, user_id

TOKEN = "legacy-token"
SECRET = "rest-api-secret-of-at-least-32-bytes"
ADMIN, PASSWORD = "admin@example.com", "Admin-Pass-1"
LOGIN = "/api/v1/authentication/login"
UNKNOWN = "65f1aaaaaaaaaaaaaaaaaaaa"


@pytest.fixture
async def emulator() -> AsyncIterator[Emulator]:
    """An emulator with a fixed token, an x-api-key secret, 12 users and two extra groups."""
    settings = EmulatorSettings(token=TOKEN, users=12, groups=("Sales", "Finance"), seed=5,
                                api_secret=SECRET)
    async with running_emulator(settings) as emu:
        yield emu


@pytest.fixture
async def session(emulator: Emulator) -> AsyncIterator[aiohttp.ClientSession]:
    """A client session authenticated with the fixed token."""
    async with aiohttp.ClientSession(emulator.url,
                                     headers={"Authorization": f"Bearer {TOKEN}"}) as client:
        yield client


def api_key(claims: dict[str, Any], secret: str = SECRET) -> str:
    """A URL-encoded legacy x-api-key JWT, as pre-6.5 clients send it."""
    return quote_plus(jwt.encode(claims, secret, algorithm="HS256"))


def creds(email: str = ADMIN, password: str = PASSWORD) -> dict[str, Any]:
    """The claims of a legacy x-api-key: a fresh iat, an email and a password."""
    return {"iat": int(time.time()), "email": email, "password": password}


async def can_log_in(emulator: Emulator, username: str, password: str) -> bool:
    """True if POST login with these credentials is answered 200."""
    async with aiohttp.ClientSession(emulator.url) as anon:
        status, _ = await call(anon, "POST", LOGIN,
                               data={"username": username, "password": password})
    return status == 200


# -- users ---------------------------------------------------------------------------------------


async def test_list_users_searches_orders_and_pages(
        emulator: Emulator, session: aiohttp.ClientSession) -> None:
    """GET /api/users: substring search over names (any case), orderby/desc, skip/limit."""
    status, users = await call(session, "GET", "/api/users")
    assert status == 200
    assert len(users) == 13
    viewer = next(u for u in users if u["email"] == "user0003@example.com")
    assert (viewer["roleName"], viewer["baseRoleName"]) == ("consumer", "consumer")
    assert all(isinstance(g, str) for u in users for g in u["groups"])
    assert "password" not in viewer
    _, found = await call(session, "GET", "/api/users", params={"search": "USER001"})
    assert sorted(u["email"] for u in found) == [f"user001{n}@example.com" for n in range(3)]
    last_name = viewer["lastName"][1:4].upper()
    _, found = await call(session, "GET", "/api/users", params={"search": last_name})
    assert viewer["_id"] in {u["_id"] for u in found}
    _, page = await call(session, "GET", "/api/users",
                         params={"orderby": "email", "desc": "true", "skip": 1, "limit": 2})
    assert [u["email"] for u in page] == ["user0011@example.com", "user0010@example.com"]
    assert_error(await call(session, "GET", "/api/users", params={"skip": -1}), 400, 600)


async def test_count_users_honours_search(session: aiohttp.ClientSession) -> None:
    """GET /api/users/count answers the collection name and the matching count."""
    assert await call(session, "GET", "/api/users/count") == (
        200, {"collection": "users", "count": 13})
    _, counted = await call(session, "GET", "/api/users/count", params={"search": "user001"})
    assert counted == {"collection": "users", "count": 3}


@pytest.mark.parametrize("key", ["_id", "userName", "email"])
async def test_get_user_by_id_username_or_email(
        emulator: Emulator, session: aiohttp.ClientSession, key: str) -> None:
    """GET /api/users/{x} finds a user by id, userName or email; loggedin still routes."""
    wanted = emulator.store.user_by_email(ADMIN)
    assert wanted is not None
    status, user = await call(session, "GET", f"/api/users/{wanted[key].upper()}")
    assert status == 200
    assert user["_id"] == wanted["_id"]
    assert user["roleName"] == "super"
    assert (await call(session, "GET", "/api/users/loggedin"))[1]["_id"] == wanted["_id"]
    assert_error(await call(session, "GET", "/api/users/nobody@example.com"), 404, 2001)


async def test_create_users_is_all_or_nothing(
        emulator: Emulator, session: aiohttp.ClientSession) -> None:
    """POST /api/users refuses the whole array for one bad user and answers 200 when clean."""
    viewer = role_id(emulator, "consumer")
    fresh = {"email": "fresh@example.com", "roleId": viewer, "password": "Fresh-Pass-1",
             "groups": [group_id(emulator, "Sales")], "firstName": "Fresh"}
    taken = {"email": "USER0004@example.com", "roleId": viewer}
    assert_error(await call(session, "POST", "/api/users", json=[fresh, taken]), 400, 2004)
    assert_error(await call(session, "POST", "/api/users", json=[fresh, fresh]), 400, 2005)
    assert_error(await call(session, "POST", "/api/users", json=fresh), 400, 2002)
    assert_error(await call(session, "POST", "/api/users",
                            json=[fresh, {"roleId": viewer}]), 422, 2003)
    assert emulator.store.user_by_email("fresh@example.com") is None
    other = {"email": "other@example.com", "userName": "other", "roleId": viewer}
    status, created = await call(session, "POST", "/api/users", json=[fresh, other])
    assert status == 200
    assert [(u["userName"], u["roleName"]) for u in created] == [
        ("fresh@example.com", "consumer"), ("other", "consumer")]
    assert created[0]["groups"] == [group_id(emulator, "Sales")]
    assert await can_log_in(emulator, "fresh@example.com", "Fresh-Pass-1")


@pytest.mark.parametrize("method", ["PUT", "PATCH"])
async def test_update_user_changes_fields_and_password(
        emulator: Emulator, session: aiohttp.ClientSession, method: str) -> None:
    """PUT and PATCH /api/users/{x} update partially; the old password stops logging in."""
    user_key = "user0005@example.com"
    emulator.store.update_user(user_id(emulator, user_key), {"password": "Old-Pass-1"})
    assert await can_log_in(emulator, user_key, "Old-Pass-1")
    status, user = await call(session, method, f"/api/users/{user_key}", json={
        "password": "New-Pass-2", "lastName": "Stone", "roleId": role_id(emulator, "admin"),
        "groups": [group_id(emulator, "Finance")]})
    assert status == 200
    assert (user["lastName"], user["roleName"]) == ("Stone", "admin")
    assert user["groups"] == [group_id(emulator, "Finance")]
    assert not await can_log_in(emulator, user_key, "Old-Pass-1")
    assert await can_log_in(emulator, user_key, "New-Pass-2")
    assert_error(await call(session, method, "/api/users/nobody", json={}), 404, 2001)


async def test_delete_user_answers_200_with_an_empty_body(
        emulator: Emulator, session: aiohttp.ClientSession) -> None:
    """DELETE /api/users/{x} answers 200 with no body at all; super is 2011, unknown 2001."""
    async with session.delete("/api/users/user0006@example.com") as response:
        assert response.status == 200
        assert await response.read() == b""
        assert response.headers.get("Content-Type", "") != "application/json"
    assert emulator.store.user_by_email("user0006@example.com") is None
    assert_error(await call(session, "DELETE", "/api/users/admin"), 400, 2011)
    assert_error(await call(session, "DELETE", "/api/users/user0006@example.com"), 404, 2001)


async def test_bulk_delete_is_all_or_nothing(
        emulator: Emulator, session: aiohttp.ClientSession) -> None:
    """POST /api/users/delete deletes none on an unknown id or the super user, else all (200)."""
    ids = [user_id(emulator, f"user000{n}@example.com") for n in (7, 8)]
    admin = user_id(emulator, ADMIN)
    assert_error(await call(session, "POST", "/api/users/delete", json=[*ids, UNKNOWN]), 404, 2001)
    assert_error(await call(session, "POST", "/api/users/delete", json=[*ids, admin]), 400, 2011)
    assert_error(await call(session, "POST", "/api/users/delete", json={"ids": ids}), 400, 2002)
    assert all(i in emulator.store.users for i in ids)
    assert await call(session, "POST", "/api/users/delete", json=ids) == (200, None)
    assert not any(i in emulator.store.users for i in ids)


async def test_viewer_cannot_write_through_v09(emulator: Emulator) -> None:
    """A viewer's token may read its own v0.9 user, not list or delete users (403)."""
    token = emulator.store.issue_token(user_id(emulator, "user0009@example.com"))
    async with aiohttp.ClientSession(emulator.url,
                                     headers={"Authorization": f"Bearer {token}"}) as client:
        assert (await call(client, "GET", "/api/users/loggedin"))[0] == 200
        assert_error(await call(client, "GET", "/api/users"), 403, 5003)
        assert_error(await call(client, "DELETE", "/api/users/user0001@example.com"), 403, 5003)


# -- groups --------------------------------------------------------------------------------------


async def test_list_and_get_groups(emulator: Emulator, session: aiohttp.ClientSession) -> None:
    """GET /api/groups searches names by substring; one group is found by id or any-case name."""
    status, groups = await call(session, "GET", "/api/groups")
    assert status == 200
    assert {g["name"] for g in groups} == {"Everyone", "All users in system", "Admins", "Sales",
                                          "Finance"}
    _, found = await call(session, "GET", "/api/groups", params={"search": "SAL"})
    assert [g["name"] for g in found] == ["Sales"]
    _, page = await call(session, "GET", "/api/groups", params={"orderby": "name", "limit": 2})
    assert [g["name"] for g in page] == ["Admins", "All users in system"]
    sales = group_id(emulator, "Sales")
    assert (await call(session, "GET", "/api/groups/sales"))[1]["_id"] == sales
    assert (await call(session, "GET", f"/api/groups/{sales}"))[1]["name"] == "Sales"
    assert (await call(session, "GET", "/api/groups/Nope"))[0] == 404


async def test_group_membership_add_and_remove(
        emulator: Emulator, session: aiohttp.ClientSession) -> None:
    """POST/DELETE /api/groups/{x}/users add and remove members by id or userName, all or none."""
    store = emulator.store
    first, second = user_id(emulator, "user0010@example.com"), "user0011@example.com"
    store.update_user(first, {"groups": []})
    store.update_user(user_id(emulator, second), {"groups": []})
    path = "/api/groups/Finance/users"
    assert_error(await call(session, "POST", path, json=[first, "ghost"]), 404, 2001)
    assert store.group_names_of(first) == set()
    status, added = await call(session, "POST", path, json=[first, second])
    assert status == 200
    assert added == [first, user_id(emulator, second)]
    assert store.group_names_of(first) == {"Finance"} == store.group_names_of(added[1])
    _, members = await call(session, "GET", path)
    assert set(added) <= {u["_id"] for u in members}
    assert await call(session, "DELETE", path, json=[second]) == (200, None)
    assert store.group_names_of(added[1]) == set()
    assert store.group_names_of(first) == {"Finance"}
    assert_error(await call(session, "POST", "/api/groups/Admins/users", json=[first]), 400, 2211)
    assert_error(await call(session, "POST", path, json={"users": [first]}), 400, 2002)


# -- the legacy x-api-key scheme -----------------------------------------------------------------


async def test_api_key_authenticates_an_admin(emulator: Emulator) -> None:
    """A URL-encoded HS256 x-api-key with the right secret and password acts as its admin."""
    emulator.store.update_user(user_id(emulator, "user0012@example.com"),
                               {"password": "Boss-Pass-1", "roleId": role_id(emulator, "admin")})
    for email, password in ((ADMIN, PASSWORD), ("user0012@example.com", "Boss-Pass-1")):
        headers = {"x-api-key": api_key(creds(email, password))}
        async with aiohttp.ClientSession(emulator.url, headers=headers) as client:
            status, me = await call(client, "GET", "/api/users/loggedin")
            assert (status, me["email"]) == (200, email)
            assert (await call(client, "GET", "/api/users"))[0] == 200
            status, _ = await call(client, "POST", "/api/users", json=[
                {"email": f"via-{email.replace('@', '.')}@example.com",
                 "roleId": role_id(emulator, "consumer")}])
            assert status == 200


@pytest.mark.parametrize(("claims", "secret"), [
    (creds(), "a-wrong-secret-that-is-32-bytes-long"),
    (creds(password="Wrong-Pass"), SECRET),
    ({k: v for k, v in creds().items() if k != "iat"}, SECRET),
    ({k: v for k, v in creds().items() if k != "email"}, SECRET),
    ({k: v for k, v in creds().items() if k != "password"}, SECRET),
    (creds("nobody@example.com"), SECRET),
], ids=["secret", "password", "no-iat", "no-email", "no-password", "unknown"])
async def test_api_key_refusals_are_401_without_secrets(
        emulator: Emulator, claims: dict[str, Any], secret: str) -> None:
    """A bad secret, password, claim set or an unknown user is 401, echoing nothing secret."""
    emulator.store.update_user(user_id(emulator, "user0001@example.com"),
                               {"password": "Viewer-Pass-1"})
    key = api_key(claims, secret)
    async with aiohttp.ClientSession(emulator.url, headers={"x-api-key": key}) as client:
        answer = await call(client, "GET", "/api/users")
    assert_error(answer, 401, 5002)
    text = str(answer[1])
    assert key not in text
    assert str(claims.get("password")) not in text


async def test_api_key_of_a_viewer_signs_in_but_may_not_manage_users(emulator: Emulator) -> None:
    """A Viewer's valid x-api-key authenticates (its own user: 200) and is refused user listing
    and writes with 403, as its bearer token would be."""
    viewer = "user0001@example.com"
    emulator.store.update_user(user_id(emulator, viewer), {"password": "Viewer-Pass-1"})
    headers = {"x-api-key": api_key(creds(viewer, "Viewer-Pass-1"))}
    async with aiohttp.ClientSession(emulator.url, headers=headers) as client:
        status, me = await call(client, "GET", "/api/users/loggedin")
        assert (status, me["email"]) == (200, viewer)
        assert_error(await call(client, "GET", "/api/users"), 403, 5003)
        assert_error(await call(client, "POST", "/api/users", json=[{"email": "v@x.com"}]),
                     403, 5003)


async def test_api_key_is_off_without_a_secret_and_bearer_still_works() -> None:
    """Without api_secret an x-api-key is refused; bearer tokens work with or without one."""
    async with (running_emulator(EmulatorSettings(token=TOKEN)) as emu,
                aiohttp.ClientSession(emu.url) as anon):
        answer = await call(anon, "GET", "/api/users", headers={"x-api-key": api_key(creds())})
        assert_error(answer, 401, 5002)
        both = {"x-api-key": "garbage", "Authorization": f"Bearer {TOKEN}"}
        assert (await call(anon, "GET", "/api/users", headers=both))[0] == 200
