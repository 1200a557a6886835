"""Stage 1 of a run: read the input once.

One pass over the file counts its rows, finds the emails used on more than one row, takes the
SHA-256 of its bytes (for ``--resume``) and keeps the rows in a :class:`~bulkusers.spool.Spool`,
so that planning and sync's scope read them again from there, never from a second parse of the
file. ``reactivate`` reads an earlier report instead of a table.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import operator
from array import array
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import field, replace
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any, Protocol

from bulkusers.cells import cell_text
from bulkusers.columns import build_header, column_key
from bulkusers.errors import InputError
from bulkusers.frozen import frozen
from bulkusers.identity import identity_key
from bulkusers.models import Header, Row
from bulkusers.readers import ReadOptions, open_table
from bulkusers.report import ReportLine, read_report_once
from bulkusers.rowcheck import RowCheck
from bulkusers.safetext import clean
from bulkusers.spool import Spool

#: One row from Python: column name -> value (any hashable key; a DataFrame's records have
#: Hashable keys, a cursor's rows str keys).
Records = Mapping[Any, Any]


class ColumnNamed(Protocol):
    """A row from Python that names its columns without being a mapping (``sqlite3.Row``)."""

    def keys(self) -> Iterable[str]:
        """The column names."""
        ...

    def __getitem__(self, key: str, /) -> Any:
        """A column's value by name."""
        ...


class NamedTupleRow(Protocol):
    """A named tuple row (``collections.namedtuple``, ``typing.NamedTuple``)."""

    def _asdict(self) -> dict[str, Any]:
        """The row as a dict of its fields."""
        ...


#: What a run takes from Python as a row.
PythonRow = Records | ColumnNamed | NamedTupleRow


@frozen
class Repeats:
    """Emails used on more than one row, by matching key, with the rows that carry them; and
    which userNames more than one row may ask for."""

    rows: Mapping[str, tuple[int, ...]] = field(default_factory=dict)
    #: Hashes of the userName keys (the userName cell, else the email) on more than one row;
    #: None when unknown. Planning keeps track of only these: a million distinct userNames
    #: need no memory at all.
    names: frozenset[int] | None = None

    def may_share_name(self, key: str) -> bool:
        """False when no other row of the input can want this userName key."""
        return self.names is None or hash(key) in self.names

    def other_rows(self, email: str, number: int) -> tuple[int, ...]:
        """The other rows that carry this email (empty when it is unique)."""
        if not self.rows:
            return ()
        return tuple(n for n in self.rows.get(identity_key(email), ()) if n != number)


@frozen
class Intake:
    """An input read once: its header, rows (re-readable from the spool), count and hash."""

    path: Path
    header: Header
    spool: Spool[Row]
    sha256: str
    repeats: Repeats = field(default_factory=Repeats)
    #: The worksheet read, for a workbook.
    sheet: str | None = None
    #: reactivate's input: the lines of the report it was given, by report line number.
    lines: Mapping[int, ReportLine] = field(default_factory=dict)

    @property
    def total(self) -> int:
        """How many data rows the input has."""
        return len(self.spool)

    def rows(self) -> Iterator[Row]:
        """The rows in file order, from the spool."""
        return iter(self.spool)


def read_input(path: Path, options: ReadOptions, *, report: bool = False) -> Intake:
    """Read a table (or, with ``report``, an earlier run's report) once; InputError (exit 2,
    nothing sent) for anything that cannot be read."""
    if report:
        return _read_report(path)
    table = open_table(path, options)
    spool: Spool[Row] = Spool(kind=Row)
    tally = _Tally(table.header)
    rows = table.rows()
    # Taken in blocks: the spool and the tally then work a block at a time, mostly at C speed
    # (one call each a row was 1.3 s of a million-row read).
    for block in iter(lambda: list(itertools.islice(rows, READ_BLOCK)), []):
        spool.extend(block)
        tally.add_all(block)
    spool.close()
    digest = table.sha256  # of the bytes the read above went through
    return Intake(path=path, header=table.header, spool=spool, sha256=digest,
                  repeats=tally.repeats(spool), sheet=table.sheet)


