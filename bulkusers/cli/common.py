"""Options and helpers shared by the commands: connection, input, TLS, error mapping.

Every command module imports this one to declare its options, so it stays light: the core,
rich, aiohttp and openpyxl are imported inside the functions that run a command, never here
(``bulkusers --help`` stays fast; ``tests/test_layout.py`` checks it).
"""

from __future__ import annotations

import logging
import os
import signal
import sys
from collections.abc import Callable, Coroutine
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any, TypeVar

import click

from bulkusers.cli.settings import (
    META_CONFIG,
    META_PROFILE,
    META_QUIET,
    Effective,
    effective,
    foreign_url,
)
from bulkusers.concurrency import CEILING, DEFAULT_MAXIMUM
from bulkusers.errors import BulkUsersError
from bulkusers.profiles import CONFIG_ENV, CREDENTIALS, PROFILE_ENV

if TYPE_CHECKING:
    from bulkusers.cli.console import Console
    from bulkusers.config import Connection, RetryPolicy
    from bulkusers.readers import ReadOptions

F = TypeVar("F", bound=Callable[..., Any])
T = TypeVar("T")
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130
#: ``--max-cell-bytes``'s default: ``readers.DEFAULT_MAX_CELL_BYTES``, written out so that
#: declaring the option does not import the readers (``tests/test_layout.py`` checks they agree).
DEFAULT_MAX_CELL_BYTES = 64 * 1024


def _remember(key: str) -> Callable[[click.Context, click.Parameter, Any], None]:
    """A callback that leaves a global option's value where every command finds it."""

    def store(ctx: click.Context, _param: click.Parameter, value: Any) -> None:
        if value not in (None, False):
            ctx.meta[key] = value
            if key == META_DEBUG:
                ctx.call_on_close(enable_debug())

    return store


def enable_debug() -> Callable[[], None]:
    """Log requests and retries to stderr (one handler, however often it is asked for);
    returns what undoes it, for when the command ends: a process that runs commands one
    after another (a test, a caller of ``cli.main``) must not keep logging to the stderr
    of an earlier one, which may be closed by then."""
    logger = logging.getLogger("bulkusers")
    level = logger.level
    for old in [h for h in logger.handlers if isinstance(h, _DebugHandler)]:
        logger.removeHandler(old)
    handler = _DebugHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(name)s: %(message)s"))
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)

    def disable() -> None:
        logger.removeHandler(handler)
        logger.setLevel(level)

    return disable


class _DebugHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """The stderr handler --debug installs (a class of its own, so it is found again)."""


META_DEBUG = "bulkusers.debug"
DEBUG_OPTION = click.option(
    "--debug", is_flag=True, expose_value=False, is_eager=True, callback=_remember(META_DEBUG),
    help="log every request (method, path, status, time; never headers or bodies) and retry "
         "to stderr, and show tracebacks of unexpected errors")
QUIET_OPTION = click.option(
    "--quiet", "-q", is_flag=True, expose_value=False, callback=_remember(META_QUIET),
    help="no progress bar or summary; errors, warnings and what matters for safety only "
         "(a guard's verdict, the users a dry run would remove); the exit code tells the "
         "outcome")
PROFILE_OPTION = click.option(
    "--profile", metavar="NAME", expose_value=False, callback=_remember(META_PROFILE),
    help=f"use the [profiles.NAME] section of the configuration file  [env var: "
         f"{PROFILE_ENV}]")
CONFIG_OPTION = click.option(
    "--config", type=click.Path(path_type=Path, dir_okay=False), metavar="FILE",
    expose_value=False, callback=_remember(META_CONFIG),
    help=f"configuration file (default: the per-user file `bulkusers config path` prints)  "
         f"[env var: {CONFIG_ENV}]")


def global_options(*, connects: bool, quiet: bool = True) -> Callable[[F], F]:
    """The options accepted before or after the command name: --debug, --quiet, and for
    commands that connect, --profile and --config."""

    def add(func: F) -> F:
        options = [DEBUG_OPTION]
        if quiet:
            options.append(QUIET_OPTION)
        if connects:
            options += [PROFILE_OPTION, CONFIG_OPTION]
        for option in reversed(options):
            func = option(func)
        return func

    return add


