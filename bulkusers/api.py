"""The Sisense user API in its two dialects: REST v1 and the legacy v0.9 API.

Both speak the same ``UserApi`` protocol in v1 terms (user dicts shaped like v1 users, patches
with v1 field names, ``groups`` as the complete wanted list of ids), so planning and execution
never care which dialect runs.
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import AsyncGenerator, Iterable, Mapping, Sequence
from typing import Any, Protocol

from bulkusers.answers import JSON
from bulkusers.client import SisenseClient, Trace
from bulkusers.directory import User
from bulkusers.errors import ApiError, ServerUnavailable
from bulkusers.identity import identity_key
from bulkusers.paging import as_list, items, pages

UserDict = dict[str, Any]
#: How many users there are (``{"collection": "users", "count": N}``): a v0.9 call that v1
#: servers answer too, as they do ``/api/roles`` (sisense-api.md section 3.3, Sisense's own
#: load tests use it to plan their paging).
USER_COUNT = "/api/users/count"
#: What planning reads of each user (``directory.User``): the directory a run loads leaves
#: out the three timestamps only an export shows, a quarter of each user's JSON that the
#: server would encode and the client parse for every user of the directory.
PLAN_FIELDS = "_id,email,userName,firstName,lastName,roleId,groups,active,preferences"
#: Every field bulkusers reads of a user: planning's and the export's timestamps.
USER_FIELDS = PLAN_FIELDS + ",created,lastLogin,lastUpdated"


class UserApi(Protocol):
    """Typed user, group and role calls, whatever the server's API dialect."""

    #: Whether revoke_tokens can do anything on this dialect.
    can_revoke_tokens: bool

    async def roles(self) -> list[UserDict]:
        """Every role."""
        ...

    async def groups(self) -> list[UserDict]:
        """Every group."""
        ...

    def iter_users(self, page_size: int = 500) -> AsyncGenerator[UserDict, None]:
        """Every user, paged; never one unbounded request."""
        ...

    def user_pages(self, page_size: int = 500, fields: str = USER_FIELDS,
                   ) -> AsyncGenerator[list[UserDict], None]:
        """Every user, a page at a time (what ``iter_users`` yields one by one), with the
        ``fields`` a dialect can choose (``PLAN_FIELDS``: what planning reads)."""
        ...

    async def find_user(self, email: str, trace: Trace | None = None) -> UserDict | None:
        """The user with this email (case-insensitive), asked of the server."""
        ...

    async def me(self) -> UserDict:
        """The account this tool runs as."""
        ...

    async def get_user(self, user_id: str, trace: Trace | None = None) -> UserDict | None:
        """One user by id as the server holds it now; None when it has no such user."""
        ...

    async def create_user(self, payload: Mapping[str, Any], trace: Trace) -> UserDict:
        """Create one user; the created user."""
        ...

    async def create_users(self, payloads: Sequence[Mapping[str, Any]],
                           trace: Trace) -> list[UserDict]:
        """Create users in one all-or-nothing request."""
        ...

    async def update_user(self, user: User, patch: Mapping[str, Any],
                          trace: Trace) -> UserDict:
        """Apply a partial update (``groups`` = the complete wanted list); the user after."""
        ...

    async def delete_user(self, user_id: str, trace: Trace) -> None:
        """Delete one user."""
        ...

    async def delete_users(self, user_ids: Sequence[str], trace: Trace) -> None:
        """Delete several users in one all-or-nothing request."""
        ...

    async def revoke_tokens(self, user_id: str, trace: Trace) -> bool:
        """Revoke every token of a user; False when the API has no way to do it."""
        ...

    async def group_member_ids(self, group_id: str) -> set[str]:
        """Ids of a group's members as the group side shows them (incl. computed ones)."""
        ...

    async def create_groups(self, names: Sequence[str]) -> list[UserDict]:
        """Create groups by name; the created groups."""
        ...


