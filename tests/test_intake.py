"""Reading an input once: row count, repeated emails (ASCII case only), hash, spooled rows."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from bulkusers.intake import read_input
from bulkusers.models import Row
from bulkusers.readers import ReadOptions
from bulkusers.spool import Spool


def write(tmp_path: Path, *emails: str) -> Path:
    """A CSV whose data rows (numbered from 2) carry these emails."""
    path = tmp_path / "users.csv"
    path.write_text("Email,Name\n" + "".join(f"{e},x\n" for e in emails), encoding="utf-8")
    return path


def test_repeated_emails_name_all_their_rows(tmp_path: Path) -> None:
    """An email on rows 2 and 5 (in other case) is reported with both rows; others are not."""
    path = write(tmp_path, "a@x.example", "b@x.example", "", "A@X.example", "c@x.example")
    intake = read_input(path, ReadOptions())
    assert intake.total == 5
    assert intake.repeats.other_rows("a@x.example", 2) == (5,)
    assert intake.repeats.other_rows("A@x.EXAMPLE", 5) == (2,)
    assert intake.repeats.other_rows("b@x.example", 3) == ()


def test_repeats_pair_ascii_case_variants_only(tmp_path: Path) -> None:
    """straße@ and strasse@, ﬁn@ and fin@ are different people; Dup@ and dup@ are not."""
    emails = ["straße@x.example", "strasse@x.example", "\ufb01n@x.example", "fin@x.example",
              "Dup@X.example", "dup@x.example"]
    intake = read_input(write(tmp_path, *emails), ReadOptions())
    assert [intake.repeats.other_rows(e, n) for n, e in enumerate(emails, start=2)] == [
        (), (), (), (), (7,), (6,)]


def test_intake_hash_is_the_files_sha256_and_rows_read_again_equal(tmp_path: Path) -> None:
    """The hash is of the file's bytes; the spooled rows come back the same every time."""
    path = write(tmp_path, "a@x.example", "b@x.example")
    intake = read_input(path, ReadOptions())
    assert intake.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    first = [(r.number, r.values) for r in intake.rows()]
    assert first == [(2, ("a@x.example", "x")), (3, ("b@x.example", "x"))]
    assert [(r.number, r.values) for r in intake.rows()] == first


def test_spool_moves_to_disk_and_reads_back_in_order_any_number_of_times() -> None:
    """Past its memory budget the spool pickles blocks to a temporary file; two interleaved
    readers each see every item once, in order."""
    spool: Spool[Row] = Spool(memory_items=10, block_items=7)
    rows = [Row(n, (f"u{n}@x.example",)) for n in range(2, 102)]
    for row in rows:
        spool.append(row)
    spool.close()
    assert spool.on_disk
    assert len(spool) == 100
    first, second = iter(spool), iter(spool)
    pairs = list(zip(first, second, strict=True))
    assert [a for a, _ in pairs] == rows
    assert [b for _, b in pairs] == rows
    spool.discard()


def test_small_spool_stays_in_memory() -> None:
    """Under its budget nothing is written to disk."""
    spool: Spool[int] = Spool(memory_items=10)
    for n in range(10):
        spool.append(n)
    assert not spool.close().on_disk
    assert list(spool) == list(range(10))


def test_usernames_more_than_one_row_may_want_are_known_after_the_read(tmp_path: Path) -> None:
    """A userName on two rows (any ASCII case), or one row's userName that is another row's
    email (a new user's default userName), may be shared; a unique one may not."""
    path = tmp_path / "users.csv"
    path.write_text("Email,Username\n"
                    "a@x.example,Shared\n"
                    "b@x.example,shared\n"
                    "c@x.example,\n"
                    "d@x.example,C@X.example\n"
                    "e@x.example,alone\n", encoding="utf-8")
    repeats = read_input(path, ReadOptions()).repeats
    assert repeats.may_share_name("shared")
    assert repeats.may_share_name("c@x.example")
    assert not repeats.may_share_name("alone")
    assert not repeats.may_share_name("e@x.example")


def test_spool_counts_rows_not_items_against_its_memory_budget() -> None:
    """Batches weigh the rows they hold: 30 batches of 50 rows pass a 1,000-row budget and go
    to disk, and still read back whole and in order."""
    spool: Spool[tuple[int, ...]] = Spool(memory_items=1000, block_items=200, weigh=len)
    batches = [tuple(range(n * 50, n * 50 + 50)) for n in range(30)]
    for batch in batches:
        spool.append(batch)
    spool.close()
    assert spool.on_disk
    assert list(spool) == batches
    spool.discard()


