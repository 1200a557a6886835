"""What the CLI shows on stderr (rich): one-line errors, the progress bar, the run summary.

Commands import it inside their functions, so that ``--help`` never loads rich or the core.
"""

from __future__ import annotations

import shlex
import sys
import time
from pathlib import Path
from types import TracebackType

from rich.console import Console as RichConsole
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from bulkusers.models import RowResult, Status
from bulkusers.plan import Preflight
from bulkusers.report import summary_path
from bulkusers.runconfig import COMMON_RESUME_OPTIONS, option_flags
from bulkusers.safetext import excerpt, printable, quote
from bulkusers.summary import RunSummary
from bulkusers.words import count

#: The width rich lays tables out in off a terminal: wide enough never to fold a line.
UNWRAPPED_WIDTH = 10_000

STATUS_STYLES = {
    Status.CREATED: "green", Status.UPDATED: "green", Status.UNCHANGED: "dim",
    Status.DEACTIVATED: "yellow", Status.DELETED: "yellow", Status.PLANNED: "cyan",
    Status.SKIPPED: "yellow", Status.FAILED: "red", Status.NOT_ATTEMPTED: "red",
}


class Console:
    """stderr output for people; stdout stays free for data."""

    def __init__(self, *, quiet: bool) -> None:
        self.quiet = quiet
        # Off a terminal (logs, cron mail, a pipe) a line stays one line, however long:
        # rich would otherwise wrap it at 80 columns, mid-sentence.
        terminal = sys.stderr.isatty()
        self._rich = RichConsole(stderr=True, highlight=False,
                                 width=None if terminal else UNWRAPPED_WIDTH,
                                 soft_wrap=not terminal)

    @property
    def interactive(self) -> bool:
        """True when a person is watching a terminal and did not ask for quiet."""
        return not self.quiet and sys.stderr.isatty()

    @property
    def rich(self) -> RichConsole:
        """The underlying rich console (for the progress bar)."""
        return self._rich

    def error(self, message: str) -> None:
        """One line: what is wrong and what to do. Shown even with --quiet."""
        # soft_wrap: one physical line however long, so grep and cron mail keep it whole.
        self._rich.print(f"[bold red]bulkusers: error:[/] {escape(message)}", soft_wrap=True)

    def plain(self, message: str) -> None:
        """A calm line, not an error (the person chose it). Shown even with --quiet."""
        self._rich.print(escape(message), soft_wrap=True)

    def warning(self, message: str) -> None:
        """A warning line. Shown even with --quiet: it is about safety."""
        self._rich.print(f"[bold yellow]bulkusers: warning:[/] {escape(message)}",
                         soft_wrap=True)

    def stopped(self, message: str) -> None:
        """One calm line for a run the operator stopped on purpose. Shown even with --quiet."""
        self._rich.print(f"bulkusers: {escape(message)}", soft_wrap=True)

    def insecure_warning(self) -> None:
        """Say, every time, that TLS verification is off."""
        self.warning("--insecure: the server's TLS certificate is not verified; anyone on the "
                     "network path can read the credentials")

    def confirmation(self, action: str, plan: Preflight) -> None:
        """What a destructive run is about to do, before the prompt."""
        self._rich.print(f"[bold]{action}[/] would change "
                         f"[bold]{count(plan.destructive, 'user')}[/] "
                         "(email, role, groups as the server holds them):")
        for target in plan.targets:
            self._rich.print(f"  {escape(target)}", soft_wrap=True)
        if plan.destructive > len(plan.targets):
            self._rich.print(f"  ... and {plan.destructive - len(plan.targets)} more (list them "
                             "all with --dry-run: its report has one line per user)")
        if plan.invalid:
            were = "is" if plan.invalid == 1 else "are"
            self._rich.print(f"({count(plan.invalid, 'row')} {were} invalid and will be "
                             "skipped)")

    def resume_hint(self, summary: RunSummary) -> None:
        """The exact command that continues an interrupted or aborted run."""
        from bulkusers.commands import COMMANDS

        spec = COMMANDS.get(summary.command)
        keys = (*COMMON_RESUME_OPTIONS, *spec.resume_options) if spec is not None else None
        words = ["bulkusers", summary.command, summary.input_file, "--resume",
                 summary.report_file, *option_flags(summary.options, keys)]
        self._rich.print("Continue with:\n  " + escape(shlex.join(words))
                         + "\n(plus the connection options you used)", soft_wrap=True)

    def info(self, message: str) -> None:
        """A line of information, unless quiet."""
        if not self.quiet:
            self._rich.print(escape(message))

    def summary(self, summary: RunSummary) -> None:
        """Counts per status, speed, and where the report is; with --quiet only the guards'
        verdict and, as an error, why the run aborted."""
        if self.quiet:
            self.verdict(summary)
            if summary.aborted:
                # An aborted run is an error, which --quiet still shows: cron mail says why.
                self.error(f"aborted: {_aborted(summary)}")
            return
        dry = (" [red](refused by --strict: nothing was sent)[/]" if summary.refused
               else " [cyan](dry run: nothing was sent)[/]" if summary.dry_run else "")
        have = "has" if summary.total_rows == 1 else "have"
        self._rich.print(f"\n[bold]bulkusers {summary.command}[/]: {summary.done} of "
                         f"{count(summary.total_rows, 'row')} {have} an outcome{dry}")
        if summary.carried_over:
            were = "was" if summary.carried_over == 1 else "were"
            self._rich.print(f"  ({count(summary.carried_over, 'row')} {were} finished by "
                             "the run being resumed)")
        table = Table(show_header=False, box=None, padding=(0, 2), pad_edge=False)
        for label, style, number in _status_lines(summary):
            table.add_row(f"  [{style}]{label}[/]", str(number))
        self._rich.print(table)
        if summary.planned:
            planned = ", ".join(f"{action} {count}" for action, count in
                                sorted(summary.planned.items()))
            self._rich.print(f"planned: {planned}")
        if summary.ignored_columns:
            names = ", ".join(quote(c) for c in summary.ignored_columns)
            self._rich.print(f"ignored columns (no such field; see --help): {escape(names)}",
                             soft_wrap=True)
        if summary.sheet:
            self._rich.print(f"sheet read: {escape(quote(summary.sheet))}", soft_wrap=True)
        if summary.masked_columns:
            names = ", ".join(quote(c) for c in summary.masked_columns)
            self._rich.print(f"masked in the report (names suggest secrets): {escape(names)}",
                             soft_wrap=True)
        if summary.groups_created:
            verb = "to create" if summary.nothing_sent else "created"
            names = ", ".join(excerpt(name) for name in summary.groups_created)
            self._rich.print(f"groups {verb}: {escape(names)}", soft_wrap=True)
        waited = (f" ({summary.prompt_seconds:.1f} s of them at the prompt)"
                  if summary.prompt_seconds >= 0.05 else "")
        self._rich.print(f"{summary.seconds:.1f} s{waited}, "
                         f"{summary.rows_per_second:.0f} rows/s, "
                         f"{count(summary.requests, 'request')} "
                         f"({count(summary.retries, 'retry', 'retries')})")
        self._rich.print(f"report:  {escape(summary.report_file)}")
        self._rich.print(f"summary: {escape(str(summary_path(Path(summary.report_file))))}")
        self.verdict(summary)
        if summary.aborted:
            self._rich.print(f"[bold red]aborted:[/] {escape(_aborted(summary))}")
        elif summary.interrupted:
            self._rich.print("[bold yellow]interrupted:[/] rows not sent are marked "
                             "not_attempted in the report")
        if summary.needs_attention:
            need = "needs" if summary.needs_attention == 1 else "need"
            self._rich.print(f"[yellow]{count(summary.needs_attention, 'row')} {need} "
                             "attention[/] (the "
                             "report's error column says why; a copy of the report filtered "
                             "to those rows is valid input for the next run):")
            # An email of any length is a valid cell: only an excerpt is shown.
            rows = [(str(result.row.number), excerpt(result.email), result.status.value,
                     result.error) for result in summary.examples]
            if sys.stderr.isatty():
                examples = Table(box=None, padding=(0, 2), show_edge=False)
                for column in ("row", "email", "status", "why"):
                    examples.add_column(column, overflow="fold")
                for row_number, email, status, why in rows:
                    examples.add_row(row_number, escape(email), status, escape(why))
                self._rich.print(examples)
            else:
                # Off a terminal a table would pad every line to the longest reason: plain
                # aligned lines instead, each ending where its text does.
                width = max(len(email) for _, email, _, _ in rows)
                for row_number, email, status, why in rows:
                    line = f"  row {row_number:<6} {email:<{width}}  {status:<13} {why}"
                    self._rich.print(escape(line.rstrip()), soft_wrap=True)
            if summary.needs_attention > len(summary.examples):
                self._rich.print(f"  ... and {summary.needs_attention - len(summary.examples)}"
                                 " more in the report")

    def verdict(self, summary: RunSummary) -> None:
        """What a guard said of the plan: --strict refused it, or (a dry run) the real run
        would be refused. Shown even with --quiet: it is about safety, as the affected list
        is, and a rehearsal that hid it would promise a run that will not happen."""
        if summary.refused:
            self._rich.print(f"[bold red]refused:[/] {escape(summary.refused)}", soft_wrap=True)
        if summary.would_refuse:
            self._rich.print("[bold yellow]without --dry-run this run would be refused:[/] "
                             f"{escape(summary.would_refuse)}", soft_wrap=True)

    def affected(self, summary: RunSummary) -> None:
        """A dry run of a deactivation or deletion: who it would affect, the first of them
        by name, as the server holds them (shown even with --quiet: it is about safety)."""
        if not (summary.nothing_sent and summary.affected_total):
            return
        self._rich.print(f"\n[bold]{summary.command}[/] would affect "
                         f"[bold]{count(summary.affected_total, 'user')}[/] "
                         "(email, role, groups):")
        for target in summary.affected:
            self._rich.print(f"  {escape(target)}", soft_wrap=True)
        rest = summary.affected_total - len(summary.affected)
        if rest > 0:
            self._rich.print(f"  ... and {rest} more: every one is listed in the report "
                             f"{escape(summary.report_file)}", soft_wrap=True)

    def emulator_ready(self, url: str, admin_email: str, fixed_token: bool) -> None:
        """Tell the user how to reach a running emulator."""
        credentials = "the --token you gave, or " if fixed_token else ""
        self._rich.print(f"Sisense emulator listening on {url}\n"
                         f"Authenticate with {credentials}--username {admin_email} and the "
                         "admin password. Data lives in memory; Ctrl-C stops it.")


