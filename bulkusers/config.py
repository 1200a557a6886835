"""Run configuration as frozen values: connection, retry policy; secrets kept out of reprs."""

from __future__ import annotations

import re
import ssl
from dataclasses import field
from pathlib import Path
from typing import Literal, get_args
from urllib.parse import urlsplit

from bulkusers.errors import ConfigError
from bulkusers.frozen import frozen
from bulkusers.words import flag, said

ApiFlavour = Literal["v1", "legacy"]
# The user:password@ part of a URL, up to the host (a password may itself hold "@").
_USERINFO = re.compile(r"(//)[^/?#]*@")


@frozen
class Secret:
    """A credential that never shows itself in a repr, str, log line or traceback."""

    _value: str = field(repr=False)

    def reveal(self) -> str:
        """The clear text, for the one place that must send it."""
        return self._value

    def __repr__(self) -> str:
        return "Secret('***')"

    __str__ = __repr__


@frozen
class RetryPolicy:
    """How hard and how fast requests are sent: attempts, backoff, timeout, pace."""

    attempts: int = 5
    initial_wait_s: float = 0.5
    max_wait_s: float = 30.0
    max_elapsed_s: float = 300.0
    timeout_s: float = 60.0
    #: At most this many requests per second across the run (None: as fast as allowed).
    max_rate: float | None = None

    def __post_init__(self) -> None:
        # The CLI's bounds are click's; a Python caller's values are checked here.
        if isinstance(self.attempts, bool) or self.attempts < 1:
            raise ConfigError(f"RetryPolicy(attempts={self.attempts!r}): at least 1 (one try, "
                              "no retry)")
        for name in ("initial_wait_s", "max_wait_s", "max_elapsed_s"):
            if getattr(self, name) < 0:
                raise ConfigError(f"RetryPolicy({name}={getattr(self, name)!r}): 0 or more")
        if self.timeout_s <= 0:
            raise ConfigError(f"RetryPolicy(timeout_s={self.timeout_s!r}): more than 0")
        if self.max_rate is not None and self.max_rate <= 0:
            raise ConfigError(f"RetryPolicy(max_rate={self.max_rate!r}): more than 0, or None")


@frozen
class Connection:
    """Where the Sisense server is and how to prove who we are."""

    url: str
    token: Secret | None = None
    username: str | None = None
    password: Secret | None = None
    api: ApiFlavour = "v1"
    api_secret: Secret | None = None
    verify_tls: bool = True
    ca_bundle: Path | None = None
    #: Where a profile's token came from ("profile prod ($PROD_TOKEN)"), for the message a
    #: refused token gives; "" when --token or SISENSE_TOKEN gave it.
    token_from: str = ""



def _shown_url(url: str) -> str:
    """A URL as an error message may quote it: any user:password@ part masked."""
    return _USERINFO.sub(r"\1***@", url.strip(), count=1)


def _clean_url(url: str | None) -> str:
    if not url:
        raise ConfigError(said("no Sisense URL: pass --url https://sisense.example.com, set "
                               "SISENSE_URL, or choose a profile with --profile NAME",
                               "connect(): no Sisense URL; give the server's address, like "
                               "https://sisense.example.com"))
    example = "pass it like https://sisense.example.com:30845"
    try:
        parts = urlsplit(url.strip())
        _ = parts.port  # raises ValueError for a port that is not a number in 0-65535
    except ValueError as exc:
        raise ConfigError(f"{flag('--url')} {_shown_url(url)!r} is not a valid URL ({exc}); "
                          f"{example}") from None
    # Credentials first: no later message may echo a URL that carries a password.
    if parts.username or parts.password:
        raise ConfigError(f"{flag('--url')} must not carry credentials; use "
                          f"{flag('--token')} or {flag('--username')}")
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ConfigError(f"{flag('--url')} {_shown_url(url)!r} is not an http(s) URL; "
                          f"{example}")
    if not parts.hostname or any(char.isspace() for char in parts.netloc):
        raise ConfigError(f"{flag('--url')} {_shown_url(url)!r} has no valid host name; "
                          f"{example}")
    return f"{parts.scheme}://{parts.netloc}{parts.path.rstrip('/')}"