def is_quiet() -> bool:
    """True when --quiet was given, before or after the command name."""
    return bool(click.get_current_context().meta.get(META_QUIET))


def connection_options(func: F) -> F:
    """Add --url, the credentials, --api, TLS and request options (each with a variable),
    and the global options."""
    return global_options(connects=True)(connection_settings(func))


def connection_settings(func: F) -> F:
    """Add --url, the credentials, --api, TLS and request options, each with a variable."""
    options = [
        click.option("--url", envvar="SISENSE_URL", show_envvar=True, metavar="URL",
                     help="Sisense address, e.g. https://sisense.example.com"),
        click.option("--token", envvar="SISENSE_TOKEN", show_envvar=True, metavar="TOKEN",
                     help="API (Bearer) token of an admin"),
        click.option("--username", envvar="SISENSE_USERNAME", show_envvar=True, metavar="NAME",
                     help="admin username or email for login"),
        click.option("--password", envvar="SISENSE_PASSWORD", show_envvar=True,
                     metavar="PASSWORD", help="password for --username"),
        click.option("--api", type=click.Choice(["v1", "legacy"]), default="v1",
                     envvar="SISENSE_API", show_envvar=True, show_default=True,
                     help="REST v1 (/api/v1), or the legacy v0.9 API (/api) of old servers"),
        click.option("--api-secret", envvar="SISENSE_API_SECRET", show_envvar=True,
                     metavar="SECRET",
                     help="legacy only: the REST API secret that signs the pre-6.5 x-api-key "
                          "JWT (with --username/--password)"),
        click.option("--ca-bundle", type=click.Path(path_type=Path), default=None,
                     envvar="SISENSE_CA_BUNDLE", show_envvar=True, metavar="FILE",
                     help="CA certificates (PEM) to verify the server's TLS certificate with, "
                          "e.g. a company CA"),
        click.option("--insecure", is_flag=True, envvar="SISENSE_INSECURE", show_envvar=True,
                     help="do not verify the server's TLS certificate (never in production)"),
        click.option("--retries", type=click.IntRange(0, 20), default=4, show_default=True,
                     envvar="SISENSE_RETRIES", show_envvar=True,
                     help="retries per request on connection errors, timeouts, 429 and 5xx"),
        click.option("--timeout", type=click.FloatRange(1, 3600), default=60.0,
                     envvar="SISENSE_TIMEOUT", show_envvar=True,
                     show_default=True, help="seconds before one request times out"),
        click.option("--max-rate", type=click.FloatRange(0.1, 10_000), default=None,
                     envvar="SISENSE_MAX_RATE", show_envvar=True,
                     metavar="N", help="at most N requests per second in all (Sisense advises "
                                       "pacing write-heavy jobs on busy servers)"),
    ]
    for option in reversed(options):
        func = option(func)
    return func


REPORT_DIR_OPTION = click.option(
    "--report-dir", type=click.Path(path_type=Path, file_okay=False), default=None,
    envvar="BULKUSERS_REPORT_DIR", show_envvar=True, metavar="DIR",
    help="folder for reports, summaries and undo journals (default: the current folder)")
BATCH_SIZE_OPTION = click.option(
    "--batch-size", type=click.IntRange(1, 1000), default=50, show_default=True,
    help="users per bulk request (1: one request per user)")


if TYPE_CHECKING:
    _AutoOrNumberType = click.ParamType[int | str, Any]
else:
    # click before 8.4 has no type parameters on ParamType (8.4 has one, 8.5 two): the
    # subscript exists for mypy only, so every click the project allows can import this.
    _AutoOrNumberType = click.ParamType


class ConcurrencyType(_AutoOrNumberType):
    """``auto`` or a number of requests in flight from 1 to 512."""

    name = "auto|N"

    def convert(self, value: Any, param: click.Parameter | None,
                ctx: click.Context | None) -> int | str:
        """``auto``, or the number; anything else is a usage error naming both forms."""
        if isinstance(value, int) or str(value).strip().isdigit():
            number = int(value)
            if 1 <= number <= CEILING:
                return number
        elif str(value).strip().lower() == "auto":
            return "auto"
        return self.fail(f"{value!r} is neither 'auto' nor a number from 1 to {CEILING}",
                         param, ctx)


