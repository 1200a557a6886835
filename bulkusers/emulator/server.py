"""Build the emulator application from settings and run it on a local port.

`create_app` wires the store, the faults and the request log into an aiohttp application;
`running_emulator` serves it for the length of an ``async with`` (tests, the demo) and
`serve_forever` until cancelled (the ``bulkusers emulator`` command).
"""

from __future__ import annotations

import asyncio
import random
import re
import ssl
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from aiohttp import web

from bulkusers.emulator.app import routes
from bulkusers.emulator.auth import auth_middleware, auth_routes
from bulkusers.emulator.capacity import Capacity
from bulkusers.emulator.faults import (
    Faults,
    RequestRecord,
    error_middleware,
    request_log_middleware,
)
from bulkusers.emulator.legacy import legacy_routes
from bulkusers.emulator.records import (
    BUILTIN_GROUPS,
    EMAIL,
    UserRecord,
    hash_password,
    identity,
    iso,
)
from bulkusers.emulator.shared import FAULTS, LOGIN_PATH, REQUESTS, STORE
from bulkusers.emulator.store import Store
from bulkusers.frozen import frozen

_WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
_FIRST = ("Olivia", "Liam", "Emma", "Noah", "Ava", "Elijah", "Sophia", "Lucas", "Mia", "Mateo",
          "Amelia", "Hiroshi", "Aisha", "Chen", "Fatima", "Lars", "Ingrid", "José", "Zoë", "Ravi")
_LAST = ("Smith", "Johnson", "García", "Müller", "Rossi", "Nguyen", "Kowalski", "Okafor", "Silva",
         "Tanaka", "Dubois", "O'Brien", "Jensen", "Patel", "Kim", "Novak", "Haddad", "Larsen")
_GENERATED = re.compile(r"user([0-9]{4,})@example\.com")


@frozen
class EmulatorSettings:
    """What the emulator starts with: credentials, seeded directory and fault knobs."""

    token: str | None = None  # fixed Bearer token accepted as the super admin
    admin_email: str = "admin@example.com"
    admin_password: str = "Admin-Pass-1"
    users: int = 0  # generated viewers, user0001@example.com onwards
    groups: tuple[str, ...] = ()  # extra groups besides the built-in ones
    latency_ms: float = 0.0
    error_rate: float = 0.0  # fraction of requests answered 503
    max_inflight: int | None = None  # requests beyond this many in flight get 429
    retry_after_s: float = 1.0  # Retry-After of those 429 answers
    capacity: int | None = None  # requests served at once; the rest queue (None: no queue)
    queue_limit: int | None = None  # queued requests beyond this many get 503 (None: no limit)
    gateway_timeout_s: float | None = 60.0  # a request queued this long gets 504
    seed: int = 0
    api_secret: str | None = None  # enables the pre-6.5 x-api-key JWT scheme with this secret
    legacy_max_age_s: float = 300.0  # oldest x-api-key `iat` accepted (the scheme wants it fresh)
    token_ttl_s: float | None = None  # issued bearer tokens (the fixed one too) expire after this
    list_everyone: bool = False  # whether a user's `groups` lists the built-in Everyone group
    page_cap: int | None = None  # at most this many items per page of a list, whatever `limit`


class SettingsError(ValueError):
    """Settings the emulator cannot start with; the message names the option and what to do."""


def generated_email(n: int) -> str:
    """The email of the n-th generated user (``--users``), from 1."""
    return f"user{n:04d}@example.com"


def check_settings(settings: EmulatorSettings) -> None:
    """Refuse (SettingsError) settings whose seeded directory the API's own rules would refuse.

    Seeding bypasses the checks the API makes on every write, so what they guard is checked
    here, before anything starts: otherwise a repeated or built-in group name fails half-way
    as a StoreError, and an admin email shared with a generated user starts an emulator whose
    admin cannot log in.
    """
    for problem in (_groups_problem(settings.groups), _admin_problem(settings)):
        if problem is not None:
            raise SettingsError(problem)


def _groups_problem(names: tuple[str, ...]) -> str | None:
    """What is wrong with the extra group names (blank, built in, repeated), or None."""
    builtin = {name.lower(): name for name in BUILTIN_GROUPS}
    seen: dict[str, str] = {}
    for name in names:
        key = name.lower()  # the store's uniqueness rule for group names
        if not name.strip():
            return "--groups: a group name is blank; give names separated by commas"
        if key in builtin:
            return (f"--groups: {name!r} names the built-in group {builtin[key]}, which "
                    "the emulator always has; leave it out of --groups")
        if key in seen:
            return (f"--groups: {name!r} repeats {seen[key]!r} (group names ignore "
                    "case); give each group once")
        seen[key] = name
    return None


def _admin_problem(settings: EmulatorSettings) -> str | None:
    """What is wrong with the admin email (not an email, a generated user's), or None."""
    email = settings.admin_email
    if not EMAIL.match(email):
        return (f"--admin-email {email!r} is not an email address the emulator accepts; "
                "give one such as admin@example.com")
    if 1 <= _generated_number(email) <= settings.users:
        return (f"--admin-email {email!r} is also a generated user's email (--users "
                f"{settings.users} seeds {generated_email(1)} to "
                f"{generated_email(settings.users)}); choose another --admin-email")
    return None