def server_of(url: str) -> tuple[str, str, int | None, str] | None:
    """The server a URL names (scheme, host, port, path; case and default ports aside), to
    tell whether two URLs are the same Sisense; None for a URL ``build_connection`` would
    refuse on its own (unparsable, carrying credentials, no host)."""
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError:
        return None
    if parts.username is not None or parts.password is not None or not parts.hostname:
        return None
    scheme = parts.scheme.lower()
    default = {"http": 80, "https": 443}.get(scheme)
    return scheme, parts.hostname, port or default, parts.path.rstrip("/")


def _check_ca_bundle(path: Path) -> None:
    """Refuse a --ca-bundle that is missing or holds no PEM certificate, before any request."""
    if not path.is_file():
        raise ConfigError(f"{flag('--ca-bundle')} {path} is not a readable file")
    try:
        ssl.create_default_context(cafile=str(path))
    except ssl.SSLError as exc:
        raise ConfigError(f"{flag('--ca-bundle')} {path} holds no usable certificate "
                          f"({exc.reason}); "
                          "pass the CA certificate(s) in PEM form") from None
    except OSError as exc:
        raise ConfigError(f"{flag('--ca-bundle')} {path} cannot be read ({exc.strerror}); "
                          "check its permissions") from None


def build_connection(
    *,
    url: str | None,
    token: str | None,
    username: str | None,
    password: str | None,
    api: ApiFlavour = "v1",
    api_secret: str | None = None,
    ca_bundle: Path | None = None,
    insecure: bool = False,
) -> Connection:
    """Validate connection options (the CLI's already merged from flags and environment);
    the messages name the credentials as the caller gave them (flags, or connect()'s
    arguments: ``words.said``)."""
    if api not in get_args(ApiFlavour):
        raise ConfigError(f"{flag('--api')} {api!r}: choose v1 (Sisense 6.5 and later) or "
                          "legacy (the v0.9 API)")
    clean = _clean_url(url)
    if token:
        # Tokens never contain spaces; a trailing newline from a token file is not part of it.
        token = token.strip()
        if any(ord(c) < 32 or ord(c) == 127 for c in token):
            raise ConfigError("the token contains a control character; check how it was "
                              "read (a file with Windows line endings?)")
    if token and (username or password):
        raise ConfigError(said(
            "give either a token (--token / SISENSE_TOKEN) or a username and password, not "
            "both", "connect(): give token= or username= and password=, not both"))
    if api == "legacy" and api_secret:
        if not (username and password):
            raise ConfigError(said(
                "the legacy x-api-key scheme signs the admin's email and password: pass "
                "--username and --password with --api-secret",
                "connect(): the legacy x-api-key scheme signs the admin's email and "
                "password: give username= and password= with api_secret="))
    elif not token and not (username and password):
        if username and not password:
            raise ConfigError(said(
                "--username given without a password: pass --password or set "
                "SISENSE_PASSWORD", "connect(): username= given without password="))
        raise ConfigError(said(
            "no credentials: pass --token (or set SISENSE_TOKEN), or --username and "
            "--password, or give the profile a token_env or token_command",
            "connect(): no credentials; give token=, or username= and password= (with "
            "api=\"legacy\", api_secret= signs them)"))
    if insecure and ca_bundle:
        raise ConfigError(said("--insecure and --ca-bundle contradict each other; choose one",
                               "connect(): insecure=True and ca_bundle= contradict each "
                               "other; choose one"))
    if ca_bundle is not None:
        _check_ca_bundle(ca_bundle)
    return Connection(
        url=clean,
        token=Secret(token) if token else None,
        username=username or None,
        password=Secret(password) if password else None,
        api=api,
        api_secret=Secret(api_secret) if api_secret else None,
        verify_tls=not insecure,
        ca_bundle=ca_bundle,
    )
