"""The emulator's HTTP surface: Sisense routes for auth, roles, users and groups (aiohttp.web).

Handlers translate HTTP to `Store` calls and back; every rule about users and groups lives in the
store. List endpoints share one query pipeline: filter, expand, sort, page, project `fields`.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from typing import Any

from aiohttp import web
from aiohttp.typedefs import Handler
from multidict import MultiMapping

from bulkusers.emulator.faults import Faults, RequestRecord
from bulkusers.emulator.store import (
    ROLE_NOT_FOUND,
    VALIDATION,
    GroupRecord,
    Json,
    Store,
    StoreError,
    UserRecord,
    object_id,
)

STORE = web.AppKey("store", Store)
FAULTS = web.AppKey("faults", Faults)
REQUESTS = web.AppKey("requests", list[RequestRecord])
CALLER = web.RequestKey("caller", str)  # id of the user the bearer token belongs to

LOGIN_PATH = "/api/v1/authentication/login"
INVALID_EXPAND, NOT_AN_ARRAY = 202, 2002  # documented codes (sisense-api.md section 3.2)
INVALID_TOKEN = 5002  # pysisense's example (sisense-api.md section 2.4), unverified
INVALID_CREDENTIALS, FORBIDDEN = 5001, 5003  # guesses: undocumented
_WRITERS = frozenset({"super", "admin"})
routes = web.RouteTableDef()


def _json(body: object, status: int = 200) -> web.Response:
    """A JSON answer."""
    return web.json_response(body, status=status)


async def _body(request: web.Request) -> object:
    """The parsed JSON body, or 400 when it is not JSON at all."""
    try:
        return await request.json()
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise StoreError(400, VALIDATION, "The request body is not valid JSON.") from exc


def _require_writer(request: web.Request) -> Store:
    """The store, once the caller is known to hold a role allowed to manage users and groups."""
    store = request.app[STORE]
    if store.role_name_of(request[CALLER]) not in _WRITERS:
        raise StoreError(403, FORBIDDEN, "Only administrators may manage users and groups.")
    return store


# -- authentication ------------------------------------------------------------------------------


@web.middleware
async def auth_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Require a known bearer token on every API path except login."""
    if request.path.startswith("/api/") and request.path != LOGIN_PATH:
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        store = request.app[STORE]
        user_id = store.token_user(token.strip()) if scheme.lower() == "bearer" else None
        if user_id is None:
            raise StoreError(401, INVALID_TOKEN, "Invalid token.")
        request[CALLER] = user_id
    return await handler(request)


# -- the shared list pipeline -------------------------------------------------------------------


def _int_param(query: MultiMapping[str], name: str, minimum: int) -> int | None:
    """An integer query parameter of at least `minimum`, None when absent, else 400."""
    if name not in query:
        return None
    try:
        value = int(query[name])
    except ValueError:
        value = minimum - 1
    if value < minimum:
        raise StoreError(400, VALIDATION, f"{name} must be an integer >= {minimum}")
    return value


def _expand(query: MultiMapping[str], allowed: frozenset[str]) -> frozenset[str]:
    """The requested expansions (``a.b`` counts as ``a``); anything else is 404 code 202."""
    names = {part.strip().split(".")[0] for part in query.get("expand", "").split(",")} - {""}
    if unknown := ",".join(sorted(names - allowed)):
        raise StoreError(404, INVALID_EXPAND, f"Invalid expand: {unknown}")
    return frozenset(names)


def _sort_key(field: str) -> Callable[[Json], tuple[bool, str]]:
    """The sort key of one ``sort`` field over JSON documents."""
    # Missing values sort last; everything compares as text, like a lenient Mongo collation.
    return lambda doc: (doc.get(field) is None, str(doc.get(field)).lower())


def _project(doc: Json, fields: str) -> Json:
    """Apply a ``fields`` list: names to keep (``_id`` always kept), ``-name`` to drop."""
    names = [f.strip() for f in fields.split(",") if f.strip()]
    keep = {n for n in names if not n.startswith("-")}
    drop = {n[1:] for n in names if n.startswith("-")}
    if keep:
        doc = {k: v for k, v in doc.items() if k in keep or k == "_id"}
    return {k: v for k, v in doc.items() if k not in drop}


def _list_response(query: MultiMapping[str], items: list[Any],
                   to_json: Callable[[Any], Json]) -> web.Response:
    """Sort, page and project `items`; converting only the page when no sort is asked for."""
    skip = _int_param(query, "skip", 0) or 0
    limit = _int_param(query, "limit", 1)
    end = None if limit is None else skip + limit
    if sort := query.get("sort", "").strip():
        docs = [to_json(item) for item in items]
        for field in reversed([f.strip() for f in sort.split(",") if f.strip()]):
            desc = field.startswith("-")
            docs.sort(key=_sort_key(field.lstrip("-+")), reverse=desc)
        docs = docs[skip:end]
    else:
        docs = [to_json(item) for item in items[skip:end]]
    fields = query.get("fields", "")
    return _json([_project(doc, fields) for doc in docs] if fields else docs)