def roles_of(answer: JSON) -> list[UserDict]:
    """The roles in an answer to ``GET /api/roles`` (``SisenseClient.check`` reads them)."""
    return as_list(answer, "GET /api/roles")


def _flatten(value: JSON) -> list[UserDict]:
    """Users from an answer that may be an object, a list, or a list of lists (v0.9)."""
    if isinstance(value, dict):
        return [value]
    found: list[UserDict] = []
    if isinstance(value, list):
        for item in value:
            found.extend(_flatten(item))
    return found


def _legacy_body(payload: Mapping[str, Any]) -> dict[str, Any]:
    """A v1-shaped user body as the pre-6.5 v0.9 API took it: the password as its md5 ``hash``.

    Pre-6.5 servers stored and compared the md5 hex digest of the password, which clients sent
    as ``hash`` (sisense-api.md section 4, [KB-LEGACY]); they knew no ``password`` field.
    """
    body = dict(payload)
    password = body.pop("password", None)
    if isinstance(password, str):
        body["hash"] = hashlib.md5(password.encode(), usedforsecurity=False).hexdigest()
    return body


async def _get_or_none(client: SisenseClient, path: str, params: Mapping[str, str] | None,
                       trace: Trace | None) -> UserDict | None:
    """One object from the server, or None when it answers 404."""
    try:
        found = await client.request("GET", path, params=params, trace=trace)
    except ApiError as exc:
        if exc.status == 404:
            return None
        raise
    users = _flatten(found)
    if not users:
        raise ApiError((trace.http_status or 0) if trace else 0, None,
                       f"GET {path} did not answer a user")
    return users[0]


def _match_email(users: Iterable[UserDict], email: str) -> UserDict | None:
    wanted = identity_key(email)
    return next((u for u in users if identity_key(str(u.get("email", ""))) == wanted), None)


class _Common:
    """Calls that are the same in both dialects."""

    can_revoke_tokens = True

    def __init__(self, client: SisenseClient) -> None:
        self.client = client

    async def roles(self) -> list[UserDict]:
        """Every role (``GET /api/roles``; there is no v1 roles endpoint)."""
        return roles_of(await self.client.request("GET", "/api/roles"))

    async def me(self) -> UserDict:
        """The account this tool runs as (``GET /api/users/loggedin``)."""
        found = await self.client.request("GET", "/api/users/loggedin")
        if not isinstance(found, dict):
            raise ServerUnavailable("GET /api/users/loggedin did not answer a user")
        return found


async def each_user(pages: AsyncGenerator[list[UserDict], None],
                    ) -> AsyncGenerator[UserDict, None]:
    """The users of ``pages`` one at a time. Closed with this generator (a caller stopping
    early), it closes ``pages``: the pages in flight are ended before it returns."""
    async with contextlib.aclosing(pages) as found:
        async for page in found:
            for user in page:
                yield user


