"""The write commands: import, update, deactivate, reactivate, delete."""

from __future__ import annotations

import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from bulkusers.cli.common import (
    EXIT_USAGE,
    F,
    connection_from,
    connection_options,
    guard,
    input_options,
    policy,
    read_options,
    run,
)
from bulkusers.errors import ConfigError
from bulkusers.jobs import Command, RunSettings, Safety, run_command
from bulkusers.operations import GroupsMode, OnExisting, PlanOptions
from bulkusers.preflight import DESTRUCTIVE, Confirm, Limit, Preflight
from bulkusers.readers import DEFAULT_MAX_CELL_BYTES
from bulkusers.summary import RunSummary
from bulkusers.sync import SyncOptions
from bulkusers.ui import Console, ProgressObserver

LABELS = {"import": "Importing", "update": "Updating", "deactivate": "Deactivating",
          "delete": "Deleting", "reactivate": "Reactivating", "sync": "Syncing"}


def safety_options(func: F) -> F:
    """Add the options that make a write run safe to try, to limit and to continue."""
    options = [
        click.option("--dry-run", is_flag=True,
                     help="read only: write the report with status 'planned' and the exact "
                          "changes, send nothing"),
        click.option("--strict", is_flag=True,
                     help="send nothing if any row is invalid (exit 2; the report shows why)"),
        click.option("--max-changes", default=None, metavar="N|N%",
                     help="abort before any write if the plan changes more than N users, "
                          "or more than N% of the directory (exit 3)"),
        click.option("--yes", "-y", is_flag=True,
                     help="do not ask before deactivating or deleting (needed off a "
                          "terminal, e.g. in cron)"),
        click.option("--resume", type=click.Path(path_type=Path), default=None,
                     metavar="REPORT",
                     help="continue the interrupted or partly failed run that wrote REPORT: "
                          "finished rows are not sent again, results are appended to it"),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def _confirmer(console: Console, command: Command, yes: bool,
               dry_run: bool) -> Confirm | None:
    """How a destructive run is confirmed: not at all (--yes), by a prompt, or refused."""
    if yes or dry_run or command not in DESTRUCTIVE:
        return None
    if not sys.stdin.isatty():
        console.error(f"{command} changes users and needs confirmation: pass --yes when not "
                      "running from a terminal (try --dry-run first); nothing was sent")
        sys.exit(EXIT_USAGE)

    def confirm(action: str, plan: Preflight) -> bool:
        console.confirmation(action, plan)
        # asyncio's own Ctrl-C handler would only cancel the run once the prompt returns:
        # while it waits for an answer, Ctrl-C must interrupt at once.
        previous = signal.signal(signal.SIGINT, signal.default_int_handler)
        try:
            return click.confirm(f"{action.capitalize()} {plan.destructive} users?",
                                 default=False, err=True)
        except click.Abort:
            raise KeyboardInterrupt from None
        finally:
            signal.signal(signal.SIGINT, previous)

    return confirm


def _write_command(command: Command, params: dict[str, Any], options: PlanOptions, *,
                   sync: SyncOptions | None = None,
                   confirmer: Callable[[Console], Confirm | None] | None = None,
                   after: Callable[[Console, RunSummary], None] | None = None) -> None:
    """Everything a write command does once its own options are read.

    ``sync``, ``confirmer`` and ``after`` are the sync command's: its options, how it asks
    before removing users, and what it shows after the summary (the dry run's lists).
    """
    console = Console(quiet=params["quiet"])
    connection = connection_from(console, params)
    read = guard(console, lambda: read_options(
        params.get("encoding", "utf-8-sig"), params.get("delimiter"), params.get("sheet"),
        params.get("max_cell_bytes", DEFAULT_MAX_CELL_BYTES)))
    limit = guard(console, lambda: _limit(params["max_changes"]))
    resume = params["resume"]
    if resume is not None and params["report_path"] not in (None, resume):
        console.error("--resume appends to the report it continues; drop --report")
        sys.exit(EXIT_USAGE)
    if not connection.verify_tls:
        console.insecure_warning()
    safety = Safety(dry_run=params["dry_run"], strict=params["strict"], max_changes=limit,
                    confirm=(confirmer(console) if confirmer else
                             _confirmer(console, command, params["yes"], params["dry_run"])),
                    resume=resume)
    settings = RunSettings(input_path=params["file"], read=read,
                           report_path=params["report_path"],
                           concurrency=params["concurrency"], batch_size=params["batch_size"],
                           allow_empty=params.get("allow_empty", False))
    observer = ProgressObserver(console, LABELS[command])
    with observer:
        summary = run(console, run_command(command, settings, connection,
                                           policy(params),
                                           options, observer, safety, sync))
    console.summary(summary)
    console.affected(summary)
    if after is not None:
        after(console, summary)
    if summary.interrupted or summary.aborted:
        console.resume_hint(summary)
    sys.exit(summary.exit_code if summary.exit_code is not None else 1)


def _limit(text: str | None) -> Limit:
    if text is None:
        return Limit()
    try:
        return Limit.parse(text)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None


COLUMNS_HELP = """
Columns are matched by name, case-insensitively, with common HR aliases: email (required;
"Work Email", "E-mail"), userName, firstName ("First Name"), lastName ("Surname"), role
(API name, display name or alias: viewer, designer, admin...), groups (names separated by ;
or |), password (only used when creating), language. A blank cell leaves a field alone;
the cell (clear) empties it (groups: no groups).
"""

CREATE_GROUPS_OPTION = click.option(
    "--create-groups", is_flag=True,
    help="create the groups rows name that do not exist yet, instead of refusing those rows")
KEEP_EMAIL_CASE_OPTION = click.option(
    "--keep-email-case", is_flag=True,
    help="store emails exactly as the file spells them (default: trimmed, in lower case, as "
         "identity providers send them; an update then also fixes a stored address's case)")
GROUPS_OPTION = click.option(
    "--groups", "groups_mode", type=click.Choice(["add", "replace"]), default="add",
    show_default=True,
    help="add: the named groups are added to the user's current ones; replace: membership "
         "becomes exactly the named groups")


@click.command("import", help="Create the users listed in FILE (CSV, TSV or XLSX).\n\n"
             "Existing users (same email) are skipped unless --on-existing update; invalid "
             "rows are skipped with the reason and never sent. New users are created in bulk "
             "requests; a refused batch is retried row by row.\n" + COLUMNS_HELP)
@input_options
@safety_options
@connection_options
@click.option("--on-existing", type=click.Choice(["skip", "update", "fail"]), default="skip",
              show_default=True, help="what to do with rows whose user already exists")
@GROUPS_OPTION
@click.option("--default-role", default=None, metavar="ROLE",
              help="role for new users whose role cell is blank (e.g. viewer)")
@CREATE_GROUPS_OPTION
@KEEP_EMAIL_CASE_OPTION
def import_command(on_existing: OnExisting, groups_mode: GroupsMode,
                   default_role: str | None, create_groups: bool, keep_email_case: bool,
                   **params: Any) -> None:
    """Create (or upsert) users."""
    _write_command("import", params, PlanOptions(default_role=default_role,
                                                 on_existing=on_existing,
                                                 groups_mode=groups_mode,
                                                 create_groups=create_groups,
                                                 keep_email_case=keep_email_case))


@click.command("update", help="Update the users listed in FILE, matched by email.\n\n"
             "Only fields that differ are sent; a user that already matches is 'unchanged'. "
             "A row whose email matches no user is 'failed'.\n" + COLUMNS_HELP)
@input_options
@safety_options
@connection_options
@GROUPS_OPTION
@CREATE_GROUPS_OPTION
@KEEP_EMAIL_CASE_OPTION
def update_command(groups_mode: GroupsMode, create_groups: bool, keep_email_case: bool,
                   **params: Any) -> None:
    """Update users."""
    _write_command("update", params, PlanOptions(groups_mode=groups_mode,
                                                 create_groups=create_groups,
                                                 keep_email_case=keep_email_case))


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
admin sets one in the Sisense admin UI). The super user and the account running the tool are
never touched. Try --dry-run first; off a terminal the run needs --yes.
"""


@click.command("deactivate", help=DEACTIVATE_HELP)
@input_options
@safety_options
@connection_options
def deactivate_command(**params: Any) -> None:
    """Deactivate users."""
    _write_command("deactivate", params, PlanOptions())


@click.command("reactivate", help="Undo a deactivation: give each user deactivated in REPORT "
             "(a `bulkusers deactivate` report) its recorded role and groups back.\n\n"
             "Passwords are not restored: users reset theirs with 'Forgot password'.")
@click.argument("file", type=click.Path(path_type=Path), metavar="REPORT")
@click.option("--report", "report_path", type=click.Path(path_type=Path), default=None,
              help="report CSV path (default: a new file named after REPORT)")
@click.option("--concurrency", type=click.IntRange(1, 64), default=8, show_default=True)
@click.option("--quiet", "-q", is_flag=True)
@safety_options
@connection_options
def reactivate_command(**params: Any) -> None:
    """Reactivate users."""
    _write_command("reactivate", {**params, "batch_size": 1}, PlanOptions())


@click.command("delete", help="Delete the users listed in FILE (an email column).\n\n"
             "Each user's full record (names, role, groups) is written to the report first, "
             "so `bulkusers import REPORT` re-creates them (without their passwords). The "
             "super user and the account running the tool are never deleted.")
@input_options
@safety_options
@connection_options
def delete_command(**params: Any) -> None:
    """Delete users."""
    _write_command("delete", params, PlanOptions())


