"""The ``bulkusers`` command line: options to config, call the core, draw progress, exit codes.

This is the only module that prints or imports click.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any, TypeVar

import click

from bulkusers import __version__
from bulkusers.config import Connection, RetryPolicy, build_connection
from bulkusers.errors import BulkUsersError
from bulkusers.jobs import RunSettings, run_import
from bulkusers.operations import ImportOptions
from bulkusers.readers import ReadOptions
from bulkusers.report import RunSummary
from bulkusers.ui import Console, ProgressObserver

F = TypeVar("F", bound=Callable[..., Any])
EXIT_USAGE = 2


def connection_options(func: F) -> F:
    """Add --url and the credential options (each also read from its SISENSE_* variable)."""
    options = [
        click.option("--url", envvar="SISENSE_URL", metavar="URL",
                     help="Sisense address, e.g. https://sisense.example.com "
                          "[env SISENSE_URL]"),
        click.option("--token", envvar="SISENSE_TOKEN", metavar="TOKEN",
                     help="API (Bearer) token of an admin [env SISENSE_TOKEN]"),
        click.option("--username", envvar="SISENSE_USERNAME", metavar="NAME",
                     help="admin username or email for login [env SISENSE_USERNAME]"),
        click.option("--password", envvar="SISENSE_PASSWORD", metavar="PASSWORD",
                     help="password for --username [env SISENSE_PASSWORD]"),
        click.option("--retries", type=click.IntRange(0, 20), default=4, show_default=True,
                     help="retries per request on connection errors, timeouts, 429 and 5xx"),
        click.option("--timeout", type=click.FloatRange(1, 3600), default=60.0,
                     show_default=True, help="seconds before one request times out"),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def input_options(func: F) -> F:
    """Add the options that say how to read the input file."""
    options = [
        click.argument("file", type=click.Path(path_type=Path)),
        click.option("--encoding", default="utf-8-sig", show_default=True,
                     help="text encoding of a CSV input, e.g. cp1252 or latin-1"),
        click.option("--delimiter", type=click.Choice([",", ";", "tab"]), default=None,
                     help="CSV delimiter (default: detected among , ; and tab)"),
        click.option("--sheet", default=None, help="XLSX sheet name (default: the first)"),
        click.option("--report", "report_path", type=click.Path(path_type=Path),
                     default=None, help="report CSV path (default: a new file named after "
                                        "the input and the time, never overwriting)"),
        click.option("--concurrency", type=click.IntRange(1, 64), default=8,
                     show_default=True, help="requests in flight at once"),
        click.option("--quiet", "-q", is_flag=True, help="no progress bar or summary; "
                                                          "the exit code tells the outcome"),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def _connection(url: str | None, token: str | None, username: str | None,
                password: str | None) -> Connection:
    return build_connection(url=url, token=token, username=username, password=password)


def _policy(retries: int, timeout: float) -> RetryPolicy:
    return RetryPolicy(attempts=retries + 1, timeout_s=timeout)


def _read_options(encoding: str, delimiter: str | None, sheet: str | None) -> ReadOptions:
    sep = "\t" if delimiter == "tab" else delimiter
    return ReadOptions(encoding=encoding, delimiter=sep, sheet=sheet)


T = TypeVar("T")


def _run(console: Console, coroutine: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine; turn our errors into one line and an exit code, never a traceback."""
    try:
        return asyncio.run(coroutine)
    except BulkUsersError as exc:
        console.error(str(exc))
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        console.error("interrupted")
        sys.exit(130)


def _finish(console: Console, summary: RunSummary) -> None:
    console.summary(summary)
    sys.exit(summary.exit_code if summary.exit_code is not None else 1)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="bulkusers")
@click.option("--debug", is_flag=True, help="show tracebacks of unexpected errors")
@click.pass_context
def cli(ctx: click.Context, debug: bool) -> None:
    """Bulk import, export, deactivation and deletion of Sisense users.

    Every write command reads a CSV or XLSX file, sends the rows through a pool of concurrent
    requests with retries, and writes a report with one line per input row. Exit codes:
    0 every row ok, 1 some rows failed or were invalid, 2 bad usage or unreadable input
    (nothing sent), 3 run aborted (credentials refused, server unreachable), 130 interrupted.
    """
    ctx.obj = {"debug": debug}


@cli.command("import")
@input_options
@connection_options
@click.option("--default-role", default=None, metavar="ROLE",
              help="role for rows whose role cell is blank (e.g. viewer)")
