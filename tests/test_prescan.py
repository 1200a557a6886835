"""The pre-scan: row count and repeated emails, case-insensitive, with every row named."""

from __future__ import annotations

from bulkusers.models import Header, Row
from bulkusers.prescan import prescan

HEADER = Header(columns=("Email", "Name"), index={"email": 0})


def rows(*emails: str) -> list[Row]:
    """Rows numbered from 2 as a spreadsheet shows them."""
    return [Row(number, (email, "x")) for number, email in enumerate(emails, start=2)]


def test_repeated_emails_name_all_their_rows() -> None:
    """An email on rows 2 and 5 (in other case) is reported with both rows; others are not."""
    data = rows("a@x.example", "b@x.example", "", "A@X.example", "c@x.example")
    scan = prescan(lambda: iter(data), HEADER)
    assert scan.total == 5
    assert scan.other_rows("a@x.example", 2) == (5,)
    assert scan.other_rows("A@x.EXAMPLE", 5) == (2,)
    assert scan.other_rows("b@x.example", 3) == ()


def test_unique_emails_need_one_pass() -> None:
    """Without repeats the rows are read once and nothing is flagged."""
    data = rows("a@x.example", "b@x.example")
    passes = 0

    def source() -> list[Row]:
        nonlocal passes
        passes += 1
        return data

    scan = prescan(source, HEADER)
    assert (scan.total, dict(scan.duplicates), passes) == (2, {}, 1)
