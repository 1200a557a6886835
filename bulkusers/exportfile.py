"""The export's output file: CSV or XLSX sinks, written to a temporary file and renamed into
place, or copied to standard output.

Rows go to a temporary file (beside OUTPUT, or a private one for ``-``) that becomes the export
only once every row was written, so a failed run never leaves a file that looks complete and a
pipe never receives half an export. The server's times are read here too: the XLSX sink writes
them as date cells, and the comparison of two exports reads them back.
"""

from __future__ import annotations

import csv
import os
import secrets
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import BinaryIO, Protocol

from openpyxl import Workbook
from openpyxl.cell import WriteOnlyCell
from openpyxl.cell.cell import Cell
from openpyxl.utils import get_column_letter
from openpyxl.worksheet._write_only import WriteOnlyWorksheet

from bulkusers.cells import neutralise, restore
from bulkusers.errors import AbortError, ConfigError
from bulkusers.safetext import printable

COLUMNS: tuple[str, ...] = (
    "email", "userName", "firstName", "lastName", "role", "roleDisplayName", "groups",
    "language", "active", "created", "lastLogin", "lastUpdated", "id",
)
DATE_COLUMNS = frozenset({"created", "lastLogin", "lastUpdated"})
SUFFIXES = (".csv", ".xlsx")
#: OUTPUT that means standard output.
STDOUT = "-"
DATE_FORMAT = "yyyy-mm-dd hh:mm:ss"
_WIDTHS = {"email": 32, "userName": 24, "groups": 36, "created": 20, "lastLogin": 20,
           "lastUpdated": 20, "id": 26}

#: One exported row in COLUMNS order: text, or a boolean (or None) for ``active``.
Record = tuple[str | bool | None, ...]


def parse_time(text: str) -> datetime | None:
    """An ISO-8601 server time as an aware UTC datetime (naive taken as UTC); None if unreadable."""
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def days_before(at: datetime, days: int) -> datetime:
    """``days`` before ``at``; the calendar's first moment when that is before it (no date a
    server writes is older, so every readable date is after it)."""
    try:
        return at - timedelta(days=days)
    except OverflowError:
        return datetime.min.replace(tzinfo=at.tzinfo)


def inactive_before(last_login: str, created: str, cutoff: datetime) -> bool:
    """Whether a user last signed in before ``cutoff`` (export's ``--inactive-days`` and
    diff's): one who never did counts from ``created``, so a new account gets the same
    grace; a ``lastLogin`` that cannot be read, or no date readable at all, proves no recent
    activity, so it counts as inactive."""
    moment = parse_time(last_login) if last_login else None
    if moment is None and not last_login:
        moment = parse_time(created) if created else None
    return moment is None or moment < cutoff


class OutputClosed(AbortError):
    """The reader of standard output went away (``export - | head``): not a failure of ours,
    and ended as a pipe's writer ends, with status 141 (SIGPIPE)."""

    exit_code = 141


# -- sinks ----------------------------------------------------------------------------------


class _Sink(Protocol):
    """A file being written row by row."""

    def write(self, record: Record) -> None:
        """Append one row."""

    def finish(self) -> None:
        """Complete the file (header and rows are all on disk afterwards)."""

    def abandon(self) -> None:
        """Release the file without completing it."""


class _CsvSink:
    """UTF-8 CSV with a BOM (so Excel shows accents), every cell formula-safe."""

    def __init__(self, path: Path, encoding: str = "utf-8-sig") -> None:
        self._file = path.open("w", encoding=encoding, newline="")
        self._writer = csv.writer(self._file)
        self._writer.writerow(COLUMNS)

    def write(self, record: Record) -> None:
        """Append one row; booleans as TRUE/FALSE, text through `neutralise`."""
        self._writer.writerow([_csv_cell(value) for value in record])

    def finish(self) -> None:
        """Flush and close."""
        self._file.close()

    def abandon(self) -> None:
        """Close, ignoring a second failure of the disk that caused the abandon."""
        with suppress(OSError):
            self._file.close()


def _csv_cell(value: str | bool | None) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    # A control character the server holds is shown as a visible escape, never written raw.
    return neutralise(printable(value))