def import_command(file: Path, encoding: str, delimiter: str | None, sheet: str | None,
                   report_path: Path | None, concurrency: int, quiet: bool, url: str | None,
                   token: str | None, username: str | None, password: str | None,
                   retries: int, timeout: float, default_role: str | None) -> None:
    """Create the users listed in FILE (CSV, TSV or XLSX).

    Columns are matched by name, case-insensitively, with common HR aliases: email (required;
    "Work Email", "E-mail"), userName, firstName ("First Name"), lastName ("Surname"),
    role (API name, display name or alias: viewer, designer, admin...), groups (names
    separated by ; or |), password, language. Users that already exist are skipped and
    left unchanged; invalid rows are skipped with the reason and never sent.
    """
    console = Console(quiet=quiet)
    connection = _guard(console, lambda: _connection(url, token, username, password))
    settings = RunSettings(input_path=file, read=_read_options(encoding, delimiter, sheet),
                           report_path=report_path, concurrency=concurrency)
    observer = ProgressObserver(console, "Importing")
    with observer:
        summary = _run(console, run_import(settings, connection, _policy(retries, timeout),
                                           ImportOptions(default_role=default_role),
                                           observer))
    _finish(console, summary)


def _guard(console: Console, build: Callable[[], T]) -> T:
    try:
        return build()
    except BulkUsersError as exc:
        console.error(str(exc))
        sys.exit(exc.exit_code)


@cli.command("emulator")
@click.option("--host", default="127.0.0.1", show_default=True, help="address to listen on")
@click.option("--port", type=click.IntRange(0, 65535), default=30845, show_default=True,
              help="port (0 picks a free one)")
@click.option("--token", default=None, help="a fixed Bearer token accepted as the admin")
@click.option("--admin-email", default="admin@example.com", show_default=True)
@click.option("--admin-password", default="Admin-Pass-1", show_default=True)
@click.option("--users", type=click.IntRange(0, 1_000_000), default=0, show_default=True,
              help="generated users to seed")
@click.option("--groups", default="", help="comma-separated group names to seed")
@click.option("--latency-ms", type=click.FloatRange(0), default=0.0, show_default=True,
              help="delay added to every request")
@click.option("--error-rate", type=click.FloatRange(0, 1), default=0.0, show_default=True,
              help="fraction of requests answered 503")
@click.option("--max-inflight", type=click.IntRange(1), default=None,
              help="requests beyond N in flight are answered 429 with Retry-After")
def emulator_command(host: str, port: int, token: str | None, admin_email: str,
                     admin_password: str, users: int, groups: str, latency_ms: float,
                     error_rate: float, max_inflight: int | None) -> None:
    """Run the Sisense emulator: a local stand-in for rehearsals and tests.

    It serves the documented Sisense user, group, role and login endpoints with an
    in-memory store (lost when it stops) and can inject latency, errors and rate limits.
    """
    from bulkusers.emulator import EmulatorSettings, serve_forever

    console = Console(quiet=False)
    settings = EmulatorSettings(
        token=token, admin_email=admin_email, admin_password=admin_password, users=users,
        groups=tuple(g.strip() for g in groups.split(",") if g.strip()),
        latency_ms=latency_ms, error_rate=error_rate, max_inflight=max_inflight)

    def ready(url: str) -> None:
        console.emulator_ready(url, settings.admin_email, bool(token))

    try:
        asyncio.run(serve_forever(settings, host, port, ready))
    except OSError as exc:
        console.error(f"cannot listen on {host}:{port} ({exc.strerror}); "
                      "choose another --port")
        sys.exit(EXIT_USAGE)
    except KeyboardInterrupt:
        console.info("emulator stopped")


@cli.command("demo")
@click.option("--file", "file", type=click.Path(path_type=Path), default=None,
              help="input to import (default: samples/hr_users.xlsx)")
@click.option("--concurrency", type=click.IntRange(1, 64), default=8, show_default=True)
@click.option("--latency-ms", type=click.FloatRange(0), default=20.0, show_default=True,
              help="simulated server latency")
def demo_command(file: Path | None, concurrency: int, latency_ms: float) -> None:
    """Import a sample HR file into a built-in emulator: see the tool work in seconds."""
    from bulkusers.demo import DEMO_GROUPS, find_sample, run_demo

    console = Console(quiet=False)
    source = _guard(console, lambda: file or find_sample())
    console.demo_intro(source, DEMO_GROUPS)
    observer = ProgressObserver(console, "Importing")
    with observer:
        outcome = _run(console, run_demo(source, concurrency=concurrency,
                                         latency_ms=latency_ms, observer=observer))
    console.summary(outcome.summary)
    console.demo_outro(outcome)
    sys.exit(0)


def main() -> None:
    """Entry point of the ``bulkusers`` console script."""
    debug = "--debug" in sys.argv[1:]
    try:
        cli.main(prog_name="bulkusers", standalone_mode=True)
    except SystemExit:
        raise
    except Exception as exc:  # an unexpected bug: one line, the traceback only on --debug
        if debug:
            raise
        click.echo(f"bulkusers: internal error: {exc.__class__.__name__}: {exc} "
                   "(run again with --debug for details)", err=True)
        sys.exit(70)


__all__ = ["cli", "main"]
