"""The run summary: counts, timings and outcome of one run, for people and for machines."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bulkusers.models import RowResult, Status
from bulkusers.words import count, flag

MAX_EXAMPLES = 10


def read_summary(path: Path) -> dict[str, Any] | None:
    """An earlier run's JSON summary, or None when there is none (or it is unreadable)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


@dataclass(slots=True)
class RunSummary:
    """Counts and timings of one run, for people (stderr) and machines (JSON)."""

    command: str
    input_file: str
    report_file: str
    started: datetime = field(default_factory=lambda: datetime.now(UTC))
    ended: datetime | None = None
    total_rows: int = 0
    counts: Counter[str] = field(default_factory=Counter)
    needs_attention: int = 0
    requests: int = 0
    retries: int = 0
    aborted: str = ""
    #: Why the run refused to write anything (--strict with invalid rows): exit code 2.
    refused: str = ""
    #: A dry run's plan that a guard (--max-changes, sync's --max-missing) would refuse, were
    #: it sent without --dry-run: why ("" when none would).
    would_refuse: str = ""
    interrupted: bool = False
    exit_code: int | None = None
    options: dict[str, Any] = field(default_factory=dict)
    input_sha256: str = ""
    #: A dry run was asked for (--dry-run). A plan --strict refused was not sent either, but
    #: is no dry run: see ``refused`` and ``nothing_sent``.
    dry_run: bool = False
    #: Seconds spent at the confirmation prompt, waiting for a person's answer.
    prompt_seconds: float = 0.0
    #: Rows an earlier run already finished (``--resume``), counted but not sent again.
    carried_over: int = 0
    #: What a dry run would do, by action (create, update, deactivate, delete...).
    planned: Counter[str] = field(default_factory=Counter)
    #: Groups created (or, in a dry run, to be created) by --create-groups.
    groups_created: tuple[str, ...] = ()
    #: Input columns that name no field: read, echoed in the report, never sent.
    ignored_columns: tuple[str, ...] = ()
    #: The limit on requests in flight over the run (mode, peak, each change).
    concurrency: dict[str, Any] = field(default_factory=dict)
    #: The first rows that need attention, to show without opening the report.
    examples: list[RowResult] = field(default_factory=list)
    #: The worksheet read, when the input is a workbook.
    sheet: str = ""
    #: Input columns whose cells the report masks (their names suggest a secret).
    masked_columns: tuple[str, ...] = ()
    #: The first users a deactivation or deletion affects (email, role, groups), and how
    #: many it affects in all.
    affected: list[str] = field(default_factory=list)
    affected_total: int = 0
    _invalid: int = field(default=0, init=False, repr=False)

    @property
    def invalid(self) -> int:
        """Rows skipped because of a problem with the row (never sent)."""
        return self._invalid

    @property
    def already_there(self) -> int:
        """Rows skipped with nothing to do: the user already exists (import), or there was
        nothing to undo (reactivate)."""
        return self.counts.get(Status.SKIPPED.value, 0) - self._invalid

    def add(self, result: RowResult) -> None:
        """Count one finished row."""
        # _value_, the member's own attribute: .value goes through an enum property per row.
        status = result.status
        self.counts[status._value_] += 1
        if status is Status.PLANNED:
            self.planned[result.action] += 1
            return  # a dry run's row: nothing for the operator to look at yet
        if status is Status.SKIPPED and result.error:
            self._invalid += 1
        if result.needs_attention:
            self.needs_attention += 1
            if len(self.examples) < MAX_EXAMPLES:
                self.examples.append(result)

    @property
    def nothing_sent(self) -> bool:
        """The run wrote its plan and sent none of it: a dry run, or a plan --strict
        refused."""
        return self.dry_run or bool(self.refused)

    @property
    def done(self) -> int:
        """Rows with an outcome so far."""
        return sum(self.counts.values())

    @property
    def seconds(self) -> float:
        """Duration of the run so far, or in all once ended."""
        end = self.ended or datetime.now(UTC)
        return max((end - self.started).total_seconds(), 1e-6)

    @property
    def rows_per_second(self) -> float:
        """Rows finished per second of run time, the time spent waiting for an answer at the
        confirmation prompt left out (a person's pace is not the run's)."""
        return self.done / max(self.seconds - self.prompt_seconds, 1e-6)

    def finish(self) -> int:
        """Close the run and decide its exit code (design.md: 0, 1, 2, 3 or 130)."""
        self.ended = datetime.now(UTC)
        if self.done < self.total_rows and not (self.interrupted or self.aborted):
            # A safety net: every row must have an outcome, or the run did not do its job.
            have = "has" if self.total_rows == 1 else "have"
            self.aborted = (f"only {self.done} of {count(self.total_rows, 'row')} {have} an "
                            "outcome; "
                            f"check the report and resume with {flag('--resume')}")
        if self.interrupted:
            self.exit_code = 130
        elif self.refused:
            self.exit_code = 2
        elif self.aborted:
            self.exit_code = 3
        else:
            self.exit_code = 1 if self.needs_attention else 0
        return self.exit_code

    def to_json(self) -> dict[str, Any]:
        """The summary as plain JSON data (no secrets are ever stored here)."""
        return {
            "command": self.command,
            "input_file": self.input_file,
            "input_sha256": self.input_sha256,
            "dry_run": self.dry_run,
            "report_file": self.report_file,
            "started": self.started.isoformat(),
            "ended": self.ended.isoformat() if self.ended else None,
            "seconds": round(self.seconds, 3),
            "prompt_seconds": round(self.prompt_seconds, 3),
            "total_rows": self.total_rows,
            "counts": {s.value: self.counts.get(s.value, 0) for s in Status},
            "already_there": self.already_there,
            "invalid": self.invalid,
            "planned": dict(self.planned),
            "carried_over": self.carried_over,
            "groups_created": list(self.groups_created),
            "ignored_columns": list(self.ignored_columns),
            "masked_columns": list(self.masked_columns),
            "sheet": self.sheet,
            "affected_total": self.affected_total,
            "affected": self.affected,
            "needs_attention": self.needs_attention,
            "requests": self.requests,
            "retries": self.retries,
            "concurrency": self.concurrency,
            "rows_per_second": round(self.rows_per_second, 1),
            "aborted": self.aborted,
            "refused": self.refused,
            "would_refuse": self.would_refuse,
            "interrupted": self.interrupted,
            "exit_code": self.exit_code,
            "options": self.options,
        }

    def write_json(self, path: Path) -> None:
        """Write the JSON summary file atomically (a reader never sees half of it)."""
        partial = path.with_name(path.name + ".tmp")
        partial.write_text(json.dumps(self.to_json(), indent=2) + "\n", encoding="utf-8")
        partial.replace(path)
