"""Input files (CSV, TSV, XLSX) to a header and a stream of text-only rows."""

from __future__ import annotations

import codecs
import csv
import io
import itertools
import re
import zipfile
from collections.abc import Callable, Generator, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
from openpyxl import load_workbook
from openpyxl.cell.read_only import ReadOnlyCell
from openpyxl.workbook.workbook import Workbook
from openpyxl.worksheet._read_only import ReadOnlyWorksheet

# openpyxl's own sheet parser: its public reader cannot tell a formula without a saved value
# from an empty cell (see _FormulaAwareParser).
from openpyxl.worksheet._reader import FORMULA_TAG, WorkSheetParser

from bulkusers.cells import cell_text, neutralise, restore
from bulkusers.columns import Shaper, build_header, is_report_header, normalise_header, show
from bulkusers.errors import ConfigError, InputError
from bulkusers.models import Header, Row
from bulkusers.rowcheck import ERROR_VALUE, UNCACHED_FORMULA, RowCheck
from bulkusers.safetext import is_blank

__all__ = [
    "ReadOptions",
    "Table",
    "neutralise",
    "normalise_header",
    "open_table",
    "restore",
]

CSV_SUFFIXES = frozenset({".csv", ".tsv", ".txt"})
XLSX_SUFFIXES = frozenset({".xlsx", ".xlsm"})
DELIMITERS = (",", ";", "\t")

# Enough lines to sniff the delimiter and catch a wrong encoding or binary data up front.
_SAMPLE_BYTES = 64 * 1024
_ZIP_MAGIC = b"PK\x03\x04"
# OLE2 compound files: old .xls workbooks, and password-protected .xlsx (Excel encrypts the
# whole package into one of these).
_OLE2_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
_UTF16_BOMS = (codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)
_TEXT_CONTROLS = frozenset("\t\n\r\f\v")
_BAD_LINE = re.compile(r"Expected (\d+) fields in line (\d+), saw (\d+)")
_OPEN_QUOTE = re.compile(r"EOF inside string starting at row (\d+)")
_DELIMITER_NAMES = {",": "commas", ";": "semicolons", "\t": "tabs"}
#: The largest cell a row may hold (--max-cell-bytes): far above any name, address or group
#: list, far below what would make a run slow or large.
DEFAULT_MAX_CELL_BYTES = 64 * 1024


@dataclass(frozen=True, slots=True)
class ReadOptions:
    """How to read an input file: text encoding, CSV delimiter, XLSX sheet, CSV chunk size."""

    encoding: str = "utf-8-sig"
    delimiter: str | None = None
    sheet: str | None = None
    chunk_size: int = 2000
    #: A cell larger than this (UTF-8 bytes) makes its row invalid (--max-cell-bytes).
    max_cell_bytes: int = DEFAULT_MAX_CELL_BYTES
    #: The header's row number (1-based); None: the first non-blank row.
    header_row: int | None = None

    def __post_init__(self) -> None:
        if self.header_row is not None and self.header_row < 1:
            raise ConfigError(f"--header-row must be 1 or more, not {self.header_row}")
        if self.chunk_size < 1:
            raise ConfigError(f"chunk size must be at least 1, not {self.chunk_size}")
        if self.max_cell_bytes < 1:
            raise ConfigError(f"--max-cell-bytes must be at least 1, not {self.max_cell_bytes}")
        if self.delimiter is not None and len(_delimiter(self.delimiter)) != 1:
            raise ConfigError(
                f"delimiter must be one character (such as , ; or tab), not {self.delimiter!r}"
            )


class Table:
    """An opened input file: its header, and a way to stream its rows (re-readable)."""

    __slots__ = ("_stream", "header", "path", "sheet")

    def __init__(self, path: Path, header: Header, stream: Callable[[], Iterator[Row]],
                 sheet: str | None = None) -> None:
        self.path = path
        self.header = header
        self._stream = stream
        #: The worksheet read, for a workbook (the active visible one unless --sheet).
        self.sheet = sheet

    def rows(self) -> Iterator[Row]:
        """Stream the data rows from the start of the file; blank rows are skipped."""
        return self._stream()

    def __repr__(self) -> str:
        return f"Table({str(self.path)!r}, columns={self.header.columns!r})"


