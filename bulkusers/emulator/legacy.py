"""The emulator's legacy v0.9 routes: ``/api/users`` and ``/api/groups`` (sisense-api.md 4, 6.2).

They share the store's validation and error bodies with v1, but keep v0.9's own habits: users and
groups are addressed by id or name, lists take ``search``/``orderby``/``desc``, writes answer 200,
and deletes answer 200 with an empty body (which trips clients that parse JSON on every answer).
"""

from __future__ import annotations

from aiohttp import web
from multidict import MultiMapping

from bulkusers.emulator.records import (
    BUILTIN_GROUP,
    NOT_AN_ARRAY,
    Json,
    StoreError,
    UserRecord,
    object_id,
)
from bulkusers.emulator.shared import (
    CALLER,
    FAULTS,
    STORE,
    bool_param,
    empty_response,
    id_list,
    int_param,
    json_response,
    page_response,
    read_array,
    read_body,
    require_reader,
    require_writer,
)
from bulkusers.emulator.store import Store

legacy_routes = web.RouteTableDef()


def legacy_user_json(store: Store, user: UserRecord) -> Json:
    """A user as v0.9 shows it: the v1 fields plus ``roleName``, ``baseRoleName`` and the rest."""
    doc = store.user_doc(user)
    role = store.roles[user.role_id]
    # Built-in roles are their own base role; only custom roles (not emulated) differ.
    doc["roleName"], doc["baseRoleName"] = role.name, role.name
    # Documented: the v0.9 user answer carries these too ([SPEC-v09] userResponse). Its `hash`
    # is left out on purpose (inferred: whether servers filled it is unknown, and a password
    # digest has no place in an answer).
    doc.update(activeDirectory=False, adgroups=[], changePasswordState=False)
    return doc


def _order(query: MultiMapping[str]) -> list[tuple[str, bool]]:
    """The sort of ``orderby=a,b`` (fields) and ``desc=true`` (one direction for all of them)."""
    descending = bool_param(query, "desc") or False
    return [(f.strip(), descending) for f in query.get("orderby", "").split(",") if f.strip()]


def _skip_limit(query: MultiMapping[str]) -> tuple[int, int | None]:
    """``skip`` (>= 0) and ``limit``, where 0 or no limit means all (as v0.9 allDirectories)."""
    return int_param(query, "skip", 0) or 0, int_param(query, "limit", 0) or None


def _search_users(store: Store, query: MultiMapping[str]) -> list[UserRecord]:
    """Users matching ``search`` (substring of email, names, any case) and ``groups`` (any of)."""
    # Documented: `search` is a "contains" match ([SPEC-v09] /users/allDirectories; /users/count
    # says "usernames that include the query string"), and the pre-6.5 script finds a user by
    # `?search=<email>` ([KB-LEGACY]). Inferred: over email, userName, first and last name, in
    # any letter case (the spec names no fields; Sisense's admin UI search behaves so).
    users = list(store.users.values())
    if needle := query.get("search", "").strip().lower():
        users = [u for u in users
                 if any(needle in text.lower()
                        for text in (u.email, u.user_name, u.first_name, u.last_name))]
    if group_ids := id_list(query, "groups"):
        members = {u.id for g in group_ids if g in store.groups for u in store.group_members(g)}
        users = [u for u in users if u.id in members]
    return users


# -- users: fixed paths first, so "count" or "loggedin" is never taken for a user name ----------


@legacy_routes.get("/api/users")
async def list_users(request: web.Request) -> web.Response:
    """Users matching ``search``/``groups``, ordered and paged: 200 with a bare array."""
    store, query = require_reader(request), request.query
    skip, limit = _skip_limit(query)
    return page_response(_search_users(store, query), lambda u: legacy_user_json(store, u),
                         skip=skip, limit=limit, order=_order(query),
                         cap=request.app[FAULTS].page_cap)


@legacy_routes.get("/api/users/count")
async def count_users(request: web.Request) -> web.Response:
    """How many users match ``search``: ``{"collection": "users", "count": N}``."""
    users = _search_users(require_reader(request), request.query)
    return json_response({"collection": "users", "count": len(users)})


@legacy_routes.get("/api/users/loggedin")
async def logged_in_user(request: web.Request) -> web.Response:
    """The caller's own user object."""
    store = request.app[STORE]
    return json_response(legacy_user_json(store, store.users[request[CALLER]]))


@legacy_routes.post("/api/users")
async def create_users(request: web.Request) -> web.Response:
    """Create an array of users, all or none: 200 with the created user (an array for several).

    The v0.9 create rules apply: ``hash`` (md5 of the password), ``active`` as text, and
    a missing ``roleId`` makes a Viewer (see `Store.create_users`).
    """
    store = require_writer(request)
    users = store.create_users(await read_array(request, "users"), bulk=True, legacy=True)
    docs = [legacy_user_json(store, user) for user in users]
    # Documented: the answer is one user object ([SPEC-v09] addUser 200 schema). Inferred: an
    # array of them when several were created (the spec's one object cannot hold them; Sisense's
    # k6 test reads arrays, sisense-api.md section 4).
    return json_response(docs[0] if len(docs) == 1 else docs)


@legacy_routes.post("/api/users/delete")
async def delete_users(request: web.Request) -> web.Response:
    """Delete the users whose ids the body lists, all or none: 200 with an empty body."""
    store = require_writer(request)
    # Documented: a JSON array of user ids, answered 200 with no body; 404 for an unknown id
    # ([SPEC-v09] deleteUsers).
    ids = [object_id(item, "user id") for item in await read_array(request, "user ids")]
    store.delete_users(ids)
    return empty_response()


