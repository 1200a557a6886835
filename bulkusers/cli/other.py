"""The other commands: export, emulator, demo."""

from __future__ import annotations

import asyncio
import os
import ssl
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click

from bulkusers.cli.common import (
    EXIT_USAGE,
    REPORT_DIR_OPTION,
    connection_from,
    connection_options,
    global_options,
    guard,
    is_quiet,
    policy,
    run,
    settings_from,
)
from bulkusers.cli.diff import INACTIVE_HELP, diff_files, read_compared
from bulkusers.diff import EXIT_CHANGED, check_output, default_output
from bulkusers.errors import BulkUsersError
from bulkusers.export import (
    ExportOptions,
    ExportSummary,
    OutputClosed,
    export_summary_path,
    export_users,
)
from bulkusers.readers import ReadOptions
from bulkusers.report import check_report_path
from bulkusers.ui import Console, ProgressObserver
from bulkusers.words import count

EXPORT_HELP = """Export users to OUTPUT (.csv or .xlsx; - for CSV on standard output), one
line per user.

Columns: email, userName, firstName, lastName, role (API name, e.g. consumer),
roleDisplayName (e.g. Viewer), groups (names joined with '; ', including the computed
Admins, Everyone and All users in system), language, active, created, lastLogin,
lastUpdated, id. The file is valid input for `bulkusers import` (it ignores the extra
columns). CSV is UTF-8 (with a BOM in a file, without on standard output) and formula-safe;
XLSX has real date cells (UTC) and text everywhere else. The output appears only when the
export is complete. A JSON summary is written beside OUTPUT (for -, in --report-dir).
Exit codes: 0 exported, 2 bad usage (nothing written), 3 aborted (credentials refused,
server unreachable).
"""


@click.command("export", help=EXPORT_HELP)
@click.argument("output", type=click.Path(path_type=Path, allow_dash=True))
@connection_options
@click.option("--role", default=None, metavar="NAME",
              help="only users with this role (API name, display name or alias)")
@click.option("--group", default=None, metavar="NAME",
              help="only members of this group (built-in groups included)")
@click.option("--inactive-days", type=click.IntRange(1), default=None, metavar="N",
              help="only users who last signed in more than N days ago, or never")
@click.option("--page-size", type=click.IntRange(1, 10_000), default=500, show_default=True,
              help="users per GET request")
@REPORT_DIR_OPTION
@click.option("--compare", type=click.Path(path_type=Path), default=None, metavar="PREVIOUS",
              help="then write what changed since the export PREVIOUS (as `bulkusers diff`); "
                   f"exit {EXIT_CHANGED} when something did")
@click.option("--changes", type=click.Path(path_type=Path), default=None, metavar="PATH",
              help="with --compare: where the changes go (default: OUTPUT's name + "
                   "'.changes' beside it)")
@click.option("--compare-inactive-days", type=click.IntRange(1), default=None, metavar="N",
              help="with --compare: " + INACTIVE_HELP)