class V1Api(_Common):
    """The REST v1 API (``/api/v1/...``), the default."""


    async def groups(self) -> list[UserDict]:
        """Every group (``GET /api/v1/groups``)."""
        return as_list(await self.client.request("GET", "/api/v1/groups"),
                        "GET /api/v1/groups")

    def iter_users(self, page_size: int = 500) -> AsyncGenerator[UserDict, None]:
        """Every user, paged with ``skip``/``limit``; ids repeated across pages dropped."""
        return each_user(self.user_pages(page_size))

    def user_pages(self, page_size: int = 500, fields: str = USER_FIELDS,
                   ) -> AsyncGenerator[list[UserDict], None]:
        """Every user, a page at a time, with ``fields`` only; ids repeated across pages
        dropped."""
        return pages(self.client, "/api/v1/users", page_size, {"fields": fields},
                      count_path=USER_COUNT)

    async def find_user(self, email: str, trace: Trace | None = None) -> UserDict | None:
        """Ask ``GET /api/v1/users?email=`` and keep the exact (case-insensitive) match."""
        found = await self.client.request("GET", "/api/v1/users",
                                          params={"email": email, "fields": USER_FIELDS},
                                          trace=trace)
        return _match_email(as_list(found, "GET /api/v1/users"), email)

    async def get_user(self, user_id: str, trace: Trace | None = None) -> UserDict | None:
        """``GET /api/v1/users/{id}``; None on 404."""
        return await _get_or_none(self.client, f"/api/v1/users/{user_id}",
                                  {"fields": USER_FIELDS}, trace)

    async def create_user(self, payload: Mapping[str, Any], trace: Trace) -> UserDict:
        """``POST /api/v1/users``."""
        created = await self.client.request("POST", "/api/v1/users", body=dict(payload),
                                            trace=trace)
        users = _flatten(created)
        if not users:
            raise ApiError(trace.http_status or 0, None, "the create answer carried no user")
        return users[0]

    async def create_users(self, payloads: Sequence[Mapping[str, Any]],
                           trace: Trace) -> list[UserDict]:
        """``POST /api/v1/users/bulk`` (all-or-nothing)."""
        created = await self.client.request("POST", "/api/v1/users/bulk",
                                            body=[dict(p) for p in payloads], trace=trace)
        return _flatten(created)

    async def update_user(self, user: User, patch: Mapping[str, Any],
                          trace: Trace) -> UserDict:
        """``PATCH /api/v1/users/{id}``; ``groups`` in the body replaces the membership."""
        updated = await self.client.request("PATCH", f"/api/v1/users/{user.id}",
                                            body=dict(patch), trace=trace)
        users = _flatten(updated)
        if not users:
            raise ApiError(trace.http_status or 0, None, "the update answer carried no user")
        return users[0]

    async def delete_user(self, user_id: str, trace: Trace) -> None:
        """``DELETE /api/v1/users/{id}`` (204, no body)."""
        await self.client.request("DELETE", f"/api/v1/users/{user_id}", trace=trace)

    async def delete_users(self, user_ids: Sequence[str], trace: Trace) -> None:
        """``DELETE /api/v1/users/bulk?ids=a,b`` (204, all-or-nothing)."""
        await self.client.request("DELETE", "/api/v1/users/bulk",
                                  params={"ids": ",".join(user_ids)}, trace=trace)

    async def revoke_tokens(self, user_id: str, trace: Trace) -> bool:
        """``GET /api/v1/authentication/admin/logout?users=`` revokes all the user's tokens."""
        await self.client.request("GET", "/api/v1/authentication/admin/logout",
                                  params={"users": user_id}, trace=trace)
        return True

    async def create_groups(self, names: Sequence[str]) -> list[UserDict]:
        """``POST /api/v1/groups/bulk`` with one object per name."""
        created = await self.client.request("POST", "/api/v1/groups/bulk",
                                            body=[{"name": n} for n in names])
        return _flatten(created)

    async def group_member_ids(self, group_id: str) -> set[str]:
        """``GET /api/v1/groups/{id}?expand=users``: members as the group side shows them."""
        group = await self.client.request("GET", f"/api/v1/groups/{group_id}",
                                          params={"expand": "users"})
        users = group.get("users") if isinstance(group, dict) else None
        return {str(u.get("_id")) for u in users or [] if isinstance(u, dict)}