CONCURRENCY_OPTION = click.option(
    "--concurrency", type=ConcurrencyType(), default="auto", show_default=True,
    envvar="BULKUSERS_CONCURRENCY", show_envvar=True,
    help="requests in flight at once: auto finds what the server sustains (starts low, rises "
         "while its latency holds, backs off on 429, 503, 504 and timeouts); a number fixes it")
MAX_CONCURRENCY_OPTION = click.option(
    "--max-concurrency", type=click.IntRange(1, CEILING), default=DEFAULT_MAXIMUM,
    show_default=True,
    envvar="BULKUSERS_MAX_CONCURRENCY", show_envvar=True,
    help="the most requests in flight --concurrency auto ever uses; a fixed --concurrency "
         "above a cap given here (or by a variable or profile) is refused")


def input_options(func: F) -> F:
    """Add the options that say how to read the input file and where to report on it."""
    options = [
        click.argument("file", type=click.Path(path_type=Path)),
        click.option("--encoding", default="utf-8-sig", show_default=True,
                     help="text encoding of a CSV input, e.g. cp1252 or latin-1"),
        click.option("--delimiter", type=click.Choice([",", ";", "tab"]), default=None,
                     help="CSV delimiter (default: detected among , ; and tab)"),
        click.option("--sheet", default=None,
                     help="XLSX sheet name (default: the sheet Excel opens on, the active "
                          "one, or the first visible one when that is hidden)"),
        click.option("--header-row", type=click.IntRange(1, 1_000_000), default=None,
                     metavar="N",
                     help="the header is row N (default: the first non-blank row); the rows "
                          "above it, such as a title, are ignored"),
        click.option("--max-cell-bytes", type=click.IntRange(1, None),
                     default=DEFAULT_MAX_CELL_BYTES, show_default=True,
                     help="a cell larger than this makes its row invalid"),
        click.option("--report", "report_path", type=click.Path(path_type=Path),
                     default=None, help="report CSV path (default: a new file named after "
                                        "the input, the command and the time)"),
        REPORT_DIR_OPTION,
        CONCURRENCY_OPTION,
        MAX_CONCURRENCY_OPTION,
        click.option("--allow-empty", is_flag=True,
                     help="accept a file with a header and no rows (exit 0) instead of "
                          "refusing it"),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def removed_option(name: str, why: str) -> Callable[[F], F]:
    """Accept, hidden, a flag this command never used, with one warning line: scripts that
    pass it everywhere keep working, and learn it does nothing here."""

    def warn(ctx: click.Context, _param: click.Parameter, value: bool) -> None:
        if value:
            from bulkusers.cli.console import Console

            Console(quiet=False).warning(f"{name} {why}; drop it")

    return click.option(name, is_flag=True, hidden=True, expose_value=False, callback=warn)


def policy(params: Effective | dict[str, Any]) -> RetryPolicy:
    """The request policy the connection options describe."""
    from bulkusers.config import RetryPolicy

    return RetryPolicy(attempts=params["retries"] + 1, timeout_s=params["timeout"],
                       max_rate=params["max_rate"])


def read_options(encoding: str, delimiter: str | None, sheet: str | None,
                 max_cell_bytes: int = DEFAULT_MAX_CELL_BYTES,
                 header_row: int | None = None) -> ReadOptions:
    """How to read the input, from the input options."""
    from bulkusers.readers import ReadOptions

    sep = "\t" if delimiter == "tab" else delimiter
    return ReadOptions(encoding=encoding, delimiter=sep, sheet=sheet,
                       max_cell_bytes=max_cell_bytes, header_row=header_row)


def guard(console: Console, build: Callable[[], T]) -> T:
    """Build a value from options; a BulkUsersError becomes one line and its exit code."""
    try:
        return build()
    except BulkUsersError as exc:
        console.error(str(exc))
        sys.exit(exc.exit_code)


def run(console: Console, coroutine: Coroutine[Any, Any, T],
        calm: Callable[[], str | None] = lambda: None,
        interrupted: Callable[[], str] = lambda: "interrupted") -> T:
    """Run a coroutine; turn our errors into one line and an exit code, never a traceback.

    ``calm`` may give a plain line to show instead of the error (the person said no);
    ``interrupted`` the line for a Ctrl-C the coroutine did not handle itself. A SIGTERM
    (cron, systemd, ``kill``) is a Ctrl-C throughout: before the writes it ends with that
    line, during them the run core's Ctrl-C handling takes it (every row reported)."""
    import asyncio

    previous = signal.signal(signal.SIGTERM, _as_ctrl_c)
    try:
        return asyncio.run(coroutine)
    except BulkUsersError as exc:
        plain = calm()
        if plain:
            console.plain(plain)
        else:
            console.error(str(exc))
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        console.error(interrupted())
        sys.exit(EXIT_INTERRUPTED)
    finally:
        signal.signal(signal.SIGTERM, previous)


def _as_ctrl_c(signum: int, frame: FrameType | None) -> None:
    """A SIGTERM handler: raise SIGINT, which asyncio.run turns into a cancelled run and a
    KeyboardInterrupt, and the run core, while it sends, into its own Ctrl-C handling."""
    signal.raise_signal(signal.SIGINT)


def settings_from(console: Console, params: dict[str, Any]) -> Effective:
    """Every setting of this command with its origin; a bad configuration exits 2."""
    ctx = click.get_current_context()
    return guard(console, lambda: effective(ctx, params))


def connection_from(console: Console, settings: Effective) -> Connection:
    """The connection the settings describe; a bad one exits 2 with one line, and so does a
    profile's credential headed for a URL the profile does not name."""
    from bulkusers.config import build_connection

    refusal = foreign_url(settings)
    if refusal:
        console.error(refusal)
        sys.exit(EXIT_USAGE)
    environ = os.environ

    def build() -> Connection:
        return build_connection(
            url=settings["url"], token=settings.credential("token", environ),
            username=settings.credential("username", environ),
            password=settings.credential("password", environ), api=settings["api"],
            api_secret=settings.credential("api_secret", environ),
            ca_bundle=settings["ca_bundle"], insecure=settings["insecure"])

    connection = guard(console, build)
    for warning in (mixed_origins(settings), unused_secret(connection, settings)):
        if warning:
            console.warning(warning)
    return _with_token_source(connection, settings)


def unused_secret(connection: Connection, settings: Effective) -> str:
    """A warning when an API secret is given to the v1 API, which never uses it: it signs the
    x-api-key JWT of pre-6.5 servers, and a run meant for one of those is missing
    ``--api legacy``."""
    if connection.api == "legacy" or connection.api_secret is None:
        return ""
    origin = settings.origins.get("api_secret")
    source = f" (from {origin})" if origin is not None and origin.kind != "flag" else ""
    return (f"--api-secret{source} is not used with --api v1: it signs the x-api-key JWT of "
            "pre-6.5 servers; add --api legacy for such a server, or drop it")


def _with_token_source(connection: Connection, settings: Effective) -> Connection:
    """The connection, naming the profile's token source when a profile gave the token, so
    that a refused token's message says which one to check."""
    from dataclasses import replace

    origin, profile = settings.origins.get("token"), settings.profile
    if origin is None or origin.kind != "profile" or profile is None:
        return connection
    place = profile.credentials["token"].place()
    return replace(connection, token_from=f"profile {profile.name} ({place})")


def mixed_origins(settings: Effective) -> str:
    """A warning when the profile's URL is paired with credentials from a variable: a token
    exported for one instance would go to another. (The reverse, a profile's credentials
    headed for another URL, is refused: ``settings.foreign_url``.)"""
    url = settings.origins.get("url")
    if url is None or url.kind != "profile":
        return ""
    for name in CREDENTIALS:
        origin = settings.origins.get(name)
        if origin is not None and origin.kind == "env":
            return (f"the URL comes from {url} but the {name.replace('_', ' ')} from {origin}; "
                    "check they belong to the same Sisense (or pass them as flags)")
    return ""
