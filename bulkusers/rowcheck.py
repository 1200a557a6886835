"""Rows judged cell by cell as they are read: control characters, oversized cells, formulas
without a value. A row that fails keeps its number and gets its reason; it is never sent."""

from __future__ import annotations

from collections.abc import Sequence

from bulkusers.columns import show
from bulkusers.models import Row
from bulkusers.safetext import QUOTE_LIMIT, clean, find_control, printable
from bulkusers.words import flag

#: Stands in for a formula cell whose workbook holds no computed value for it (written by a
#: program and never opened in Excel). It cannot occur in real text: it holds a NUL.
UNCACHED_FORMULA = "\x00formula without a value\x00"
#: Starts a cell that holds an Excel error value (#N/A, #REF!...), which is then appended:
#: the result of a failed formula, never a name or an address. It holds a NUL too.
ERROR_VALUE = "\x00error value\x00"
#: Starts a cell too large to keep (over --max-cell-bytes, read without holding it), followed
#: by its size in UTF-8 bytes. It holds a NUL too.
OVERSIZED = "\x00oversized cell\x00"


class RowCheck:
    """Makes a Row from a record's cells and says what, if anything, makes it unusable."""

    __slots__ = ("_columns", "_limit")

    def __init__(self, columns: Sequence[str], max_cell_bytes: int) -> None:
        self._columns = tuple(columns)
        self._limit = max_cell_bytes

    @property
    def limit(self) -> int:
        """The largest cell allowed, in UTF-8 bytes (--max-cell-bytes)."""
        return self._limit

    def __call__(self, number: int, values: tuple[str, ...], recorded: bool = False) -> Row:
        """The row, its oversized cells emptied (memory stays flat), with its first problem;
        ``recorded``: its email comes from a record that wins (see Row.recorded)."""
        # Fast path for the sound row: one pass over the joined text, no per-cell work.
        # UTF-8 needs at most 4 bytes a character, so a short cell cannot be over the limit.
        longest = max(map(len, values), default=0)
        joined = "".join(values)
        if longest * 4 <= self._limit and find_control(joined) < 0:
            return Row(number, values, recorded=recorded)
        problem = ""
        kept = list(values)
        for position, cell in enumerate(values):
            size = cell_size(cell, self._limit)
            if size > self._limit:
                kept[position] = ""  # a huge cell is not carried any further
                problem = problem or (
                    f"column {self._name(position)} holds {size:,} bytes, over the limit of "
                    f"{self._limit:,} ({flag('--max-cell-bytes')}); shorten the cell")
            elif cell == UNCACHED_FORMULA:
                kept[position] = ""
                problem = problem or (
                    f"column {self._name(position)} holds a formula without a saved value "
                    "(the workbook was written by a program and never saved in Excel); open "
                    "and save it in Excel, or type the value")
            elif cell.startswith(ERROR_VALUE):
                kept[position] = ""
                problem = problem or (
                    f"column {self._name(position)} holds the error value "
                    f"{printable(cell[len(ERROR_VALUE):])[:QUOTE_LIMIT]} (a formula that failed "
                    "in Excel); fix the formula or type the value")
            elif (at := find_control(used := clean(cell))) >= 0:
                # Whitespace around a value (a tab, a trailing line break) is trimmed before
                # use; a control character inside it would reach the server.
                problem = problem or (
                    f"column {self._name(position)} holds a control character "
                    f"({printable(used[at])} at character {at + 1}); remove it")
        return Row(number, tuple(kept), problem, recorded)

    def _name(self, position: int) -> str:
        return show(self._columns[position]) if position < len(self._columns) else \
            f"{position + 1}"


def cell_size(cell: str, limit: int) -> int:
    """The UTF-8 size of ``cell`` (an oversized marker's recorded size), computed only when it
    could be over ``limit``."""
    if cell.startswith(OVERSIZED):
        return int(cell[len(OVERSIZED):])
    if len(cell) * 4 <= limit:
        return len(cell)
    return len(cell.encode("utf-8", "surrogatepass"))
