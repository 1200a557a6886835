"""CSV, TSV and TXT files to numbered records and rows, with the stdlib csv module (one parser,
one pass): records counted as a spreadsheet numbers them, errors located by our own counts.

The csv module reads lines through an ``itertools.tee``: its second branch trails behind at
the start of the current record, so the rare record the csv module cannot hold (a field over
FIELD_LIMIT) is read again from its first line the long way (longfields.py), and the last
record is checked for a quote left open (the csv module, when not strict, ends it silently).
"""

from __future__ import annotations

import csv
import itertools
from collections.abc import Iterator
from pathlib import Path

from bulkusers.cells import restore
from bulkusers.columns import Shaper
from bulkusers.errors import InputError
from bulkusers.inputfile import InputFile
from bulkusers.longfields import long_record
from bulkusers.models import Row
from bulkusers.rowcheck import RowCheck
from bulkusers.safetext import CONTROL, ZERO_WIDTH, is_blank
from bulkusers.sniffing import DELIMITER_NAMES, encoding_message

#: A field longer than this (characters) is read by longfields.long_record instead: the csv
#: module would hold it at 4 bytes a character. Far above any cell a user list needs.
FIELD_LIMIT = 1 << 22
#: The trailing branch of the lines catches up after this many lines (memory stays flat).
_CATCH_UP = 4096


def _allow_long_fields() -> None:
    """Raise the csv module's field limit (128 KiB by default, process-wide) to FIELD_LIMIT;
    a field over it is then the signal to read its record the long way."""
    if csv.field_size_limit() < FIELD_LIMIT:
        csv.field_size_limit(FIELD_LIMIT)


def unclosed_quote(path: Path, row: int) -> InputError:
    """The file ends inside the quoted value that starts in ``row``."""
    return InputError(f"{path}: the quoted value starting in row {row} is never closed; add "
                      'the missing closing " or remove the stray one')


def too_wide(path: Path, number: int, cells: int, width: int, delimiter: str) -> InputError:
    """Row ``number`` has more cells than the header."""
    separator = DELIMITER_NAMES.get(delimiter, repr(delimiter))
    return InputError(
        f"{path}: line {number} has {cells} cells but the header has {width}; put values "
        f"that contain {separator} in double quotes, or remove the extra cells")