@legacy_routes.get("/api/users/{key}")
async def get_user(request: web.Request) -> web.Response:
    """One user by id, userName or email."""
    store = require_reader(request)
    return json_response(legacy_user_json(store, store.find_user(request.match_info["key"])))


@legacy_routes.put("/api/users/{key}")
@legacy_routes.patch("/api/users/{key}")
async def update_user(request: web.Request) -> web.Response:
    """Partially update a user by id, userName or email: 200 with the updated user."""
    # Documented: PUT by id or userName ([SPEC-v09] updateUser); by email too (the pre-6.5
    # script's `PUT /api/users/<email>`, [KB-LEGACY]). pysisense sends PATCH, so both methods
    # are accepted (sisense-api.md section 4). The spec gives the 200 no body schema; the
    # updated user is a guess (inferred) that clients may ignore.
    store = require_writer(request)
    user = store.find_user(request.match_info["key"])
    updated = store.update_user(user.id, await read_body(request), legacy=True)
    return json_response(legacy_user_json(store, updated))


@legacy_routes.delete("/api/users/{key}")
async def delete_user(request: web.Request) -> web.Response:
    """Delete a user by id, userName or email: 200 with an empty body."""
    store = require_writer(request)
    store.delete_users([store.find_user(request.match_info["key"]).id])
    return empty_response()


# -- groups --------------------------------------------------------------------------------------


@legacy_routes.get("/api/groups")
async def list_groups(request: web.Request) -> web.Response:
    """Groups whose name contains ``search`` (any case), ordered and paged: 200 with an array."""
    store, query = require_reader(request), request.query
    groups = list(store.groups.values())
    if needle := query.get("search", "").strip().lower():
        groups = [g for g in groups if needle in g.name.lower()]
    skip, limit = _skip_limit(query)
    return page_response(groups, lambda g: g.to_json(), skip=skip, limit=limit,
                         order=_order(query))


@legacy_routes.post("/api/groups")
async def create_groups(request: web.Request) -> web.Response:
    """Create groups from a JSON array: 200 with the created groups (all or none)."""
    store = require_writer(request)
    groups = store.create_groups(await read_array(request, "groups"))
    return json_response([g.to_json() for g in groups])


@legacy_routes.get("/api/groups/{key}")
async def get_group(request: web.Request) -> web.Response:
    """One group by id or name."""
    return json_response(require_reader(request).find_group(request.match_info["key"]).to_json())


@legacy_routes.put("/api/groups/{key}")
async def update_group(request: web.Request) -> web.Response:
    """Rename a group by id or name: 200 with no body (never a built-in group)."""
    # Documented: PUT by id or name, 200 with no response specified ([SPEC-v09] updateGroup).
    store = require_writer(request)
    store.update_group(request.match_info["key"], await read_body(request))
    return empty_response()


@legacy_routes.delete("/api/groups/{key}")
async def delete_group(request: web.Request) -> web.Response:
    """Delete a group by id or name: 200 with no body (never a built-in group)."""
    # Documented: DELETE by id or name, 200 ([SPEC-v09] deleteGroupByIdName).
    store = require_writer(request)
    store.delete_group(store.find_group(request.match_info["key"]).id)
    return empty_response()


@legacy_routes.delete("/api/groups")
async def delete_groups(request: web.Request) -> web.Response:
    """Delete the groups a JSON body lists by id or name, all or none: 200 with no body."""
    store = require_writer(request)
    body = await read_body(request)
    # Documented: the body is {"groups": [ids or names], "deleteAdUsers": bool} ([SPEC-v09]
    # deleteGroups). Inferred: a bare JSON array of ids is taken as the same list
    # (sisense-api.md section 12 describes the body as "a JSON body of ids").
    keys = body.get("groups") if isinstance(body, dict) else body
    if not isinstance(keys, list) or not keys or not all(isinstance(k, str) for k in keys):
        raise StoreError(400, NOT_AN_ARRAY, "The body must list the groups to delete.")
    groups = [store.find_group(key) for key in keys]
    for group in {g.id: g for g in groups}.values():
        if group.builtin:
            raise StoreError(400, BUILTIN_GROUP, f"Built-in group {group.name} can't be deleted.")
    for group_id in {g.id for g in groups}:
        store.delete_group(group_id)
    return empty_response()


@legacy_routes.get("/api/groups/{key}/users")
async def list_members(request: web.Request) -> web.Response:
    """The members of a group by id or name, built-in memberships derived."""
    store = require_reader(request)
    group = store.find_group(request.match_info["key"])
    return json_response([legacy_user_json(store, u) for u in store.group_members(group.id)])


@legacy_routes.post("/api/groups/{key}/users")
async def add_members(request: web.Request) -> web.Response:
    """Add the users a body array names (ids or userNames) to a group: 200 with their ids."""
    store = require_writer(request)
    users = store.change_members(request.match_info["key"], await read_body(request), add=True)
    # The spec answers "an array of strings" without saying which; the added ids are a guess.
    return json_response([user.id for user in users])


@legacy_routes.delete("/api/groups/{key}/users")
async def remove_members(request: web.Request) -> web.Response:
    """Remove the users a body array names (ids or userNames) from a group: 200, empty body."""
    store = require_writer(request)
    store.change_members(request.match_info["key"], await read_body(request), add=False)
    return empty_response()
