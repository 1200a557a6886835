"""Who a row names: email and userName keys that ignore ASCII letter case and nothing else.

Mail systems treat the local part of an address as case-sensitive in principle and ignore
ASCII case in practice; they never fold Unicode (``straße`` and ``strasse`` are two mailboxes,
as are ``ﬁ`` and ``fi``). So identities are compared with ASCII letters lower-cased and every
other character kept exactly: two addresses that a mail system tells apart never meet here.
"""

from __future__ import annotations

_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")


def identity_key(text: str) -> str:
    """The key an email or userName is matched by: ASCII letters lower-cased, nothing else."""
    # str.lower() would also fold É, İ or Σ; on pure ASCII text it is the same and faster.
    return text.lower() if text.isascii() else text.translate(_ASCII_LOWER)


def stored_email(text: str, *, keep_case: bool = False) -> str:
    """The address as bulkusers creates it: trimmed, ASCII letters in lower case (as identity
    providers send it) unless ``keep_case``."""
    text = text.strip()
    return text if keep_case else identity_key(text)
