"""The progress bar's figures: updated a few times a second, never stale at the end."""

from __future__ import annotations

import io
import sys

import pytest
from rich.console import Console as RichConsole

from bulkusers.cli.console import Console, ProgressObserver
from bulkusers.models import Row, RowResult, Status
from bulkusers.summary import RunSummary


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.mark.parametrize("total", [1, 7, 3000])
def test_the_bar_shows_every_row_once_the_last_is_done(
        monkeypatch: pytest.MonkeyPatch, total: int) -> None:
    """However fast rows finish (far faster than the bar is redrawn), the bar's count and
    problems match the summary after the last row."""
    monkeypatch.setattr(sys, "stderr", _Tty())
    console = Console(quiet=False)
    monkeypatch.setattr(console, "_rich", RichConsole(file=_Tty(), force_terminal=True))
    summary = RunSummary(command="import", input_file="in.csv", report_file="r.csv")
    summary.total_rows = total
    with ProgressObserver(console, "Importing") as bar:
        bar.started(summary)
        progress = bar._progress
        assert progress is not None
        for number in range(total):
            status = Status.FAILED if number % 5 == 4 else Status.CREATED
            result = RowResult(row=Row(number + 2, ("x",)), email=f"u{number}@acme.example",
                               action="create", status=status, attempts=1)
            summary.add(result)
            bar.row_done(result, summary)
        task = progress.tasks[0]
        assert task.completed == total
        assert task.fields["problems"].startswith(f"{total // 5} problem")
