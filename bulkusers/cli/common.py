"""Options and helpers shared by the commands: connection, input, TLS, error mapping."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any, TypeVar

import click

from bulkusers.config import Connection, RetryPolicy, build_connection
from bulkusers.errors import BulkUsersError
from bulkusers.readers import DEFAULT_MAX_CELL_BYTES, ReadOptions
from bulkusers.ui import Console

F = TypeVar("F", bound=Callable[..., Any])
T = TypeVar("T")
EXIT_USAGE = 2


def connection_options(func: F) -> F:
    """Add --url, the credential options (each also read from its SISENSE_* variable), --api."""
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
        click.option("--api", type=click.Choice(["v1", "legacy"]), default="v1",
                     show_default=True,
                     help="REST v1 (/api/v1), or the legacy v0.9 API (/api) of old servers"),
        click.option("--api-secret", envvar="SISENSE_API_SECRET", metavar="SECRET",
                     help="legacy only: the REST API secret that signs the pre-6.5 x-api-key "
                          "JWT (with --username/--password) [env SISENSE_API_SECRET]"),
        click.option("--ca-bundle", type=click.Path(path_type=Path), default=None,
                     help="CA certificates (PEM) to verify the server's TLS certificate with, "
                          "e.g. a company CA"),
        click.option("--insecure", is_flag=True,
                     help="do not verify the server's TLS certificate (never in production)"),
        click.option("--retries", type=click.IntRange(0, 20), default=4, show_default=True,
                     help="retries per request on connection errors, timeouts, 429 and 5xx"),
        click.option("--timeout", type=click.FloatRange(1, 3600), default=60.0,
                     show_default=True, help="seconds before one request times out"),
        click.option("--max-rate", type=click.FloatRange(0.1, 10_000), default=None,
                     metavar="N", help="at most N requests per second in all (Sisense advises "
                                       "pacing write-heavy jobs on busy servers)"),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def input_options(func: F) -> F:
    """Add the options that say how to read the input file and report on it."""
    options = [
        click.argument("file", type=click.Path(path_type=Path)),
        click.option("--encoding", default="utf-8-sig", show_default=True,
                     help="text encoding of a CSV input, e.g. cp1252 or latin-1"),
        click.option("--delimiter", type=click.Choice([",", ";", "tab"]), default=None,
                     help="CSV delimiter (default: detected among , ; and tab)"),
        click.option("--sheet", default=None,
                     help="XLSX sheet name (default: the sheet Excel opens on, the active "
                          "one, or the first visible one when that is hidden)"),
        click.option("--max-cell-bytes", type=click.IntRange(1, None),
                     default=DEFAULT_MAX_CELL_BYTES, show_default=True,
                     help="a cell larger than this makes its row invalid"),
        click.option("--report", "report_path", type=click.Path(path_type=Path),
                     default=None, help="report CSV path (default: a new file named after "
                                        "the input, the command and the time)"),
        click.option("--concurrency", type=click.IntRange(1, 64), default=8,
                     show_default=True, help="requests in flight at once"),
        click.option("--batch-size", type=click.IntRange(1, 1000), default=50,
                     show_default=True,
                     help="users per bulk create or bulk delete request (1: one per user)"),
        click.option("--quiet", "-q", is_flag=True, help="no progress bar or summary; "
                                                          "the exit code tells the outcome"),
        click.option("--allow-empty", is_flag=True,
                     help="accept a file with a header and no rows (exit 0) instead of "
                          "refusing it"),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def policy(params: dict[str, Any]) -> RetryPolicy:
    """The request policy the connection options describe."""
    return RetryPolicy(attempts=params["retries"] + 1, timeout_s=params["timeout"],
                       max_rate=params["max_rate"])


def read_options(encoding: str, delimiter: str | None, sheet: str | None,
                 max_cell_bytes: int = DEFAULT_MAX_CELL_BYTES) -> ReadOptions:
    """How to read the input, from the input options."""
    sep = "\t" if delimiter == "tab" else delimiter
    return ReadOptions(encoding=encoding, delimiter=sep, sheet=sheet,
                       max_cell_bytes=max_cell_bytes)


def guard(console: Console, build: Callable[[], T]) -> T:
    """Build a value from options; a BulkUsersError becomes one line and its exit code."""
    try:
        return build()
    except BulkUsersError as exc:
        console.error(str(exc))
        sys.exit(exc.exit_code)


def run(console: Console, coroutine: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine; turn our errors into one line and an exit code, never a traceback."""
    try:
        return asyncio.run(coroutine)
    except BulkUsersError as exc:
        console.error(str(exc))
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        console.error("interrupted")
        sys.exit(130)




def connection_from(console: Console, params: dict[str, Any]) -> Connection:
    """The connection the options describe; a bad one exits 2 with one line."""
    return guard(console, lambda: build_connection(
        url=params["url"], token=params["token"], username=params["username"],
        password=params["password"], api=params["api"], api_secret=params["api_secret"],
        ca_bundle=params["ca_bundle"], insecure=params["insecure"]))
