"""What every input format shares: the read options, the opened Table, finding the header
and the data rows below it."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path

from bulkusers.cells import restore
from bulkusers.columns import Shaper, is_report_header, normalise_header, show
from bulkusers.errors import ConfigError, InputError
from bulkusers.frozen import frozen
from bulkusers.inputfile import InputFile
from bulkusers.models import Header, Row
from bulkusers.rowcheck import RowCheck, cell_size
from bulkusers.safetext import is_blank
from bulkusers.sniffing import DELIMITER_NAMES, DELIMITERS
from bulkusers.words import flag, given

#: The largest cell a row may hold (--max-cell-bytes): far above any name, address or group
#: list, far below what would make a run slow or large.
DEFAULT_MAX_CELL_BYTES = 64 * 1024


@frozen
class ReadOptions:
    """How to read an input file: text encoding, CSV delimiter, XLSX sheet, header row."""

    encoding: str = "utf-8-sig"
    delimiter: str | None = None
    sheet: str | None = None
    #: Kept for callers that set it; the readers stream record by record and ignore it.
    chunk_size: int = 2000
    #: A cell larger than this (UTF-8 bytes) makes its row invalid (--max-cell-bytes).
    max_cell_bytes: int = DEFAULT_MAX_CELL_BYTES
    #: The header's row number (1-based); None: the first non-blank row.
    header_row: int | None = None

    def __post_init__(self) -> None:
        if self.header_row is not None and self.header_row < 1:
            raise ConfigError(f"{flag('--header-row')} must be 1 or more, not "
                              f"{self.header_row}")
        if self.chunk_size < 1:
            raise ConfigError(f"chunk size must be at least 1, not {self.chunk_size}")
        if self.max_cell_bytes < 1:
            raise ConfigError(f"{flag('--max-cell-bytes')} must be at least 1, not "
                              f"{self.max_cell_bytes}")
        if self.delimiter is not None and len(delimiter_of(self.delimiter)) != 1:
            raise ConfigError(
                f"delimiter must be one character (such as , ; or tab), not {self.delimiter!r}"
            )


class Table:
    """An opened input file: its header, its rows (read on from the open file), its hash."""

    __slots__ = ("_again", "_first", "_source", "header", "path", "sheet")

    def __init__(self, source: InputFile, header: Header, first: Iterator[Row],
                 again: Callable[[], Table], sheet: str | None = None) -> None:
        self.path = source.path
        self.header = header
        #: The worksheet read, for a workbook (the active visible one unless --sheet).
        self.sheet = sheet
        self._source = source
        self._first: Iterator[Row] | None = first
        self._again = again

    def rows(self) -> Iterator[Row]:
        """Stream the data rows; blank rows are skipped. The first call reads on from the file
        opened by open_table (the file is read from disk once); a later call opens it again."""
        if self._first is not None:
            first, self._first = self._first, None
            return first
        return self._again()._take_rows()

    def _take_rows(self) -> Iterator[Row]:
        first, self._first = self._first, None
        assert first is not None
        return first

    @property
    def sha256(self) -> str:
        """The SHA-256 (hex) of the file's exact bytes, known once rows() has been read to the
        end (for a workbook, once it is open); the same as hashing the file on its own."""
        return self._source.sha256

    def close(self) -> None:
        """Close the file now (rows not read are never read)."""
        self._source.close()

    def __repr__(self) -> str:
        return f"Table({str(self.path)!r}, columns={self.header.columns!r})"


def delimiter_of(text: str) -> str:
    """The delimiter meant by an option value; "\\t" and "tab" as typed on a command line."""
    return "\t" if text in ("\\t", "tab", "TAB") else text


def check_header(path: Path, cells: Sequence[str], limit: int) -> None:
    """Refuse a header whose column name is over --max-cell-bytes: it would be echoed whole in
    every report and summary (no row can be judged without its header)."""
    for position, cell in enumerate(cells, start=1):
        size = cell_size(cell, limit)
        if size > limit:
            raise InputError(
                f"{path}: the name of column {position} holds {size:,} bytes, over the limit of "
                f"{limit:,} ({flag('--max-cell-bytes')}); is the first row really the "
                "header?")


def first_header(path: Path, records: Iterator[tuple[int, list[str]]], header_row: int | None,
                 kind: str = "sheet") -> tuple[int, list[str]] | None:
    """The header record: the row --header-row names, else the first non-blank one."""
    for number, cells in records:
        if header_row is None and not is_blank("".join(cells)):
            return number, cells
        if number == header_row:
            if is_blank("".join(cells)):
                raise InputError(f"{path}: {flag('--header-row')} {header_row}: that row is "
                                 "blank; give the number of the row that names the columns")
            return number, cells
    if header_row is not None:
        raise InputError(f"{path}: {flag('--header-row')} {header_row}: the {kind} has "
                         "fewer rows")
    return None


def _has_email(cells: Sequence[str]) -> bool:
    return any(normalise_header(restore(cell)) == "email" for cell in cells)


def sheet_hint(source: str, cells: Sequence[str], others: Sequence[str]) -> None:
    """Name the workbook's other sheets when the sheet read (not chosen with --sheet) has a
    header without an email column: a cover page or notes before the users' sheet."""
    if not others or _has_email(cells) or is_report_header(cells):
        return
    found = ", ".join(show(cell) for cell in cells if cell.strip())
    raise InputError(f"{source}: no email column (found {found}); if the users are on another "
                     f"sheet ({', '.join(show(name) for name in others)}), pick it with "
                     f"{flag('--sheet')}")


