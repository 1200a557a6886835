"""The write commands: import, update, deactivate, reactivate, delete."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, TypedDict, Unpack

import click

from bulkusers.cli.common import (
    BATCH_SIZE_OPTION,
    CONCURRENCY_OPTION,
    DEFAULT_MAX_CELL_BYTES,
    EXIT_INTERRUPTED,
    EXIT_USAGE,
    MAX_CONCURRENCY_OPTION,
    REPORT_DIR_OPTION,
    F,
    connection_from,
    connection_options,
    guard,
    input_options,
    is_quiet,
    policy,
    read_options,
    removed_option,
    run,
    settings_from,
)
from bulkusers.cli.settings import Effective, concurrency_over_cap, report_dir_problem
from bulkusers.concurrency import DEFAULT_MAXIMUM
from bulkusers.errors import ConfigError
from bulkusers.words import count

if TYPE_CHECKING:
    from bulkusers.cli.console import Console
    from bulkusers.commands import Command
    from bulkusers.guards import Confirm, Limit
    from bulkusers.plan import Preflight
    from bulkusers.rules import GroupsMode, OnExisting, PlanOptions
    from bulkusers.summary import RunSummary
    from bulkusers.sync import SyncOptions


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
        click.option("--resume", type=click.Path(path_type=Path), default=None,
                     metavar="REPORT",
                     help="continue the interrupted or partly failed run that wrote REPORT: "
                          "finished rows are not sent again, results are appended to it"),
    ]
    for option in reversed(options):
        func = option(func)
    return func


YES_OPTION = click.option(
    "--yes", "-y", is_flag=True,
    help="do not ask before changing users (needed off a terminal, e.g. in cron)")
NO_YES = removed_option("--yes", "does nothing here: only deactivate, delete and sync ask "
                                 "before changing users")


def _confirmer(console: Console, command: Command, yes: bool,
               dry_run: bool) -> Confirm | None:
    """How a destructive run is confirmed: not at all (--yes), by a prompt, or refused."""
    from bulkusers.cli.prompt import ask_yes_no
    from bulkusers.commands import command_spec

    if yes or dry_run or not command_spec(command).destructive:
        return None
    if not sys.stdin.isatty():
        console.error(f"{command} changes users and needs confirmation: pass --yes when not "
                      "running from a terminal (try --dry-run first); nothing was sent")
        sys.exit(EXIT_USAGE)

    def confirm(action: str, plan: Preflight) -> bool:
        console.confirmation(action, plan)
        try:
            return ask_yes_no(f"{action.capitalize()} {count(plan.destructive, 'user')}?")
        except KeyboardInterrupt:
            # Nothing was sent yet: stop here, at once, without a traceback or an "error".
            console.stopped(f"{action} stopped at the confirmation prompt; nothing was sent")
            sys.exit(EXIT_INTERRUPTED)

    return confirm


def _noting_no(declined: list[bool], confirm: Confirm | None) -> Confirm | None:
    """The confirmation, noting a 'no' so that the run ends calmly rather than in red."""
    if confirm is None:
        return None

    def ask(action: str, plan: Preflight) -> bool:
        answer = confirm(action, plan)
        if not answer:
            declined.append(True)
        return answer

    return ask


class WriteParams(TypedDict, total=False):
    """The options the write commands share, as click hands them over: a misspelt name is a
    mypy error, not a KeyError at run time."""

    file: Path
    encoding: str
    delimiter: str | None
    sheet: str | None
    header_row: int | None
    max_cell_bytes: int
    report_path: Path | None
    report_dir: Path | None
    allow_empty: bool
    concurrency: str | None
    max_concurrency: int | None
    batch_size: int | None
    dry_run: bool
    strict: bool
    max_changes: str | None
    resume: Path | None
    yes: bool
    url: str | None
    token: str | None
    username: str | None
    password: str | None
    api: str
    api_secret: str | None
    ca_bundle: Path | None
    insecure: bool
    retries: int
    timeout: float
    max_rate: float | None


def _write_command(command: Command, params: WriteParams,
                   plan_options: PlanOptions | Callable[[Effective], PlanOptions], *,
                   sync: SyncOptions | None = None,
                   confirmer: Callable[[Console], Confirm | None] | None = None,
                   after: Callable[[Console, RunSummary], None] | None = None) -> None:
    """Everything a write command does once its own options are read: one typed, frozen
    RunConfig, the run, the summary.

    ``plan_options`` may depend on the settings (a profile's default role). ``sync``,
    ``confirmer`` and ``after`` are the sync command's: its options, how it asks before
    removing users, and what it shows after the summary (the dry run's lists).
    """
    from bulkusers.cli.console import Console, ProgressObserver
    from bulkusers.commands import command_spec
    from bulkusers.jobs import run_command
    from bulkusers.rules import PlanOptions
    from bulkusers.runconfig import RunConfig, Safety

    console = Console(quiet=is_quiet())
    settings = settings_from(console, dict(params))
    for refusal in (concurrency_over_cap(settings), report_dir_problem(settings)):
        if refusal:
            console.error(f"{refusal}; nothing was sent")
            sys.exit(EXIT_USAGE)
    read = guard(console, lambda: read_options(
        params.get("encoding", "utf-8-sig"), params.get("delimiter"), params.get("sheet"),
        params.get("max_cell_bytes", DEFAULT_MAX_CELL_BYTES), params.get("header_row")))
    limit = guard(console, lambda: _limit(params.get("max_changes")))
    resume = params.get("resume")
    if resume is not None and params.get("report_path") not in (None, resume):
        console.error("--resume appends to the report it continues; drop --report")
        sys.exit(EXIT_USAGE)
    options = plan_options if isinstance(plan_options, PlanOptions) else plan_options(settings)
    connection = connection_from(console, settings)
    if not connection.verify_tls:
        console.insecure_warning()
    declined: list[bool] = []
    dry_run = params.get("dry_run", False)
    safety = Safety(dry_run=dry_run, strict=params.get("strict", False), max_changes=limit,
                    confirm=_noting_no(declined, confirmer(console) if confirmer else
                                       _confirmer(console, command, params.get("yes", False),
                                                  dry_run)),
                    resume=resume)
    config = guard(console, lambda: RunConfig(
        command=command, connection=connection, input_path=params["file"],
        retry=policy(settings), read=read, plan=options, safety=safety, sync=sync,
        report_path=params.get("report_path"), report_dir=settings["report_dir"],
        concurrency=settings["concurrency"],
        max_concurrency=settings.values.get("max_concurrency", DEFAULT_MAXIMUM),
        batch_size=settings.values.get("batch_size", 1),
        allow_empty=params.get("allow_empty", False)))
    observer = ProgressObserver(console, command_spec(command).label)
    with observer:
        # A Ctrl-C the run core does not handle itself came before its writes (reading,
        # loading the directory, planning): nothing was sent and no row has a report line.
        summary = run(console, run_command(config, observer),
                      calm=lambda: "Nothing was sent." if declined else None,
                      interrupted=lambda: "interrupted" if observer.sending else (
                          "interrupted before anything was sent; run the command again"))
    console.summary(summary)
    console.affected(summary)
    if after is not None:
        after(console, summary)
    # A dry run (or a plan --strict refused) sent nothing and cannot be resumed: it is
    # simply run again.
    if (summary.interrupted or summary.aborted) and not summary.nothing_sent:
        console.resume_hint(summary)
    sys.exit(summary.exit_code if summary.exit_code is not None else 1)


def _limit(text: str | None) -> Limit:
    from bulkusers.guards import Limit

    if text is None:
        return Limit()
    try:
        return Limit.parse(text)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None


def _columns_help(password: bool) -> str:
    """The input columns a command reads (update never sets a password)."""
    password_text = "password (only used when creating), " if password else ""
    return f"""
Columns are matched by name, case-insensitively, with common HR aliases: email (required;
"Work Email", "E-mail"), userName, firstName ("First Name"), lastName ("Surname"), role
(API name, display name or alias: viewer, designer, admin...), groups (names separated by ;
or |), {password_text}language. A blank cell leaves a field alone; the cell (clear) empties
it (groups: no groups).
"""


#: The columns of commands that create users (import, sync).
COLUMNS_HELP = _columns_help(password=True)

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
             "Existing users (same email) are skipped as 'already there' unless --on-existing "
             "update; invalid rows are skipped with the reason and never sent. New users are "
             "created in bulk requests; a refused batch is retried row by row.\n"
             + _columns_help(password=True))
@input_options
@BATCH_SIZE_OPTION
@safety_options
@NO_YES
@connection_options
@click.option("--on-existing", type=click.Choice(["skip", "update", "fail"]), default="skip",
              show_default=True, help="what to do with rows whose user already exists")
@GROUPS_OPTION
@click.option("--default-role", default=None, metavar="ROLE", envvar="BULKUSERS_DEFAULT_ROLE",
              show_envvar=True,
              help="role for new users whose role cell is blank (e.g. viewer)")
@CREATE_GROUPS_OPTION
@KEEP_EMAIL_CASE_OPTION
def import_command(on_existing: OnExisting, groups_mode: GroupsMode,
                   create_groups: bool, keep_email_case: bool,
                   **params: Unpack[WriteParams]) -> None:
    """Create (or upsert) users."""
    from bulkusers.rules import PlanOptions

    _write_command("import", params, lambda settings: PlanOptions(
        default_role=settings["default_role"], on_existing=on_existing,
        groups_mode=groups_mode, create_groups=create_groups,
        keep_email_case=keep_email_case))


@click.command("update", help="Update the users listed in FILE, matched by email.\n\n"
             "Only fields that differ are sent; a user that already matches is 'unchanged'. "
             "A row whose email matches no user is 'failed'. Passwords are never changed.\n"
             + _columns_help(password=False))
@input_options
@safety_options
@NO_YES
@connection_options
@GROUPS_OPTION
@CREATE_GROUPS_OPTION
@KEEP_EMAIL_CASE_OPTION
def update_command(groups_mode: GroupsMode, create_groups: bool, keep_email_case: bool,
                   **params: Unpack[WriteParams]) -> None:
    """Update users."""
    from bulkusers.rules import PlanOptions

    _write_command("update", params, lambda _settings: PlanOptions(
        groups_mode=groups_mode, create_groups=create_groups,
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
@YES_OPTION
@connection_options
def deactivate_command(**params: Unpack[WriteParams]) -> None:
    """Deactivate users."""
    from bulkusers.rules import PlanOptions

    _write_command("deactivate", params, lambda _settings: PlanOptions())


@click.command("reactivate", help="Undo a deactivation: give each user deactivated in REPORT "
             "(a `bulkusers deactivate` report) its recorded role and groups back.\n\n"
             "Passwords are not restored: users reset theirs with 'Forgot password'.")
@click.argument("file", type=click.Path(path_type=Path), metavar="REPORT")
@click.option("--report", "report_path", type=click.Path(path_type=Path), default=None,
              help="report CSV path (default: a new file named after REPORT)")
@REPORT_DIR_OPTION
@CONCURRENCY_OPTION
@MAX_CONCURRENCY_OPTION
@safety_options
@NO_YES
@connection_options
def reactivate_command(**params: Unpack[WriteParams]) -> None:
    """Reactivate users."""
    from bulkusers.rules import PlanOptions

    _write_command("reactivate", params, lambda _settings: PlanOptions())


@click.command("delete", help="Delete the users listed in FILE (an email column).\n\n"
             "Each user's full record (names, role, groups) is written to the report first, "
             "so `bulkusers import REPORT` re-creates them (without their passwords). The "
             "super user and the account running the tool are never deleted. Try --dry-run "
             "first; off a terminal the run needs --yes.")
@input_options
@BATCH_SIZE_OPTION
@safety_options
@YES_OPTION
@connection_options
def delete_command(**params: Unpack[WriteParams]) -> None:
    """Delete users."""
    from bulkusers.rules import PlanOptions

    _write_command("delete", params, lambda _settings: PlanOptions())
