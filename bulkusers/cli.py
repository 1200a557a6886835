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
from bulkusers.config import RetryPolicy, build_connection
from bulkusers.errors import BulkUsersError
from bulkusers.export import ExportOptions, export_users
from bulkusers.jobs import Command, RunSettings, run_command
from bulkusers.operations import GroupsMode, OnExisting, PlanOptions
from bulkusers.readers import ReadOptions
from bulkusers.ui import Console, ProgressObserver

F = TypeVar("F", bound=Callable[..., Any])
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
        click.option("--retries", type=click.IntRange(0, 20), default=4, show_default=True,
                     help="retries per request on connection errors, timeouts, 429 and 5xx"),
        click.option("--timeout", type=click.FloatRange(1, 3600), default=60.0,
                     show_default=True, help="seconds before one request times out"),
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
        click.option("--sheet", default=None, help="XLSX sheet name (default: the first)"),
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
    ]
    for option in reversed(options):
        func = option(func)
    return func


def _policy(retries: int, timeout: float) -> RetryPolicy:
    return RetryPolicy(attempts=retries + 1, timeout_s=timeout)


def _read_options(encoding: str, delimiter: str | None, sheet: str | None) -> ReadOptions:
    sep = "\t" if delimiter == "tab" else delimiter
    return ReadOptions(encoding=encoding, delimiter=sep, sheet=sheet)


T = TypeVar("T")


def _guard(console: Console, build: Callable[[], T]) -> T:
    """Build a value from options; a BulkUsersError becomes one line and its exit code."""
    try:
        return build()
    except BulkUsersError as exc:
        console.error(str(exc))
        sys.exit(exc.exit_code)


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


LABELS = {"import": "Importing", "update": "Updating", "deactivate": "Deactivating",
          "delete": "Deleting", "reactivate": "Reactivating"}


def _write_command(command: Command, params: dict[str, Any], options: PlanOptions) -> None:
    """Everything a write command does once its own options are read."""
    console = Console(quiet=params["quiet"])
    connection = _guard(console, lambda: build_connection(
        url=params["url"], token=params["token"], username=params["username"],
        password=params["password"], api=params["api"], api_secret=params["api_secret"]))
    read = _guard(console, lambda: _read_options(params.get("encoding", "utf-8-sig"),
                                                 params.get("delimiter"), params.get("sheet")))
    settings = RunSettings(input_path=params["file"], read=read,
                           report_path=params["report_path"],
                           concurrency=params["concurrency"], batch_size=params["batch_size"])
    observer = ProgressObserver(console, LABELS[command])
    with observer:
        summary = _run(console, run_command(command, settings, connection,
                                            _policy(params["retries"], params["timeout"]),
                                            options, observer))
    console.summary(summary)
    sys.exit(summary.exit_code if summary.exit_code is not None else 1)


@click.group(context_settings={"help_option_names": ["-h", "--help"],
                               "max_content_width": 100})
@click.version_option(__version__, prog_name="bulkusers")
@click.option("--debug", is_flag=True, help="show tracebacks of unexpected errors")
def cli(debug: bool) -> None:
    """Bulk import, update, export, deactivation and deletion of Sisense users.

    Every write command reads a CSV or XLSX file, sends the rows through a pool of concurrent
    requests with retries, and writes a report with one line per input row. Exit codes:
    0 every row ok, 1 some rows failed or were invalid, 2 bad usage or unreadable input
    (nothing sent), 3 run aborted (credentials refused, server unreachable), 130 interrupted.
    """


COLUMNS_HELP = """
Columns are matched by name, case-insensitively, with common HR aliases: email (required;
"Work Email", "E-mail"), userName, firstName ("First Name"), lastName ("Surname"), role
(API name, display name or alias: viewer, designer, admin...), groups (names separated by ;
or |), password (only used when creating), language. A blank cell leaves a field alone;
the cell (clear) empties it (groups: no groups).
"""

GROUPS_OPTION = click.option(
    "--groups", "groups_mode", type=click.Choice(["add", "replace"]), default="add",
    show_default=True,
    help="add: the named groups are added to the user's current ones; replace: membership "
         "becomes exactly the named groups")


@cli.command("import", help="Create the users listed in FILE (CSV, TSV or XLSX).\n\n"
             "Existing users (same email) are skipped unless --on-existing update; invalid "
             "rows are skipped with the reason and never sent. New users are created in bulk "
             "requests; a refused batch is retried row by row.\n" + COLUMNS_HELP)
@input_options
@connection_options
@click.option("--on-existing", type=click.Choice(["skip", "update", "fail"]), default="skip",
              show_default=True, help="what to do with rows whose user already exists")
@GROUPS_OPTION
@click.option("--default-role", default=None, metavar="ROLE",
              help="role for new users whose role cell is blank (e.g. viewer)")
def import_command(on_existing: OnExisting, groups_mode: GroupsMode,
                   default_role: str | None, **params: Any) -> None:
    """Create (or upsert) users."""
    _write_command("import", params, PlanOptions(default_role=default_role,
                                                 on_existing=on_existing,
                                                 groups_mode=groups_mode))


@cli.command("update", help="Update the users listed in FILE, matched by email.\n\n"
             "Only fields that differ are sent; a user that already matches is 'unchanged'. "
             "A row whose email matches no user is 'failed'.\n" + COLUMNS_HELP)
@input_options
@connection_options
@GROUPS_OPTION
def update_command(groups_mode: GroupsMode, **params: Any) -> None:
    """Update users."""
    _write_command("update", params, PlanOptions(groups_mode=groups_mode))


