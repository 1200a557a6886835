"""Cell text: formula-safe output cells, their inverse, and spreadsheet values shown as text."""

from __future__ import annotations

import re
from datetime import date, datetime, time, timedelta

#: First characters that make Excel or LibreOffice treat a cell as a formula (OWASP CSV injection).
FORMULA_TRIGGERS = frozenset("=+-@\t\r")

# Excel shows at most 15 significant digits; more than that in a repr is binary noise.
_EXCEL_DIGITS = 15
# Beyond this a float no longer holds every integer exactly, so int() would invent digits.
_EXACT_INTEGER_LIMIT = 2.0**53
_ZERO_PADDED = re.compile(r"0+")


def _needs_quote(value: str) -> bool:
    """True when ``value`` is a formula trigger, possibly behind leading apostrophes."""
    # Apostrophes ahead of a trigger are quoted too, so that restore() is an exact inverse.
    stripped = value.lstrip("'")
    return stripped[:1] in FORMULA_TRIGGERS


def neutralise(value: str) -> str:
    """Return ``value`` safe to open in a spreadsheet: a leading "'" when it could be a formula."""
    return "'" + value if _needs_quote(value) else value


def restore(value: str) -> str:
    """Undo :func:`neutralise`: drop the "'" that neutralise would have added."""
    if value[:1] == "'" and _needs_quote(value[1:]):
        return value[1:]
    return value


def _zero_padded_width(number_format: str | None) -> int:
    """The digit count of a pure zero-padding number format such as "00000"; 0 for any other."""
    if not number_format:
        return 0
    positive = number_format.split(";", 1)[0].strip()
    return len(positive) if _ZERO_PADDED.fullmatch(positive) else 0


def _integer_text(number: int, number_format: str | None) -> str:
    """An integer as Excel shows it, zero-padded when its number format asks for it."""
    width = _zero_padded_width(number_format)
    digits = str(abs(number)).zfill(width)
    return "-" + digits if number < 0 else digits


def _float_text(number: float) -> str:
    """A non-whole float in its shortest form, cut to the 15 digits Excel shows."""
    text = repr(number)
    mantissa = text.split("e", 1)[0]
    if sum(char.isdigit() for char in mantissa.lstrip("-0.")) <= _EXCEL_DIGITS:
        return text
    return format(number, f".{_EXCEL_DIGITS}g")


def cell_text(value: object, number_format: str | None = None) -> str:
    """Return a spreadsheet cell's value as the text the spreadsheet shows for it."""
    # Order matters: bool is an int, and datetime is a date.
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, int):
        return _integer_text(value, number_format)
    if isinstance(value, float):
        if value.is_integer() and abs(value) < _EXACT_INTEGER_LIMIT:
            return _integer_text(int(value), number_format)
        return _float_text(value)
    if isinstance(value, datetime):
        if value.time() == time():
            return value.date().isoformat()
        return value.replace(tzinfo=None).isoformat(sep=" ", timespec="seconds")
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, time):
        return value.isoformat(timespec="seconds")
    if isinstance(value, timedelta):
        return str(value)
    return str(value)
