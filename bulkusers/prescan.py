"""The first pass over an input: how many rows, and which emails appear more than once."""

from __future__ import annotations

from array import array
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

import numpy as np

from bulkusers.identity import identity_key
from bulkusers.models import Header, Row


@dataclass(frozen=True, slots=True)
class Prescan:
    """What one pass over the whole input found: row count and emails used more than once."""

    total: int
    duplicates: Mapping[str, tuple[int, ...]] = field(default_factory=dict)

    def other_rows(self, email: str, number: int) -> tuple[int, ...]:
        """The other rows that carry this email (empty when it is unique)."""
        return tuple(n for n in self.duplicates.get(identity_key(email), ()) if n != number)


def prescan(rows: Callable[[], Iterable[Row]], header: Header) -> Prescan:
    """Count rows and find repeated emails in memory that stays flat with the file.

    The first pass keeps one 64-bit hash per row (8 bytes: 8 MB for a million rows) and
    sorts them in place; only when a hash repeats does a second pass collect the rows of
    those few emails.
    """
    hashes = array("q")
    total = 0
    for row in rows():
        total += 1
        email = identity_key(header.value(row, "email"))
        if email:
            hashes.append(hash(email))
    ordered = np.frombuffer(hashes, dtype=np.int64).copy()
    ordered.sort()
    repeated = set(ordered[1:][ordered[1:] == ordered[:-1]].tolist())
    if not repeated:
        return Prescan(total=total)
    found: dict[str, list[int]] = {}
    for row in rows():
        email = identity_key(header.value(row, "email"))
        if email and hash(email) in repeated:
            found.setdefault(email, []).append(row.number)
    # Equal hashes of different emails (astronomically rare) are not duplicates.
    return Prescan(total=total, duplicates={email: tuple(numbers)
                                            for email, numbers in found.items()
                                            if len(numbers) > 1})