def export_command(output: Path, role: str | None, group: str | None,
                   inactive_days: int | None, page_size: int,
                   compare: Path | None, changes: Path | None,
                   compare_inactive_days: int | None, **params: Any) -> None:
    """Export users."""
    console = Console(quiet=is_quiet())
    previous = None
    if compare is not None:
        if str(output) == "-":
            console.error("--compare needs OUTPUT to be a file, not -: the comparison reads "
                          "it back")
            sys.exit(EXIT_USAGE)
        # Read first: an unreadable PREVIOUS stops the run before anything is exported.
        changes = changes or default_output(output)
        guard(console, lambda: check_output(changes, compare, output, option="--changes"))
        previous = read_compared(console, compare, ReadOptions())
    elif changes is not None or compare_inactive_days is not None:
        console.error("--changes and --compare-inactive-days need --compare PREVIOUS")
        sys.exit(EXIT_USAGE)
    options = guard(console, lambda: ExportOptions(output, role=role, group=group,
                                                    inactive_days=inactive_days,
                                                    page_size=page_size))
    settings = settings_from(console, params)
    report_dir = settings["report_dir"]
    if options.to_stdout:
        guard(console, lambda: check_report_path(None, output, report_dir))
    summary_file = export_summary_path(options, report_dir)
    connection = connection_from(console, settings)
    if not connection.verify_tls:
        console.insecure_warning()
    started = datetime.now(UTC)
    stream = sys.stdout.buffer if options.to_stdout else None
    try:
        result = asyncio.run(export_users(connection, policy(settings), options, stream))
    except KeyboardInterrupt:
        console.error("interrupted")
        sys.exit(130)
    except OutputClosed as exc:
        # Python would report the closed pipe again when it flushes stdout at exit.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        console.info(f"bulkusers export: {exc}")
        sys.exit(exc.exit_code)
    except BulkUsersError as exc:
        # No summary: one beside an earlier export would no longer describe that file.
        console.error(str(exc))
        sys.exit(exc.exit_code)
    written = _write_export_summary(console, summary_file, ExportSummary(
        options, connection.url, connection.api, started, datetime.now(UTC), result))
    where = "standard output" if options.to_stdout else str(result.path)
    of = f" (of {result.read} read)" if result.read != result.written else ""
    console.info(f"bulkusers export: {count(result.written, 'user')} written to {where}{of} "
                 f"in {result.seconds:.1f} s")
    if written:
        console.info(f"summary: {summary_file}")
    if not written:
        sys.exit(3)
    if previous is None or changes is None:
        sys.exit(0)
    now = read_compared(console, result.path, ReadOptions(), datetime.now(UTC))
    compared = diff_files(console, previous, now, changes, compare_inactive_days, None)
    console.info(f"bulkusers export --compare: {compared.line()} written to {changes}")
    sys.exit(compared.exit_code)


def _write_export_summary(console: Console, path: Path, summary: ExportSummary) -> bool:
    """Write the export's JSON summary; False (and one line) when it cannot be written."""
    try:
        summary.write_json(path)
    except OSError as exc:
        console.error(f"cannot write the summary {path} ({exc.strerror or exc})")
        return False
    return True


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
                     list_everyone: bool, tls_cert: Path | None, tls_key: Path | None,
                     tls_self_signed: bool) -> None:
    """Run the Sisense emulator: a local stand-in for rehearsals and tests.

    It serves the documented Sisense user, group, role and login endpoints with an
    in-memory store (lost when it stops) and can inject latency, errors and rate limits,
    over HTTP or HTTPS.
    """
    from bulkusers.emulator import EmulatorSettings, serve_forever

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
        list_everyone=list_everyone)
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
            console.error(f"cannot listen on {host}:{port} ({exc.strerror}); "
                          "choose another --port")
            sys.exit(EXIT_USAGE)
        except KeyboardInterrupt:
            console.info("emulator stopped")


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


@click.command("demo")
@click.option("--file", "file", type=click.Path(path_type=Path), default=None,
              help="input to import (default: samples/hr_users.xlsx)")
@click.option("--concurrency", type=click.IntRange(1, 64), default=8, show_default=True,
              help="requests in flight at once")
@click.option("--latency-ms", type=click.FloatRange(0), default=20.0, show_default=True,
              help="simulated server latency")
@global_options(connects=False, quiet=False)
def demo_command(file: Path | None, concurrency: int, latency_ms: float) -> None:
    """Import a sample HR file into a built-in emulator: see the tool work in seconds."""
    from bulkusers.demo import DEMO_GROUPS, find_sample, run_demo

    console = Console(quiet=False)
    source = guard(console, lambda: file or find_sample())
    console.demo_intro(source, DEMO_GROUPS)
    observer = ProgressObserver(console, "Importing")
    with observer:
        outcome = run(console, run_demo(source, concurrency=concurrency,
                                         latency_ms=latency_ms, observer=observer))
    console.summary(outcome.summary)
    console.demo_outro(outcome)
    sys.exit(0)


