"""The rare CSV record with a field too long for the csv module's buffer, read in Python
without holding the long field: its oversized cells become a marker carrying their size.

The csv module keeps a field in a buffer of 4 bytes a character, and would hold a 50 MiB cell
four times over; a cell that large only ever makes its row invalid (--max-cell-bytes), so its
text is counted, not kept. The rules are the csv module's with ``strict=False`` and
``doublequote=True`` (the dialect the readers use), so both paths read a record alike.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterable, Iterator

from bulkusers.rowcheck import OVERSIZED

#: Text is measured and copied in slices of this many characters (memory stays flat).
_SLICE = 1 << 20
_START, _UNQUOTED, _QUOTED, _AFTER_QUOTE = range(4)


class _Field:
    """One field's text as it is read: kept while within ``limit`` UTF-8 bytes, then only
    counted."""

    __slots__ = ("_limit", "_parts", "_size")

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._parts: list[str] = []
        self._size = 0

    def add(self, text: str, start: int, end: int) -> None:
        """Add ``text[start:end]``."""
        if end - start <= _SLICE:
            self.add_piece(text if start == 0 and end == len(text) else text[start:end])
            return
        for at in range(start, end, _SLICE):
            self.add_piece(text[at:min(at + _SLICE, end)])

    def add_piece(self, piece: str) -> None:
        """Add ``piece`` (at most a slice long)."""
        self._size += len(piece) if piece.isascii() else len(piece.encode("utf-8",
                                                                          "surrogatepass"))
        if self._size <= self._limit:
            self._parts.append(piece)
        elif self._parts:
            self._parts.clear()

    def text(self) -> str:
        """The field's text, or the oversized marker with its size in bytes."""
        if self._size > self._limit:
            return f"{OVERSIZED}{self._size}"
        return "".join(self._parts)


def long_record(lines: Iterable[str], delimiter: str, limit: int) -> tuple[list[str], bool]:
    """Read one record from ``lines`` (the first is its first line; each line keeps its line
    break, as a text file opened with newline="" gives them); consume exactly its lines.

    Returns its fields and whether it ended (False: the file ended inside a quoted value).
    """
    stops = re.compile(f"[{re.escape(delimiter)}\r\n]")
    fields: list[str] = []
    field = _Field(limit)
    state = _START
    inner: list[str] = []  # a quoted value's inner lines, measured together (faster)
    inner_size = 0
    for line in lines:
        if state == _START and not fields and line[:1] in ("\r", "\n"):
            return [], True  # a blank line is a record without fields, as for csv
        if state == _QUOTED and '"' not in line:  # a quoted value's inner line: all of it
            inner.append(line)
            inner_size += len(line)
            if inner_size >= _SLICE:
                field.add(joined := "".join(inner), 0, len(joined))
                inner.clear()
                inner_size = 0
            continue
        if inner:
            field.add(joined := "".join(inner), 0, len(joined))
            inner.clear()
            inner_size = 0
        at, end = 0, len(line)
        while at < end:
            if state == _QUOTED:
                quote = line.find('"', at)
                if quote < 0:  # the value goes on, line break included, on the next line
                    field.add(line, at, end)
                    at = end
                    break
                field.add(line, at, quote)
                at, state = quote + 1, _AFTER_QUOTE
                continue
            if state == _AFTER_QUOTE and line[at] == '"':  # a doubled quote is one quote
                field.add('"', 0, 1)
                at, state = at + 1, _QUOTED
                continue
            if state == _START and line[at] == '"':
                at, state = at + 1, _QUOTED
                continue
            # Unquoted text (also after a closing quote, as csv does when not strict).
            found = stops.search(line, at)
            stop = found.start() if found else end
            field.add(line, at, stop)
            if found is None:
                at, state = end, _UNQUOTED
                break
            fields.append(field.text())
            field = _Field(limit)
            if line[stop] != delimiter:
                return fields, True  # the line break ends the record
            at, state = stop + 1, _START
        if state != _QUOTED:
            # The last line of a file without a final line break ends its record.
            fields.append(field.text())
            return fields, True
    if inner:
        field.add(joined := "".join(inner), 0, len(joined))
    if state == _QUOTED:
        fields.append(field.text())
        return fields, False
    return fields, True


def lines_of(first: list[str], rest: Iterator[str]) -> Iterator[str]:
    """The lines already read for a record, then the file's next ones (itertools.chain: C
    speed, and unlike a generator's ``yield from`` it never closes the file)."""
    return itertools.chain(first, rest)
