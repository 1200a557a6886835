"""What every route module of the emulator shares: app keys, body parsing, permissions and paging.

The v1 (`app`), auth (`auth`) and v0.9 (`legacy`) handlers all answer through these helpers, so
validation failures and list answers look the same whichever API family a client calls.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import orjson
from aiohttp import web
from multidict import MultiMapping

from bulkusers.emulator.faults import Faults, RequestRecord
from bulkusers.emulator.records import (
    INVALID_EXPAND,
    NOT_AN_ARRAY,
    READER_ROLES,
    USER_MANAGER_ROLES,
    VALIDATION,
    GroupRecord,
    Json,
    StoreError,
    UserRecord,
    object_id,
)
from bulkusers.emulator.store import Store

STORE = web.AppKey("store", Store)
FAULTS = web.AppKey("faults", Faults)
REQUESTS = web.AppKey("requests", list[RequestRecord])
CALLER = web.RequestKey("caller", str)  # id of the user the request is authenticated as

LOGIN_PATH = "/api/v1/authentication/login"
FORBIDDEN = 5003  # guess: undocumented


def _dumps(body: object) -> bytes:
    """Compact JSON with UTF-8 text as it is, as Sisense's Node server writes it (orjson: a
    page of 500 users costs the emulator a tenth of what json.dumps does, and the emulator
    shares the machine with the client it serves); json's way for what orjson refuses."""
    try:
        return orjson.dumps(body)
    except TypeError:
        return json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()


def json_response(body: object, status: int = 200) -> web.Response:
    """A JSON answer."""
    return web.Response(body=_dumps(body), status=status, content_type="application/json")


def empty_response(status: int = 200) -> web.Response:
    """An answer with no body and no content type, as Sisense gives on some v0.9 writes."""
    return web.Response(status=status)


async def read_body(request: web.Request) -> object:
    """The parsed JSON body, or 400 when it is not JSON at all."""
    try:
        return await request.json()
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise StoreError(400, VALIDATION, "The request body is not valid JSON.") from exc


async def read_array(request: web.Request, what: str) -> list[object]:
    """The parsed JSON body, which must be an array of `what`, else 400 code 2002."""
    body = await read_body(request)
    if not isinstance(body, list):
        raise StoreError(400, NOT_AN_ARRAY, f"The request body must be an array of {what}.")
    return body


def require_writer(request: web.Request) -> Store:
    """The store, once the caller is known to hold a role allowed to manage users and groups."""
    store = request.app[STORE]
    if not store.role_allows(request[CALLER], USER_MANAGER_ROLES):
        raise StoreError(403, FORBIDDEN, "Only administrators may manage users and groups.")
    return store


def require_reader(request: web.Request) -> Store:
    """The store, once the caller is known to hold a role allowed to read roles, users, groups."""
    store = request.app[STORE]
    if not store.role_allows(request[CALLER], READER_ROLES):
        raise StoreError(403, FORBIDDEN, "Only designers and administrators may read this.")
    return store


def int_param(query: MultiMapping[str], name: str, minimum: int) -> int | None:
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


def bool_param(query: MultiMapping[str], name: str) -> bool | None:
    """A ``true``/``false`` query parameter (any case), None when absent, else 400."""
    if name not in query:
        return None
    value = query[name].lower()
    if value not in ("true", "false"):
        raise StoreError(400, VALIDATION, f"{name} must be true or false")
    return value == "true"


def expand_param(query: MultiMapping[str], allowed: frozenset[str]) -> frozenset[str]:
    """The requested expansions (``a.b`` counts as ``a``); anything else is 404 code 202."""
    names = {part.strip().split(".")[0] for part in query.get("expand", "").split(",")} - {""}
    if unknown := ",".join(sorted(names - allowed)):
        raise StoreError(404, INVALID_EXPAND, f"Invalid expand: {unknown}")
    return frozenset(names)


def id_list(query: MultiMapping[str], name: str) -> set[str] | None:
    """The ids of a comma-separated id filter such as ``ids=a,b`` (each validated), or None."""
    if name not in query:
        return None
    return {object_id(i.strip(), name) for i in query[name].split(",") if i.strip()}


def _sort_key(field: str) -> Callable[[Json], tuple[bool, str]]:
    """The sort key of one sort field over JSON documents."""
    # Missing values sort last; everything compares as text, like a lenient Mongo collation.
    return lambda doc: (doc.get(field) is None, str(doc.get(field)).lower())


def projection(fields: str) -> Callable[[Json], Json]:
    """What a ``fields`` list keeps of a document: the names listed (``_id`` always kept),
    without those listed as ``-name``. Read once per request, applied to every document."""
    names = [f.strip() for f in fields.split(",") if f.strip()]
    keep = {n for n in names if not n.startswith("-")}
    drop = {n[1:] for n in names if n.startswith("-")}
    if keep:
        keep = (keep | {"_id"}) - drop
        return lambda doc: {k: v for k, v in doc.items() if k in keep}
    return lambda doc: {k: v for k, v in doc.items() if k not in drop}


def project(doc: Json, fields: str) -> Json:
    """Apply a ``fields`` list to one document (see ``projection``)."""
    return projection(fields)(doc)


def page_response(items: Sequence[Any], to_json: Callable[[Any], Json], *, skip: int,
                  limit: int | None, order: Sequence[tuple[str, bool]] = (),
                  fields: str = "", cap: int | None = None) -> web.Response:
    """Sort by `order` ((field, descending) pairs, most significant first), page and project;
    a page holds at most ``cap`` items whatever `limit` asks (``Faults.page_cap``)."""
    if cap is not None:
        limit = cap if limit is None else min(limit, cap)
    end = None if limit is None else skip + limit
    if order:
        docs = [to_json(item) for item in items]
        for field, descending in reversed(order):
            docs.sort(key=_sort_key(field), reverse=descending)
        docs = docs[skip:end]
    else:  # converting only the page keeps big unsorted listings cheap
        docs = [to_json(item) for item in items[skip:end]]
    if fields:
        projected = projection(fields)
        docs = [projected(doc) for doc in docs]
    return json_response(docs)


def user_json(store: Store, user: UserRecord, expand: Iterable[str] = ()) -> Json:
    """A user's v1 JSON with ``groups`` and ``role`` expanded when asked for."""
    doc = store.user_doc(user)
    if "groups" in expand:
        doc["groups"] = [{"_id": g, "name": store.groups[g].name} for g in doc["groups"]]
    if "role" in expand:
        doc["role"] = store.roles[user.role_id].to_json()
    return doc


def group_json(store: Store, group: GroupRecord, expand: Iterable[str] = ()) -> Json:
    """A group's JSON with its members (built-in memberships derived) when asked for."""
    doc = group.to_json()
    if "users" in expand:
        doc["users"] = [store.user_doc(u) for u in store.group_members(group.id)]
    return doc