def _generated_number(email: str) -> int:
    """The number of the generated user who would have this email (any case), or 0."""
    found = _GENERATED.fullmatch(identity(email))
    return int(found[1]) if found and generated_email(int(found[1])) == found[0] else 0


def seed_store(store: Store, settings: EmulatorSettings) -> UserRecord:
    """Fill a fresh store: the super user, the extra groups, the generated users; return super."""
    admin = UserRecord(store.new_id(), settings.admin_email, "admin",
                       store.role_ids["super"], store.tenant_id, store.now(), "System",
                       "Administrator", password_hash=hash_password(settings.admin_password),
                       active=True)
    store.insert_user(admin)
    extra = [g.id for g in store.create_groups([{"name": name} for name in settings.groups])]
    # Generated users look like a lived-in directory: activated (no known password), created
    # over a year, most with a last login, some in one or two of the extra groups.
    rng = random.Random(settings.seed)
    viewer = store.role_ids["consumer"]
    start = datetime(2023, 1, 2, 8, 0, tzinfo=UTC)
    for n in range(1, settings.users + 1):
        created = start + timedelta(minutes=rng.randrange(525_600))
        login = created + timedelta(hours=rng.randrange(1, 9000))
        email = generated_email(n)
        store.insert_user(UserRecord(
            store.new_id(), email, email, viewer, store.tenant_id, iso(created),
            rng.choice(_FIRST), rng.choice(_LAST),
            groups=rng.sample(extra, rng.randint(0, min(2, len(extra)))), active=True,
            last_login=iso(login) if rng.random() < 0.8 else None, last_updated=iso(created)))
    return admin


def create_app(settings: EmulatorSettings | None = None) -> web.Application:
    """An aiohttp application emulating Sisense, seeded and faulted as `settings` say."""
    settings = settings or EmulatorSettings()
    check_settings(settings)
    store = Store(seed=settings.seed)
    store.api_secret = settings.api_secret
    store.legacy_max_age_s = settings.legacy_max_age_s
    store.token_ttl_s = settings.token_ttl_s
    store.list_everyone = settings.list_everyone
    admin = seed_store(store, settings)
    if settings.token is not None:
        store.issue_token(admin.id, fixed=settings.token)
    faults = Faults(latency_ms=settings.latency_ms, error_rate=settings.error_rate,
                    max_inflight=settings.max_inflight, retry_after_s=settings.retry_after_s,
                    seed=settings.seed)
    faults.page_cap = settings.page_cap
    if settings.capacity is not None:
        faults.capacity = Capacity(settings.capacity, queue_limit=settings.queue_limit,
                                   gateway_timeout_s=settings.gateway_timeout_s)
    requests: list[RequestRecord] = []
    # Outermost first: the log sees every final status, faults hit before authentication.
    app = web.Application(middlewares=[request_log_middleware(requests), error_middleware,
                                       faults.middleware, auth_middleware])
    app[STORE], app[FAULTS], app[REQUESTS] = store, faults, requests
    tables = (auth_routes, routes, legacy_routes)
    for table in tables:
        app.add_routes(table)
    # Sisense's router accepts a trailing slash on every path (inferred: an Express router,
    # non-strict by default), and clients that build URLs by joining segments send one. The
    # copies are added after all the originals, in the same order, so that fixed paths such as
    # /api/users/count/ still win over /api/users/{key}/.
    for table in tables:
        for route in table:
            if isinstance(route, web.RouteDef) and not route.path.endswith("/"):
                app.router.add_route(route.method, route.path + "/", route.handler)
    return app


@dataclass
class Emulator:
    """A running emulator: its base URL and live handles on its state."""

    url: str
    app: web.Application
    store: Store
    faults: Faults
    requests: list[RequestRecord]

    def writes(self) -> list[RequestRecord]:
        """The write requests received so far (POST, PUT, PATCH, DELETE), login excluded."""
        return [r for r in self.requests if r.method in _WRITE_METHODS and r.path != LOGIN_PATH]


@asynccontextmanager
async def running_emulator(settings: EmulatorSettings | None = None, host: str = "127.0.0.1",
                           port: int = 0,
                           ssl_context: ssl.SSLContext | None = None) -> AsyncIterator[Emulator]:
    """Serve the emulator on host:port (0 picks a free port) for the body of the block.

    With ``ssl_context`` it serves HTTPS (for rehearsing certificate checks) and its URL says so.
    """
    app = create_app(settings)
    # A short shutdown grace: tests end with clients gone, and a stuck one must not stall them.
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
    await runner.setup()
    try:
        await web.TCPSite(runner, host, port, ssl_context=ssl_context).start()
        bound_port = runner.addresses[0][1]
        shown = f"[{host}]" if ":" in host else host
        scheme = "https" if ssl_context is not None else "http"
        yield Emulator(f"{scheme}://{shown}:{bound_port}", app, app[STORE], app[FAULTS],
                       app[REQUESTS])
    finally:
        await runner.cleanup()


async def serve_forever(settings: EmulatorSettings, host: str, port: int,
                        on_ready: Callable[[str], None],
                        ssl_context: ssl.SSLContext | None = None) -> None:
    """Serve the emulator until cancelled, calling `on_ready(url)` once it listens."""
    async with running_emulator(settings, host, port, ssl_context) as emulator:
        on_ready(emulator.url)
        await asyncio.Event().wait()  # only cancellation ends this
