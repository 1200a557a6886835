"""XLSX and XLSM workbooks to numbered records of shown text, from bytes read once."""

from __future__ import annotations

import io
import itertools
import zipfile
from collections.abc import Callable, Generator, Iterable
from typing import Any

from openpyxl.cell.read_only import ReadOnlyCell
from openpyxl.reader.excel import ExcelReader
from openpyxl.workbook.workbook import Workbook
from openpyxl.worksheet._read_only import ReadOnlyWorksheet

from bulkusers.cells import cell_text, restore
from bulkusers.columns import build_header, is_report_header, show
from bulkusers.errors import InputError
from bulkusers.inputfile import InputFile
from bulkusers.rowcheck import RowCheck
from bulkusers.sheetxml import Cells, SheetStyles, sheet_rows
from bulkusers.sniffing import OLE2_MAGIC, TITLE_LOOKAHEAD
from bulkusers.tables import (
    ReadOptions,
    Table,
    check_header,
    data_rows,
    first_header,
    sheet_hint,
    title_hint,
)
from bulkusers.words import flag

Records = Generator[tuple[int, list[str]], None, None]


class _UnsizedSheet(ReadOnlyWorksheet):
    """A read-only sheet that does not measure itself when opened: openpyxl would read a
    whole sheet without a <dimension> element once more just to size it, and the readers
    reset the size anyway (reset_dimensions below)."""

    def _get_size(self) -> None:
        return None


class _Reader(ExcelReader):
    """openpyxl's workbook reader (what load_workbook runs) with sheets that skip sizing."""

    def read_worksheets(self) -> None:
        found: Any
        for found, rel in self.parser.find_sheets():
            if rel.target not in self.valid_files:
                continue
            if "chartsheet" in rel.Type:
                self.read_chartsheet(found, rel)
                continue
            opened = _UnsizedSheet(self.wb, found.name, rel.target, self.shared_strings)
            opened.sheet_state = found.state
            book: Any = self.wb
            book._sheets.append(opened)


def load(source: InputFile) -> Workbook:
    """The workbook in ``source``, read whole (and so hashed) and opened read-only with cached
    values from memory, every failure turned into one line."""
    path = source.path
    if source.sample.startswith(OLE2_MAGIC):
        raise InputError(
            f"{path}: is password-protected or an old .xls workbook renamed; remove the "
            "password or save it as .xlsx or CSV"
        )
    if not source.sample:
        raise InputError(f"{path}: is empty; save the workbook from Excel again")
    try:
        data = source.read_all()
    except OSError as exc:
        raise InputError(f"{path}: cannot be read ({exc.strerror}); check the file") from exc
    finally:
        source.close()  # every byte is in memory (and hashed): the file is done with
    try:
        reader = _Reader(io.BytesIO(data), read_only=True, data_only=True)
        reader.read()
        workbook: Workbook = reader.wb
        return workbook
    except zipfile.BadZipFile:
        raise InputError(
            f"{path}: is not an Excel workbook (not a ZIP package); save it as .xlsx or CSV"
        ) from None
    except Exception as exc:  # openpyxl reports a damaged package with many unrelated types.
        raise InputError(
            f"{path}: the workbook is damaged ({type(exc).__name__}: {exc}); open it in Excel "
            "and save it as .xlsx again"
        ) from exc


def _default_sheet(source: InputFile, workbook: Workbook) -> Any:
    """The sheet Excel opens the workbook on: the active one, unless it is hidden or a chart,
    in which case the first visible worksheet (a hidden sheet is the writer's scratch space;
    a chart sheet opened first is a report's cover, never the users)."""
    sheets = workbook.worksheets
    if not sheets:
        raise InputError(f"{source.path}: the workbook has no worksheet; add one with the users")
    active = workbook.active
    if (any(sheet is active for sheet in sheets)
            and getattr(active, "sheet_state", "visible") == "visible"):
        return active
    visible = [s for s in sheets if getattr(s, "sheet_state", "visible") == "visible"]
    if not visible:
        listed = ", ".join(show(s.title) for s in sheets)
        raise InputError(f"{source.path}: every sheet is hidden ({listed}); pass "
                         f"{flag('--sheet')} with the one that holds the users")
    return visible[0]


def worksheet(source: InputFile, workbook: Workbook, wanted: str | None) -> ReadOnlyWorksheet:
    """The sheet to read: the one named, else the active visible one."""
    names = workbook.sheetnames
    if wanted is None:
        sheet = _default_sheet(source, workbook)
    else:
        matches = [name for name in names if name == wanted] or [
            name for name in names if name.casefold() == wanted.strip().casefold()
        ]
        if len(matches) != 1:
            listed = ", ".join(show(name) for name in names)
            raise InputError(
                f"{source.path}: no sheet named {show(wanted)}; the sheets are {listed}; "
                f"pass {flag('--sheet')} with one of them"
            )
        sheet = workbook[matches[0]]
    if not isinstance(sheet, ReadOnlyWorksheet):
        raise InputError(
            f"{source.path}: sheet {show(sheet.title)} is a chart, not a table of users")
    # Some writers store a wrong <dimension>; without it openpyxl reads up to the last real row.
    sheet.reset_dimensions()
    return sheet


