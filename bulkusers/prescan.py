"""The first pass over an input: how many rows, and which emails appear more than once."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from bulkusers.models import Header, Row


@dataclass(frozen=True, slots=True)
class Prescan:
    """What one pass over the whole input found: row count and emails used more than once."""

    total: int
    duplicates: Mapping[str, tuple[int, ...]] = field(default_factory=dict)

    def other_rows(self, email: str, number: int) -> tuple[int, ...]:
        """The other rows that carry this email (empty when it is unique)."""
        return tuple(n for n in self.duplicates.get(email.casefold(), ()) if n != number)


def prescan(rows: Iterable[Row], header: Header) -> Prescan:
    """Count rows and find repeated emails, keeping memory small (hashes, not strings)."""
    first_row: dict[int, int] = {}
    repeated: dict[int, list[int]] = {}
    repeated_email: dict[int, str] = {}
    total = 0
    for row in rows:
        total += 1
        email = header.value(row, "email").casefold()
        if not email:
            continue
        digest = hash(email)
        if digest in first_row:
            repeated.setdefault(digest, [first_row[digest]]).append(row.number)
            repeated_email[digest] = email
        else:
            first_row[digest] = row.number
    duplicates = {repeated_email[d]: tuple(numbers) for d, numbers in repeated.items()}
    return Prescan(total=total, duplicates=duplicates)
