"""The per-row result report (CSV, flushed per row, formula-safe) and the run summary."""

from __future__ import annotations

import csv
import json
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from bulkusers.cells import neutralise, restore
from bulkusers.columns import REPORT_COLUMNS
from bulkusers.errors import InputError
from bulkusers.models import Header, RowResult, Status

MASK = "***"
MAX_EXAMPLES = 10


def default_report_path(input_path: Path, command: str, directory: Path | None = None,
                        now: datetime | None = None) -> Path:
    """A new report path beside the current directory that never names an existing file."""
    stamp = (now or datetime.now()).strftime("%Y%m%d-%H%M%S")
    base = (directory or Path.cwd()) / f"{input_path.stem}.{command}.{stamp}"
    candidate = base.with_name(base.name + ".report.csv")
    counter = 2
    while candidate.exists():
        candidate = base.with_name(f"{base.name}-{counter}.report.csv")
        counter += 1
    return candidate


def summary_path(report_path: Path) -> Path:
    """Where the JSON summary of a report lives: beside it."""
    name = report_path.name.removesuffix(".csv").removesuffix(".report")
    return report_path.with_name(name + ".summary.json")


class ReportWriter:
    """Writes one CSV line per result, flushed at once so a killed run loses nothing."""

    def __init__(self, path: Path, header: Header, *, exclusive: bool) -> None:
        self.path = path
        self._header = header
        self._secret_positions = {header.index[f] for f in ("password",) if f in header.index}
        # Excel opens UTF-8 with a BOM with accents intact; newline="" lets csv pick CRLF.
        self._file: IO[str] = path.open("x" if exclusive else "w", encoding="utf-8-sig",
                                        newline="")
        self._csv = csv.writer(self._file)
        self._csv.writerow([*REPORT_COLUMNS, *(neutralise(c) for c in header.columns)])
        self._file.flush()

    def write(self, result: RowResult) -> None:
        """Append one result line and flush it to the operating system."""
        values = list(result.row.values) + [""] * (len(self._header.columns)
                                                   - len(result.row.values))
        echoed = [MASK if i in self._secret_positions and v else neutralise(v)
                  for i, v in enumerate(values)]
        self._csv.writerow([
            result.row.number,
            neutralise(result.email),
            result.action,
            result.status.value,
            result.user_id,
            "" if result.http_status is None else result.http_status,
            neutralise(result.error),
            result.attempts,
            f"{result.elapsed_ms:.1f}",
            neutralise(result.changes),
            neutralise(result.previous),
            *echoed,
        ])
        self._file.flush()

    def close(self) -> None:
        """Close the file (idempotent)."""
        if not self._file.closed:
            self._file.close()


@dataclass(frozen=True, slots=True)
class ReportLine:
    """One line of an earlier report, as ``reactivate`` and ``--resume`` read it."""

    line: int
    row: int
    email: str
    action: str
    status: str
    user_id: str
    previous: dict[str, Any]


def read_report(path: Path) -> Iterator[ReportLine]:
    """Stream an earlier bulkusers report; InputError when the file is not one."""
    try:
        handle = path.open(encoding="utf-8-sig", newline="")
    except OSError as exc:
        raise InputError(f"{path}: cannot be read ({exc.strerror}); check the path") from None
    with handle:
        reader = csv.reader(handle)
        header = next(reader, None)
        if header is None or tuple(header[: len(REPORT_COLUMNS)]) != REPORT_COLUMNS:
            raise InputError(f"{path}: is not a bulkusers report (its first columns should "
                             f"be {', '.join(REPORT_COLUMNS)})")
        for number, cells in enumerate(reader, start=2):
            if not any(cells):
                continue
            cells += [""] * (len(REPORT_COLUMNS) - len(cells))
            fields = dict(zip(REPORT_COLUMNS, (restore(c) for c in cells), strict=False))
            try:
                previous = json.loads(fields["previous"]) if fields["previous"] else {}
            except ValueError:
                previous = {}
            yield ReportLine(line=number, row=int(fields["row"]) if fields["row"].isdigit() else 0,
                             email=fields["email"], action=fields["action"],
                             status=fields["status"], user_id=fields["user_id"],
                             previous=previous if isinstance(previous, dict) else {})


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
    interrupted: bool = False
    exit_code: int | None = None
    options: dict[str, Any] = field(default_factory=dict)
    #: The first rows that need attention, to show without opening the report.
    examples: list[RowResult] = field(default_factory=list)

    def add(self, result: RowResult) -> None:
        """Count one finished row."""
        self.counts[result.status.value] += 1
        if result.needs_attention:
            self.needs_attention += 1
            if len(self.examples) < MAX_EXAMPLES:
                self.examples.append(result)

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
        """Rows finished per second of run time."""
        return self.done / self.seconds

    def finish(self) -> int:
        """Close the run and decide its exit code (design.md: 0, 1, 3 or 130)."""
        self.ended = datetime.now(UTC)
        if self.interrupted:
            self.exit_code = 130
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
            "report_file": self.report_file,
            "started": self.started.isoformat(),
            "ended": self.ended.isoformat() if self.ended else None,
            "seconds": round(self.seconds, 3),
            "total_rows": self.total_rows,
            "counts": {s.value: self.counts.get(s.value, 0) for s in Status},
            "needs_attention": self.needs_attention,
            "requests": self.requests,
            "retries": self.retries,
            "rows_per_second": round(self.rows_per_second, 1),
            "aborted": self.aborted,
            "interrupted": self.interrupted,
            "exit_code": self.exit_code,
            "options": self.options,
        }

    def write_json(self, path: Path) -> None:
        """Write the JSON summary file."""
        path.write_text(json.dumps(self.to_json(), indent=2) + "\n", encoding="utf-8")