def open_table(path: Path, options: ReadOptions = ReadOptions()) -> Table:
    """Open an input file, read and check its header, and return it ready to stream rows."""
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: no such file; check the path and name")
    if path.is_dir():
        raise InputError(f"{path}: is a directory; give the path of a CSV or XLSX file")
    if not path.is_file():
        # A pipe or device would block the pre-scan, which must read the file twice.
        raise InputError(f"{path}: is not a regular file; save the list to a file first")
    suffix = path.suffix.lower()
    if suffix == ".xls":
        if _read_sample(path)[0].startswith(_ZIP_MAGIC):
            raise InputError(f"{path}: is an .xlsx workbook with an .xls name; rename it to .xlsx")
        raise InputError(f"{path}: old binary Excel format; save it as .xlsx or CSV")
    if suffix in XLSX_SUFFIXES:
        return _open_xlsx(path, options)
    if suffix in CSV_SUFFIXES:
        return _open_csv(path, options)
    shown = f"'{suffix}'" if suffix else "no extension"
    raise InputError(
        f"{path}: unsupported file type ({shown}); use a .csv, .tsv, .txt, .xlsx or .xlsm file"
    )


def _delimiter(text: str) -> str:
    """The delimiter meant by an option value; "\\t" and "tab" as typed on a command line."""
    return "\t" if text in ("\\t", "tab", "TAB") else text


def _check_header(path: Path, cells: Sequence[str], limit: int) -> None:
    """Refuse a header whose column name is over --max-cell-bytes: it would be echoed whole in
    every report and summary (no row can be judged without its header)."""
    for position, cell in enumerate(cells, start=1):
        size = len(cell.encode("utf-8", "surrogatepass")) if len(cell) * 4 > limit else 0
        if size > limit:
            raise InputError(
                f"{path}: the name of column {position} holds {size:,} bytes, over the limit of "
                f"{limit:,} (--max-cell-bytes); is the first row really the header?")


def _is_blank(cells: Sequence[str]) -> bool:
    """True when no cell shows anything (whitespace and zero-width characters only)."""
    # The cells together show nothing exactly when each does: one check, not one per cell.
    return is_blank("".join(cells))


def _read_sample(path: Path) -> tuple[bytes, bool]:
    """The first bytes of a file, and whether they are the whole file."""
    try:
        with path.open("rb") as file:
            sample = file.read(_SAMPLE_BYTES)
            return sample, not file.read(1)
    except OSError as exc:
        raise InputError(f"{path}: cannot be read ({exc.strerror}); check its permissions") from exc


def _is_unicode_wide(encoding: str) -> bool:
    """True for UTF-16 and UTF-32, whose text legitimately holds NUL bytes."""
    return codecs.lookup(encoding).name.startswith(("utf-16", "utf-32"))


