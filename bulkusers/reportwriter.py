"""The per-row report as a run writes it: one CSV line per result, formula-safe, secrets
masked, each line handed to the operating system as its row finishes (a bulk answer's rows
together; a dry run's report in blocks)."""

from __future__ import annotations

import csv
import os
import re
from collections.abc import Iterable
from pathlib import Path

from bulkusers.cells import FORMULA_TRIGGERS, neutralise
from bulkusers.columns import REPORT_COLUMNS
from bulkusers.models import Header, RowResult
from bulkusers.report import MASK, complete_length, secret_columns
from bulkusers.safetext import clean, find_control, printable


class ReportWriter:
    """Writes one CSV line per result, each straight to the operating system, so a killed run
    loses nothing.

    ``held``: a dry run's report, which records a plan and nothing sent (and cannot be
    resumed), is handed to the operating system in blocks of 64 KiB instead: one system call
    a line was a tenth of a million-row dry run.
    """

    def __init__(self, path: Path, header: Header, *, mode: str = "new",
                 held: bool = False) -> None:
        """Open a report: ``new`` (never overwrites a file) or ``append`` (resume)."""
        self.path = path
        self._header = header
        self._held = held
        self._width = len(header.columns)
        #: The input columns whose cells are masked.
        self._secrets = tuple(sorted(secret_columns(header)))
        if mode == "append":
            # Lines are appended after the earlier run's; no second header, no second BOM.
            # A run killed mid-line left half a line, perhaps inside a quoted cell that would
            # swallow every line appended after it: cut it off (resume ignored it too).
            with path.open("r+b") as handle:
                handle.truncate(complete_length(path))
            self._out = _LineOut(os.open(path, os.O_WRONLY | os.O_APPEND | _BINARY), held)
        else:
            self._out = _LineOut(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _BINARY,
                                         0o666), held)
            # Excel opens UTF-8 with a BOM with accents intact.
            self._out.write("\ufeff")
        # csv ends lines with CRLF and hands each whole line to _LineOut.write at once.
        self._csv = csv.writer(self._out)
        if mode != "append":
            self._csv.writerow([*REPORT_COLUMNS, *(_cell(c) for c in header.columns)])

    def write(self, result: RowResult) -> None:
        """Append one result line, written to the operating system at once (one system call:
        no buffer of ours holds a finished row)."""
        values = result.row.values
        if len(values) < self._width or self._secrets:  # one call a row less for the rest
            values = self._values(result)
        cells = _cells(result, result.email, result.error, result.changes, result.previous,
                       values)
        line = ",".join(cells)
        if _as_joined(line, len(cells) - 1):
            self._out.write(line + "\r\n")
        elif line.isprintable():
            # No control character in any cell (each one CONTROL finds is unprintable): only
            # formulas to defuse, then csv's quoting (an update's changes and previous state).
            self._csv.writerow(_cells(result, neutralise(result.email),
                                      neutralise(result.error), neutralise(result.changes),
                                      neutralise(result.previous), map(neutralise, values)))
        else:
            self._careful(result, values)

    def joined_lines(self, results: Iterable[RowResult]) -> list[str] | None:
        """The report lines of results known together (the rows of one planned item of a dry
        run), for ``write_line``, when none needs a cell made safe; None when one does (then
        ``write`` each). The block is judged as a whole by the scans ``write`` runs for a line
        (a line's first cell, its row number or nothing, never starts like a formula): 50
        planned lines took 1.3 µs a line against 3.1 through ``write``."""
        lines: list[str] = []
        commas = -1  # the block's lines are joined by commas too, for the scans
        width, secrets = self._width, self._secrets
        for result in results:
            values = result.row.values
            if len(values) < width or secrets:
                values = self._values(result)
            cells = _cells(result, result.email, result.error, result.changes,
                           result.previous, values)
            commas += len(cells)
            lines.append(",".join(cells))
        if _as_joined(",".join(lines), commas):
            return lines
        return None

    def write_line(self, line: str) -> None:
        """Append one line ``joined_lines`` made, as ``write`` appends a line."""
        self._out.write(line + "\r\n")

    @property
    def holding(self) -> bool:
        """Whether lines are gathered and written in blocks (a dry run's report)."""
        return self._out.held

    def write_held(self, lines: list[str]) -> None:
        """Append the lines ``joined_lines`` made to those held (``holding``), as one text:
        the same bytes as a ``write_line`` each, with no call a line."""
        self._out.write("\r\n".join(lines) + "\r\n")

    def _values(self, result: RowResult) -> tuple[str, ...]:
        """The input row's cells as the report echoes them: as wide as the header, secret
        cells that hold anything masked (no check alters the mask)."""
        values = result.row.values
        if len(values) < self._width:
            values = values + ("",) * (self._width - len(values))
        if self._secrets:
            masked = list(values)
            for position in self._secrets:
                if masked[position]:
                    masked[position] = MASK
            values = tuple(masked)
        return values

    def _careful(self, result: RowResult, values: tuple[str, ...]) -> None:
        """A line that is not plain: each cell made safe, then quoted by csv as needed."""
        self._csv.writerow(_cells(result, _cell(result.email), _cell(result.error),
                                  _cell(result.changes), _cell(result.previous),
                                  map(_echo, values)))

    def flush(self) -> None:
        """Write the lines held so far (``held``; OSError when the disk refuses them)."""
        self._out.flush()

    def hold(self) -> None:
        """Gather the next lines until ``flush``, then ``release``."""
        self._out.held = True

    def release(self) -> None:
        """Write each line at once again (after a ``flush``), unless opened ``held``."""
        self._out.held = self._held

    def close(self) -> None:
        """Close the file (idempotent)."""
        self._out.close()