#: Seconds between two updates of the bar's figures: rich redraws it ten times a second, so
#: updating it for every row (thousands a second) would only spend CPU.
BAR_UPDATE_S = 0.1


class ProgressObserver:
    """A progress bar on a terminal (rows done of total, rate, failures); nothing otherwise."""

    def __init__(self, console: Console, label: str) -> None:
        self._console = console
        self._label = label
        self._progress: Progress | None = None
        self._task: TaskID | None = None
        self._updated_at = -BAR_UPDATE_S
        #: The run has reached its writes (``started``): before that, nothing was sent.
        self.sending = False

    def __enter__(self) -> ProgressObserver:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if self._progress is not None:
            self._progress.stop()

    def started(self, summary: RunSummary) -> None:
        """Show the bar now that the total is known and every prompt has been answered."""
        self.sending = True
        if not self._console.interactive:
            return
        # Started only now: a live display running during a confirmation prompt garbles it.
        self._progress = Progress(
            TextColumn("{task.description}"), BarColumn(bar_width=24), MofNCompleteColumn(),
            TextColumn("{task.fields[rate]:>5.0f} rows/s"),
            TextColumn("[red]{task.fields[problems]}"),
            TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(),
            console=self._console.rich, transient=True)
        self._progress.start()
        self._task = self._progress.add_task(self._label, total=summary.total_rows,
                                             rate=0.0, problems=count(0, "problem"))

    def row_done(self, result: RowResult, summary: RunSummary) -> None:
        """Advance the bar (at most every ``BAR_UPDATE_S``, and for the last row)."""
        if self._progress is not None and self._task is not None:
            now = time.monotonic()
            if now - self._updated_at < BAR_UPDATE_S and summary.done < summary.total_rows:
                return
            self._updated_at = now
            self._progress.update(self._task, completed=summary.done,
                                  rate=summary.rows_per_second,
                                  problems=count(summary.needs_attention, "problem"))


def _aborted(summary: RunSummary) -> str:
    """Why a run aborted, and where its unsent rows are."""
    return f"{summary.aborted}; rows not sent are marked not_attempted in the report"


def _status_lines(summary: RunSummary) -> list[tuple[str, str, int]]:
    """(label, style, count) per outcome; ``skipped`` split into "already there" (the user
    exists) and "invalid" (rows with a problem, never sent)."""
    lines: list[tuple[str, str, int]] = []
    for status in Status:
        number = summary.counts.get(status.value, 0)
        if not number:
            continue
        if status is Status.SKIPPED:
            if summary.already_there:
                label = "already there" if summary.command == "import" else "nothing to do"
                lines.append((label, "dim", summary.already_there))
            if number - summary.already_there:
                lines.append(("invalid", "yellow", number - summary.already_there))
            continue
        lines.append((status.value, STATUS_STYLES[status], number))
    return lines


def escape(text: str) -> str:
    """``text`` made inert for rich: no markup, no terminal control sequences."""
    # User data may contain [brackets] that rich would read as markup, and control
    # characters (an ESC sequence) that would drive the terminal: both are made inert.
    return printable(text).replace("[", r"\[")
