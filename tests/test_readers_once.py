"""The input is read once: one open per full run of rows(), the hash from that same pass, and
the rare long CSV field read without holding it."""

from __future__ import annotations

import builtins
import csv
import hashlib
import io
import random
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import openpyxl
import pytest

from bulkusers.errors import InputError
from bulkusers.longfields import long_record
from bulkusers.readers import ReadOptions, open_table

BIG = 5 * 1024 * 1024  # over the csv module's field limit the readers set (4 Mi characters)


def file_sha256(path: Path) -> str:
    """The SHA-256 of a file read on its own: the reference the readers' hash must equal."""
    return hashlib.sha256(path.read_bytes()).hexdigest()


def write_csv(path: Path, rows: list[list[str]], delimiter: str = ",") -> Path:
    with path.open("w", encoding="utf-8", newline="") as handle:
        csv.writer(handle, delimiter=delimiter).writerows(rows)
    return path


def users(count: int) -> list[list[str]]:
    return [["email", "firstName", "role"]] + [
        [f"user{i}@example.com", f"Name {i}", "Viewer"] for i in range(count)]


def write_xlsx(path: Path, rows: list[list[str]]) -> Path:
    book = openpyxl.Workbook()
    sheet = book.active
    assert sheet is not None
    for row in rows:
        sheet.append(row)
    book.save(path)
    return path


class Opens:
    """Counts the times a path is opened through open() / io.open() (Path.open uses it)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, path: Path) -> None:
        self.count = 0
        original: Callable[..., Any] = io.open

        def counting(file: Any, *args: Any, **kwargs: Any) -> Any:
            if isinstance(file, str | Path) and Path(file) == path:
                self.count += 1
            return original(file, *args, **kwargs)

        monkeypatch.setattr(io, "open", counting)
        monkeypatch.setattr(builtins, "open", counting)


@pytest.mark.parametrize(("name", "count"), [
    ("small.csv", 3), ("large.csv", 20_000), ("users.tsv", 20_000), ("users.xlsx", 300)])
def test_a_full_read_opens_the_file_once_and_hashes_its_bytes(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str, count: int) -> None:
    """open_table plus one full rows() opens the file once; sha256 is that of its bytes."""
    path = tmp_path / name
    if name.endswith(".xlsx"):
        write_xlsx(path, users(count))
    else:
        write_csv(path, users(count), "\t" if name.endswith(".tsv") else ",")
    expected = hashlib.sha256(path.read_bytes()).hexdigest()
    opens = Opens(monkeypatch, path)
    table = open_table(path)
    rows = list(table.rows())
    assert opens.count == 1
    assert len(rows) == count
    assert rows[-1].number == count + 1
    assert table.sha256 == expected == file_sha256(path)


def test_sha256_is_refused_before_the_end(tmp_path: Path) -> None:
    """Asking for the hash of a file not yet read to its end is a bug, said plainly."""
    path = write_csv(tmp_path / "users.csv", users(20_000))
    table = open_table(path)
    with pytest.raises(RuntimeError, match="before the file was read to the end"):
        _ = table.sha256
    table.close()


def test_rows_again_read_the_same_rows(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A second rows() (diff.py) opens the file once more and gives the same rows."""
    path = write_csv(tmp_path / "users.csv", users(5000))
    opens = Opens(monkeypatch, path)
    table = open_table(path)
    first = list(table.rows())
    assert list(table.rows()) == first
    assert opens.count == 2