class CsvRecords:
    """The records of one text file, read once from its first byte: ``records()`` for the
    header, then ``rows()`` reads on to the end."""

    def __init__(self, source: InputFile, encoding: str, delimiter: str, limit: int) -> None:
        _allow_long_fields()
        self.path = source.path
        self._encoding = encoding
        self._delimiter = delimiter
        self._limit = limit
        self._text = source.text(encoding)
        self._lines, self._behind = itertools.tee(self._text)
        self._reader = csv.reader(self._lines, delimiter=delimiter, strict=False)
        self.number = 0  # records read
        self._long = 0  # the last record read the long way
        self._start = 0  # lines before the last record read
        self._end = 0  # lines up to the end of the last record read
        self._mark = 0  # lines the trailing branch has passed

    def _catch_up(self, position: int) -> int:
        """Move the trailing branch to line ``position``; return where it now stands."""
        if position > self._mark:
            next(itertools.islice(self._behind, position - self._mark - 1, None), None)
            self._mark = position
        return self._mark

    def _next(self) -> list[str] | None:
        """The next record (counted, its lines marked), or None at the end of the file."""
        try:
            record = next(self._reader)
        except StopIteration:
            self._check_last()
            return None
        except csv.Error as exc:
            record = self._the_long_way(exc)
        self.number += 1
        self._start, self._end = self._end, self._reader.line_num
        return record

    def _the_long_way(self, exc: csv.Error) -> list[str]:
        """The record the csv module gave up on, read again from its first line."""
        self._catch_up(self._end)
        read = self._reader.line_num - self._end
        first = list(itertools.islice(self._behind, read))
        self._mark += read
        if sum(map(len, first)) <= FIELD_LIMIT:  # not a long field: the file is broken
            raise InputError(f"{self.path}: cannot be parsed as CSV (row {self.number + 1}: "
                             f"{exc}); fix the file and run again") from exc
        # Both branches now stand at the end of ``first``: the rest of the record is read
        # from the file itself, so that neither branch keeps its lines.
        record, closed = long_record(itertools.chain(first, _lines_of(self._text)),
                                     self._delimiter, self._limit)
        if not closed:
            raise unclosed_quote(self.path, self.number + 1) from None
        self._long = self.number + 1
        return record

    def _check_last(self) -> None:
        """Refuse a file that ends inside a quoted value (read its last record again)."""
        if self._long == self.number:
            return  # read the long way, which checked its end
        self._catch_up(self._start)
        last = list(self._behind)
        self._mark = self._end
        if any('"' in line for line in last):
            _, closed = long_record(iter(last), self._delimiter, self._limit)
            if not closed:
                raise unclosed_quote(self.path, self.number)

    def records(self) -> Iterator[tuple[int, list[str]]]:
        """(number, cells) of every record from the next one on, blank ones too."""
        with self._errors():
            while (record := self._next()) is not None:
                yield self.number, record
                if self._start - self._mark > _CATCH_UP:
                    self._catch_up(self._start)

    def rows(self, width: int, shape: Shaper, check: RowCheck, plain: int) -> Iterator[Row]:
        """The data rows from the record after the header (records() has read up to it) on,
        shaped and checked as RowCheck does;
        ``plain``: the number of columns when the header is a plain one (0 for a report read
        back), which lets a sound row skip the general path."""
        path, delimiter, limit = self.path, self._delimiter, self._limit
        reader = self._reader
        search = CONTROL.search
        # Counters live in locals in the loop (faster) and are handed back to self whenever
        # a method needs them.
        number, start, end, mark = self.number, self._start, self._end, self._mark
        with self._errors():
            try:
                while True:
                    try:
                        # The common case, kept tight: one csv record to one Row.
                        for record in reader:
                            number += 1
                            start, end = end, reader.line_num
                            if start - mark > _CATCH_UP:
                                mark = self._catch_up(start)
                            count = len(record)
                            if count > width:
                                raise too_wide(path, number, count, width, delimiter)
                            joined = "".join(record)
                            if not joined or ((joined[0].isspace() or joined[0] in ZERO_WIDTH)
                                              and is_blank(joined)):
                                continue
                            # isprintable(): no control character (CONTROL's are all
                            # unprintable), checked at C speed; the regex only when not.
                            if (plain and "'" not in joined and len(joined) * 4 <= limit
                                    and (joined.isprintable() or search(joined) is None)):
                                if count != plain:
                                    record = (record + [""] * plain)[:plain]
                                yield Row(number, tuple(record))
                            else:
                                yield _checked(number, record, shape, check)
                        break
                    except csv.Error as exc:
                        self.number, self._start, self._end = number, start, end
                        record = self._the_long_way(exc)
                        number += 1
                        start, end, mark = end, reader.line_num, self._mark
                        if not is_blank("".join(record)):
                            if len(record) > width:
                                raise too_wide(path, number, len(record), width,
                                               delimiter) from None
                            yield _checked(number, record, shape, check)
                self.number, self._start, self._end = number, start, end
                self._check_last()
            finally:
                self._text.close()

    def _errors(self) -> _Errors:
        return _Errors(self.path, self._encoding)


def _checked(number: int, record: list[str], shape: Shaper, check: RowCheck) -> Row:
    """A record shaped to the header and judged, the general way."""
    return check(number, *shape([restore(cell) if cell[:1] == "'" else cell
                                 for cell in record]))


def _lines_of(text: Iterator[str]) -> Iterator[str]:
    """The next lines of ``text`` (without closing it when dropped, as ``yield from`` would)."""
    for line in text:  # noqa: UP028
        yield line


class _Errors:
    """Turns a decoding or reading failure in the middle of the file into one line."""

    def __init__(self, path: Path, encoding: str) -> None:
        self._path = path
        self._encoding = encoding

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: object) -> None:
        if isinstance(exc, UnicodeError):
            raise InputError(encoding_message(self._path, self._encoding, None)) from None
        if isinstance(exc, OSError):
            raise InputError(f"{self._path}: cannot be read ({exc}); check the file") from exc


