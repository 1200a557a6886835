"""Run configuration as frozen values: connection, retry policy; secrets kept out of reprs."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from bulkusers.errors import ConfigError

ApiFlavour = Literal["v1", "legacy"]


@dataclass(frozen=True, slots=True)
class Secret:
    """A credential that never shows itself in a repr, str, log line or traceback."""

    _value: str = field(repr=False)

    def reveal(self) -> str:
        """The clear text, for the one place that must send it."""
        return self._value

    def __repr__(self) -> str:
        return "Secret('***')"

    __str__ = __repr__


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How hard one request is tried before its row is reported failed."""

    attempts: int = 5
    initial_wait_s: float = 0.5
    max_wait_s: float = 30.0
    max_elapsed_s: float = 300.0
    timeout_s: float = 60.0


@dataclass(frozen=True, slots=True)
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

    @property
    def identity(self) -> str:
        """The account as a person would name it in output (never a secret)."""
        return self.username or "the token's owner"


def _clean_url(url: str | None) -> str:
    if not url:
        raise ConfigError("no Sisense URL: pass --url https://sisense.example.com "
                          "or set SISENSE_URL")
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ConfigError(f"--url {url!r} is not an http(s) URL; "
                          "pass it like https://sisense.example.com:30845")
    if parts.username or parts.password:
        raise ConfigError("--url must not carry credentials; use --token or --username")
    return f"{parts.scheme}://{parts.netloc}{parts.path.rstrip('/')}"


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
    """Validate connection options (already merged from flags and environment)."""
    clean = _clean_url(url)
    if token and (username or password):
        raise ConfigError("give either a token (--token / SISENSE_TOKEN) or a username and "
                          "password, not both")
    if api == "legacy" and api_secret:
        if not (username and password):
            raise ConfigError("the legacy x-api-key scheme signs the admin's email and "
                              "password: pass --username and --password with --api-secret")
    elif not token and not (username and password):
        if username and not password:
            raise ConfigError("--username given without a password: pass --password "
                              "or set SISENSE_PASSWORD")
        raise ConfigError("no credentials: pass --token (or set SISENSE_TOKEN), or "
                          "--username and --password")
    if insecure and ca_bundle:
        raise ConfigError("--insecure and --ca-bundle contradict each other; choose one")
    if ca_bundle is not None and not ca_bundle.is_file():
        raise ConfigError(f"--ca-bundle {ca_bundle} is not a readable file")
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


def secrets_of(connection: Connection) -> Mapping[str, str]:
    """Every secret of a connection by option name, for scrubbing text before it is shown."""
    found = {
        "token": connection.token,
        "password": connection.password,
        "api_secret": connection.api_secret,
    }
    return {name: secret.reveal() for name, secret in found.items() if secret is not None}
