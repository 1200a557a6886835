"""``bulkusers export``: users to CSV or XLSX, and ``--compare`` with an earlier export.

The export itself (aiohttp, openpyxl) is imported when the command runs, not for ``--help``.
"""

from __future__ import annotations

import os
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from bulkusers.cli.common import (
    EXIT_USAGE,
    REPORT_DIR_OPTION,
    connection_from,
    connection_options,
    guard,
    is_quiet,
    policy,
    settings_from,
)
from bulkusers.cli.diff import INACTIVE_HELP
from bulkusers.cli.settings import report_dir_problem
from bulkusers.errors import EXIT_CHANGED, BulkUsersError
from bulkusers.frozen import frozen
from bulkusers.words import count

if TYPE_CHECKING:
    from bulkusers.cli.console import Console
    from bulkusers.diff import Snapshot
    from bulkusers.export import Comparison, ExportSummary

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
server unreachable). With --compare: 4 something changed; a PREVIOUS that does not exist
(a first run) is a warning, the export is written and exits 0; one that cannot be read is
an error after the export is written (exit 2).
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
                   f"exit {EXIT_CHANGED} when something did; no PREVIOUS yet: a warning, no "
                   "comparison")
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
    import asyncio

    from bulkusers.cli.console import Console
    from bulkusers.diff import check_output, default_output
    from bulkusers.export import (
        ExportOptions,
        ExportSummary,
        export_summary_path,
        run_export,
    )
    from bulkusers.exportfile import OutputClosed
    from bulkusers.report import check_report_path

    console = Console(quiet=is_quiet())
    previous: _Previous | None = None
    if compare is not None:
        if str(output) == "-":
            console.error("--compare needs OUTPUT to be a file, not -: the comparison reads "
                          "it back")
            sys.exit(EXIT_USAGE)
        changes = changes or default_output(output)
        guard(console, lambda: check_output(changes, compare, output, option="--changes"))
        # Read first, but whatever it says the export runs: tonight's export is tomorrow's
        # PREVIOUS, so a missing or damaged one must not cost that too.
        previous = _read_previous(compare)
    elif changes is not None or compare_inactive_days is not None:
        console.error("--changes and --compare-inactive-days need --compare PREVIOUS")
        sys.exit(EXIT_USAGE)
    options = guard(console, lambda: ExportOptions(output, role=role, group=group,
                                                    inactive_days=inactive_days,
                                                    page_size=page_size))
    settings = settings_from(console, params)
    refusal = report_dir_problem(settings)
    if refusal and options.to_stdout:  # only a summary of an export to - goes there
        console.error(f"{refusal}; nothing was exported")
        sys.exit(EXIT_USAGE)
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
        result = asyncio.run(run_export(connection, policy(settings), options, stream))
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
    comparison = None
    if previous is not None and changes is not None:
        comparison = _compare(previous, result.path, changes, compare_inactive_days)
    written = _write_export_summary(console, summary_file, ExportSummary(
        options, connection.url, connection.api, started, datetime.now(UTC), result,
        comparison))
    where = "standard output" if options.to_stdout else str(result.path)
    of = f" (of {result.read} read)" if result.read != result.written else ""
    console.info(f"bulkusers export: {count(result.written, 'user')} written to {where}{of} "
                 f"in {result.seconds:.1f} s")
    if written:
        console.info(f"summary: {summary_file}")
    if comparison is not None:
        _tell(console, comparison)
    if not written:
        sys.exit(3)
    sys.exit(comparison.exit_code if comparison is not None else 0)


@frozen
class _Previous:
    """PREVIOUS as read before the export: its users, or why it cannot be compared."""

    path: Path
    snapshot: Snapshot | None = None
    problem: BulkUsersError | None = None


def _read_previous(path: Path) -> _Previous:
    """PREVIOUS read: a missing file is no error (nothing to compare with yet); a file that
    is there but cannot be read is one, reported once the export is written."""
    from bulkusers.diff import read_snapshot

    # lexists: a link to nowhere is not "no export yet" but a mistake, reported as one.
    if not os.path.lexists(path):
        return _Previous(path)
    try:
        return _Previous(path, read_snapshot(path))
    except BulkUsersError as exc:
        return _Previous(path, problem=exc)


def _compare(previous: _Previous, now: Path, changes: Path,
             inactive_days: int | None) -> Comparison:
    """Compare the written export with PREVIOUS, or say why nothing was compared."""
    from bulkusers.diff import read_snapshot, run_diff
    from bulkusers.export import Comparison

    if previous.problem is not None:
        return Comparison.failed(previous.path, str(previous.problem),
                                 previous.problem.exit_code)
    if previous.snapshot is None:
        return Comparison.nothing_to_compare(previous.path)
    taken = datetime.now(UTC)  # the export's time, to judge --compare-inactive-days at
    try:
        result = run_diff(previous.snapshot, read_snapshot(now, taken=taken), changes,
                          inactive_days=inactive_days)
    except BulkUsersError as exc:
        return Comparison.failed(previous.path, str(exc), exc.exit_code)
    return Comparison.made(previous.path, changes, result.changed, result.line())


def _tell(console: Console, comparison: Comparison) -> None:
    """One line on the comparison: its counts, nothing to compare with, or its error."""
    if comparison.changes is not None:
        console.info(f"bulkusers export --compare: {comparison.counts} written to "
                     f"{comparison.changes}")
    elif comparison.missing:
        console.warning(f"--compare {comparison.previous}: no such file, so nothing was compared "
                        "(the first run, or the previous one did not export); the export "
                        "was written and is the next run's PREVIOUS")
    else:
        console.error(f"{comparison.reason}; the export was written, nothing was compared")


def _write_export_summary(console: Console, path: Path, summary: ExportSummary) -> bool:
    """Write the export's JSON summary; False (and one line) when it cannot be written."""
    try:
        summary.write_json(path)
    except OSError as exc:
        console.error(f"cannot write the summary {path} ({exc.strerror or exc})")
        return False
    return True
