"""CSV, TSV and TXT files to numbered records, with the stdlib csv module (one parser, one
pass): records counted as a spreadsheet numbers them, errors located by our own counts."""

from __future__ import annotations

import csv
from collections.abc import Iterator
from pathlib import Path

from bulkusers.errors import InputError
from bulkusers.inputfile import InputFile
from bulkusers.longfields import lines_of, long_record
from bulkusers.sniffing import DELIMITER_NAMES, encoding_message

#: A field longer than this (characters) is read by longfields.long_record instead: the csv
#: module would hold it at 4 bytes a character. Far above any cell a user list needs.
FIELD_LIMIT = 1 << 22

Records = Iterator[tuple[int, list[str]]]


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


def csv_records(source: InputFile, encoding: str, delimiter: str, limit: int) -> Records:
    """Every record of the file from its first byte, blank ones too, as (number, cells);
    numbers count records (a quoted line break does not start a new one)."""
    _allow_long_fields()
    path = source.path
    held: list[str] = []  # the lines of the record being read, for the long way
    ended: list[bool] = []  # not empty once the file's lines are all read

    def lines(text: Iterator[str]) -> Iterator[str]:
        for line in text:
            held.append(line)
            yield line
        ended.append(True)

    number = 0
    try:
        with source.text(encoding) as text:
            reader = csv.reader(lines(text), delimiter=delimiter, strict=False)
            while True:
                try:
                    for record in reader:
                        number += 1
                        if ended and held:
                            # The file ended while the record asked for another line: only a
                            # quoted value left open does that.
                            raise unclosed_quote(path, number)
                        held.clear()
                        yield number, record
                    return
                except csv.Error as exc:
                    if sum(map(len, held)) <= FIELD_LIMIT:
                        raise InputError(f"{path}: cannot be parsed as CSV (row {number + 1}: "
                                         f"{exc}); fix the file and run again") from exc
                number += 1
                first = held[:]
                held.clear()
                record, closed = long_record(lines_of(first, text), delimiter, limit)
                if not closed:
                    raise unclosed_quote(path, number) from None
                yield number, record
    except UnicodeError:
        raise InputError(encoding_message(path, encoding, None)) from None
    except OSError as exc:
        raise InputError(f"{path}: cannot be read ({exc}); check the file") from exc