#: Windows would otherwise turn csv's CRLF into CR CR LF (no such flag elsewhere).
_BINARY: int = getattr(os, "O_BINARY", 0)


class _LineOut:
    """The report file as csv writes to it: each line encoded and handed to the operating
    system in one ``os.write``, unbuffered: once a line is written, a killed run keeps it.
    ``held``: lines are gathered up to ``HELD_BYTES`` first (a dry run's report)."""

    def __init__(self, fd: int, held: bool = False) -> None:
        self._fd = fd
        self.held = held
        self._lines: list[str] = []
        self._size = 0

    def write(self, line: str) -> int:
        """Write ``line`` now, or gather it when held."""
        if self.held:
            self._lines.append(line)
            self._size += len(line)
            if self._size >= HELD_BYTES:
                self.flush()
        else:
            # _write inlined: a line per request of a per-row run.
            data = line.encode("utf-8")
            written = os.write(self._fd, data)
            if written < len(data):  # a short write, as on a nearly full disk
                self._write(data[written:])
        return len(line)

    def flush(self) -> None:
        """Write the lines held so far."""
        if self._lines:
            data = "".join(self._lines).encode("utf-8")
            self._lines, self._size = [], 0
            self._write(data)

    def _write(self, data: bytes) -> None:
        """Write all of ``data`` (a short write, as on a nearly full disk, is continued)."""
        written = os.write(self._fd, data)
        while written < len(data):
            written += os.write(self._fd, data[written:])

    def close(self) -> None:
        """Write what is held and close the descriptor, once."""
        if self._fd >= 0:
            try:
                self.flush()
            except OSError:
                # Lines are only still held here when writing them failed before, which
                # the run has already reported (Recorder.broken).
                self._lines = []
            finally:
                fd, self._fd = self._fd, -1
                os.close(fd)


#: How much of a held report (a dry run's) is gathered before it is written.
HELD_BYTES = 1 << 16

#: A cell after the first that starts like a formula or with an apostrophe (the characters
#: after which neutralise may quote a cell): in a joined line, such a cell starts right after
#: a comma. One search (it looks for commas at C speed) instead of one scan per character.
_LATER_CELL_AT_RISK = re.compile(",[" + re.escape("".join(sorted(FORMULA_TRIGGERS | {"'"})))
                                 + "]")


def _as_joined(text: str, commas: int) -> bool:
    """True when cells joined by commas (``commas`` of them between cells) need nothing more:
    no cell holds a control character (isprintable is False for each, and for some harmless
    ones: those go the careful way), a quote or a comma, and none after the first starts like
    a formula or with an apostrophe (a cell starts at a comma). csv would quote none of them,
    and _cell and _echo would change none: the joined text is exactly what csv would write,
    found by scans at C speed instead of csv's and ours per cell."""
    return (text.isprintable() and '"' not in text and _LATER_CELL_AT_RISK.search(text) is None
            and text.count(",") == commas)


def _cells(result: RowResult, email: str, error: str, changes: str, previous: str,
           values: Iterable[str]) -> list[str]:
    """A report line's cells: the result's ``email``, ``error``, ``changes`` and ``previous``
    state and the input row's ``values``, each as the line is to show it."""
    number = result.row.number
    return [
        # A line for no input row (sync's users missing from the file) has an empty row.
        str(number) if number > 0 else "",
        email,
        result.action,
        result.status,  # a StrEnum: the str it is is its value
        result.user_id,
        "" if result.http_status is None else str(result.http_status),
        error,
        str(result.attempts),
        # A row that was not sent (a dry run's) took no time: no formatting needed.
        f"{result.elapsed_ms:.1f}" if result.elapsed_ms else "0.0",
        changes,
        previous,
        *values,
    ]


def _cell(text: str) -> str:
    """A report cell: no formula a spreadsheet would run, no raw control character."""
    return neutralise(printable(text))


def _echo(text: str) -> str:
    """An input cell echoed in the report: as read, but without the whitespace around it when
    that holds control characters (a tab, a line break), which are then never written raw."""
    return _cell(clean(text) if find_control(text) >= 0 else text)
