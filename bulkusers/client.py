"""``SisenseClient``: one aiohttp session, authentication, retries and typed user-API calls."""

from __future__ import annotations

import asyncio
import logging
import ssl
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from types import TracebackType

import aiohttp
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception,
    stop_after_attempt,
    stop_after_delay,
    wait_exponential_jitter,
)

from bulkusers.answers import JSON, encode_body, read_answer
from bulkusers.auth import Authenticator, make_authenticator
from bulkusers.concurrency import ConcurrencyLimit, Overload
from bulkusers.config import Connection, RetryPolicy
from bulkusers.deadlines import Deadlines
from bulkusers.errors import (
    ApiError,
    AuthError,
    ServerUnavailable,
    TransientApiError,
)
from bulkusers.limiter import RateLimiter, RequestGate
from bulkusers.network import (
    describe_network_error,
    http_log,
    is_retryable,
    log_answer,
    may_have_landed,
    unreachable_message,
)
from bulkusers.words import flag, said

#: The content type of every request body bulkusers sends.
JSON_TYPE = "application/json"

log = http_log


@dataclass(slots=True)
class Trace:
    """What a row's calls cost: the most tries one request needed, and the last status."""

    attempts: int = 0
    http_status: int | None = None
    #: Some attempt failed in a way that leaves its effect unknown (see ``may_have_landed``):
    #: the server may have carried it out although no answer said so.
    unsure: bool = False
    #: An attempt is past the gate and unanswered: the server may be working on it (a
    #: request cancelled now would still occupy the server until it is done).
    in_flight: bool = False


@dataclass(slots=True)
class ClientStats:
    """Counters for the run summary."""

    requests: int = 0
    retries: int = 0


#: The requests sent through the gate are limited by ``Deadlines`` (one watchdog), not by a
#: timer of aiohttp's per request; the session's own limit still holds for the others.
_KEPT_BY_DEADLINES = aiohttp.ClientTimeout(total=None)

_OVERLOADS: dict[int, Overload] = {429: "429", 502: "502", 503: "503", 504: "504"}


