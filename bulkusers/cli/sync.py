"""The ``sync`` command: make Sisense match an HR file within a scope."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Unpack

import click

from bulkusers.cli.common import (
    BATCH_SIZE_OPTION,
    connection_options,
    guard,
    input_options,
    is_quiet,
)
from bulkusers.cli.settings import Effective
from bulkusers.cli.write import (
    COLUMNS_HELP,
    CREATE_GROUPS_OPTION,
    YES_OPTION,
    WriteParams,
    _confirmer,
    _write_command,
    safety_options,
)
from bulkusers.errors import ConfigError
from bulkusers.words import count

if TYPE_CHECKING:
    from bulkusers.cli.console import Console
    from bulkusers.guards import Confirm
    from bulkusers.plan import Preflight
    from bulkusers.rules import GroupsMode, PlanOptions
    from bulkusers.summary import RunSummary
    from bulkusers.sync import Missing

#: ``--missing``'s choices: ``sync.MISSING_CHOICES``, written out so that declaring the option
#: does not import the planner (``tests/test_layout.py`` checks they agree).
MISSING_CHOICES = ("deactivate", "delete", "report")

SYNC_HELP = """Make Sisense match FILE (the complete HR list) within a scope.

Users in FILE but not in Sisense are created; users that differ are updated (only what
differs; groups become exactly the file's, unless --groups add); users IN SCOPE but not in
FILE are deactivated (default, as `bulkusers deactivate` does), deleted (--missing delete) or
only listed (--missing report). The scope is required before anyone is removed:
--scope-domain corp.example (email domain, repeatable) and/or --scope-group NAME (members of
a group, repeatable); a user matching any of them is in scope. The super user and the account
running the tool are never in scope. Without a scope, sync runs only with --missing report.

A truncated export is refused before any write (exit 3): --max-missing N or N% (default 10%
of the users in scope) caps the users removed, and a file with no data rows is never acted
on. A user bulkusers already deactivated (its records on this machine) is not deactivated
again; a rehire in the file gets the file's role and groups back (action reactivate). The
report has one line per input row, then one line per user in scope not in the file (empty
`row`). Try --dry-run first; off a terminal removing users needs --yes.
""" + COLUMNS_HELP


def _sync_confirmer(yes: bool, dry_run: bool,
                    missing: Missing) -> Callable[[Console], Confirm | None]:
    """How sync asks before removing users: not at all, by the prompt of deactivate and
    delete, or (off a terminal, without --yes) by refusing once the plan removes anyone."""

    def build(console: Console) -> Confirm | None:
        if yes or dry_run or missing == "report":
            return None
        if sys.stdin.isatty():
            ask = _confirmer(console, "deactivate", False, False)  # the shared prompt
            assert ask is not None
            return lambda _action, plan: ask(missing, plan)

        def refuse(_action: str, plan: Preflight) -> bool:
            raise ConfigError(f"sync would {missing} {count(plan.destructive, 'user')} and needs "
                              "confirmation: pass --yes when not running from a terminal "
                              "(try --dry-run first); nothing was sent")

        return refuse

    return build


def _show_sets(console: Console, summary: RunSummary) -> None:
    """After a dry run: the users to create and update, and those only listed (the first of
    each); the users to deactivate or delete are listed by Console.affected."""
    from bulkusers.sync import planned_sets

    if not summary.nothing_sent or console.quiet or not summary.report_file:
        return
    for found in planned_sets(Path(summary.report_file)):
        if found.destructive:
            continue  # Console.affected has listed them, as the server holds them
        console.info(f"{found.label}: {found.total}")
        for line in found.shown:
            console.info(f"  {line}")
        if found.total > len(found.shown):
            console.info(f"  ... and {found.total - len(found.shown)} more in "
                         f"{summary.report_file}")


@click.command("sync", help=SYNC_HELP)
@input_options
@BATCH_SIZE_OPTION
@safety_options
@YES_OPTION
@connection_options
@click.option("--missing", type=click.Choice(MISSING_CHOICES), default="deactivate",
              show_default=True,
              help="what happens to users in scope who are not in FILE")
@click.option("--scope-domain", "scope_domains", multiple=True, metavar="DOMAIN",
              help="users whose email is at DOMAIN (exact domain, letter case ignored) are "
                   "in scope; repeatable")
@click.option("--scope-group", "scope_groups", multiple=True, metavar="NAME",
              help="members of group NAME are in scope; repeatable")
@click.option("--max-missing", default=None, metavar="N|N%",
              help="abort before any write if more than N users in scope (or N% of them) "
                   "would be removed (exit 3)  [default: 10%]")
@click.option("--groups", "groups_mode", type=click.Choice(["add", "replace"]),
              default="replace", show_default=True,
              help="replace: membership becomes exactly the file's groups; add: the file's "
                   "groups are added to the current ones")
@click.option("--default-role", default=None, metavar="ROLE", envvar="BULKUSERS_DEFAULT_ROLE",
              show_envvar=True,
              help="role for new users whose role cell is blank (e.g. viewer)")
@CREATE_GROUPS_OPTION
def sync_command(missing: Missing, scope_domains: tuple[str, ...],
                 scope_groups: tuple[str, ...], max_missing: str | None,
                 groups_mode: GroupsMode, create_groups: bool,
                 **params: Unpack[WriteParams]) -> None:
    """Sync users with an HR file."""
    from bulkusers.cli.console import Console
    from bulkusers.rules import PlanOptions
    from bulkusers.sync import SyncOptions, parse_max_missing

    console = Console(quiet=is_quiet())
    sync = guard(console, lambda: SyncOptions(missing=missing, domains=scope_domains,
                                              groups=scope_groups,
                                              max_missing=parse_max_missing(max_missing)))
    def options(settings: Effective) -> PlanOptions:
        return PlanOptions(default_role=settings["default_role"], on_existing="update",
                           groups_mode=groups_mode, create_groups=create_groups)

    _write_command("sync", params, options, sync=sync,
                   confirmer=_sync_confirmer(params.get("yes", False),
                                             params.get("dry_run", False), missing),
                   after=_show_sets)
