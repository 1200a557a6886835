"""Tests of the Sisense emulator itself, through HTTP against `running_emulator` on loopback."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from bulkusers.emulator import (
    DROPPED,
    Emulator,
    EmulatorSettings,
    SettingsError,
    create_app,
    running_emulator,
    serve_forever,
)

TOKEN = "test-token"
USERS = "/api/v1/users"
GROUPS = "/api/v1/groups"
LOGIN = "/api/v1/authentication/login"


@pytest.fixture
async def emulator() -> AsyncIterator[Emulator]:
    """An emulator with a fixed super-admin token, 25 generated users and two extra groups."""
    settings = EmulatorSettings(token=TOKEN, users=25, groups=("Sales", "Finance"), seed=7)
    async with running_emulator(settings) as emu:
        yield emu


@pytest.fixture
async def session(emulator: Emulator) -> AsyncIterator[aiohttp.ClientSession]:
    """A client session authenticated with the fixed token."""
    headers = {"Authorization": f"Bearer {TOKEN}"}
    async with aiohttp.ClientSession(emulator.url, headers=headers) as client:
        yield client


async def call(session: aiohttp.ClientSession, method: str, path: str,
               **kwargs: Any) -> tuple[int, Any]:
    """Send one request; return its status and parsed JSON body (None when empty, the text when
    the answer is not JSON, such as a gateway's HTML page)."""
    async with session.request(method, path, **kwargs) as response:
        text = await response.text()
        if response.content_type != "application/json":
            return response.status, text or None
        return response.status, (await response.json() if text else None)


def role_id(emulator: Emulator, name: str) -> str:
    """The id of a role by API name."""
    return emulator.store.role_ids[name]


def group_id(emulator: Emulator, name: str) -> str:
    """The id of a group by name."""
    group = emulator.store.group_by_name(name)
    assert group is not None
    return str(group["_id"])


def new_user(emulator: Emulator, email: str, **extra: Any) -> dict[str, Any]:
    """A create-user body with the viewer role."""
    return {"email": email, "roleId": role_id(emulator, "consumer"), **extra}


def assert_error(answer: tuple[int, Any], status: int, code: int) -> None:
    """The answer has this HTTP status and the Sisense error envelope with this code."""
    assert answer[0] == status
    error = answer[1]["error"]
    assert (error["status"], error["code"]) == (status, code)
    assert isinstance(error["message"], str)
    assert isinstance(error["httpMessage"], str)


# -- authentication ------------------------------------------------------------------------------


@pytest.mark.parametrize("as_json", [False, True])
async def test_login_with_form_or_json_issues_a_working_token(
        emulator: Emulator, as_json: bool) -> None:
    """Login accepts form-urlencoded and JSON bodies, and the token it issues opens the API."""
    creds = {"username": "admin@example.com", "password": "Admin-Pass-1"}
    async with aiohttp.ClientSession(emulator.url) as anon:
        status, body = await call(anon, "POST", LOGIN, **({"json": creds} if as_json
                                                          else {"data": creds}))
        assert status == 200
        assert body["success"] is True
        assert body["message"] == ""
        assert body["profile"]["email"] == "admin@example.com"
        headers = {"Authorization": f"Bearer {body['access_token']}"}
        status, me = await call(anon, "GET", "/api/users/loggedin", headers=headers)
    assert status == 200
    assert me["lastLogin"] is not None
    assert emulator.store.token_user(body["access_token"]) == me["_id"]


async def test_login_refuses_a_bad_password(emulator: Emulator) -> None:
    """A wrong password is answered 401 with the Sisense error envelope."""
    async with aiohttp.ClientSession(emulator.url) as anon:
        status, body = await call(anon, "POST", LOGIN,
                                  data={"username": "admin", "password": "nope"})
    assert status == 401
    assert body["error"]["status"] == 401


async def test_fixed_token_acts_as_the_super_admin(session: aiohttp.ClientSession) -> None:
    """The settings' token is accepted and belongs to the super user."""
    status, me = await call(session, "GET", "/api/users/loggedin")
    assert status == 200
    assert me["userName"] == "admin"


@pytest.mark.parametrize("header", [None, "Bearer wrong", f"Basic {TOKEN}"])
async def test_missing_or_invalid_token_is_401(emulator: Emulator, header: str | None) -> None:
    """Without a valid bearer token the API answers 401 code 5002 "Invalid token."."""
    headers = {"Authorization": header} if header else {}
    async with aiohttp.ClientSession(emulator.url, headers=headers) as anon:
        status, body = await call(anon, "GET", USERS)
    assert status == 401
    assert body == {"error": {"code": 5002, "message": "Invalid token.", "status": 401,
                              "httpMessage": "Unauthorized"}}


async def test_revoked_and_expired_tokens_stop_working(emulator: Emulator) -> None:
    """Tokens die with logout, with `revoke_tokens`, and after `token_ttl_s`."""
    store = emulator.store
    admin = store.user_by_email("admin@example.com")
    assert admin is not None
    token = store.issue_token(admin["_id"])
    async with aiohttp.ClientSession(emulator.url) as anon:
        auth = {"Authorization": f"Bearer {token}"}
        assert (await call(anon, "GET", "/api/v1/authentication/logout", headers=auth))[0] == 200
        assert (await call(anon, "GET", USERS, headers=auth))[0] == 401
    token = store.issue_token(admin["_id"])
    assert store.revoke_tokens(admin["_id"]) >= 1
    assert store.token_user(token) is None
    store.token_ttl_s = 0.0
    assert store.token_user(store.issue_token(admin["_id"])) is None


ADMIN_AUTH = "/api/v1/authentication/admin"
INVALID_TOKEN = {"error": {"code": 5002, "message": "Invalid token.", "status": 401,
                           "httpMessage": "Unauthorized"}}


def user_id(emulator: Emulator, email: str) -> str:
    """The id of a user by email."""
    user = emulator.store.user_by_email(email)
    assert user is not None
    return str(user["_id"])


async def status_with(emulator: Emulator, token: str) -> tuple[int, Any]:
    """Status and body of GET /api/users/loggedin (open to every role) made with this token."""
    async with aiohttp.ClientSession(emulator.url) as anon:
        return await call(anon, "GET", "/api/users/loggedin",
                          headers={"Authorization": f"Bearer {token}"})


async def test_admin_logout_revokes_issued_and_fixed_tokens(
        emulator: Emulator, session: aiohttp.ClientSession) -> None:
    """admin/logout?users= revokes the listed users' tokens, the fixed one with the super user."""
    viewer = user_id(emulator, "user0001@example.com")
    admin = user_id(emulator, "admin@example.com")
    viewer_token = emulator.store.issue_token(viewer)
    async with aiohttp.ClientSession(emulator.url) as anon:
        _, login = await call(anon, "POST", LOGIN, data={"username": "admin",
                                                         "password": "Admin-Pass-1"})
    issued = login["access_token"]
    answer = await call(session, "GET", f"{ADMIN_AUTH}/logout", params={"users": viewer})
    assert answer == (204, None)
    assert await status_with(emulator, viewer_token) == (401, INVALID_TOKEN)
    assert (await status_with(emulator, issued))[0] == 200
    assert (await status_with(emulator, TOKEN))[0] == 200
    headers = {"Authorization": f"Bearer {issued}"}
    answer = await call(session, "GET", f"{ADMIN_AUTH}/logout",
                        params={"users": f"{viewer},{admin}"}, headers=headers)
    assert answer == (204, None)
    assert await status_with(emulator, issued) == (401, INVALID_TOKEN)
    assert await status_with(emulator, TOKEN) == (401, INVALID_TOKEN)


async def test_admin_api_token_revocation_is_checked_and_all_or_nothing(
        emulator: Emulator, session: aiohttp.ClientSession) -> None:
    """DELETE admin/tokens/api: 404/2001 on an unknown id (revoking none), 403 for non-admins."""
    viewer = user_id(emulator, "user0002@example.com")
    token = emulator.store.issue_token(viewer)
    path, unknown = f"{ADMIN_AUTH}/tokens/api", "65f1aaaaaaaaaaaaaaaaaaaa"
    assert_error(await call(session, "DELETE", path, params={"users": f"{viewer},{unknown}"}),
                 404, 2001)
    assert (await status_with(emulator, token))[0] == 200
    assert_error(await call(session, "DELETE", path), 400, 600)
    async with aiohttp.ClientSession(emulator.url,
                                     headers={"Authorization": f"Bearer {token}"}) as client:
        assert_error(await call(client, "DELETE", path, params={"users": viewer}), 403, 5003)
        assert_error(await call(client, "GET", f"{ADMIN_AUTH}/logout", params={"users": viewer}),
                     403, 5003)
    assert await call(session, "DELETE", f"{ADMIN_AUTH}/tokens/odbc",
                      params={"users": viewer}) == (204, None)
    assert (await status_with(emulator, token))[0] == 200
    assert await call(session, "DELETE", path, params={"users": viewer}) == (204, None)
    assert await status_with(emulator, token) == (401, INVALID_TOKEN)


async def test_login_sets_last_login_and_old_password_dies_with_patch(
        emulator: Emulator, session: aiohttp.ClientSession) -> None:
    """Login stamps lastLogin; after a PATCH of the password only the new one logs in."""
    _, user = await call(session, "POST", USERS,
                         json=new_user(emulator, "pw@example.com", password="Old-Pass-1"))
    assert user["lastLogin"] is None
    async with aiohttp.ClientSession(emulator.url) as anon:
        status, body = await call(anon, "POST", LOGIN, data={"username": "pw@example.com",
                                                             "password": "Old-Pass-1"})
        assert status == 200
        assert body["profile"]["lastLogin"] is not None
        _, fetched = await call(session, "GET", f"{USERS}/{user['_id']}")
        assert fetched["lastLogin"] == body["profile"]["lastLogin"]
        answer = await call(session, "PATCH", f"{USERS}/{user['_id']}",
                            json={"password": "New-Pass-2"})
        assert answer[0] == 200
        old = await call(anon, "POST", LOGIN, data={"username": "pw@example.com",
                                                    "password": "Old-Pass-1"})
        assert_error(old, 401, 5001)
        new = await call(anon, "POST", LOGIN, data={"username": "pw@example.com",
                                                    "password": "New-Pass-2"})
        assert new[0] == 200


async def test_roles_are_listed_with_display_names(session: aiohttp.ClientSession) -> None:
    """GET /api/roles lists the seven built-in roles; one can be fetched by name."""
    status, roles = await call(session, "GET", "/api/roles")
    assert status == 200
    names = {r["name"]: r["displayName"] for r in roles}
    assert names["super"] == "Sys. Admin"
    assert names["consumer"] == "Viewer"
    assert len(names) == 7
    status, role = await call(session, "GET", "/api/roles/contributor")
    assert status == 200
    assert role["displayName"] == "Designer"


# -- creating users ------------------------------------------------------------------------------


async def test_create_user_returns_201_without_secrets(
        emulator: Emulator, session: aiohttp.ClientSession) -> None:
    """A created user is answered 201, active when given a password, and never shows it."""
    body = new_user(emulator, "Jane.Doe@example.com", firstName="Jane", password="S3cret!",
                    groups=[group_id(emulator, "Sales")])
    status, user = await call(session, "POST", USERS, json=body)
    assert status == 201
    assert user["userName"] == "Jane.Doe@example.com"
    assert user["active"] is True
    assert user["groups"] == [group_id(emulator, "Sales")]
    assert user["lastLogin"] is None
    assert len(user["_id"]) == 24
    assert user["created"].endswith("Z")
    assert not {"password", "hash", "password_hash"} & set(user)
    assert emulator.store.check_password("jane.doe@example.com", "S3cret!")
    status, plain = await call(session, "POST", USERS, json=new_user(emulator, "p@example.com"))
    assert status == 201
    assert plain["active"] is False


async def test_duplicate_email_is_2004_whatever_the_case(
        emulator: Emulator, session: aiohttp.ClientSession) -> None:
    """Creating a user whose email exists in another case is 400 code 2004."""
    answer = await call(session, "POST", USERS, json=new_user(emulator, "USER0001@Example.com"))
    assert_error(answer, 400, 2004)


@pytest.mark.parametrize(("patch", "status", "code"), [
    ({"roleId": "65f1aaaaaaaaaaaaaaaaaaaa"}, 404, 2101),
    ({"roleId": "not-an-id"}, 422, 601),
    ({"groups": ["bad"]}, 422, 601),
    ({"email": None}, 422, 2003),
    ({"email": ""}, 400, 2009),
])
async def test_invalid_create_bodies_are_refused(
        emulator: Emulator, session: aiohttp.ClientSession, patch: dict[str, Any], status: int,
        code: int) -> None:
    """Unknown role 404, malformed ids 422/601, missing email 422/2003, empty email 400/2009."""
    answer = await call(session, "POST", USERS,
                        json={**new_user(emulator, "x@example.com"), **patch})
    assert_error(answer, status, code)
    if status == 404:
        assert answer[1]["error"]["message"] == "Role not found"
        assert answer[1]["error"]["resourceType"] == "role"


async def test_second_super_user_is_2006(emulator: Emulator,
                                         session: aiohttp.ClientSession) -> None:
    """Only one super user may exist."""
    body = {"email": "root@example.com", "roleId": role_id(emulator, "super")}
    assert_error(await call(session, "POST", USERS, json=body), 400, 2006)


async def test_built_in_groups_are_not_stored_on_users(
        emulator: Emulator, session: aiohttp.ClientSession) -> None:
    """Built-in groups named in a create body are ignored, explicit ones kept."""
    groups = [group_id(emulator, "Everyone"), group_id(emulator, "Finance")]
    status, user = await call(session, "POST", USERS,
                              json=new_user(emulator, "g@example.com", groups=groups))
    assert status == 201
    assert user["groups"] == [group_id(emulator, "Finance")]


async def test_bulk_create_is_all_or_nothing(emulator: Emulator,
                                             session: aiohttp.ClientSession) -> None:
    """One existing user rejects the whole bulk (2004); a clean bulk creates every user (201)."""
    before = len(emulator.store.users)
    bad = [new_user(emulator, "fresh@example.com"), new_user(emulator, "user0002@example.com")]
    assert_error(await call(session, "POST", f"{USERS}/bulk", json=bad), 400, 2004)
    assert len(emulator.store.users) == before
    good = [new_user(emulator, "a@example.com"), new_user(emulator, "b@example.com")]
    status, created = await call(session, "POST", f"{USERS}/bulk", json=good)
    assert status == 201
    assert [u["email"] for u in created] == ["a@example.com", "b@example.com"]


async def test_bulk_create_refuses_duplicates_and_non_arrays(
        emulator: Emulator, session: aiohttp.ClientSession) -> None:
    """Duplicates inside the payload are 2005; a body that is not an array is 2002."""
    twins = [new_user(emulator, "t@example.com"), new_user(emulator, "T@example.com")]
    assert_error(await call(session, "POST", f"{USERS}/bulk", json=twins), 400, 2005)
    assert_error(await call(session, "POST", f"{USERS}/bulk", json=twins[0]), 400, 2002)
    assert emulator.store.user_by_email("t@example.com") is None


# -- updating and deleting users -----------------------------------------------------------------


async def test_patch_replaces_groups_and_ignores_active(
        emulator: Emulator, session: aiohttp.ClientSession) -> None:
    """PATCH with groups replaces the membership; `active` is read-only."""
    user = emulator.store.user_by_email("user0003@example.com")
    assert user is not None
    path = f"{USERS}/{user['_id']}"
    await call(session, "PATCH", path, json={"groups": [group_id(emulator, "Sales")]})
    status, patched = await call(session, "PATCH", path, json={
        "groups": [group_id(emulator, "Finance")], "active": False, "lastName": "Stone"})
    assert status == 200
    assert patched["groups"] == [group_id(emulator, "Finance")]
    assert patched["active"] is True
    assert emulator.store.group_names_of(user["_id"]) == {"Finance"}
    assert patched["lastName"] == "Stone"
    assert patched["firstName"] == user["firstName"]


async def test_patch_enforces_unique_email_and_sets_password(
        emulator: Emulator, session: aiohttp.ClientSession) -> None:
    """PATCH refuses another user's email (2004) and accepts a new password."""
    user = emulator.store.user_by_email("user0004@example.com")
    assert user is not None
    path = f"{USERS}/{user['_id']}"
    answer = await call(session, "PATCH", path, json={"email": "ADMIN@example.com"})
    assert_error(answer, 400, 2004)
    status, _ = await call(session, "PATCH", path, json={"password": "New-Pass-2",
                                                         "roleId": role_id(emulator, "admin")})
    assert status == 200
    assert emulator.store.check_password("user0004@example.com", "New-Pass-2")
    assert emulator.store.role_name_of(user["_id"]) == "admin"


async def test_delete_user_is_204_and_refuses_super_and_unknown(
        emulator: Emulator, session: aiohttp.ClientSession) -> None:
    """DELETE answers 204 with no body; the super user is 2011, an unknown id 2001."""
    user = emulator.store.user_by_email("user0005@example.com")
    admin = emulator.store.user_by_email("admin@example.com")
    assert user is not None
    assert admin is not None
    assert await call(session, "DELETE", f"{USERS}/{user['_id']}") == (204, None)
    assert emulator.store.user_by_email("user0005@example.com") is None
    assert_error(await call(session, "DELETE", f"{USERS}/{admin['_id']}"), 400, 2011)
    assert_error(await call(session, "DELETE", f"{USERS}/{user['_id']}"), 404, 2001)
    assert_error(await call(session, "GET", f"{USERS}/nope"), 422, 601)


async def test_bulk_delete_is_all_or_nothing(emulator: Emulator,
                                             session: aiohttp.ClientSession) -> None:
    """Bulk delete with one unknown id deletes nothing (2001); a valid list answers 204."""
    ids = [u.id for u in emulator.store.users.values() if u.email.startswith("user001")][:3]
    unknown = "65f1aaaaaaaaaaaaaaaaaaaa"
    answer = await call(session, "DELETE", f"{USERS}/bulk",
                        params={"ids": ",".join([*ids, unknown])})
    assert_error(answer, 404, 2001)
    assert all(i in emulator.store.users for i in ids)
    assert await call(session, "DELETE", f"{USERS}/bulk", params={"ids": ",".join(ids)}) == (
        204, None)
    assert not any(i in emulator.store.users for i in ids)


async def test_viewer_cannot_write(emulator: Emulator) -> None:
    """A viewer's token may read only its own user: 403 on user writes and listings."""
    viewer = emulator.store.user_by_email("user0006@example.com")
    assert viewer is not None
    headers = {"Authorization": f"Bearer {emulator.store.issue_token(viewer['_id'])}"}
    async with aiohttp.ClientSession(emulator.url, headers=headers) as client:
        assert (await call(client, "GET", "/api/users/loggedin"))[0] == 200
        assert (await call(client, "GET", USERS))[0] == 403
        status, _ = await call(client, "POST", USERS, json=new_user(emulator, "v@example.com"))
    assert status == 403


# -- listing users -------------------------------------------------------------------------------


async def test_paging_with_skip_and_limit_covers_every_user_once(
        session: aiohttp.ClientSession) -> None:
    """Pages of `limit` users from `skip` add up to the unpaged list, in the same order."""
    _, everyone = await call(session, "GET", USERS)
    assert len(everyone) == 26
    paged: list[str] = []
    for skip in range(0, 30, 10):
        _, page = await call(session, "GET", USERS, params={"skip": skip, "limit": 10})
        paged += [u["_id"] for u in page]
    assert paged == [u["_id"] for u in everyone]
    status, body = await call(session, "GET", USERS, params={"limit": "ten"})
    assert status == 400
    assert body["error"]["status"] == 400


async def test_fields_whitelist_and_exclusions(session: aiohttp.ClientSession) -> None:
    """`fields` keeps the listed fields (plus _id); a leading `-` drops a field."""
    _, users = await call(session, "GET", USERS, params={"fields": "email,lastLogin"})
    assert set(users[0]) == {"_id", "email", "lastLogin"}
    _, users = await call(session, "GET", USERS, params={"fields": "-preferences,-groups"})
    assert "preferences" not in users[0]
    assert "email" in users[0]


async def test_fields_listed_and_excluded_together(session: aiohttp.ClientSession) -> None:
    """A `fields` list that names fields and excludes some keeps the named ones only, and
    `-_id` drops the id it otherwise always keeps."""
    _, users = await call(session, "GET", USERS, params={"fields": "email,lastLogin,-lastLogin"})
    assert set(users[0]) == {"_id", "email"}
    _, users = await call(session, "GET", USERS, params={"fields": "email,-_id"})
    assert set(users[0]) == {"email"}


async def test_answers_are_compact_utf8_json(emulator: Emulator,
                                             session: aiohttp.ClientSession) -> None:
    """Answers are JSON as Sisense's Node server writes it: no spaces between tokens, text in
    UTF-8 as it is (not \\u escapes), with the JSON content type."""
    await call(session, "POST", USERS, json=new_user(emulator, "zoe@example.com",
                                                     firstName="Zoë"))
    async with session.get(USERS, params={"email": "zoe@example.com",
                                          "fields": "firstName"}) as response:
        raw = await response.read()
        assert response.content_type == "application/json"
    assert b'"firstName":"Zo\xc3\xab"' in raw
    assert b", " not in raw
    assert b": " not in raw


async def test_expand_groups_and_role(emulator: Emulator, session: aiohttp.ClientSession) -> None:
    """expand=groups,role replaces ids by objects; an unknown expansion is 404 code 202."""
    _, users = await call(session, "GET", USERS, params={"expand": "groups,role"})
    grouped = next(u for u in users if u["groups"])
    assert set(grouped["groups"][0]) == {"_id", "name"}
    assert grouped["role"]["name"] == "consumer"
    assert_error(await call(session, "GET", USERS, params={"expand": "nonsense"}), 404, 202)


async def test_filters_and_sort(emulator: Emulator, session: aiohttp.ClientSession) -> None:
    """Filters match whole values case-insensitively; roleId, groupId, active and sort work."""
    _, found = await call(session, "GET", USERS, params={"email": "USER0007@EXAMPLE.COM"})
    assert [u["email"] for u in found] == ["user0007@example.com"]
    _, found = await call(session, "GET", USERS, params={"email": "user000"})
    assert found == []
    _, supers = await call(session, "GET", USERS, params={"roleId": role_id(emulator, "super")})
    assert [u["userName"] for u in supers] == ["admin"]
    sales = group_id(emulator, "Sales")
    _, members = await call(session, "GET", USERS, params={"groupId": sales})
    assert members
    assert all(sales in u["groups"] for u in members)
    await call(session, "POST", USERS, json=new_user(emulator, "idle@example.com"))
    _, idle = await call(session, "GET", USERS, params={"active": "false"})
    assert [u["email"] for u in idle] == ["idle@example.com"]
    _, ordered = await call(session, "GET", USERS, params={"sort": "-email", "limit": 2})
    assert [u["email"] for u in ordered] == ["user0025@example.com", "user0024@example.com"]


# -- groups --------------------------------------------------------------------------------------


async def test_group_expand_users_includes_derived_membership(
        emulator: Emulator, session: aiohttp.ClientSession) -> None:
    """Built-in groups list their derived members group-side only; users never show them."""
    _, groups = await call(session, "GET", GROUPS, params={"expand": "users"})
    members = {g["name"]: {u["email"] for u in g["users"]} for g in groups}
    assert len(members["All users in system"]) == 26 == len(members["Everyone"])
    assert members["Admins"] == {"admin@example.com"}
    builtin = {group_id(emulator, n) for n in ("Everyone", "All users in system", "Admins")}
    _, users = await call(session, "GET", USERS)
    assert not any(builtin & set(u["groups"]) for u in users)
    _, found = await call(session, "GET", GROUPS, params={"name": "everyone"})
    assert [g["name"] for g in found] == ["Everyone"]


async def test_group_create_and_delete(emulator: Emulator,
                                       session: aiohttp.ClientSession) -> None:
    """Groups are created 201 (bulk too), unique by name, deleted 204, built-ins protected."""
    status, group = await call(session, "POST", GROUPS, json={"name": "Ops"})
    assert status == 201
    assert group["name"] == "Ops"
    status, body = await call(session, "POST", GROUPS, json={"name": "ops"})
    assert status == 400
    assert body["error"]["status"] == 400
    status, made = await call(session, "POST", f"{GROUPS}/bulk", json=[{"name": "R&D"},
                                                                       {"name": "Legal"}])
    assert status == 201
    assert [g["name"] for g in made] == ["R&D", "Legal"]
    assert await call(session, "DELETE", f"{GROUPS}/{group['_id']}") == (204, None)
    status, body = await call(session, "DELETE", f"{GROUPS}/{group_id(emulator, 'Admins')}")
    assert status == 400
    assert body["error"]["status"] == 400


# -- faults and the request log ------------------------------------------------------------------


async def test_scripted_503s_then_success(emulator: Emulator,
                                          session: aiohttp.ClientSession) -> None:
    """A script answers the next two matching requests 503 with Retry-After, then normally."""
    emulator.faults.script("GET", USERS, [503, 503], retry_after=0.5)
    for _ in range(2):
        async with session.get(USERS) as response:
            assert response.status == 503
            assert response.headers["Retry-After"] == "0.5"
            assert "<h1>503 Service Unavailable</h1>" in await response.text()
    assert (await call(session, "GET", USERS))[0] == 200
    assert [r.status for r in emulator.requests[-3:]] == [503, 503, 200]


async def test_max_inflight_answers_429_with_retry_after(
        emulator: Emulator, session: aiohttp.ClientSession) -> None:
    """Requests beyond the in-flight cap are answered 429 with the configured Retry-After."""
    emulator.faults.latency_ms, emulator.faults.max_inflight = 100, 1
    emulator.faults.retry_after_s = 0.2

    async def one() -> tuple[int, str | None]:
        async with session.get("/api/roles") as response:
            return response.status, response.headers.get("Retry-After")

    results = await asyncio.gather(*(one() for _ in range(3)))
    assert sorted(results, key=str) == [(200, None), (429, "0.2"), (429, "0.2")]


async def test_dropped_connection_and_error_rate(emulator: Emulator,
                                                 session: aiohttp.ClientSession) -> None:
    """A scripted drop closes the connection unanswered; error_rate 1 answers every call 503."""
    emulator.faults.drop("POST", GROUPS, 1)
    with pytest.raises(aiohttp.ServerDisconnectedError):
        await call(session, "POST", GROUPS, json={"name": "Lost"})
    assert emulator.requests[-1].status == DROPPED
    assert emulator.store.group_by_name("Lost") is None
    emulator.faults.error_rate = 1.0
    assert (await call(session, "GET", "/api/roles"))[0] == 503


async def test_request_log_and_writes(emulator: Emulator,
                                      session: aiohttp.ClientSession) -> None:
    """Every request is logged with its status; writes() keeps writes other than login."""
    await call(session, "POST", LOGIN, data={"username": "admin", "password": "Admin-Pass-1"})
    await call(session, "GET", USERS, params={"limit": 1})
    await call(session, "POST", GROUPS, json={"name": "Audit"})
    await call(session, "GET", "/api/v1/nowhere")
    assert [(r.method, r.path, r.status) for r in emulator.requests] == [
        ("POST", LOGIN, 200), ("GET", USERS, 200), ("POST", GROUPS, 201),
        ("GET", "/api/v1/nowhere", 404)]
    assert emulator.requests[1].query == "limit=1"
    assert [(r.method, r.path) for r in emulator.writes()] == [("POST", GROUPS)]


async def test_unknown_api_path_is_a_sisense_404(session: aiohttp.ClientSession) -> None:
    """Unknown API paths answer the Sisense error envelope, not aiohttp's HTML page."""
    status, body = await call(session, "GET", "/api/v1/nowhere")
    assert status == 404
    assert body["error"]["httpMessage"] == "Not Found"


# -- seeding and serving -------------------------------------------------------------------------


async def test_generated_users_are_deterministic() -> None:
    """The same seed generates the same users, with ids, names and viewers' role."""
    names = []
    for _ in range(2):
        async with running_emulator(EmulatorSettings(users=5, seed=3)) as emu:
            users = [u.to_json() for u in emu.store.users.values()]
            names.append([(u["_id"], u["firstName"], u["lastName"]) for u in users])
            assert {emu.store.role_name_of(u["_id"]) for u in users[1:]} == {"consumer"}
    assert names[0] == names[1]
    assert len(names[0]) == 6


async def test_serve_forever_reports_its_url_and_stops_on_cancel() -> None:
    """serve_forever calls on_ready with a reachable URL and ends cleanly when cancelled."""
    ready: asyncio.Queue[str] = asyncio.Queue()
    task = asyncio.create_task(serve_forever(EmulatorSettings(), "127.0.0.1", 0,
                                             ready.put_nowait))
    url = await asyncio.wait_for(ready.get(), 5)
    async with aiohttp.ClientSession(url) as anon:
        assert (await call(anon, "GET", "/api/roles"))[0] == 401
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


def test_store_clock_text_is_made_once_per_millisecond_and_follows_the_clock() -> None:
    """The store's timestamps are Sisense's ISO text of its clock, UTC with milliseconds,
    the same within one millisecond and new as soon as the clock moves past it."""
    from datetime import UTC, datetime, timedelta, timezone

    from bulkusers.emulator.store import Store

    moments = [datetime(2026, 3, 4, 5, 6, 7, 123400, tzinfo=UTC),
               datetime(2026, 3, 4, 5, 6, 7, 123900, tzinfo=UTC),
               datetime(2026, 3, 4, 5, 6, 7, 124000, tzinfo=UTC),
               datetime(2026, 3, 4, 7, 6, 7, 125000, tzinfo=timezone(timedelta(hours=2)))]
    current = [moments[0]]
    store = Store(clock=lambda: current[0])
    seen = []
    for moment in moments:
        current[0] = moment
        seen.append(store.now())
    assert seen == ["2026-03-04T05:06:07.123Z", "2026-03-04T05:06:07.123Z",
                    "2026-03-04T05:06:07.124Z", "2026-03-04T05:06:07.125Z"]


@pytest.mark.parametrize("settings", [
    EmulatorSettings(groups=("all users in system",)),
    EmulatorSettings(groups=("Sales", "SALES")),
    EmulatorSettings(admin_email="user0007@example.com", users=7),
])
def test_settings_the_api_would_refuse_are_refused_before_seeding(
        settings: EmulatorSettings) -> None:
    """create_app refuses a built-in or repeated group, or an admin email a generated user
    has, with SettingsError before seeding (not a StoreError half-way, nor a silent clash)."""
    with pytest.raises(SettingsError):
        create_app(settings)