def title_hint(source: str, number: int, cells: Sequence[str],
               later: Iterable[tuple[int, Sequence[str]]]) -> None:
    """Name the row that looks like the header when the first row (a title) has no email."""
    if _has_email(cells) or is_report_header(cells):
        return
    for candidate, row in later:
        if _has_email(row):
            title = " ".join(" ".join(cell.split()) for cell in cells if cell.strip())
            raise InputError(f"{source}: no email column in row {number} ({show(title)}); "
                             f"row {candidate} looks like the header: pass "
                             f"{given('--header-row', candidate)}")


#: How each delimiter is given to --delimiter on a command line.
_DELIMITER_OPTIONS = {",": "','", ";": "';'", "\t": "tab"}


def delimiter_hint(source: str, cells: Sequence[str], delimiter: str) -> None:
    """Name --delimiter when the header has no email column but splitting its names at another
    delimiter would give one (a file with ';' between the columns and ',' inside a name, where
    the detection picked ',')."""
    if _has_email(cells) or is_report_header(cells):
        return
    for other in DELIMITERS:
        if other == delimiter or not any(other in cell for cell in cells):
            continue
        if _has_email([part for cell in cells for part in cell.split(other)]):
            found = ", ".join(show(cell) for cell in cells if cell.strip())
            raise InputError(f"{source}: no email column (found columns {found}), but "
                             f"splitting the names at {DELIMITER_NAMES[other]} gives one: "
                             f"pass {given('--delimiter', other, _DELIMITER_OPTIONS[other])}")


def data_rows(records: Iterator[tuple[int, list[str]]], header_number: int, shape: Shaper,
              check: RowCheck, plain: int) -> Iterator[Row]:
    """The data rows below the header: blank records skipped, the rest shaped and checked.
    ``plain``: the number of columns when the header is a plain one (0 for a report read
    back), which lets a sound row skip the general path (as csvfile.CsvRecords.rows does)."""
    limit = check.limit
    for number, cells in records:
        if number <= header_number:
            continue
        joined = "".join(cells)
        if is_blank(joined):
            continue
        # isprintable(): no control character (CONTROL's are all unprintable), at C speed.
        if plain and "'" not in joined and len(joined) * 4 <= limit and joined.isprintable():
            if len(cells) != plain:
                cells = (cells + [""] * plain)[:plain]
            yield Row(number, tuple(cells))
        else:
            yield check(number, *shape([restore(cell) if cell[:1] == "'" else cell
                                        for cell in cells]))