def test_a_spool_of_a_kind_gives_back_equal_values_of_that_kind_from_disk() -> None:
    """Rows spooled as tuples of their fields come back from disk equal, as Rows, with their
    problem and recorded flag, to two interleaved readers."""
    spool: Spool[Row] = Spool(memory_items=10, block_items=7, kind=Row)
    rows = [Row(n, (f"u{n}@x.example", "x"), "bad" if n % 3 else "", n % 2 == 0)
            for n in range(2, 102)]
    for row in rows:
        spool.append(row)
    spool.close()
    assert spool.on_disk
    pairs = list(zip(iter(spool), iter(spool), strict=True))
    assert [a for a, _ in pairs] == rows
    assert [b for _, b in pairs] == rows
    assert all(type(a) is Row for a, _ in pairs)
    spool.discard()


def test_without_a_username_column_each_repeated_email_is_a_shared_username(
        tmp_path: Path) -> None:
    """With no userName column a new user's userName is its email: an email on two rows
    may be wanted as a userName twice, a unique one may not."""
    repeats = read_input(write(tmp_path, "a@x.example", "b@x.example", "A@x.example"),
                         ReadOptions()).repeats
    assert repeats.may_share_name("a@x.example")
    assert not repeats.may_share_name("b@x.example")


def test_a_spool_extended_in_blocks_holds_what_appending_each_item_holds() -> None:
    """extend spills to disk and reads back like append, whatever the blocks' sizes (weighed
    items too)."""
    batches = [tuple(range(n, n + n % 7 + 1)) for n in range(400)]
    one_by_one: Spool[tuple[int, ...]] = Spool(memory_items=100, block_items=30, weigh=len)
    in_blocks: Spool[tuple[int, ...]] = Spool(memory_items=100, block_items=30, weigh=len)
    for batch in batches:
        one_by_one.append(batch)
    for start in range(0, 400, 37):
        in_blocks.extend(batches[start:start + 37])
    for spool in (one_by_one.close(), in_blocks.close()):
        assert spool.on_disk
        assert len(spool) == 400
        assert list(spool) == batches
    with pytest.raises(ValueError, match="closed"):
        in_blocks.extend([(1,)])


@pytest.mark.parametrize("columns", [("Email", "Name"), ("Name", "Email"),
                                     ("Email", "Username")])
def test_emails_counted_in_blocks_repeat_exactly_as_counted_row_by_row(
        columns: tuple[str, ...]) -> None:
    """The tally's block count (ASCII emails, no userName column) finds the same repeats as
    its row-by-row count, with blank, padded, upper-case, short and non-ASCII cells mixed in,
    and with a userName column (always row by row)."""
    import random

    from bulkusers.columns import build_header
    from bulkusers.intake import _Tally

    header, _ = build_header("users.csv", list(columns))
    email_at = header.index["email"]
    rng = random.Random(5)
    emails = ["a@x.example", " A@X.example ", "b@x.example", "", "\tc@x.example", "é@x.example",
              "\u200bd@x.example", "e@x.example", "E@x.example "]
    rows = []
    for number in range(2, 602):
        block = (number - 2) // 50
        cells = ["n"] * len(columns)
        # Even blocks: ASCII emails only (the C-level count); odd ones mix in the rest.
        cells[email_at] = rng.choice(emails[:5] + emails[7:] if block % 2 == 0 else emails)
        if block % 4 == 3 and rng.random() < 0.1:
            cells = cells[:email_at]  # a row too short to hold an email
        rows.append(Row(number, tuple(cells)))
    by_row, by_block = _Tally(header), _Tally(header)
    for row in rows:
        by_row.add(row)
    one_at_a_time = by_block.add
    counted_alone: list[Row] = []

    def add(row: Row) -> None:
        counted_alone.append(row)
        one_at_a_time(row)

    by_block.add = add  # type: ignore[method-assign]
    for start in range(0, len(rows), 50):
        by_block.add_all(rows[start:start + 50])
    first, second = by_row.repeats(rows), by_block.repeats(rows)
    assert first == second
    assert first.rows  # the input does repeat emails
    if "Username" in columns:
        assert len(counted_alone) == len(rows)
    else:  # both ways were taken
        assert 0 < len(counted_alone) < len(rows)