def test_a_field_too_long_for_the_csv_module_makes_only_its_row_invalid(tmp_path: Path) -> None:
    """Cells of 5 MiB (one line, quoted over many lines, non-ASCII) make only their rows
    invalid, with their exact UTF-8 size; later rows keep their spreadsheet numbers."""
    path = tmp_path / "huge.csv"
    lines = ["email,notes\n", "a@example.com,ok\n",
             "b@example.com," + "z" * BIG + "\n",
             'c@example.com,"' + "two words\n" * (BIG // 10) + '"\n',
             "d@example.com," + "é" * (BIG // 2) + "\n",
             'e@example.com,"say ""hi"""\n']
    path.write_text("".join(lines), encoding="utf-8")
    rows = list(open_table(path).rows())
    assert [row.number for row in rows] == [2, 3, 4, 5, 6]
    assert [row.problem for row in rows][::4] == ["", ""]
    assert rows[4].values == ("e@example.com", 'say "hi"')
    sizes = [BIG, (BIG // 10) * 10, (BIG // 2) * 2]
    for row, size in zip(rows[1:4], sizes, strict=True):
        assert f"holds {size:,} bytes" in row.problem, row.problem
        assert row.values[1] == ""


def test_a_header_too_long_for_the_csv_module_is_refused(tmp_path: Path) -> None:
    """A 5 MiB header cell refuses the file in one line naming its size."""
    path = tmp_path / "header.csv"
    path.write_text("email," + "N" * BIG + "\na@example.com,x\n", encoding="utf-8")
    with pytest.raises(InputError, match=f"column 2 holds {BIG:,} bytes"):
        open_table(path)


def test_an_unclosed_quote_in_a_long_field_names_its_row(tmp_path: Path) -> None:
    """A quote opened in a 5 MiB cell and never closed is reported with its row."""
    path = tmp_path / "open.csv"
    path.write_text('email,notes\na@example.com,x\nb@example.com,"' + "z" * BIG + "\n",
                    encoding="utf-8")
    with pytest.raises(InputError, match="quoted value starting in row 3 is never closed"):
        list(open_table(path).rows())


@pytest.mark.parametrize("text", ['email,name\n"a@example.com,x\n',
                                  'email,name\na@example.com,x\nb@example.com,"y'])
def test_an_unclosed_quote_anywhere_is_reported(tmp_path: Path, text: str) -> None:
    """A quote left open in the header or the last row is reported, not read as data."""
    path = tmp_path / "quote.csv"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(InputError, match="is never closed"):
        list(open_table(path).rows())


def test_a_blank_row_wider_than_the_header_is_refused(tmp_path: Path) -> None:
    """A row of only delimiters, wider than the header, is named: its cells are misplaced."""
    path = tmp_path / "wide.csv"
    path.write_text("email,name\na@example.com,x\n,,,\n", encoding="utf-8")
    with pytest.raises(InputError, match="line 3 has 4 cells but the header has 2"):
        list(open_table(path, ReadOptions()).rows())


def test_the_long_way_reads_records_as_the_csv_module_does() -> None:
    """longfields.long_record splits random records exactly as csv.reader (not strict)."""
    pieces = ["a", "b c", ",", ",", '"', '""', "\n", "\r\n", "\r", "é", "'", " "]
    chooser = random.Random(8)
    for _ in range(3000):
        text = "".join(chooser.choice(pieces) for _ in range(chooser.randint(1, 14)))
        lines = io.StringIO(text, newline="").readlines()
        reader = csv.reader(iter(lines), strict=False)
        try:
            expected = next(reader)
        except StopIteration:
            continue
        got, _ = long_record(iter(lines), ",", 1 << 20)
        assert got == expected, repr(text)


def test_reading_csv_loads_neither_pandas_nor_openpyxl() -> None:
    """Opening and reading a CSV imports neither pandas nor openpyxl (a fast --help too)."""
    code = ("import sys, pathlib, tempfile; from bulkusers.readers import open_table; "
            "p = pathlib.Path(tempfile.mkdtemp()) / 'u.csv'; "
            "p.write_text('email\\na@b.example\\n'); "
            "list(open_table(p).rows()); "
            "print(sorted({'pandas', 'openpyxl'} & set(sys.modules)))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=60, check=True)
    assert result.stdout.strip() == "[]"


def test_reactivate_reads_its_report_once_and_hashes_its_bytes(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """reactivate's input (a deactivate run's report) is opened once; its lines and the
    SHA-256 of its bytes (for --resume) come from that one read."""
    from bulkusers.columns import REPORT_COLUMNS
    from bulkusers.intake import read_input

    path = tmp_path / "leavers.deactivate.report.csv"
    with path.open("w", encoding="utf-8-sig", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(REPORT_COLUMNS)
        for n in range(1, 301):
            writer.writerow([str(n + 1), f"user{n:04d}@example.com", "deactivate", "deactivated",
                             f"65f1{n:020x}", "200", "", "1", "12.0", "role Viewer",
                             '{"role": "Designer", "groups": ["Sales"]}'])
    opens = Opens(monkeypatch, path)
    intake = read_input(path, ReadOptions(), report=True)
    assert opens.count == 1
    assert intake.sha256 == file_sha256(path)
    assert intake.total == 300
    assert intake.lines[2].previous == {"role": "Designer", "groups": ["Sales"]}
