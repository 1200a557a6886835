"""``--resume``: what an earlier, interrupted run of the same command on the same file finished."""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection, Mapping
from dataclasses import field
from pathlib import Path

from bulkusers.errors import InputError
from bulkusers.frozen import frozen
from bulkusers.journal import JournalEntry, journal_path, read_journal
from bulkusers.report import read_report, summary_path
from bulkusers.runconfig import (
    differing_options,
    option_argument,
    option_arguments,
    option_flags,
    option_setting,
)
from bulkusers.summary import read_summary
from bulkusers.words import flag, said


@frozen
class Earlier:
    """Rows an earlier run finished, by row number, and their statuses for the summary."""

    report: Path
    finished: frozenset[int] = frozenset()
    counts: Counter[str] = field(default_factory=Counter)
    #: The undo journal of deactivate and delete runs: the state before the first attempt.
    journal: Mapping[int, JournalEntry] = field(default_factory=dict)


def _check_same_options(report: Path, earlier: Mapping[str, object],
                        now: Mapping[str, object], keys: Collection[str]) -> None:
    differ = differing_options(earlier, now, keys)
    if differ:
        then = ", ".join(said(option_setting(earlier, option),
                              option_argument(earlier, option)) for option in differ)
        asked = ", ".join(said(option_setting(now, option), option_argument(now, option))
                          for option in differ)
        wanted = said(" ".join(option_flags(earlier, keys)),
                      ", ".join(option_arguments(earlier, keys))) or "none beyond the defaults"
        raise InputError(f"{flag('--resume')} {report}: that run used {then}, where this one has "
                         f"{asked}; resume with exactly that run's options ({wanted})")


def load_earlier(report: Path, command: str, input_path: Path, input_sha256: str,
                 options: Mapping[str, object], keys: Collection[str]) -> Earlier:
    """Read the report to resume, refusing one from another command, file, dry run, or
    other planning options (the ``keys`` of ``options`` that must match)."""
    if not report.is_file():
        raise InputError(f"{flag('--resume')} {report}: no such report; give the report of the run "
                         "to continue")
    summary = read_summary(summary_path(report))
    if summary is None:
        raise InputError(f"{flag('--resume')} {report}: its summary {summary_path(report).name} is "
                         "missing beside it; resume needs both files")
    if summary.get("command") != command:
        raise InputError(f"{flag('--resume')} {report}: that report is of `bulkusers "
                         f"{summary.get('command')}`, not `{command}`")
    if summary.get("dry_run"):
        raise InputError(f"{flag('--resume')} {report}: that was a dry run, nothing to "
                         f"resume; run without {flag('--dry-run')}")
    if summary.get("refused"):
        raise InputError(f"{flag('--resume')} {report}: {flag('--strict')} refused that run "
                         "and it sent nothing, so there is nothing to resume; fix the invalid "
                         f"rows it lists (or drop {flag('--strict')}) and run without "
                         f"{flag('--resume')}")
    if summary.get("input_sha256") != input_sha256:
        raise InputError(f"{input_path} has changed since {report.name} was started (its "
                         "SHA-256 differs); resume with the original file, or start a new run "
                         f"without {flag('--resume')}")
    stored = summary.get("options")
    _check_same_options(report, stored if isinstance(stored, dict) else {}, options, keys)
    last: dict[int, tuple[str, bool]] = {}
    for line in read_report(report, complete_only=True):
        if line.row:  # a line for no input row (sync's out-of-file users): sync reads those
            last[line.row] = (line.status, line.finished)
    finished = frozenset(row for row, (_, done) in last.items() if done)
    counts = Counter(status for row, (status, _) in last.items() if row in finished)
    return Earlier(report=report, finished=finished, counts=counts,
                   journal=read_journal(journal_path(report)))