class _Formats:
    """Number formats by style id, looked up once per style (a sheet has a few styles and
    many cells)."""

    __slots__ = ("_known", "_sheet")

    def __init__(self, sheet: ReadOnlyWorksheet) -> None:
        self._sheet = sheet
        self._known: dict[int, str] = {}

    def __call__(self, style_id: int) -> str:
        found = self._known.get(style_id)
        if found is None:
            styled = ReadOnlyCell(self._sheet, 1, 1, None, "n", style_id)
            found = self._known[style_id] = styled.number_format
        return found


def _record(formats: _Formats, cells: Cells) -> list[str]:
    """One row's cells as texts, placed by column (missing cells are blank)."""
    texts: list[str] = []
    for column, value, style_id in cells:
        if column > len(texts) + 1:
            texts.extend([""] * (column - 1 - len(texts)))
        kind = type(value)
        if isinstance(value, str):
            texts.append(value)
        elif kind is int or kind is float:
            # Only numbers need their format (zero padding such as 000042).
            texts.append(cell_text(value, formats(style_id)))
        else:
            texts.append(cell_text(value))
    return texts


def sheet_records(source: InputFile, sheet: ReadOnlyWorksheet) -> Records:
    """Every row of a sheet as (row number, cell texts), including blank rows."""
    # The same private attributes ReadOnlyWorksheet reads its own rows with.
    raw: Any = sheet
    workbook: Any = sheet.parent
    number = 0
    formats = _Formats(sheet)
    styles = SheetStyles(raw._shared_strings, workbook.epoch, workbook._date_formats,
                         workbook._timedelta_formats)
    try:
        with workbook._archive.open(raw._worksheet_path) as stream:
            for found, cells in sheet_rows(stream, styles):
                while number + 1 < found:  # rows the file leaves out are blank
                    number += 1
                    yield number, []
                number = found
                yield number, _record(formats, cells)
    except InputError:
        raise
    except Exception as exc:  # A damaged sheet fails mid-stream with assorted parser errors.
        raise InputError(
            f"{source.path}: sheet {show(sheet.title)} is damaged after row {number} "
            f"({type(exc).__name__}: {exc}); open it in Excel and save it as .xlsx again"
        ) from exc


def open_xlsx(source: InputFile, options: ReadOptions, again: Callable[[], Table]) -> Table:
    """An XLSX or XLSM workbook: pick the sheet, read the header row; the rows then read on
    from the same open workbook (the bytes are read once)."""
    path = source.path
    workbook = load(source)
    try:
        sheet = worksheet(source, workbook, options.sheet)
        title = sheet.title
        others = [name for name in workbook.sheetnames if name != title]
        records = sheet_records(source, sheet)
        found = first_header(path, records, options.header_row)
        later: list[tuple[int, list[str]]] = []
        if found is not None and options.header_row is None:
            later = list(itertools.islice(records, TITLE_LOOKAHEAD))
            title_hint(f"{path} [{title}]", found[0], found[1], later)
        if found is not None and options.sheet is None:
            sheet_hint(f"{path} [{title}]", found[1], others)
        if found is None:
            # The users are often on another sheet than the first (a cover sheet, notes).
            hint = (f"; the other sheets are {', '.join(show(n) for n in others)}: pick one "
                    f"with {flag('--sheet')}" if others else "")
            raise InputError(f"{path}: sheet {show(title)} is empty; it needs a header row "
                             "naming the columns" + hint)
        header_number, cells = found
        check_header(path, cells, options.max_cell_bytes)
        header, shape = build_header(f"{path} [{title}]", [restore(cell) for cell in cells])
    except BaseException:
        workbook.close()
        raise
    check = RowCheck(header.columns, options.max_cell_bytes)
    plain = 0 if is_report_header(cells) else len(header.columns)
    rows = data_rows(_closing(workbook, later, records), header_number, shape, check, plain)
    return Table(source, header, rows, again, sheet=title)


def _closing(workbook: Workbook, first: Iterable[tuple[int, list[str]]],
             rest: Records) -> Records:
    """The records already read, then the rest; the sheet's stream and then the workbook are
    closed at the end (or when the rows are dropped)."""
    try:
        yield from first
        yield from rest
    finally:
        rest.close()
        workbook.close()