def _id_list(query: MultiMapping[str], what: str) -> set[str] | None:
    """The ids of an ``ids=a,b`` filter (each validated), or None when absent."""
    if "ids" not in query:
        return None
    return {object_id(i.strip(), what) for i in query["ids"].split(",") if i.strip()}


def _user_json(store: Store, user: UserRecord, expand: Iterable[str]) -> Json:
    """A user's JSON with ``groups`` and ``role`` expanded when asked for."""
    doc = user.to_json()
    if "groups" in expand:
        doc["groups"] = [{"_id": g, "name": store.groups[g].name} for g in user.groups]
    if "role" in expand:
        doc["role"] = store.roles[user.role_id].to_json()
    return doc


def _group_json(store: Store, group: GroupRecord, expand: Iterable[str]) -> Json:
    """A group's JSON with its members (built-in memberships derived) when asked for."""
    doc = group.to_json()
    if "users" in expand:
        doc["users"] = [u.to_json() for u in store.group_members(group.id)]
    return doc


def _select_users(store: Store, query: MultiMapping[str]) -> list[UserRecord]:
    """Users matching the v1 filters; text filters are case-insensitive whole-value matches."""
    users = list(store.users.values())
    for param, attr in (("email", "email"), ("userName", "user_name"),
                        ("firstName", "first_name"), ("lastName", "last_name")):
        if param in query:
            wanted = query[param].lower()
            users = [u for u in users if str(getattr(u, attr)).lower() == wanted]
    if "roleId" in query:
        role_id = object_id(query["roleId"], "roleId")
        users = [u for u in users if u.role_id == role_id]
    if "groupId" in query:
        if query["groupId"].lower() == "null":
            users = [u for u in users if not u.groups]
        else:
            group_id = object_id(query["groupId"], "groupId")
            members = ({u.id for u in store.group_members(group_id)}
                       if group_id in store.groups else set())
            users = [u for u in users if u.id in members]
    if "active" in query:
        if query["active"].lower() not in ("true", "false"):
            raise StoreError(400, VALIDATION, "active must be true or false")
        users = [u for u in users if u.active == (query["active"].lower() == "true")]
    if "origin" in query:
        if query["origin"] not in ("sisense", "ad"):
            raise StoreError(400, VALIDATION, "origin must be 'sisense' or 'ad'")
        users = users if query["origin"] == "sisense" else []
    if (ids := _id_list(query, "ids")) is not None:
        users = [u for u in users if u.id in ids]
    return users


@routes.post(LOGIN_PATH)
async def login(request: web.Request) -> web.Response:
    """Log in with form-urlencoded or JSON ``username`` and ``password``; issue a bearer token."""
    if request.content_type == "application/json":
        body = await _body(request)
        data: dict[str, Any] = body if isinstance(body, dict) else {}
    else:
        data = dict(await request.post())
    username, password = data.get("username"), data.get("password")
    store = request.app[STORE]
    result = None
    if isinstance(username, str) and isinstance(password, str):
        result = store.login(username, password)
    if result is None:
        raise StoreError(401, INVALID_CREDENTIALS,
                         "Invalid credentials. Wrong username or password.")
    token, user = result
    profile = _user_json(store, user, ())
    profile["roleName"] = store.role_name_of(user.id)
    return _json({"success": True, "message": "", "access_token": token, "profile": profile,
                  "userId": user.id})


@routes.get("/api/v1/authentication/logout")
async def logout(request: web.Request) -> web.Response:
    """Revoke the token this request was made with."""
    token = request.headers["Authorization"].partition(" ")[2].strip()
    request.app[STORE].revoke_token(token)
    return _json({})


@routes.get("/api/v1/authentication/logout_all")
async def logout_all(request: web.Request) -> web.Response:
    """Revoke every token of the caller."""
    request.app[STORE].revoke_tokens(request[CALLER])
    return web.Response(status=204)


# -- roles ---------------------------------------------------------------------------------------


@routes.get("/api/roles")
async def list_roles(request: web.Request) -> web.Response:
    """All built-in roles (the v0.9 endpoint every client uses)."""
    return _json([role.to_json() for role in request.app[STORE].roles.values()])


@routes.get("/api/roles/{id_or_name}")
async def get_role(request: web.Request) -> web.Response:
    """One role by id or API name (case-insensitive)."""
    wanted = request.match_info["id_or_name"].lower()
    for role in request.app[STORE].roles.values():
        if wanted in (role.id, role.name.lower()):
            return _json(role.to_json())
    raise StoreError(404, ROLE_NOT_FOUND, "Role not found", resourceType="role",
                     resourceName=request.match_info["id_or_name"])


# -- users ---------------------------------------------------------------------------------------