class _XlsxSink:
    """An XLSX workbook in openpyxl's write-only mode: rows stream to disk as they come."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._book = Workbook(write_only=True)
        self._sheet: WriteOnlyWorksheet = self._book.create_sheet("Users")
        self._sheet.freeze_panes = "A2"
        for number, name in enumerate(COLUMNS, start=1):
            width = _WIDTHS.get(name, 14)
            self._sheet.column_dimensions[get_column_letter(number)].width = width
        self._sheet.append([self._text_cell(name) for name in COLUMNS])

    def write(self, record: Record) -> None:
        """Append one row: dates as datetimes, ``active`` as a boolean, the rest as text."""
        self._sheet.append([self._cell(name, value) for name, value in zip(COLUMNS, record,
                                                                           strict=True)])

    def _cell(self, name: str, value: str | bool | None) -> Cell | None:
        # Always a Cell whose type we chose: raw values would go through openpyxl's guessing.
        if value is None or value == "":
            return None
        if isinstance(value, bool):
            return WriteOnlyCell(self._sheet, value)
        if name in DATE_COLUMNS and (moment := parse_time(value)) is not None:
            cell = WriteOnlyCell(self._sheet, moment.replace(tzinfo=None))
            cell.number_format = DATE_FORMAT
            return cell
        return self._text_cell(value)

    def _text_cell(self, text: str) -> Cell:
        # XML cannot hold control characters (openpyxl would refuse the row), and dropping
        # them would silently change an address: they are written as visible escapes.
        text = printable(text)
        # The importer strips one "'" from "'=..." (see cells.restore); quote such text once more
        # so that it reads back exactly.
        if restore(text) != text:
            text = neutralise(text)
        cell = WriteOnlyCell(self._sheet, text)
        # openpyxl stores text starting with "=" as a formula and "#N/A" as an error: force text.
        cell.data_type = "s"
        return cell

    def finish(self) -> None:
        """Write the workbook package."""
        self._book.save(str(self._path))

    def abandon(self) -> None:
        """Drop the workbook; openpyxl removes its own temporary row file at exit."""
        self._book.close()


# -- the file's life: temporary, complete, in place -----------------------------------------


def _temporary(output: Path) -> Path:
    """A new, empty file beside `output`, hidden and named so nobody takes it for the export."""
    for _ in range(10):
        candidate = output.with_name(f".{output.name}.{secrets.token_hex(4)}.part")
        try:
            candidate.open("x").close()
        except FileExistsError:
            continue
        except OSError as exc:
            raise ConfigError(f"cannot write in {output.parent} ({exc.strerror}); choose "
                              "another OUTPUT") from None
        return candidate
    raise ConfigError(f"cannot find a free temporary name beside {output}")


def check_output(output: Path) -> None:
    """Refuse an OUTPUT that can never be written, before anything is asked of the server."""
    if str(output) == STDOUT:
        return
    if output.is_dir():
        raise ConfigError(f"{output}: is a directory; give a file name ending in .csv or .xlsx")
    if not output.parent.is_dir():
        raise ConfigError(f"{output.parent}: no such directory; create it or choose another "
                          "OUTPUT")


@contextmanager
def _writing(output: Path) -> Iterator[None]:
    """Turn a failing disk (full, read-only, gone) into an abort that names the file."""
    try:
        yield
    except OSError as exc:
        raise AbortError(f"writing {output} failed ({exc.strerror or exc}); {output} was "
                         "not written") from None


def _open_sink(path: Path, output: Path) -> _Sink:
    with _writing(output):
        if str(output) == STDOUT:
            return _CsvSink(path, encoding="utf-8")  # a BOM would be data to the next command
        return _XlsxSink(path) if output.suffix.lower() == ".xlsx" else _CsvSink(path)


def _stdout_temporary() -> Path:
    """A private temporary file for an export to standard output."""
    handle, name = tempfile.mkstemp(prefix="bulkusers-export-", suffix=".csv.part")
    os.close(handle)
    return Path(name)


@contextmanager
def open_output(output: Path, stream: BinaryIO | None) -> Iterator[Callable[[Record], None]]:
    """The export's file, as a function that appends one row: on a clean exit the file is
    completed and renamed to ``output`` (copied to ``stream`` for ``-``); on any failure or
    interruption it is removed and nothing stands at ``output``."""
    to_stdout = str(output) == STDOUT
    temporary = _stdout_temporary() if to_stdout else _temporary(output)
    try:
        sink = _open_sink(temporary, output)

        def write(record: Record) -> None:
            with _writing(output):
                sink.write(record)

        try:
            yield write
        except BaseException:
            sink.abandon()
            raise
        with _writing(output):
            sink.finish()
            if not to_stdout:
                temporary.replace(output)
        if to_stdout:
            _copy_to(temporary, stream)
            temporary.unlink()
    except BaseException:
        # Failed or interrupted: no partial file may stand where a complete one is expected.
        temporary.unlink(missing_ok=True)
        raise


def _copy_to(path: Path, stream: BinaryIO | None) -> None:
    """Give a complete export to the stream: a pipe never receives half an export."""
    if stream is None:
        raise ConfigError("an export to - needs a stream to write to")
    try:
        with path.open("rb") as source:
            shutil.copyfileobj(source, stream)
        stream.flush()
    except BrokenPipeError:
        raise OutputClosed("standard output was closed before the export was written in "
                           "full (the next command stopped reading)") from None
    except OSError as exc:
        raise AbortError(f"writing to standard output failed ({exc.strerror or exc})"
                         ) from None
