"""The emulator's v1 HTTP surface: roles and the ``/api/v1`` user and group routes (aiohttp.web).

Handlers translate HTTP to `Store` calls and back; every rule about users and groups lives in the
store. List endpoints share one query pipeline: filter, expand, sort, page, project `fields`.
Authentication lives in `auth`, the v0.9 routes in `legacy`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from aiohttp import web
from multidict import MultiMapping

from bulkusers.emulator.records import (
    ROLE_NOT_FOUND,
    VALIDATION,
    Json,
    StoreError,
    UserRecord,
    object_id,
)
from bulkusers.emulator.shared import (
    FAULTS,
    bool_param,
    empty_response,
    expand_param,
    group_json,
    id_list,
    int_param,
    json_response,
    page_response,
    project,
    read_array,
    read_body,
    require_reader,
    require_writer,
    user_json,
)
from bulkusers.emulator.store import Store

routes = web.RouteTableDef()


def _list_response(request: web.Request, items: list[Any],
                   to_json: Callable[[Any], Json]) -> web.Response:
    """Sort (``sort=a,-b``), page (``skip``, ``limit``) and project (``fields``) `items`."""
    query = request.query
    sort = [f.strip() for f in query.get("sort", "").split(",") if f.strip()]
    return page_response(items, to_json, skip=int_param(query, "skip", 0) or 0,
                         limit=int_param(query, "limit", 1),
                         order=[(f.lstrip("-+"), f.startswith("-")) for f in sort],
                         fields=query.get("fields", ""), cap=request.app[FAULTS].page_cap)


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
    if (active := bool_param(query, "active")) is not None:
        users = [u for u in users if u.active == active]
    if "origin" in query:
        if query["origin"] not in ("sisense", "ad"):
            raise StoreError(400, VALIDATION, "origin must be 'sisense' or 'ad'")
        users = users if query["origin"] == "sisense" else []
    if (ids := id_list(query, "ids")) is not None:
        users = [u for u in users if u.id in ids]
    return users


# -- roles ---------------------------------------------------------------------------------------


@routes.get("/api/roles")
async def list_roles(request: web.Request) -> web.Response:
    """All built-in roles (the v0.9 endpoint every client uses); Viewers get 403."""
    # Documented: x-permission-type designers-and-admins-only ([SPEC-v09] /roles).
    return json_response([role.to_json() for role in require_reader(request).roles.values()])


@routes.get("/api/roles/{id_or_name}")
async def get_role(request: web.Request) -> web.Response:
    """One role by id or API name (case-insensitive)."""
    wanted = request.match_info["id_or_name"].lower()
    for role in require_reader(request).roles.values():
        if wanted in (role.id, role.name.lower()):
            return json_response(role.to_json())
    raise StoreError(404, ROLE_NOT_FOUND, "Role not found", resourceType="role",
                     resourceName=request.match_info["id_or_name"])


# -- users ---------------------------------------------------------------------------------------

_USER_EXPANDS = frozenset({"groups", "adgroups", "role"})


@routes.get("/api/v1/users")
async def list_users(request: web.Request) -> web.Response:
    """Users as a bare array, filtered, sorted, paged and projected as the query asks."""
    store, query = require_reader(request), request.query
    expand = expand_param(query, _USER_EXPANDS)
    users = _select_users(store, query)
    return _list_response(request, users, lambda user: user_json(store, user, expand))


@routes.post("/api/v1/users/bulk")
async def create_users_bulk(request: web.Request) -> web.Response:
    """Create an array of users, all or none: 201 with the created users."""
    store = require_writer(request)
    users = store.create_users(await read_array(request, "users"), bulk=True)
    return json_response([user_json(store, user) for user in users], 201)


@routes.delete("/api/v1/users/bulk")
async def delete_users_bulk(request: web.Request) -> web.Response:
    """Delete the users listed in ``ids``, all or none: 204."""
    store = require_writer(request)
    ids = [i.strip() for i in request.query.get("ids", "").split(",") if i.strip()]
    if not ids:
        raise StoreError(400, VALIDATION, "ids is required")
    store.delete_users(ids)
    return empty_response(204)


@routes.post("/api/v1/users")
async def create_user(request: web.Request) -> web.Response:
    """Create one user: 201 with the created user."""
    store = require_writer(request)
    [user] = store.create_users([await read_body(request)], bulk=False)
    return json_response(user_json(store, user), 201)


@routes.get("/api/v1/users/{user_id}")
async def get_user(request: web.Request) -> web.Response:
    """One user by id, with ``fields`` and ``expand``."""
    store, query = require_reader(request), request.query
    expand = expand_param(query, _USER_EXPANDS)
    doc = user_json(store, store.get_user(request.match_info["user_id"]), expand)
    return json_response(project(doc, query["fields"]) if "fields" in query else doc)


@routes.patch("/api/v1/users/{user_id}")
async def update_user(request: web.Request) -> web.Response:
    """Partially update one user: 200 with the updated user."""
    store = require_writer(request)
    user = store.update_user(request.match_info["user_id"], await read_body(request))
    return json_response(user_json(store, user))


@routes.delete("/api/v1/users/{user_id}")
async def delete_user(request: web.Request) -> web.Response:
    """Delete one user: 204 with an empty body."""
    require_writer(request).delete_users([request.match_info["user_id"]])
    return empty_response(204)


# -- groups --------------------------------------------------------------------------------------

_GROUP_EXPANDS = frozenset({"users", "role"})


@routes.get("/api/v1/groups")
async def list_groups(request: web.Request) -> web.Response:
    """Groups as a bare array; ``expand=users`` lists members, built-in memberships included."""
    store, query = require_reader(request), request.query
    expand = expand_param(query, _GROUP_EXPANDS)
    groups = list(store.groups.values())
    if "name" in query:
        groups = [g for g in groups if g.name.lower() == query["name"].lower()]
    if (ids := id_list(query, "ids")) is not None:
        groups = [g for g in groups if g.id in ids]
    return _list_response(request, groups, lambda group: group_json(store, group, expand))


@routes.post("/api/v1/groups/bulk")
async def create_groups_bulk(request: web.Request) -> web.Response:
    """Create an array of groups, all or none: 201 with the created groups."""
    store = require_writer(request)
    groups = store.create_groups(await read_array(request, "groups"))
    return json_response([group.to_json() for group in groups], 201)


@routes.post("/api/v1/groups")
async def create_group(request: web.Request) -> web.Response:
    """Create one group: 201 with the created group."""
    [group] = require_writer(request).create_groups([await read_body(request)])
    return json_response(group.to_json(), 201)


@routes.get("/api/v1/groups/{group_id}")
async def get_group(request: web.Request) -> web.Response:
    """One group by id, with ``fields`` and ``expand``."""
    store, query = require_reader(request), request.query
    expand = expand_param(query, _GROUP_EXPANDS)
    doc = group_json(store, store.get_group(request.match_info["group_id"]), expand)
    return json_response(project(doc, query["fields"]) if "fields" in query else doc)


@routes.delete("/api/v1/groups/{group_id}")
async def delete_group(request: web.Request) -> web.Response:
    """Delete one group (never a built-in one): 204."""
    require_writer(request).delete_group(request.match_info["group_id"])
    return empty_response(204)