class RecordsReader:
    """Rows handed over from Python one at a time (a DataFrame's records, a database
    cursor's rows), read as a file is: the first record's keys are the header, matched as a
    file's would be. Row numbers count records from 1. A record with keys the first lacks is
    an invalid row. Fed by the caller's thread (``add``), since a database cursor may be used
    only on the thread that opened it."""

    def __init__(self, options: ReadOptions) -> None:
        self._options = options
        self._number = 0
        self._digest = hashlib.sha256()
        self._spool: Spool[Row] = Spool(kind=Row)
        self._names: list[str] = []
        self._known: set[str] = set()
        # A later mapping may spell a column otherwise ("Email", "email"): the same column.
        self._slots: dict[str, int] = {}
        #: The header and what reads by it, made from the first record.
        self._by_header: tuple[Header, RowCheck, _Tally] | None = None

    def _start(self, first: Records) -> tuple[Header, RowCheck, _Tally]:
        self._names = [str(key) for key in first]
        self._known = set(self._names)
        for position, name in enumerate(self._names):
            self._slots.setdefault(column_key(name), position)
        header, _ = build_header("rows", self._names)
        self._by_header = header, RowCheck(header.columns, self._options.max_cell_bytes), \
            _Tally(header)
        return self._by_header

    def add(self, item: PythonRow) -> None:
        """Read one record (InputError for one that is no mapping of column names)."""
        self._number += 1
        record = as_record(item, self._number)
        _, check, tally = self._by_header or self._start(record)
        names = self._names
        cells = [cell_value(record.get(name)) for name in names]
        extra = [key for key in record if str(key) not in self._known]
        if extra:
            extra = _same_columns(record, extra, names, self._slots, cells)
        values = tuple(cells)
        self._digest.update(json.dumps(values, ensure_ascii=False).encode() + b"\n")
        row = check(self._number, values)
        if extra and not row.problem:
            lacks = ", ".join(map(str, extra))
            row = replace(row, problem=f"has fields the first row lacks: {lacks}; give every "
                                       "row the same fields")
        self._spool.append(row)
        tally.add(row)

    def finish(self) -> Intake:
        """The input read: no records at all is an input of no rows (its only column the
        email: there is nothing to name the others)."""
        header, _, tally = self._by_header or self._start({"email": ""})
        spool = self._spool.close()
        return Intake(path=Path("(rows from Python)"), header=header, spool=spool,
                      sha256=self._digest.hexdigest(), repeats=tally.repeats(spool))


def as_record(item: PythonRow, number: int) -> Records:
    """A row from Python as a mapping of its column names: a mapping as it is, and a row
    that names its columns (``sqlite3.Row``: ``keys()``; a named tuple: ``_asdict()``) as
    one; InputError for anything else, never quoting its values (a password may be one)."""
    if isinstance(item, Mapping):
        return item
    keys = getattr(item, "keys", None)
    if callable(keys) and hasattr(item, "__getitem__"):
        return {key: item[key] for key in keys()}
    as_dict = getattr(item, "_asdict", None)
    if callable(as_dict):
        named = as_dict()
        if isinstance(named, Mapping):
            return named
    raise InputError(f"rows: row {number} is a {type(item).__name__}, not a mapping of column "
                     "names to values; pass an iterable of mappings (a list of dicts; for a "
                     "sqlite3 cursor set row_factory = sqlite3.Row)")


def _same_columns(record: Records, keys: list[Any], names: list[str], slots: dict[str, int],
                  cells: list[str]) -> list[Any]:
    """Put the values of ``keys`` (not among the first mapping's ``names``) that spell one of
    its columns otherwise into ``cells``; the keys that name no such column."""
    others: list[Any] = []
    for key in keys:
        position = slots.get(column_key(str(key)))
        if position is not None and names[position] not in record:
            cells[position] = cell_value(record[key])
        else:
            others.append(key)
    return others


#: The types of pandas' missing values besides NaN (NaT, NA), known by name: pandas is not
#: a dependency, and bool(NA) raises.
_MISSING_TYPES = frozenset({"NaTType", "NAType"})


def cell_value(value: object) -> str:
    """A value from Python as the text a spreadsheet cell would show (``cells.cell_text``:
    None is blank, a whole float has no ``.0``, dates are ISO 8601), and what only Python
    holds: NaN and pandas' other missing values are blank; a time-zone-aware datetime keeps
    its offset (a spreadsheet's never has one); a whole Decimal (a database's NUMERIC) has
    no fraction, another is exact; bytes are their UTF-8 text; a list (of groups) is its
    items, "; " between."""
    if isinstance(value, float) and math.isnan(value):
        return ""
    if type(value).__name__ in _MISSING_TYPES:
        return ""
    if isinstance(value, datetime) and value.utcoffset() is not None:
        return value.isoformat(sep=" ", timespec="seconds")
    if isinstance(value, Decimal):
        if value.is_nan():
            return ""
        # (A whole Decimal of up to 20 digits: no int() of a 1E+100000.)
        if value.is_finite() and value.adjusted() < 20 and value == value.to_integral_value():
            return str(int(value))
        return str(value)
    if isinstance(value, (bytes, bytearray, memoryview)):
        try:
            return bytes(value).decode("utf-8")
        except UnicodeDecodeError:
            return str(bytes(value))  # shown as Python writes it; no email or name is that
    if isinstance(value, list | tuple | set | frozenset):
        # Several values in one field (a record's list of groups): the items as a cell
        # lists them, "; " between (the separator export writes and import reads).
        items = sorted(value, key=str) if isinstance(value, set | frozenset) else value
        return "; ".join(filter(None, map(cell_value, items)))
    return cell_text(value)


