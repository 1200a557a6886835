"""The ``diff`` command, and the comparison ``export --compare`` runs after an export.

The comparison (and openpyxl, for XLSX) is imported when the command runs, not for ``--help``.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from bulkusers.cli.common import global_options, guard, is_quiet, read_options
from bulkusers.errors import EXIT_CHANGED

if TYPE_CHECKING:
    from datetime import datetime

    from bulkusers.cli.console import Console
    from bulkusers.diff import DiffSummary, Snapshot
    from bulkusers.readers import ReadOptions

DIFF_HELP = f"""Write what changed between two exports OLD and NEW (CSV or XLSX).

Users are matched by email (ASCII letter case ignored); rows and columns may be in any
order. One line per change: added, removed, role (old and new role), groups (old and new
groups, the names added and removed; order and letter case ignored; the built-in
groups left out) and, with
--inactive-days N, inactive: users who at NEW's time had not signed in for more than N days
but had at OLD's time (each file is judged at its modification time; a user who never
signed in counts from 'created').

The changes go to --output (.csv or .xlsx; default: NEW's name + '.changes' beside it; '-'
for CSV on stdout) and their counts to a JSON summary beside it (--summary). Exit codes:
0 nothing changed, {EXIT_CHANGED} something changed, 2 unreadable input or bad usage.
"""

INACTIVE_HELP = ("also list users newly past N days without signing in (a user who never "
                 "signed in counts from 'created')")


def diff_files(console: Console, old: Snapshot, new: Snapshot, output: Path | None,
               inactive_days: int | None, summary: Path | None) -> DiffSummary:
    """Compare and write, one error line and exit 2 on failure; the counts."""
    from bulkusers.diff import run_diff

    return guard(console, lambda: run_diff(old, new, output, inactive_days=inactive_days,
                                           summary=summary))


def read_compared(console: Console, path: Path, read: ReadOptions,
                  taken: datetime | None = None) -> Snapshot:
    """An export to compare; one error line and exit 2 when it cannot be read."""
    from bulkusers.diff import read_snapshot

    return guard(console, lambda: read_snapshot(path, read, taken))


@click.command("diff", help=DIFF_HELP)
@click.argument("old", type=click.Path(path_type=Path))
@click.argument("new", type=click.Path(path_type=Path))
@click.option("--output", "-o", default=None, metavar="PATH",
              help="where the changes go (.csv or .xlsx; - for CSV on stdout)")
@click.option("--summary", "summary", type=click.Path(path_type=Path), default=None,
              help="JSON summary path (default: beside the output; none with -o - unless "
                   "given)")
@click.option("--inactive-days", type=click.IntRange(1), default=None, metavar="N",
              help=INACTIVE_HELP)
@click.option("--encoding", default="utf-8-sig", show_default=True,
              help="text encoding of CSV inputs")
@click.option("--delimiter", type=click.Choice([",", ";", "tab"]), default=None,
              help="CSV delimiter (default: detected)")
@click.option("--sheet", default=None,
              help="XLSX sheet name (default: the sheet Excel opens on)")
@global_options(connects=False)
def diff_command(old: Path, new: Path, output: str | None, summary: Path | None,
                 inactive_days: int | None, **params: Any) -> None:
    """Compare two exports."""
    from bulkusers.cli.console import Console
    from bulkusers.diff import check_output, default_output

    console = Console(quiet=is_quiet())
    read = guard(console, lambda: read_options(params["encoding"], params["delimiter"],
                                               params["sheet"]))
    target = None if output == "-" else Path(output) if output else default_output(new)
    if target is not None:
        guard(console, lambda: check_output(target, old, new))
    before = read_compared(console, old, read)
    after = read_compared(console, new, read)
    result = diff_files(console, before, after, target, inactive_days, summary)
    console.info(f"bulkusers diff: {result.line()}"
                 + (f" written to {target}" if target is not None else ""))
    sys.exit(result.exit_code)