class LegacyApi(_Common):
    """The v0.9 API (``/api/users``, ``/api/groups``) of pre-6.5 and Windows servers."""

    can_revoke_tokens = False

    async def groups(self) -> list[UserDict]:
        """Every group, paged (``GET /api/groups``)."""
        return [group async for group in items(self.client, "/api/groups", 500, {})]

    def iter_users(self, page_size: int = 500) -> AsyncGenerator[UserDict, None]:
        """Every user, paged with ``skip``/``limit`` (``GET /api/users``), with the count
        (which tells a server's cap on a page from the end of the list)."""
        return each_user(self.user_pages(page_size))

    def user_pages(self, page_size: int = 500, fields: str = USER_FIELDS,
                   ) -> AsyncGenerator[list[UserDict], None]:
        """Every user, a page at a time (``GET /api/users``); v0.9 has no ``fields``, so
        every field comes whatever ``fields`` says."""
        return pages(self.client, "/api/users", page_size, {}, count_path=USER_COUNT)

    async def find_user(self, email: str, trace: Trace | None = None) -> UserDict | None:
        """``GET /api/users?search=`` and keep the exact (case-insensitive) match."""
        found = await self.client.request("GET", "/api/users", params={"search": email},
                                          trace=trace)
        return _match_email(as_list(found, "GET /api/users"), email)

    async def get_user(self, user_id: str, trace: Trace | None = None) -> UserDict | None:
        """``GET /api/users/{id}``; None on 404."""
        return await _get_or_none(self.client, f"/api/users/{user_id}", None, trace)

    async def create_user(self, payload: Mapping[str, Any], trace: Trace) -> UserDict:
        """``POST /api/users`` with a one-element array."""
        users = await self.create_users([payload], trace)
        if not users:
            raise ApiError(trace.http_status or 0, None, "the create answer carried no user")
        return users[0]

    async def create_users(self, payloads: Sequence[Mapping[str, Any]],
                           trace: Trace) -> list[UserDict]:
        """``POST /api/users`` with a JSON array (the answer's shape varies by version)."""
        created = await self.client.request("POST", "/api/users",
                                            body=[_legacy_body(p) for p in payloads],
                                            trace=trace)
        return _flatten(created)

    async def update_user(self, user: User, patch: Mapping[str, Any],
                          trace: Trace) -> UserDict:
        """``PUT /api/users/{id}`` for fields; memberships via ``/api/groups/{id}/users``."""
        fields = _legacy_body({k: v for k, v in patch.items() if k != "groups"})
        if fields:
            await self.client.request("PUT", f"/api/users/{user.id}", body=fields, trace=trace)
        if "groups" in patch:
            wanted = set(patch["groups"])
            current = set(user.group_ids)
            for group_id in sorted(wanted - current):
                await self.client.request("POST", f"/api/groups/{group_id}/users",
                                          body=[user.id], trace=trace)
            for group_id in sorted(current - wanted):
                await self.client.request("DELETE", f"/api/groups/{group_id}/users",
                                          body=[user.id], trace=trace)
        # v0.9 answers vary (an object, nothing): read the user back to report the truth.
        after = await self.client.request("GET", f"/api/users/{user.id}", trace=trace)
        users = _flatten(after)
        if not users:
            raise ApiError(trace.http_status or 0, None, "the user could not be read back")
        return users[0]

    async def delete_user(self, user_id: str, trace: Trace) -> None:
        """``DELETE /api/users/{id}`` (200, possibly with an empty body)."""
        await self.client.request("DELETE", f"/api/users/{user_id}", trace=trace)

    async def delete_users(self, user_ids: Sequence[str], trace: Trace) -> None:
        """``POST /api/users/delete`` with a JSON array of ids."""
        await self.client.request("POST", "/api/users/delete", body=list(user_ids),
                                  trace=trace)

    async def revoke_tokens(self, user_id: str, trace: Trace) -> bool:
        """The v0.9 API has no token revocation."""
        return False

    async def create_groups(self, names: Sequence[str]) -> list[UserDict]:
        """``POST /api/groups`` with a JSON array of groups."""
        created = await self.client.request("POST", "/api/groups",
                                            body=[{"name": n} for n in names])
        return _flatten(created)

    async def group_member_ids(self, group_id: str) -> set[str]:
        """``GET /api/groups/{id}/users``: members as the group side shows them."""
        members = await self.client.request("GET", f"/api/groups/{group_id}/users")
        return {str(u.get("_id")) for u in as_list(members, "GET /api/groups/{id}/users")}


def make_api(client: SisenseClient) -> UserApi:
    """The dialect the connection asks for."""
    if client.connection.api == "legacy":
        return LegacyApi(client)
    return V1Api(client)
