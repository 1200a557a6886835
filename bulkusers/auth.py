"""Credentials to request headers: Bearer token, v1 login with one re-login, legacy x-api-key JWT.

Every authenticator builds its credential once and reuses it for every request (a fresh JWT per
request costs about a quarter of the throughput); only a 401 makes it build a new one, at most
once per credential generation, however many requests saw the 401 at the same time.
"""

from __future__ import annotations

import asyncio
import json
import time
import warnings
from collections.abc import Mapping
from typing import Protocol

import aiohttp
import jwt
from jwt.warnings import InsecureKeyLengthWarning

from bulkusers.answers import describe_answer
from bulkusers.config import Connection, Secret
from bulkusers.errors import (
    RETRYABLE_STATUSES,
    AuthError,
    ConfigError,
    ServerUnavailable,
    TransientApiError,
)
from bulkusers.network import log_answer, unreachable_message
from bulkusers.words import flag

LOGIN_PATH = "/api/v1/authentication/login"


class Authenticator(Protocol):
    """Gives the headers that authenticate a request, and renews them after a 401."""

    generation: int

    async def headers(self, session: aiohttp.ClientSession) -> Mapping[str, str]:
        """Headers to add to the next request."""
        ...

    async def renew(self, session: aiohttp.ClientSession, seen_generation: int) -> bool:
        """Get a fresh credential after a 401; False when there is no way to get one."""
        ...

    def still_refused(self, status: int) -> str:
        """Why a fresh credential was refused too (HTTP ``status``), and what to check."""
        ...


class BearerAuth:
    """A fixed API token sent as ``Authorization: Bearer``; a 401 cannot be cured."""

    def __init__(self, token: Secret) -> None:
        self._headers = {"Authorization": f"Bearer {token.reveal()}"}
        self.generation = 0

    async def headers(self, session: aiohttp.ClientSession) -> Mapping[str, str]:
        """The same header for every request."""
        return self._headers

    async def renew(self, session: aiohttp.ClientSession, seen_generation: int) -> bool:
        """A fixed token cannot be renewed."""
        return False

    def still_refused(self, status: int) -> str:
        """Never asked: a fixed token is not renewed."""
        return f"the server refuses the token (HTTP {status})"


class _RenewingAuth:
    """Shared machinery: one credential at a time, renewed once per generation under a lock."""

    def __init__(self) -> None:
        self.generation = 0
        self._headers: Mapping[str, str] | None = None
        self._lock = asyncio.Lock()
        # Once the server refuses our credentials, every later caller gets the same answer:
        # one refused login, not one per request in flight (that could lock the account).
        self._refused: AuthError | None = None

    async def _obtain(self, session: aiohttp.ClientSession) -> Mapping[str, str]:
        raise NotImplementedError

    async def _obtain_once(self, session: aiohttp.ClientSession) -> Mapping[str, str]:
        if self._refused is not None:
            raise self._refused
        try:
            return await self._obtain(session)
        except AuthError as exc:
            self._refused = exc
            raise

    async def headers(self, session: aiohttp.ClientSession) -> Mapping[str, str]:
        """The current credential's headers, obtained on first use."""
        if self._headers is None:
            async with self._lock:
                if self._headers is None:
                    self._headers = await self._obtain_once(session)
                    self.generation += 1
        return self._headers

    async def renew(self, session: aiohttp.ClientSession, seen_generation: int) -> bool:
        """Obtain a new credential unless another request already did since the 401."""
        async with self._lock:
            if self._refused is not None:
                raise self._refused
            if self.generation == seen_generation:
                self._headers = await self._obtain_once(session)
                self.generation += 1
        return True