def _decode_sample(path: Path, sample: bytes, whole: bool, encoding: str) -> str:
    """Decode the start of a text file, rejecting binary files and the wrong encoding clearly."""
    try:
        info = codecs.lookup(encoding)
    except LookupError:
        info = None
    # Codecs such as base64, rot13 or zlib exist but do not turn bytes into text: open() and
    # pandas would fail on them deep inside with unrelated errors (open() checks this flag too).
    if info is None or not getattr(info, "_is_text_encoding", True):
        raise InputError(
            f"unknown encoding {encoding!r}; pass --encoding with a text encoding such as "
            "utf-8, cp1252 or latin-1"
        )
    wide = _is_unicode_wide(encoding)
    if sample.startswith(_ZIP_MAGIC):
        raise InputError(
            f"{path}: is a ZIP archive, probably an Excel workbook; give it the .xlsx extension"
        )
    if sample.startswith(_OLE2_MAGIC):
        raise InputError(
            f"{path}: is a binary Office file (old .xls, or a password-protected workbook); "
            "save it as .xlsx or CSV without a password"
        )
    if not wide and sample.startswith(_UTF16_BOMS):
        raise InputError(f"{path}: is UTF-16 text; pass --encoding utf-16")
    # A stray NUL is one bad cell (its row is refused when it is read); many NULs, or NULs in
    # bytes that are not text in this encoding at all, are a binary file.
    nuls = 0 if wide else sample.count(b"\x00")
    if nuls > max(8, len(sample) // 100):
        raise InputError(f"{path}: is a binary file, not CSV text; export the data as CSV or XLSX")
    try:
        text = codecs.getincrementaldecoder(encoding)().decode(sample, final=whole)
    except UnicodeDecodeError as exc:
        if nuls:
            raise InputError(f"{path}: is a binary file, not CSV text; export the data as "
                             "CSV or XLSX") from None
        line = sample[: exc.start].count(b"\n") + 1
        raise InputError(_encoding_message(path, encoding, line)) from None
    except UnicodeError:  # some codecs (punycode, idna) raise the base class without a position
        raise InputError(_encoding_message(path, encoding, None)) from None
    controls = sum(char < " " and char not in _TEXT_CONTROLS for char in text)
    # Stray control characters are bad cells, refused row by row when read; only a share of
    # them no text file has (binary data is full of them) refuses the whole file.
    if controls > max(32, len(text) // 20):
        raise InputError(f"{path}: is a binary file, not CSV text; export the data as CSV or XLSX")
    return text


def _encoding_message(path: Path, encoding: str, line: int | None) -> str:
    """One line saying the file is not in ``encoding``, and which option fixes it."""
    where = f" (line {line})" if line else ""
    hint = "pass --encoding cp1252 (or the file's encoding)"
    if codecs.lookup(encoding).name == "cp1252":
        hint = "pass --encoding with the file's real encoding (such as utf-8 or latin-1)"
    return f"{path}: not valid {encoding} text{where}; {hint}"


def _complete_lines(text: str, whole: bool) -> str:
    """The sample without its last, possibly cut, line."""
    if whole:
        return text
    cut = max(text.rfind("\n"), text.rfind("\r"))
    return text[:cut] if cut > 0 else text


def _sniff_delimiter(text: str) -> str:
    """Pick among , ; and tab the delimiter giving every non-blank line the same width (> 1)."""
    widths: dict[str, list[int]] = {}
    for candidate in DELIMITERS:
        # newline="" as csv wants: a CR inside a quoted cell (a line break typed in a Mac
        # spreadsheet) is then data, not the "new-line character seen" error.
        records = csv.reader(io.StringIO(text, newline=""), delimiter=candidate, strict=False)
        try:
            widths[candidate] = [len(record) for record in records if not _is_blank(record)]
        except csv.Error:
            widths[candidate] = []  # this delimiter cannot even split the sample
    consistent = [
        candidate for candidate, seen in widths.items() if seen and seen[0] > 1
        and all(width == seen[0] for width in seen)
    ]
    if consistent:
        return max(consistent, key=lambda candidate: widths[candidate][0])
    # Ragged data: trust the header line, which the parser will then hold each row to.
    best = max(DELIMITERS, key=lambda candidate: (widths[candidate] or [0])[0])
    return best if (widths[best] or [0])[0] > 1 else ","


def _csv_header(path: Path, encoding: str, delimiter: str,
                header_row: int | None = None) -> tuple[int, list[str]]:
    """The header record's number (1-based, as pandas counts records) and its cells."""
    try:
        with path.open(encoding=encoding, newline="") as file:
            for number, record in enumerate(csv.reader(file, delimiter=delimiter), start=1):
                if header_row is not None and number < header_row:
                    continue
                if header_row is not None and _is_blank(record):
                    raise InputError(f"{path}: --header-row {header_row}: that row is blank; "
                                     "give the number of the row that names the columns")
                if not _is_blank(record):
                    return number, record
        if header_row is not None:
            raise InputError(f"{path}: --header-row {header_row}: the file has fewer rows")
    except UnicodeError:
        raise InputError(_encoding_message(path, encoding, None)) from None
    except csv.Error as exc:
        raise InputError(f"{path}: cannot read the header ({exc}); check the file") from exc
    raise InputError(f"{path}: has only blank lines; it needs a header line naming the columns")


def _open_csv(path: Path, options: ReadOptions) -> Table:
    """Open a CSV, TSV or TXT file: check it is text, find the delimiter, read the header."""
    if options.sheet is not None:
        raise InputError(f"{path}: --sheet applies to XLSX workbooks, and this is a text "
                         "file; drop --sheet")
    sample, whole = _read_sample(path)
    if not sample:
        raise InputError(f"{path}: is empty; it needs a header line and one row per user")
    text = _decode_sample(path, sample, whole, options.encoding)
    if options.delimiter is not None:
        delimiter = _delimiter(options.delimiter)
    elif path.suffix.lower() == ".tsv":
        delimiter = "\t"
    else:
        lines = _complete_lines(text, whole)
        if options.header_row is not None:
            # Title lines above the header would blur the delimiter's signal.
            lines = "\n".join(lines.splitlines()[options.header_row - 1:])
        delimiter = _sniff_delimiter(lines)
    header_number, cells = _csv_header(path, options.encoding, delimiter, options.header_row)
    cells[0] = cells[0].lstrip("\ufeff")
    _check_header(path, cells, options.max_cell_bytes)
    if options.header_row is None:
        _title_hint(str(path), header_number, cells, _csv_candidates(text, header_number))
    header, shape = build_header(str(path), [restore(cell) for cell in cells])
    width = len(cells)

    check = RowCheck(header.columns, options.max_cell_bytes)

    def stream() -> Iterator[Row]:
        return _csv_rows(path, options, delimiter, width, header_number, shape, check)

    return Table(path, header, stream)


def _csv_rows(path: Path, options: ReadOptions, delimiter: str, width: int, header_number: int,
              shape: Shaper, check: RowCheck) -> Iterator[Row]:
    """Stream a CSV file's data rows in pandas chunks, numbered as a spreadsheet shows them."""
    number = 0
    try:
        # Column names are our own (0..width-1): pandas never sees the header as names, so it
        # cannot mangle duplicates; blank lines stay so that ``number`` counts every record.
        with pd.read_csv(
            path, sep=delimiter, header=None, names=list(range(width)), index_col=False,
            dtype=str, keep_default_na=False, na_filter=False, skip_blank_lines=False,
            encoding=options.encoding, engine="c", chunksize=options.chunk_size,
        ) as reader:
            for chunk in reader:
                # One conversion per chunk: iterating pandas' string arrays cell by cell is
                # about three times slower than plain lists (benchmarks/read_memory.py).
                for record in chunk.to_numpy(dtype=object).tolist():
                    number += 1
                    if number <= header_number or _is_blank(record):
                        continue
                    yield check(number, *shape([restore(cell) if cell[:1] == "'" else cell
                                               for cell in record]))
    except pd.errors.ParserError as exc:
        raise InputError(_parser_message(path, str(exc), delimiter)) from exc
    except UnicodeError:
        raise InputError(_encoding_message(path, options.encoding, None)) from None
    except OSError as exc:
        raise InputError(f"{path}: cannot be read ({exc}); check the file") from exc


def _parser_message(path: Path, detail: str, delimiter: str) -> str:
    """One line naming the line pandas could not parse, and what to do about it."""
    bad = _BAD_LINE.search(detail)
    if bad:
        expected, line, seen = bad.groups()
        separator = _DELIMITER_NAMES.get(delimiter, repr(delimiter))
        return (
            f"{path}: line {line} has {seen} cells but the header has {expected}; put values "
            f"that contain {separator} in double quotes, or remove the extra cells"
        )
    open_quote = _OPEN_QUOTE.search(detail)
    if open_quote:
        # pandas counts records from 0, so its row N is spreadsheet row N + 1.
        row = int(open_quote.group(1)) + 1
        return (
            f"{path}: the quoted value starting in row {row} is never closed; add the missing "
            'closing " or remove the stray one'
        )
    reason = " ".join(detail.replace("Error tokenizing data. C error:", "").split())
    return f"{path}: cannot be parsed as CSV ({reason}); fix the file and run again"


def _load_workbook(path: Path) -> Workbook:
    """Open a workbook read-only with cached values, turning every failure into one line."""
    try:
        with path.open("rb") as file:
            magic = file.read(len(_OLE2_MAGIC))
    except OSError as exc:
        raise InputError(f"{path}: cannot be read ({exc.strerror}); check its permissions") from exc
    if magic.startswith(_OLE2_MAGIC):
        raise InputError(
            f"{path}: is password-protected or an old .xls workbook renamed; remove the "
            "password or save it as .xlsx or CSV"
        )
    if not magic:
        raise InputError(f"{path}: is empty; save the workbook from Excel again")
    try:
        return load_workbook(path, read_only=True, data_only=True)
    except zipfile.BadZipFile:
        raise InputError(
            f"{path}: is not an Excel workbook (not a ZIP package); save it as .xlsx or CSV"
        ) from None
    except Exception as exc:  # openpyxl reports a damaged package with many unrelated types.
        raise InputError(
            f"{path}: the workbook is damaged ({type(exc).__name__}: {exc}); open it in Excel "
            "and save it as .xlsx again"
        ) from exc


def _default_sheet(path: Path, workbook: Workbook) -> Any:
    """The sheet Excel opens the workbook on: the active one, unless it is hidden or a chart,
    in which case the first visible worksheet (a hidden sheet is the writer's scratch space;
    a chart sheet opened first is a report's cover, never the users)."""
    sheets = workbook.worksheets
    if not sheets:
        raise InputError(f"{path}: the workbook has no worksheet; add one with the users")
    active = workbook.active
    if (any(sheet is active for sheet in sheets)
            and getattr(active, "sheet_state", "visible") == "visible"):
        return active
    visible = [s for s in sheets if getattr(s, "sheet_state", "visible") == "visible"]
    if not visible:
        listed = ", ".join(show(s.title) for s in sheets)
        raise InputError(f"{path}: every sheet is hidden ({listed}); pass --sheet with the "
                         "one that holds the users")
    return visible[0]


def _worksheet(path: Path, workbook: Workbook, wanted: str | None) -> ReadOnlyWorksheet:
    """The sheet to read: the one named, else the active visible one."""
    names = workbook.sheetnames
    if wanted is None:
        sheet = _default_sheet(path, workbook)
    else:
        matches = [name for name in names if name == wanted] or [
            name for name in names if name.casefold() == wanted.strip().casefold()
        ]
        if len(matches) != 1:
            listed = ", ".join(show(name) for name in names)
            raise InputError(
                f"{path}: no sheet named {show(wanted)}; the sheets are {listed}; "
                "pass --sheet with one of them"
            )
        sheet = workbook[matches[0]]
    if not isinstance(sheet, ReadOnlyWorksheet):
        raise InputError(f"{path}: sheet {show(sheet.title)} is a chart, not a table of users")
    # Some writers store a wrong <dimension>; without it openpyxl reads up to the last real row.
    sheet.reset_dimensions()
    return sheet


def _cell_text(cell: Any) -> str:
    """A read-only cell's text; its number format is looked up only for numbers, which use it."""
    value = cell.value
    if type(value) is str:
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        return cell_text(value, cell.number_format)
    return cell_text(value)


_Records = Generator[tuple[int, list[str]], None, None]


class _FormulaAwareParser(WorkSheetParser):
    """openpyxl's sheet parser, telling a formula without a saved value from an empty cell.

    With ``data_only`` openpyxl reads a formula's cached value and gives None when there is
    none, exactly as for an empty cell: the row would look blank and vanish from the report.
    """

    def parse_cell(self, element: Any) -> dict[str, Any]:
        cell: dict[str, Any] = super().parse_cell(element)
        if cell["value"] is None and element.find(FORMULA_TAG) is not None:
            cell["value"] = UNCACHED_FORMULA
            cell["data_type"] = "s"
        elif cell["data_type"] == "e":
            # An error value (#N/A, #REF!) would otherwise read as text and become a name.
            cell["value"] = ERROR_VALUE + str(cell["value"] or "")
            cell["data_type"] = "s"
        return cell


def _record(sheet: ReadOnlyWorksheet, cells: list[dict[str, Any]]) -> list[str]:
    """One parsed row's cells as texts, placed by column (missing cells are blank)."""
    texts: list[str] = []
    for cell in cells:
        column = int(cell["column"])
        if column > len(texts) + 1:
            texts.extend([""] * (column - 1 - len(texts)))
        value = cell["value"]
        if type(value) is str:
            texts.append(value)
        elif isinstance(value, int | float) and not isinstance(value, bool):
            # Only numbers need their format (zero padding such as 000042).
            styled = ReadOnlyCell(sheet, cell["row"], column, value, cell["data_type"],
                                  cell["style_id"])
            texts.append(cell_text(value, styled.number_format))
        else:
            texts.append(cell_text(value))
    return texts


def _sheet_records(path: Path, sheet: ReadOnlyWorksheet) -> _Records:
    """Every row of a sheet as (row number, cell texts), including blank rows."""
    # The same private attributes ReadOnlyWorksheet reads its own rows with.
    raw: Any = sheet
    workbook: Any = sheet.parent
    number = 0
    try:
        with workbook._archive.open(raw._worksheet_path) as source:
            parser = _FormulaAwareParser(source, raw._shared_strings,
                                         data_only=True, epoch=workbook.epoch,
                                         date_formats=workbook._date_formats,
                                         timedelta_formats=workbook._timedelta_formats)
            for found, cells in parser.parse():
                while number + 1 < found:  # rows the file leaves out are blank
                    number += 1
                    yield number, []
                number = found
                yield number, _record(sheet, cells)
    except InputError:
        raise
    except Exception as exc:  # A damaged sheet fails mid-stream with assorted parser errors.
        raise InputError(
            f"{path}: sheet {show(sheet.title)} is damaged after row {number} "
            f"({type(exc).__name__}: {exc}); open it in Excel and save it as .xlsx again"
        ) from exc


def _open_xlsx(path: Path, options: ReadOptions) -> Table:
    """Open an XLSX or XLSM workbook: pick the sheet and read the header row."""
    workbook = _load_workbook(path)
    try:
        sheet = _worksheet(path, workbook, options.sheet)
        title = sheet.title
        others = [name for name in workbook.sheetnames if name != title]
        records = _sheet_records(path, sheet)
        found = _first_header(path, records, options.header_row)
        if found is not None and options.header_row is None:
            later = itertools.islice(records, _TITLE_LOOKAHEAD)
            _title_hint(f"{path} [{title}]", found[0], found[1], later)
        records.close()
    finally:
        workbook.close()
    if found is None:
        # The users are often on another sheet than the first (a cover sheet, notes).
        hint = (f"; the other sheets are {', '.join(show(n) for n in others)}: pick one with "
                "--sheet" if others else "")
        raise InputError(
            f"{path}: sheet {show(title)} is empty; it needs a header row naming the columns"
            + hint
        )
    header_number, cells = found
    _check_header(path, cells, options.max_cell_bytes)
    header, shape = build_header(f"{path} [{title}]", [restore(cell) for cell in cells])
    check = RowCheck(header.columns, options.max_cell_bytes)

    def stream() -> Iterator[Row]:
        return _xlsx_rows(path, title, header_number, shape, check)

    return Table(path, header, stream, sheet=title)


def _first_header(path: Path, records: _Records,
                  header_row: int | None) -> tuple[int, list[str]] | None:
    """The header record of a sheet: the row --header-row names, else the first non-blank."""
    for number, cells in records:
        if header_row is None and not _is_blank(cells):
            return number, cells
        if number == header_row:
            if _is_blank(cells):
                raise InputError(f"{path}: --header-row {header_row}: that row is blank; give "
                                 "the number of the row that names the columns")
            return number, cells
    if header_row is not None:
        raise InputError(f"{path}: --header-row {header_row}: the sheet has fewer rows")
    return None


#: Rows below a header without an email column searched for the real header (a title above).
_TITLE_LOOKAHEAD = 20


def _has_email(cells: Sequence[str]) -> bool:
    return any(normalise_header(restore(cell)) == "email" for cell in cells)


def _title_hint(source: str, number: int, cells: Sequence[str],
                later: Iterable[tuple[int, Sequence[str]]]) -> None:
    """Name the row that looks like the header when the first row (a title) has no email."""
    if _has_email(cells) or is_report_header(cells):
        return
    for candidate, row in later:
        if _has_email(row):
            title = " ".join(" ".join(cell.split()) for cell in cells if cell.strip())
            raise InputError(f"{source}: no email column in row {number} ({show(title)}); "
                             f"row {candidate} looks like the header: pass --header-row "
                             f"{candidate}")


def _csv_candidates(text: str, after: int) -> Iterator[tuple[int, list[str]]]:
    """The records below ``after`` in a CSV sample, split by each delimiter in turn (a title
    line can mislead the delimiter's detection)."""
    for delimiter in DELIMITERS:
        records = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=False)
        try:
            for number, record in enumerate(records, start=1):
                if number > after + _TITLE_LOOKAHEAD:
                    break
                if number > after:
                    yield number, record
        except csv.Error:
            continue


def _xlsx_rows(path: Path, title: str, header_number: int, shape: Shaper,
               check: RowCheck) -> Iterator[Row]:
    """Stream a sheet's data rows, numbered as Excel numbers them; closes the workbook."""
    workbook = _load_workbook(path)
    records: _Records | None = None
    try:
        records = _sheet_records(path, _worksheet(path, workbook, title))
        for number, cells in records:
            if number <= header_number or _is_blank(cells):
                continue
            yield check(number, *shape([restore(cell) for cell in cells]))
    finally:
        # Close the sheet's XML stream before the archive that holds it.
        if records is not None:
            records.close()
        workbook.close()