class _RetryWait:
    """Honour ``Retry-After`` when the server sent one, else exponential backoff with jitter."""

    def __init__(self, policy: RetryPolicy) -> None:
        self._backoff = wait_exponential_jitter(multiplier=policy.initial_wait_s,
                                                max=policy.max_wait_s)
        self._cap = policy.max_wait_s

    def __call__(self, state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        if isinstance(exc, TransientApiError) and exc.retry_after is not None:
            return 0.0  # the gate pauses the whole run once; the retry waits at the gate
        return float(self._backoff(state))


def _log_retry(state: RetryCallState) -> None:
    exc = state.outcome.exception() if state.outcome else None
    reason = exc.describe() if isinstance(exc, ApiError) else describe_network_error(exc) \
        if exc else "?"
    wait = state.next_action.sleep if state.next_action else 0.0
    log.debug("retrying after %s in %.1f s (attempt %d failed)", reason, wait,
              state.attempt_number)


class SisenseClient:
    """Typed calls to the Sisense user API over one session, with retries and re-login."""

    def __init__(self, connection: Connection, policy: RetryPolicy | None = None, *,
                 max_connections: int = 16, concurrency: ConcurrencyLimit | None = None,
                 authenticator: Authenticator | None = None,
                 sleep: Callable[[float], Awaitable[None]] = asyncio.sleep) -> None:
        self.connection = connection
        self.policy = policy or RetryPolicy()
        self.stats = ClientStats()
        self._auth = authenticator or make_authenticator(connection)
        # Without a limit of its own: at most max_connections at once, backing off on overload.
        concurrency = concurrency or ConcurrencyLimit(max_connections, fixed=True)
        self._max_connections = concurrency.maximum
        self._session: aiohttp.ClientSession | None = None
        self._sleep = sleep
        self._pace = RateLimiter(self.policy.max_rate) if self.policy.max_rate else None
        self.gate = RequestGate(concurrency, sleep=sleep)
        self._deadlines = Deadlines(self.policy.timeout_s)
        #: The generation of the credential in the session's default headers (-1: none).
        self._applied = -1

    async def __aenter__(self) -> SisenseClient:
        ssl_context: ssl.SSLContext | bool = True
        if not self.connection.verify_tls:
            ssl_context = False
        elif self.connection.ca_bundle is not None:
            ssl_context = ssl.create_default_context(cafile=str(self.connection.ca_bundle))
        connector = aiohttp.TCPConnector(limit=self._max_connections, ssl=ssl_context)
        self._session = aiohttp.ClientSession(
            connector=connector,
            timeout=aiohttp.ClientTimeout(total=self.policy.timeout_s),
            headers={"Accept": "application/json"},
            raise_for_status=False,
        )
        self._deadlines.start()
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        self.gate.close()
        try:
            await self._deadlines.stop()
        finally:  # also when cancelled meanwhile: the session is closed all the same
            if self._session is not None:
                await self._session.close()
                self._session = None

    def hold_for_reads(self) -> None:
        """Pages of users follow: an adaptive limit holds a few in flight (``hold``) until
        the run relearns the latency."""
        self.gate.limit.hold()
        self.gate.refresh()

    def relearn_latency(self) -> None:
        """The next requests take their own time (pages of users, then single writes): the
        concurrency limit learns their unloaded latency afresh."""
        self.gate.limit.relearn()

    @property
    def in_flight_limit(self) -> int:
        """How many requests the limit lets through at once now."""
        return self.gate.limit.limit

    @property
    def max_concurrency(self) -> int:
        """The most requests this client ever has in flight."""
        return self._max_connections

    @property
    def session(self) -> aiohttp.ClientSession:
        """The run's one session; only valid inside ``async with``."""
        if self._session is None:
            raise RuntimeError("SisenseClient used outside 'async with'")
        return self._session

    async def request(self, method: str, path: str, *, params: Mapping[str, str] | None = None,
                      body: JSON = None, trace: Trace | None = None) -> JSON:
        """Send one call with retries on transient failures; the parsed JSON answer or None."""
        trace = trace if trace is not None else Trace()
        if trace.attempts < 1:
            trace.attempts = 1
        try:
            # Most calls succeed at once: the retry machinery is built only for those that
            # do not (it costs more CPU than the rest of the request path together), and the
            # first try is _send_authenticated inlined (one coroutine less per request).
            generation = self._auth.generation
            if generation != self._applied:
                generation = await self._authenticate()
            try:
                return await self._send_once(method, path, params, body, trace)
            except ApiError as exc:
                if exc.status != 401 and exc.status != 403:
                    raise
                refused = exc
            return await self._refused(refused, generation, method, path, params, body, trace)
        except Exception as exc:
            if self.policy.attempts <= 1 or not is_retryable(exc):
                raise
            first_failure = exc
        return await self._retry(method, path, params, body, trace, first_failure)

    async def _retry(self, method: str, path: str, params: Mapping[str, str] | None,
                     body: JSON, trace: Trace, first_failure: Exception) -> JSON:
        """The tries after a retryable first failure: backoff, Retry-After, the bounds."""
        retrying = AsyncRetrying(
            stop=stop_after_attempt(self.policy.attempts)
            | stop_after_delay(self.policy.max_elapsed_s),
            wait=_RetryWait(self.policy),
            retry=retry_if_exception(is_retryable),
            reraise=True,
            sleep=self._wait,
            before_sleep=_log_retry,
        )
        tries = 0
        async for attempt in retrying:
            with attempt:
                tries += 1
                if tries == 1:
                    raise first_failure  # tenacity judges the first try like any other
                self.stats.retries += 1
                # A row's attempts: the most tries any one of its requests needed.
                trace.attempts = max(trace.attempts, tries)
                try:
                    return await self._send_authenticated(method, path, params, body, trace)
                except Exception as exc:
                    trace.unsure = trace.unsure or may_have_landed(exc)
                    raise
        raise AssertionError("unreachable: tenacity reraises the last error")

    async def _wait(self, seconds: float) -> None:
        """Tenacity's sleep between tries; none at all when the gate does the waiting."""
        if seconds > 0:
            with self.gate.resting_request():
                await self._sleep(seconds)

    async def _send_authenticated(self, method: str, path: str,
                                  params: Mapping[str, str] | None, body: JSON,
                                  trace: Trace) -> JSON:
        generation = self._auth.generation
        if generation != self._applied:
            generation = await self._authenticate()
        try:
            return await self._send_once(method, path, params, body, trace)
        except ApiError as exc:
            if exc.status != 401 and exc.status != 403:
                raise
            refused = exc
        return await self._refused(refused, generation, method, path, params, body, trace)

    async def _refused(self, refused: ApiError, generation: int, method: str, path: str,
                       params: Mapping[str, str] | None, body: JSON, trace: Trace) -> JSON:
        """After a 401 or 403: a 403 is final; a 401 renews the credential once and repeats
        the call (a second 401 means it is not the token)."""
        if refused.status == 403:
            raise AuthError(f"the server refused {method} {path} with HTTP 403 "
                            f"({refused.message}); the account needs the admin role")
        if not await self._auth.renew(self.session, generation):
            source = self.connection.token_from
            check = (f"the token of {source}" if source
                     else said("--token or SISENSE_TOKEN", "connect()'s token"))
            log_in = said("--username/--password", "connect()'s username and password")
            raise AuthError(f"the server refused the token (HTTP 401): it is wrong, expired or "
                            f"revoked; check {check}, or log in with {log_in}, "
                            "which logs in again when a token expires")
        await self._authenticate()
        try:
            return await self._send_once(method, path, params, body, trace)
        except ApiError as exc:
            if exc.status in (401, 403):
                raise AuthError(self._auth.still_refused(exc.status)) from None
            raise

    async def _authenticate(self) -> int:
        """Put the current credential in the session's default headers, which every request
        carries (none merges headers of its own: 4,500 instructions a request fewer), and
        return its generation. Callers first compare ``self._auth.generation`` with
        ``self._applied``: the usual request, whose credential is in place, awaits nothing.
        A request sends whatever credential the session holds when it leaves: one renewed
        while it waited is the one it sends."""
        headers = await self._auth.headers(self.session)
        self.session.headers.update(headers)
        # Read after headers(), with no await in between: the generation of these headers.
        self._applied = self._auth.generation
        return self._applied

    async def _send_once(self, method: str, path: str, params: Mapping[str, str] | None,
                         body: JSON, trace: Trace) -> JSON:
        """One HTTP exchange through the gate: the parsed answer, or the Sisense error raised.
        (One coroutine with the exchange itself: this runs for every request.)"""
        if self._pace is not None:
            await self._pace.wait()
        url = self.connection.url + path
        data = None
        if body is not None:
            # A payload that names its content type: aiohttp neither looks up a payload class
            # for bytes nor merges a Content-Type header into the credential's, per request.
            data = aiohttp.BytesPayload(encode_body(body), content_type=JSON_TYPE)
        debug = log.isEnabledFor(logging.DEBUG)
        ticket = self.gate.enter() or await self.gate.acquire()
        overload: Overload | None = None
        asked_to_wait = False  # the refusal carried Retry-After
        answered = False
        trace.in_flight = True
        try:
            self.stats.requests += 1
            started = time.perf_counter() if debug else 0.0
            limited = self._deadlines.begin()
            try:
                # The body is read inside the context so the connection is released before a
                # retry.
                async with self.session.request(method, url, params=params, data=data,
                                                timeout=_KEPT_BY_DEADLINES) as response:
                    raw = await response.read()
                    self._deadlines.answered(limited)
                    trace.http_status = response.status
                    if debug:
                        log_answer(method, path, response.url.query_string, response.status,
                                   started)
                    status = response.status
                    # Retry-After only matters on a refusal (429, 503): a success's headers
                    # are not searched.
                    result = read_answer(status, response.reason or "", raw, method, url, path,
                                         response.headers.get("Retry-After")
                                         if status >= 400 else None)
            except asyncio.CancelledError:
                if self._deadlines.timed_out(limited):
                    late = f"no answer within {self.policy.timeout_s:g} s"
                    raise TimeoutError(late) from None
                raise
            finally:
                self._deadlines.end(limited)
            answered = True
            return result
        except TransientApiError as exc:
            answered = True
            overload = _OVERLOADS.get(exc.status)
            if exc.retry_after is not None:
                # One pause for the whole run; after it, the gate lets in only as many
                # requests as the lowered limit allows, so no crowd returns at once (a 503
                # that asks to wait is never taken for a gateway's odd failure).
                asked_to_wait = True
                self.gate.pause(min(exc.retry_after, self.policy.max_wait_s), ticket)
            raise
        except ApiError:
            answered = True  # a refusal for the row's own reasons: still a round trip
            raise
        except TimeoutError:
            overload = "timeout"
            raise
        finally:
            trace.in_flight = False
            self.gate.release(ticket, overload=overload, answered=answered,
                              asked_to_wait=asked_to_wait)

    async def check(self) -> JSON:
        """Fail fast with one clear line when the server is unreachable, refuses us, or is
        not Sisense (``GET /api/roles`` exists on every Sisense version). The roles it read
        are returned, so that a run need not ask for them again."""
        trace = Trace()
        try:
            return await self.request("GET", "/api/roles", trace=trace)
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise ServerUnavailable(unreachable_message(self.connection.url, exc)) from None
        except TransientApiError as exc:
            tries = trace.attempts
            after = (f" (after {tries} tries)" if tries > 1
                     else f" ({said('--retries 0', 'RetryPolicy(attempts=1)')}: tried once)"
                     if self.policy.attempts <= 1 else " (tried once)")
            raise ServerUnavailable(f"{self.connection.url} answered {exc.describe()}{after}; "
                                    "try again later") from None
        except ApiError as exc:
            if exc.status == 404:
                raise ServerUnavailable(f"{self.connection.url} has no Sisense API "
                                        f"(GET /api/roles answered 404); check "
                                        f"{flag('--url')}") from None
            # Any other refusal of the first, read-only call: the run cannot start (exit 3).
            raise ServerUnavailable(f"{self.connection.url} answered GET /api/roles with "
                                    f"{exc.describe()}; check {flag('--url')} and the "
                                    "server's health") from None
