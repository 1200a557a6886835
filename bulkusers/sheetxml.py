"""A worksheet's XML to numbered rows of cell values: the one pass an XLSX import reads.

openpyxl reads the workbook's structure (sheets, shared strings, styles, the date epoch); this
module reads the sheet's rows, the part that holds nearly every byte. openpyxl's own sheet
parser hands every element of the sheet to Python and builds a dictionary per cell; here only
``<row>`` elements are looked at, each read in one go, which takes a third of the time (see
the README's benchmarks). The values are openpyxl's (ECMA-376, part 1, 18.3.1.4 ``c``): the
same types, dates and errors as ``load_workbook(data_only=True)`` gives, and a formula
without a saved value is told apart from an empty cell.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import datetime
from typing import IO, Any
from xml.etree.ElementTree import Element, iterparse

from openpyxl.utils.cell import column_index_from_string
from openpyxl.utils.datetime import from_excel, from_ISO8601

from bulkusers.rowcheck import ERROR_VALUE, UNCACHED_FORMULA

_MAIN = "{http://schemas.openxmlformats.org/spreadsheetml/2006/main}"
_ROW = _MAIN + "row"
_VALUE = _MAIN + "v"
_FORMULA = _MAIN + "f"
_INLINE = _MAIN + "is"
_TEXT = _MAIN + "t"
_RUN = _MAIN + "r"
_DIGITS = "0123456789"
#: Dates converted before the cache of them starts again.
_DATES_KEPT = 4096

#: A cell's value as openpyxl reads it: text, a number, a bool, a date or time; None is empty.
Value = object
#: One row's cells: (column, value, style id), in the order the file lists them.
Cells = list[tuple[int, Value, int]]


class SheetStyles:
    """What a sheet's cells need from the workbook to be read: its shared strings, its date
    epoch and which style ids format a date or a duration."""

    __slots__ = ("date_styles", "duration_styles", "epoch", "shared_strings")

    def __init__(self, shared_strings: Sequence[Any], epoch: datetime,
                 date_styles: Mapping[int, Any] | set[int],
                 duration_styles: Mapping[int, Any] | set[int]) -> None:
        self.shared_strings = shared_strings
        self.epoch = epoch
        self.date_styles = date_styles
        self.duration_styles = duration_styles


def sheet_rows(stream: IO[bytes], styles: SheetStyles) -> Iterator[tuple[int, Cells]]:
    """(row number, cells) of every ``<row>`` of a worksheet stream, in file order."""
    read = _CellReader(styles)
    number = 0
    for _, element in iterparse(stream):
        if element.tag != _ROW:
            continue
        given = element.get("r")
        number = _row_number(given) if given else number + 1
        yield number, read(element)
        element.clear()  # the row's cells are read: free them


def _row_number(text: str) -> int:
    """A row's ``r``: an integer, sometimes written as a float ("2.0") by other writers."""
    try:
        return int(text)
    except ValueError:
        value = float(text)
        if not value.is_integer():
            raise ValueError(f"{text} is not a valid row number") from None
        return int(value)


class _CellReader:
    """Reads the cells of one ``<row>`` element at a time."""

    def __init__(self, styles: SheetStyles) -> None:
        self._styles = styles
        self._columns: dict[str, int] = {}
        #: Dates by (serial, is a duration): a column of start dates repeats a few hundred.
        self._dates: dict[tuple[int | float, bool], Value] = {}

    def _column(self, reference: str) -> int:
        letters = reference.rstrip(_DIGITS)
        found = self._columns.get(letters)
        if found is None:
            found = self._columns[letters] = column_index_from_string(letters)
        return found

    def __call__(self, row: Element) -> Cells:
        cells: Cells = []
        column = 0
        for cell in row:
            reference = cell.get("r")
            column = self._column(reference) if reference else column + 1
            style = cell.get("s")
            style_id = int(style) if style else 0
            cells.append((column, self._value(cell, cell.get("t", "n"), style_id), style_id))
        return cells

    def _value(self, cell: Element, kind: str, style_id: int) -> Value:
        if kind == "inlineStr":
            text = _inline_text(cell.find(_INLINE))
            if text is not None:
                return text
        else:
            text = cell.findtext(_VALUE)
        if not text:
            # With no saved value a formula reads as empty in openpyxl: the row would look
            # blank and vanish from the report, so it is marked.
            return UNCACHED_FORMULA if cell.find(_FORMULA) is not None else None
        converted = _CONVERT.get(kind)
        if converted is not None:
            return converted(self._styles, text)
        if kind == "n":
            return self._number(text, style_id)
        return text  # "str" (a formula's text) and any kind the standard does not name

    def _number(self, text: str, style_id: int) -> Value:
        value: int | float = (float(text) if "." in text or "E" in text or "e" in text
                              else int(text))
        styles = self._styles
        if style_id not in styles.date_styles:
            return value
        key = (value, style_id in styles.duration_styles)
        found = self._dates.get(key)
        if found is None:
            try:
                found = from_excel(value, styles.epoch, timedelta=key[1])
            except (OverflowError, ValueError):
                found = ERROR_VALUE + "#VALUE!"  # marked as a date, beyond every date
            if len(self._dates) >= _DATES_KEPT:
                self._dates.clear()
            self._dates[key] = found
        return found


def _inline_text(element: Element | None) -> str | None:
    """An inline string's text: its ``t``, or its rich-text runs' ``t`` joined (phonetic
    ``rPh`` runs are not part of it); None without an ``is`` element."""
    if element is None:
        return None
    if len(element) == 1 and element[0].tag == _TEXT:  # the usual: one plain text
        return element[0].text or ""
    plain = element.find(_TEXT)
    parts = [plain.text or ""] if plain is not None else []
    parts.extend(run.findtext(_TEXT) or "" for run in element.iterfind(_RUN))
    return "".join(parts)


_CONVERT: dict[str, Callable[[SheetStyles, str], Value]] = {
    "s": lambda styles, text: styles.shared_strings[int(text)],
    "b": lambda styles, text: bool(int(text)),
    "e": lambda styles, text: ERROR_VALUE + text,  # #N/A, #REF!: never a name
    "d": lambda styles, text: from_ISO8601(text),  # type: ignore[no-untyped-call]
}
