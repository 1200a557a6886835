"""Words a person reads: counts with the right plural."""

from __future__ import annotations


def count(number: int, singular: str, plural: str | None = None) -> str:
    """``1 row``, ``2 rows``, ``0 rows``: the number and the noun in the form it takes."""
    noun = singular if number == 1 else (plural or singular + "s")
    return f"{number} {noun}"
