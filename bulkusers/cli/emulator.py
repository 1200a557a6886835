"""``bulkusers emulator``: serve the Sisense emulator, over HTTP or HTTPS."""

from __future__ import annotations

import errno
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import click

from bulkusers.cli.common import EXIT_USAGE, global_options

if TYPE_CHECKING:
    import ssl

    from bulkusers.cli.console import Console


@click.command("emulator")
@click.option("--host", default="127.0.0.1", show_default=True, help="address to listen on")
@click.option("--port", type=click.IntRange(0, 65535), default=30845, show_default=True,
              help="port (0 picks a free one)")
@click.option("--token", default=None, help="a fixed Bearer token accepted as the admin")
@click.option("--admin-email", default="admin@example.com", show_default=True,
              help="email of the seeded Sys. Admin account")
@click.option("--admin-password", default="Admin-Pass-1", show_default=True,
              help="password of the seeded Sys. Admin account")
@click.option("--users", type=click.IntRange(0, 1_000_000), default=0, show_default=True,
              help="generated users to seed")
@click.option("--groups", default="", help="comma-separated group names to seed")
@click.option("--latency-ms", type=click.FloatRange(0), default=0.0, show_default=True,
              help="delay added to every request")
@click.option("--error-rate", type=click.FloatRange(0, 1), default=0.0, show_default=True,
              help="fraction of requests answered 503 with a gateway's HTML page")
@click.option("--max-inflight", type=click.IntRange(1), default=None,
              help="requests beyond N in flight are answered 429 with Retry-After")
@click.option("--capacity", type=click.IntRange(1), default=None, metavar="N",
              help="serve N requests at once, each taking --latency-ms; the rest wait in a "
                   "queue, so latency grows with load")
@click.option("--queue-limit", type=click.IntRange(0), default=None, metavar="M",
              help="with --capacity: requests beyond M queued are answered 503")
@click.option("--gateway-timeout", type=click.FloatRange(0, min_open=True), default=60.0,
              show_default=True, metavar="S",
              help="with --capacity: a request queued S seconds is answered 504")
@click.option("--api-secret", default=None,
              help="accept the legacy x-api-key JWT signed with this REST API secret")
@click.option("--legacy-max-age", type=click.FloatRange(0), default=300.0, show_default=True,
              metavar="SECONDS", help="refuse an x-api-key whose iat is older than this")
@click.option("--token-ttl", type=click.FloatRange(0, min_open=True), default=None,
              metavar="SECONDS",
              help="bearer tokens (logins and --token) expire this long after issue (401)")
@click.option("--list-everyone", is_flag=True,
              help="list the built-in Everyone group in every user's groups")
@click.option("--page-cap", type=click.IntRange(1), default=None, metavar="N",
              help="give at most N items per page of a list, whatever limit asks")
@click.option("--tls-cert", type=click.Path(dir_okay=False, path_type=Path), default=None,
              metavar="FILE", help="serve HTTPS with this PEM certificate (chain)")
@click.option("--tls-key", type=click.Path(dir_okay=False, path_type=Path), default=None,
              metavar="FILE", help="the PEM private key of --tls-cert")
@click.option("--tls-self-signed", is_flag=True,
              help="serve HTTPS with a throwaway certificate; prints its CA file for "
                   "--ca-bundle (needs the 'tls' extra)")
