"""The emulator's authentication: bearer tokens, the legacy ``x-api-key`` and the auth routes.

Login issues bearer tokens; logout, logout-all and the admin revocation endpoints forget them
(sisense-api.md section 2.2). Pre-6.5 servers authenticated v0.9 calls with an ``x-api-key`` header
holding an HS256 JWT of an admin's email and password instead (section 2.5); the emulator accepts
it on the v0.9 paths (``/api/...`` outside ``/api/v1``) when `Store.api_secret` is set, alongside
bearer tokens, and only while its ``iat`` is younger than `Store.legacy_max_age_s`.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import unquote

from aiohttp import web
from aiohttp.typedefs import Handler

from bulkusers.emulator.records import VALIDATION, StoreError
from bulkusers.emulator.shared import (
    CALLER,
    LOGIN_PATH,
    STORE,
    empty_response,
    json_response,
    read_body,
    require_writer,
    user_json,
)

INVALID_TOKEN = 5002  # pysisense's example (sisense-api.md section 2.4), unverified
INVALID_CREDENTIALS = 5001  # guess: undocumented
API_KEY_HEADER = "x-api-key"
V1_PREFIX = "/api/v1/"
ADMIN_PATH = "/api/v1/authentication/admin"
auth_routes = web.RouteTableDef()


def bearer_token(request: web.Request) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header, or None."""
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    return (token.strip() or None) if scheme.lower() == "bearer" else None


def _authenticate(request: web.Request) -> str:
    """The id of the user a request speaks for, else 401 with the Sisense error body."""
    store = request.app[STORE]
    token = bearer_token(request)
    user_id = store.token_user(token) if token else None
    if user_id is None and API_KEY_HEADER in request.headers:
        if request.path.startswith(V1_PREFIX):
            # Documented: the x-api-key scheme belongs to the v0.9 paths of pre-6.5 servers
            # ([KB-LEGACY]; sisense-api.md sections 2.5 and 12), which had no /api/v1 at all.
            raise StoreError(401, INVALID_TOKEN, "x-api-key is accepted on v0.9 paths only.")
        # Clients URL-encode the JWT (quote_plus) before putting it in the header.
        user_id = store.api_key_user(unquote(request.headers[API_KEY_HEADER].strip()))
        if user_id is None:
            # Deliberately vague: the key carries a clear-text password, never echo any of it.
            # A bad signature, a stale `iat` or wrong credentials all get this one answer;
            # 401 is itself inferred (sisense-api.md 2.5: no source documents the status).
            raise StoreError(401, INVALID_TOKEN, "Invalid or expired API key.")
    if user_id is None:
        raise StoreError(401, INVALID_TOKEN, "Invalid token.")
    return user_id


@web.middleware
async def auth_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Require a known bearer token or a valid ``x-api-key`` on every API path except login."""
    if request.path.startswith("/api/") and request.path.rstrip("/") != LOGIN_PATH:
        request[CALLER] = _authenticate(request)
    return await handler(request)


def _listed_users(request: web.Request) -> list[str]:
    """The user ids of the ``users=id1,id2`` query parameter; 400 when there are none."""
    ids = [i.strip() for i in request.query.get("users", "").split(",") if i.strip()]
    if not ids:
        raise StoreError(400, VALIDATION, "users is required")
    return ids


@auth_routes.post(LOGIN_PATH)
async def login(request: web.Request) -> web.Response:
    """Log in with form-urlencoded or JSON ``username`` and ``password``; issue a bearer token."""
    if request.content_type == "application/json":
        body = await read_body(request)
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
    profile = user_json(store, user)
    profile["roleName"] = store.role_name_of(user.id)
    return json_response({"success": True, "message": "", "access_token": token,
                          "profile": profile, "userId": user.id})


@auth_routes.get("/api/v1/authentication/logout")
async def logout(request: web.Request) -> web.Response:
    """Revoke the bearer token this request was made with (an ``x-api-key`` has none)."""
    if (token := bearer_token(request)) is not None:
        request.app[STORE].revoke_token(token)
    return json_response({})


@auth_routes.get("/api/v1/authentication/logout_all")
async def logout_all(request: web.Request) -> web.Response:
    """Revoke every token of the caller."""
    request.app[STORE].revoke_tokens(request[CALLER])
    return empty_response(204)


@auth_routes.post(f"{ADMIN_PATH}/logout_all_users")
async def logout_all_users(request: web.Request) -> web.Response:
    """Admin: revoke every token of every user, the settings' fixed token included."""
    store = require_writer(request)
    store.revoke_user_tokens(list(store.users))
    return empty_response(204)


@auth_routes.get(f"{ADMIN_PATH}/logout")
async def admin_logout(request: web.Request) -> web.Response:
    """Admin: revoke every token of the users listed in ``users``, all or none: 204."""
    require_writer(request).revoke_user_tokens(_listed_users(request))
    return empty_response(204)


@auth_routes.delete(ADMIN_PATH + "/tokens/{kind:api|odbc|sso}")
async def admin_revoke_tokens(request: web.Request) -> web.Response:
    """Admin: revoke one kind of token of the users listed in ``users``, all or none: 204."""
    store = require_writer(request)
    ids = _listed_users(request)
    if request.match_info["kind"] == "api":
        # Every token the emulator issues (login or the settings' fixed one) is an API token.
        store.revoke_user_tokens(ids)
    else:
        # The emulator issues no ODBC or SSO tokens: only the user ids are checked.
        for user_id in ids:
            store.get_user(user_id)
    return empty_response(204)
