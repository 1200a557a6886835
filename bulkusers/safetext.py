"""Untrusted text judged and shown safely: control characters, blank-looking cells, quoting.

Cells come from files anyone may have written and users from servers anyone may have filled.
Nothing of theirs reaches a terminal, a report, a summary or an export with a raw control
character (an ESC sequence can clear or rewrite a terminal; a NUL silently ends a string in
other tools), and no message quotes more than a short, escaped excerpt of them.
"""

from __future__ import annotations

import re

#: C0 and C1 control characters, DEL, and the Unicode bidirectional overrides and isolates
#: (which reorder what a terminal shows: "Trojan Source"). None belongs in a name, an address,
#: a role or a group.
CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")

#: Characters that show nothing: whitespace (str.strip covers it), and the zero-width and
#: byte-order marks that spreadsheets and copy-paste leave behind.
ZERO_WIDTH = "\u200b\u200c\u200d\u2060\ufeff"

#: How many characters of a cell a message quotes at most.
QUOTE_LIMIT = 80


def find_control(text: str) -> int:
    """The position of the first control character in ``text``, or -1."""
    found = CONTROL.search(text)
    return found.start() if found else -1


def _escape(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code <= 0xFF else f"\\u{code:04x}"


def printable(text: str) -> str:
    """``text`` with every control character written as a visible escape such as ``\\x1b``."""
    return CONTROL.sub(_escape, text) if CONTROL.search(text) else text


def quote(text: str, limit: int = QUOTE_LIMIT) -> str:
    """A short, escaped, quoted excerpt of ``text`` for a message: at most ``limit`` characters
    of it, and its length when it was cut."""
    if len(text) <= limit:
        return repr(text)
    return f"{text[:limit]!r}... ({len(text):,} characters)"


def excerpt(text: str, limit: int = QUOTE_LIMIT) -> str:
    """At most ``limit`` characters of ``text`` (unquoted), and its length when it was cut."""
    if len(text) <= limit:
        return text
    return f"{text[:limit]}... ({len(text):,} characters)"


def is_blank(text: str) -> bool:
    """True when ``text`` shows nothing: only whitespace and zero-width characters."""
    return not text.strip().strip(ZERO_WIDTH).strip()


def clean(text: str) -> str:
    """``text`` without the whitespace and zero-width characters around it."""
    if text.isascii():  # O(1) in CPython; the zero-width characters are not ASCII
        return text.strip()
    stripped = text.strip()
    if stripped[:1] in ZERO_WIDTH or stripped[-1:] in ZERO_WIDTH:
        stripped = stripped.strip(ZERO_WIDTH + " \t").strip()
    return stripped