@global_options(connects=False, quiet=False)
def emulator_command(host: str, port: int, token: str | None, admin_email: str,
                     admin_password: str, users: int, groups: str, latency_ms: float,
                     error_rate: float, max_inflight: int | None, capacity: int | None,
                     queue_limit: int | None, gateway_timeout: float,
                     api_secret: str | None, legacy_max_age: float, token_ttl: float | None,
                     list_everyone: bool, page_cap: int | None, tls_cert: Path | None,
                     tls_key: Path | None,
                     tls_self_signed: bool) -> None:
    """Run the Sisense emulator: a local stand-in for rehearsals and tests.

    It serves the documented Sisense user, group, role and login endpoints with an
    in-memory store (lost when it stops) and can inject latency, errors and rate limits,
    over HTTP or HTTPS.
    """
    import asyncio
    import tempfile

    from bulkusers.cli.console import Console
    from bulkusers.emulator import EmulatorSettings, SettingsError, check_settings, serve_forever

    console = Console(quiet=False)
    if capacity is None and queue_limit is not None:
        console.error("--queue-limit needs --capacity N (the requests served at once)")
        sys.exit(EXIT_USAGE)
    settings = EmulatorSettings(
        token=token, admin_email=admin_email, admin_password=admin_password, users=users,
        groups=tuple(g.strip() for g in groups.split(",") if g.strip()),
        latency_ms=latency_ms, error_rate=error_rate, max_inflight=max_inflight,
        capacity=capacity, queue_limit=queue_limit, gateway_timeout_s=gateway_timeout,
        api_secret=api_secret, legacy_max_age_s=legacy_max_age, token_ttl_s=token_ttl,
        list_everyone=list_everyone, page_cap=page_cap)
    try:
        check_settings(settings)
    except SettingsError as exc:  # a seeding the API would refuse: say which option, not a bug
        console.error(str(exc))
        sys.exit(EXIT_USAGE)
    with tempfile.TemporaryDirectory(prefix="bulkusers-emulator-") as scratch:
        context, ca_file = _tls_context(console, host, tls_cert, tls_key, tls_self_signed,
                                        Path(scratch))

        def ready(url: str) -> None:
            console.emulator_ready(url, settings.admin_email, bool(token))
            if ca_file is not None:
                # On a line of its own, so that scripts can pick the path up.
                console.info(f"CA file for --ca-bundle: {ca_file}")

        try:
            asyncio.run(serve_forever(settings, host, port, ready, context))
        except OSError as exc:
            console.error(_listen_error(host, port, exc))
            sys.exit(EXIT_USAGE)
        except KeyboardInterrupt:
            console.info("emulator stopped")


#: Failures to listen that are about the address (not this machine's, not one at all), so
#: about --host; the others (in use, not ours to use) are about --port.
_ADDRESS_ERRORS = frozenset({errno.EADDRNOTAVAIL, errno.EAFNOSUPPORT, errno.EINVAL})


def _listen_error(host: str, port: int, exc: OSError) -> str:
    """One line for a failed listen that names the option to change: --host or --port."""
    import socket

    shown = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    # aiohttp's own text repeats the address; the system's is enough.
    reason = os.strerror(exc.errno) if exc.errno and exc.errno > 0 else exc.strerror
    if isinstance(exc, socket.gaierror) or exc.errno in _ADDRESS_ERRORS:
        return (f"cannot listen on {shown} ({reason}); choose another --host: an address "
                "of this machine, such as 127.0.0.1")
    return f"cannot listen on {shown} ({reason}); choose another --port"


def _tls_context(console: Console, host: str, cert: Path | None, key: Path | None,
                 self_signed: bool, scratch: Path) -> tuple[ssl.SSLContext | None, Path | None]:
    """The emulator's TLS context and throwaway CA file, as the TLS options ask; exit 2 if bad."""
    from bulkusers.emulator.tls import (
        TlsSetupError,
        certificate_hosts,
        server_context,
        throwaway_ca,
    )

    try:
        if self_signed and (cert or key):
            raise TlsSetupError("give either --tls-self-signed or --tls-cert/--tls-key, not both")
        if self_signed:
            made = throwaway_ca(scratch, certificate_hosts(host))
            return made.context, made.ca_file
        if cert is None and key is None:
            return None, None
        if cert is None or key is None:
            raise TlsSetupError("--tls-cert and --tls-key go together: give both")
        return server_context(cert, key), None
    except TlsSetupError as exc:
        console.error(str(exc))
        sys.exit(EXIT_USAGE)