class LoginAuth(_RenewingAuth):
    """Username and password exchanged at ``/api/v1/authentication/login`` for a Bearer token."""

    def __init__(self, base_url: str, username: str, password: Secret) -> None:
        super().__init__()
        self._url = base_url + LOGIN_PATH
        self._username = username
        self._password = password

    async def _obtain(self, session: aiohttp.ClientSession) -> Mapping[str, str]:
        form = {"username": self._username, "password": self._password.reveal()}
        started = time.perf_counter()
        try:
            # A session of its own (the same connections): the run's session carries the
            # credential being replaced in its default headers, which a login must not send.
            async with aiohttp.ClientSession(connector=session.connector, connector_owner=False,
                                             timeout=session.timeout,
                                             headers={"Accept": "application/json"}) as login, \
                    login.post(self._url, data=form) as response:
                raw = await response.read()
                status, reason = response.status, response.reason or ""
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise ServerUnavailable(unreachable_message(self._url, exc)) from None
        # The login is a request like any other for --debug (never its form: the password).
        log_answer("POST", LOGIN_PATH, "", status, started)
        if status in (401, 403):
            raise AuthError(f"the server refused the login of {self._username!r} (HTTP {status});"
                            " check the username and password")
        if status in RETRYABLE_STATUSES:
            # A gateway's or a busy server's answer, as to any request: the request that
            # needed the login retries it with the usual backoff (its Retry-After unread: no
            # gate is held), rather than taking it for a wrong --url.
            raise TransientApiError(status, None, describe_answer(status, reason, raw),
                                    method="POST", path=LOGIN_PATH)
        token = _access_token(raw)
        if status != 200 or token is None:
            raise ServerUnavailable(f"{self._url} answered HTTP {status} without an access "
                                    f"token; is {flag('--url')} the address of a Sisense "
                                    "server?")
        return {"Authorization": f"Bearer {token}"}

    def still_refused(self, status: int) -> str:
        """A login the server accepted, whose token it then refuses."""
        return (f"the server still refuses the credentials after a fresh login (HTTP {status});"
                " check the account")


def _access_token(raw: bytes) -> str | None:
    try:
        body = json.loads(raw)
    except ValueError:
        return None
    token = body.get("access_token") if isinstance(body, dict) else None
    return token if isinstance(token, str) and token else None


class LegacyJwtAuth(_RenewingAuth):
    """Pre-6.5 scheme: an HS256 JWT of ``iat``, ``email``, ``password`` in ``x-api-key``."""

    def __init__(self, secret: Secret, email: str, password: Secret) -> None:
        super().__init__()
        self._secret = secret
        self._email = email
        self._password = password

    async def _obtain(self, session: aiohttp.ClientSession) -> Mapping[str, str]:
        claims = {"iat": int(time.time()), "email": self._email,
                  "password": self._password.reveal()}
        with warnings.catch_warnings():
            # The secret is Sisense's, not ours to lengthen: PyJWT's length advice is noise.
            warnings.simplefilter("ignore", InsecureKeyLengthWarning)
            token = jwt.encode(claims, self._secret.reveal(), algorithm="HS256")
        return {"x-api-key": token}

    def still_refused(self, status: int) -> str:
        """A freshly signed JWT refused: the secret, the email or the password is wrong."""
        return (f"the server refuses the x-api-key JWT signed for {self._email!r} (HTTP "
                f"{status}); check {flag('--api-secret')} (the REST API token on the "
                f"server's ADMIN > REST API page), {flag('--username')} and "
                f"{flag('--password')}")


def make_authenticator(connection: Connection) -> Authenticator:
    """The authenticator the connection's options ask for."""
    if connection.api == "legacy" and connection.api_secret is not None:
        if connection.username is None or connection.password is None:
            raise ConfigError(f"the legacy x-api-key scheme needs {flag('--username')} and "
                              f"{flag('--password')}")
        return LegacyJwtAuth(connection.api_secret, connection.username, connection.password)
    if connection.token is not None:
        return BearerAuth(connection.token)
    if connection.username is None or connection.password is None:
        raise ConfigError(f"no credentials: pass {flag('--token')}, or {flag('--username')} "
                          f"and {flag('--password')}")
    return LoginAuth(connection.url, connection.username, connection.password)