_USER_EXPANDS = frozenset({"groups", "adgroups", "role"})


@routes.get("/api/v1/users")
async def list_users(request: web.Request) -> web.Response:
    """Users as a bare array, filtered, sorted, paged and projected as the query asks."""
    store, query = request.app[STORE], request.query
    expand = _expand(query, _USER_EXPANDS)
    users = _select_users(store, query)
    return _list_response(query, users, lambda user: _user_json(store, user, expand))


@routes.get("/api/users/loggedin")
async def logged_in_user(request: web.Request) -> web.Response:
    """The token owner's user object (v0.9)."""
    store = request.app[STORE]
    return _json(_user_json(store, store.users[request[CALLER]], ()))


@routes.post("/api/v1/users/bulk")
async def create_users_bulk(request: web.Request) -> web.Response:
    """Create an array of users, all or none: 201 with the created users."""
    store = _require_writer(request)
    body = await _body(request)
    if not isinstance(body, list):
        raise StoreError(400, NOT_AN_ARRAY, "The request body must be an array of users.")
    users = store.create_users(body, bulk=True)
    return _json([_user_json(store, user, ()) for user in users], 201)


@routes.delete("/api/v1/users/bulk")
async def delete_users_bulk(request: web.Request) -> web.Response:
    """Delete the users listed in ``ids``, all or none: 204."""
    store = _require_writer(request)
    ids = [i.strip() for i in request.query.get("ids", "").split(",") if i.strip()]
    if not ids:
        raise StoreError(400, VALIDATION, "ids is required")
    store.delete_users(ids)
    return web.Response(status=204)


@routes.post("/api/v1/users")
async def create_user(request: web.Request) -> web.Response:
    """Create one user: 201 with the created user."""
    store = _require_writer(request)
    [user] = store.create_users([await _body(request)], bulk=False)
    return _json(_user_json(store, user, ()), 201)


@routes.get("/api/v1/users/{user_id}")
async def get_user(request: web.Request) -> web.Response:
    """One user by id, with ``fields`` and ``expand``."""
    store, query = request.app[STORE], request.query
    expand = _expand(query, _USER_EXPANDS)
    doc = _user_json(store, store.get_user(request.match_info["user_id"]), expand)
    return _json(_project(doc, query["fields"]) if "fields" in query else doc)


@routes.patch("/api/v1/users/{user_id}")
async def update_user(request: web.Request) -> web.Response:
    """Partially update one user: 200 with the updated user."""
    store = _require_writer(request)
    user = store.update_user(request.match_info["user_id"], await _body(request))
    return _json(_user_json(store, user, ()))


@routes.delete("/api/v1/users/{user_id}")
async def delete_user(request: web.Request) -> web.Response:
    """Delete one user: 204 with an empty body."""
    _require_writer(request).delete_users([request.match_info["user_id"]])
    return web.Response(status=204)


# -- groups --------------------------------------------------------------------------------------

_GROUP_EXPANDS = frozenset({"users", "role"})


@routes.get("/api/v1/groups")
async def list_groups(request: web.Request) -> web.Response:
    """Groups as a bare array; ``expand=users`` lists members, built-in memberships included."""
    store, query = request.app[STORE], request.query
    expand = _expand(query, _GROUP_EXPANDS)
    groups = list(store.groups.values())
    if "name" in query:
        groups = [g for g in groups if g.name.lower() == query["name"].lower()]
    if (ids := _id_list(query, "ids")) is not None:
        groups = [g for g in groups if g.id in ids]
    return _list_response(query, groups, lambda group: _group_json(store, group, expand))


@routes.post("/api/v1/groups/bulk")
async def create_groups_bulk(request: web.Request) -> web.Response:
    """Create an array of groups, all or none: 201 with the created groups."""
    store = _require_writer(request)
    body = await _body(request)
    if not isinstance(body, list):
        raise StoreError(400, NOT_AN_ARRAY, "The request body must be an array of groups.")
    return _json([group.to_json() for group in store.create_groups(body)], 201)


@routes.post("/api/v1/groups")
async def create_group(request: web.Request) -> web.Response:
    """Create one group: 201 with the created group."""
    [group] = _require_writer(request).create_groups([await _body(request)])
    return _json(group.to_json(), 201)


@routes.get("/api/v1/groups/{group_id}")
async def get_group(request: web.Request) -> web.Response:
    """One group by id, with ``fields`` and ``expand``."""
    store, query = request.app[STORE], request.query
    expand = _expand(query, _GROUP_EXPANDS)
    doc = _group_json(store, store.get_group(request.match_info["group_id"]), expand)
    return _json(_project(doc, query["fields"]) if "fields" in query else doc)


@routes.delete("/api/v1/groups/{group_id}")
async def delete_group(request: web.Request) -> web.Response:
    """Delete one group (never a built-in one): 204."""
    _require_writer(request).delete_group(request.match_info["group_id"])
    return web.Response(status=204)
