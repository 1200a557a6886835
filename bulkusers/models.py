"""Value objects shared by every layer: input rows, their header, statuses and results."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import field
from enum import StrEnum
from operator import itemgetter

from bulkusers.frozen import frozen
from bulkusers.safetext import clean
from bulkusers.spool import spooled

#: Canonical input fields, in the order the report and export show them.
FIELDS: tuple[str, ...] = (
    "email",
    "userName",
    "firstName",
    "lastName",
    "role",
    "groups",
    "password",
    "language",
)


class Status(StrEnum):
    """What happened to one input row; the report's ``status`` column."""

    CREATED = "created"
    UPDATED = "updated"
    UNCHANGED = "unchanged"
    DEACTIVATED = "deactivated"
    DELETED = "deleted"
    PLANNED = "planned"
    SKIPPED = "skipped"
    FAILED = "failed"
    NOT_ATTEMPTED = "not_attempted"


@frozen
class Header:
    """The input's header: original column names and where each canonical field lives."""

    columns: tuple[str, ...]
    index: Mapping[str, int]
    unknown: tuple[str, ...] = ()
    _take: Callable[[tuple[str, ...]], tuple[str, ...]] = field(
        init=False, repr=False, compare=False, hash=False)

    def has(self, field_name: str) -> bool:
        """True when the input has a column for ``field_name``."""
        return field_name in self.index

    def value(self, row: Row, field_name: str) -> str:
        """The row's text for a canonical field without the whitespace and zero-width
        characters around it; "" when blank-looking or absent."""
        position = self.index.get(field_name)
        if position is None or position >= len(row.values):
            return ""
        return clean(row.values[position])

    def cells(self, row: Row) -> tuple[str, ...]:
        """Every canonical field's text (in FIELDS order) as ``value`` gives it, "" where the
        input has no such column, in one pass."""
        values = row.values
        if len(values) < len(self.columns):
            values += ("",) * (len(self.columns) - len(values))
        # The "" added last stands for the fields the input has no column for.
        taken = self._take((*values, ""))
        if "".join(taken).isascii():
            # clean() of ASCII text is strip(): one C-level map for the whole row.
            return tuple(map(str.strip, taken))
        return tuple(map(clean, taken))

    def __post_init__(self) -> None:
        # Where each canonical field is (-1: the "" cells() adds), found once, not per row.
        take = itemgetter(*(self.index.get(name, -1) for name in FIELDS))
        object.__setattr__(self, "_take", take)


@spooled
@frozen
class Row:
    """One input record: its spreadsheet row number (header = 1) and its cells as text."""

    number: int
    #: Never in a repr: a cell may be a password (a result logged with %r would show it).
    values: tuple[str, ...] = field(repr=False)
    #: Why the row cannot be used whatever it asks for (a control character, an oversized
    #: cell, a formula without a value), found while reading; "" for a sound row.
    problem: str = ""
    #: Its email comes from a record that wins (a delete report read back): the address is
    #: re-created exactly as the server stored it, not lower-cased.
    recorded: bool = False


@spooled
@frozen
class RowResult:
    """The outcome of one input row, as written to the report."""

    row: Row
    email: str
    action: str
    status: Status
    user_id: str = ""
    http_status: int | None = None
    error: str = ""
    attempts: int = 0
    elapsed_ms: float = 0.0
    changes: str = ""
    #: The user's state before this run changed or deleted it (JSON), so it can be undone.
    previous: str = ""
    #: Failed for the server's reasons (connection errors, 5xx) after every retry; not
    #: written to the report, it feeds the circuit breaker.
    transient: bool = False

    @property
    def needs_attention(self) -> bool:
        """True for rows an admin must look at: failed, not attempted, or skipped as invalid."""
        status = self.status
        return status in _ALWAYS_ATTENTION or (status is _SKIPPED and bool(self.error))


#: Statuses a row needs an admin's look with whatever it says (a skip, only with an error).
#: Module constants: an enum member looked up on its class costs three times a plain
#: attribute, and these are asked about for every row.
_ALWAYS_ATTENTION = frozenset({Status.FAILED, Status.NOT_ATTEMPTED})
_SKIPPED = Status.SKIPPED