DEACTIVATE_HELP = """Deactivate the users listed in FILE (an email column), reversibly.

Sisense has no documented 'suspended' switch, so deactivation combines documented
endpoints: the user's role becomes Viewer (consumer), every group membership is removed, the
password is replaced by a long random one that nobody knows, and every token the user holds is
revoked (v1 API). Afterwards the user cannot sign in with a password or use any earlier token,
and holds no group and no elevated role. Each change is verified from the server's answer.

It does NOT delete the user, free a license seat, or stop sign-in through SSO or Active
Directory (delete such users instead); with --api legacy tokens cannot be revoked.

The report records each user's previous role and groups: `bulkusers reactivate REPORT` puts
them back (the password is not restored: the user resets it with 'Forgot password', or an
admin sets one with `bulkusers update`). The super user and the account running the tool are
never touched.
"""


@cli.command("deactivate", help=DEACTIVATE_HELP)
@input_options
@connection_options
def deactivate_command(**params: Any) -> None:
    """Deactivate users."""
    _write_command("deactivate", params, PlanOptions())


@cli.command("reactivate", help="Undo a deactivation: give each user deactivated in REPORT "
             "(a `bulkusers deactivate` report) its recorded role and groups back.\n\n"
             "Passwords are not restored: users reset theirs with 'Forgot password'.")
@click.argument("file", type=click.Path(path_type=Path), metavar="REPORT")
@click.option("--report", "report_path", type=click.Path(path_type=Path), default=None,
              help="report CSV path (default: a new file named after REPORT)")
@click.option("--concurrency", type=click.IntRange(1, 64), default=8, show_default=True)
@click.option("--quiet", "-q", is_flag=True)
@connection_options
def reactivate_command(**params: Any) -> None:
    """Reactivate users."""
    _write_command("reactivate", {**params, "batch_size": 1}, PlanOptions())


@cli.command("delete", help="Delete the users listed in FILE (an email column).\n\n"
             "Each user's full record (names, role, groups) is written to the report first, "
             "so `bulkusers import REPORT` re-creates them (without their passwords). The "
             "super user and the account running the tool are never deleted.")
@input_options
@connection_options
def delete_command(**params: Any) -> None:
    """Delete users."""
    _write_command("delete", params, PlanOptions())


EXPORT_HELP = """Export users to OUTPUT (.csv or .xlsx), one line per user.

Columns: email, userName, firstName, lastName, role (API name, e.g. consumer),
roleDisplayName (e.g. Viewer), groups (names joined with '; ', including the computed
Admins, Everyone and All users in system), language, active, created, lastLogin,
lastUpdated, id. The file is valid input for `bulkusers import` (it ignores the extra
columns). CSV is UTF-8 with BOM and formula-safe; XLSX has real date cells (UTC) and text
everywhere else. The file appears only when the export is complete. Exit codes: 0 exported,
2 bad usage (nothing written), 3 aborted (credentials refused, server unreachable).
"""


@cli.command("export", help=EXPORT_HELP)
@click.argument("output", type=click.Path(path_type=Path))
@connection_options
@click.option("--role", default=None, metavar="NAME",
              help="only users with this role (API name, display name or alias)")
@click.option("--group", default=None, metavar="NAME",
              help="only members of this group (built-in groups included)")
@click.option("--inactive-days", type=click.IntRange(1), default=None, metavar="N",
              help="only users who last signed in more than N days ago, or never")
@click.option("--page-size", type=click.IntRange(1, 10_000), default=500, show_default=True,
              help="users per GET request")
@click.option("--quiet", "-q", is_flag=True, help="no summary line; the exit code tells")
def export_command(output: Path, role: str | None, group: str | None,
                   inactive_days: int | None, page_size: int, quiet: bool,
                   **params: Any) -> None:
    """Export users."""
    console = Console(quiet=quiet)
    options = _guard(console, lambda: ExportOptions(output, role=role, group=group,
                                                    inactive_days=inactive_days,
                                                    page_size=page_size))
    connection = _guard(console, lambda: build_connection(
        url=params["url"], token=params["token"], username=params["username"],
        password=params["password"], api=params["api"], api_secret=params["api_secret"]))
    result = _run(console, export_users(connection, _policy(params["retries"],
                                                            params["timeout"]), options))
    users = "1 user" if result.written == 1 else f"{result.written} users"
    of = f" (of {result.read} read)" if result.read != result.written else ""
    console.info(f"bulkusers export: {users} written to {result.path}{of} "
                 f"in {result.seconds:.1f} s")
    sys.exit(0)


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
@click.option("--api-secret", default=None,
              help="accept the legacy x-api-key JWT signed with this REST API secret")
def emulator_command(host: str, port: int, token: str | None, admin_email: str,
                     admin_password: str, users: int, groups: str, latency_ms: float,
                     error_rate: float, max_inflight: int | None,
                     api_secret: str | None) -> None:
    """Run the Sisense emulator: a local stand-in for rehearsals and tests.

    It serves the documented Sisense user, group, role and login endpoints with an
    in-memory store (lost when it stops) and can inject latency, errors and rate limits.
    """
    from bulkusers.emulator import EmulatorSettings, serve_forever

    console = Console(quiet=False)
    settings = EmulatorSettings(
        token=token, admin_email=admin_email, admin_password=admin_password, users=users,
        groups=tuple(g.strip() for g in groups.split(",") if g.strip()),
        latency_ms=latency_ms, error_rate=error_rate, max_inflight=max_inflight,
        api_secret=api_secret)

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