class _Tally:
    """Repeated emails and userNames, in little memory: one 64-bit hash per row for each
    (8 bytes), sorted once at the end (about 36 bytes a row, freed at once); only when an
    email's hash repeats are the spooled rows searched for those few emails."""

    def __init__(self, header: Header) -> None:
        self._header = header
        self._emails = array("q")
        self._names = array("q")
        # Where the two cells are (None: no such column), looked up once, not per row.
        self._email_at = header.index.get("email")
        self._name_at = header.index.get("userName")

    def add_all(self, rows: list[Row]) -> None:
        """Count a block of rows. The usual block (an email column, no userName column, every
        email ASCII) is counted in a few C-level passes: for ASCII text, identity_key(clean(x))
        is x.strip().lower(); a blank email counts for nothing, as in ``add``."""
        at = self._email_at
        if at is not None and self._name_at is None:
            try:
                emails = list(map(operator.itemgetter(at), map(_VALUES, rows)))
            except IndexError:  # a row shorter than the email's column: row by row
                emails = []
            if emails and "".join(emails).isascii():
                self._emails.extend(map(hash, filter(None, map(str.lower,
                                                               map(str.strip, emails)))))
                return
        for row in rows:
            self.add(row)

    def add(self, row: Row) -> None:
        """Count one row."""
        values = row.values
        at = self._email_at
        email = identity_key(clean(values[at])) if at is not None and at < len(values) else ""
        if email:
            self._emails.append(hash(email))
        at = self._name_at
        if at is None:
            return  # every userName key is the email: the emails' hashes serve for both
        name = clean(values[at]) if at < len(values) else ""
        # A new user's userName is its email unless the row names one.
        name_key = identity_key(name) if name else email
        if name_key:
            self._names.append(hash(name_key))

    def repeats(self, rows: Iterable[Row]) -> Repeats:
        """What repeats, once every row is counted."""
        emails = _repeated(self._emails)
        # Without a userName column each row's userName key is its email (sorting the same
        # hashes twice took a million-row input 0.7 s).
        names = frozenset(emails if self._name_at is None else _repeated(self._names))
        if not emails:
            return Repeats(names=names)
        found: dict[str, list[int]] = {}
        value = self._header.value
        for row in rows:
            email = identity_key(value(row, "email"))
            if email and hash(email) in emails:
                found.setdefault(email, []).append(row.number)
        # Equal hashes of different emails (astronomically rare) are not repeats.
        return Repeats({email: tuple(numbers) for email, numbers in found.items()
                        if len(numbers) > 1}, names=names)


#: A row's cells (a C-level call, for every row read).
_VALUES = operator.attrgetter("values")
#: Rows read at a time into the spool and the tally.
READ_BLOCK = 2_000


def _repeated(hashes: array[int]) -> set[int]:
    """The values found more than once."""
    ordered = sorted(hashes)
    # The usual input has one row per user: one C-speed pass over neighbours says so (a set
    # of a million hashes would take more memory than the sorted list).
    if not any(map(operator.eq, ordered, itertools.islice(ordered, 1, None))):
        return set()
    return {a for a, b in itertools.pairwise(ordered) if a == b}


def _read_report(path: Path) -> Intake:
    """reactivate's input: a deactivate run's report, its lines kept by line number."""
    lines, digest = read_report_once(path)
    actions = sorted({line.action for line in lines if line.action})
    if lines and "deactivate" not in actions:
        raise InputError(f"{path}: deactivated nobody (its lines are {', '.join(actions)}); "
                         "reactivate takes the report of a deactivate run")
    if any(line.status == "planned" for line in lines):
        # Its records are the users' state before a deactivation that never happened:
        # "restoring" them would undo whatever changed since.
        raise InputError(f"{path}: is the report of a dry run, which deactivated nobody; "
                         "reactivate takes the report of a deactivate run that was sent")
    spool: Spool[Row] = Spool(kind=Row)
    for line in lines:
        spool.append(Row(line.line, ()))
    return Intake(path=path, header=Header((), {}), spool=spool.close(),
                  sha256=digest, lines={line.line: line for line in lines})
