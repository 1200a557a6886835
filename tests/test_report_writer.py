"""The report writer's lines: safe cells on the fast path and the slow one, masked secrets,
ragged rows, and every line on disk the moment it is written."""

from __future__ import annotations

import csv
import dataclasses
import os
from pathlib import Path

import pytest

from bulkusers.models import Header, Row, RowResult, Status
from bulkusers.report import MASK, read_report
from bulkusers.reportwriter import HELD_BYTES, ReportWriter
from bulkusers.summary import RunSummary

COLUMNS = ("Email", "Password", "Notes")
HEADER = Header(columns=COLUMNS, index={"email": 0, "password": 1})


def _result(number: int, values: tuple[str, ...], *, error: str = "",
            changes: str = "") -> RowResult:
    return RowResult(row=Row(number, values), email=values[0] if values else "",
                     action="create", status=Status.FAILED if error else Status.CREATED,
                     http_status=400 if error else 201, error=error, attempts=1,
                     elapsed_ms=12.34, changes=changes)


def _summary() -> RunSummary:
    return RunSummary(command="import", input_file="in.csv", report_file="r.csv")


def _lines(path: Path) -> list[list[str]]:
    with path.open(encoding="utf-8-sig", newline="") as handle:
        return list(csv.reader(handle))


def test_each_line_is_on_disk_before_the_writer_closes(tmp_path: Path) -> None:
    """A finished row is in the file at once (a killed run keeps it): read it back unclosed."""
    path = tmp_path / "r.csv"
    writer = ReportWriter(path, HEADER)
    for number in range(2, 7):
        writer.write(_result(number, (f"u{number}@acme.example", "", "note")))
        assert [line[1] for line in _lines(path)[1:]] == [
            f"u{n}@acme.example" for n in range(2, number + 1)]
    writer.close()
    writer.close()  # idempotent
    assert path.read_bytes().startswith(b"\xef\xbb\xbf")  # one BOM, for Excel
    assert path.read_bytes().count(b"\xef\xbb\xbf") == 1


def test_formulas_control_characters_and_secrets_in_one_report(tmp_path: Path) -> None:
    """Formula cells get a leading apostrophe, control characters are escaped, secrets are
    masked, on plain rows and rows with a control character alike."""
    path = tmp_path / "r.csv"
    writer = ReportWriter(path, HEADER)
    writer.write(_result(2, ("=cmd@acme.example", "s3cret", "+1 555"), changes="-x"))
    writer.write(_result(3, ("a@acme.example", "p\x1bw", "\x1b[2Jwipe"), error="@bad\x07"))
    writer.write(_result(4, ("'=x@acme.example", "", "'plain")))
    writer.close()
    text = path.read_text(encoding="utf-8-sig")
    assert "s3cret" not in text
    assert "\x1b" not in text
    assert "\x07" not in text
    first, second, third = _lines(path)[1:]
    assert first[1] == "'=cmd@acme.example"
    assert first[9] == "'-x"
    assert first[-3:] == ["'=cmd@acme.example", MASK, "'+1 555"]
    assert second[6] == "'@bad\\x07"
    assert second[-2:] == [MASK, "\\x1b[2Jwipe"]
    assert third[-3:] == ["''=x@acme.example", "", "'plain"]  # no mask for an empty cell
    read = list(read_report(path))
    assert [line.email for line in read] == ["=cmd@acme.example", "a@acme.example",
                                            "'=x@acme.example"]


def test_the_previous_state_is_made_safe_like_every_other_text(tmp_path: Path) -> None:
    """The ``previous`` column (a user's state before the run) gets the formula apostrophe and
    its control characters escaped, whichever way its line is written."""
    path = tmp_path / "r.csv"
    writer = ReportWriter(path, Header(columns=("Email",), index={"email": 0}))
    states = ["=HYPERLINK()", "p\x1bq", '{"a": 1}', "plain"]
    for number, previous in enumerate(states, start=2):
        result = _result(number, (f"u{number}@acme.example",))
        writer.write(dataclasses.replace(result, previous=previous))
    writer.close()
    assert "\x1b" not in path.read_text(encoding="utf-8-sig")
    assert [line[10] for line in _lines(path)[1:]] == ["'=HYPERLINK()", "p\\x1bq", '{"a": 1}',
                                                       "plain"]


def test_short_and_long_rows_keep_every_cell(tmp_path: Path) -> None:
    """A row shorter than the header is padded; cells beyond the header are echoed, never
    masked by position, and a secret column is masked in both."""
    path = tmp_path / "r.csv"
    writer = ReportWriter(path, HEADER)
    writer.write(_result(2, ("short@acme.example",)))
    writer.write(_result(3, ("long@acme.example", "pw", "n", "extra", "=more")))
    writer.close()
    short, long = _lines(path)[1:]
    assert short[-3:] == ["short@acme.example", "", ""]
    assert long[-5:] == ["long@acme.example", MASK, "n", "extra", "'=more"]


def test_appending_adds_no_header_and_cuts_a_torn_line(tmp_path: Path) -> None:
    """A resumed report appends after the last complete line, with no second header."""
    path = tmp_path / "r.csv"
    writer = ReportWriter(path, HEADER)
    writer.write(_result(2, ("a@acme.example", "", "")))
    writer.close()
    with path.open("ab") as handle:
        handle.write(b'3,"b@acme.example,cr')  # a run killed mid-line
    again = ReportWriter(path, HEADER, mode="append")
    again.write(_result(3, ("b@acme.example", "", "")))
    again.close()
    lines = _lines(path)
    assert [line[0] for line in lines] == ["row", "2", "3"]
    assert lines[2][1] == "b@acme.example"


def test_a_held_report_writes_the_same_lines_in_blocks(tmp_path: Path) -> None:
    """A dry run's held writer gathers lines (nothing on disk before a block is full) and
    then writes exactly what an unheld writer writes, past one 64 KiB block and at flush."""
    plain, held = tmp_path / "plain.csv", tmp_path / "held.csv"
    writers = ReportWriter(plain, HEADER), ReportWriter(held, HEADER, held=True)
    header_only = None
    for number in range(2, 2002):  # about 100 KiB of lines: one full block and a rest
        for writer in writers:
            writer.write(_result(number, (f"u{number}@acme.example", "pw", "=note é")))
        if number == 2:
            header_only = held.read_bytes()
    assert header_only == b""
    assert b"u2001@" not in held.read_bytes()  # the rest is still held
    writers[1].flush()
    assert held.read_bytes() == plain.read_bytes()
    for writer in writers:
        writer.close()
    assert held.read_bytes() == plain.read_bytes()
    assert len(_lines(held)) == 2001


def test_rows_recorded_together_reach_the_disk_in_one_write(tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch
                                                            ) -> None:
    """Inside Recorder.together (one bulk answer's rows) the lines wait, then go to the file
    in a single os.write as the block ends; outside it, each line is written at once."""
    from bulkusers.pipeline import Recorder, SilentObserver

    path = tmp_path / "r.csv"
    writes: list[bytes] = []
    real_write = os.write

    def counting(fd: int, data: bytes) -> int:
        writes.append(bytes(data))
        return real_write(fd, data)

    record = Recorder(ReportWriter(path, HEADER), _summary(),
                      SilentObserver(), breaker=0)
    monkeypatch.setattr(os, "write", counting)
    with record.together():
        for number in range(2, 5):
            record(_result(number, (f"u{number}@acme.example", "", "")))
        assert len(_lines(path)) == 1  # the header only: the rows wait for the block's end
    assert len(writes) == 1
    assert writes[0].count(b"\r\n") == 3
    record(_result(5, ("u5@acme.example", "", "")))
    assert len(writes) == 2
    assert len(_lines(path)) == 5
    assert record.broken is None


@pytest.mark.parametrize("held", [False, True], ids=["line by line", "held"])
def test_short_writes_are_continued_until_every_byte_is_written(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, held: bool) -> None:
    """A disk that takes only 7 bytes a write (as a nearly full one may) still gets every
    line whole, written line by line or held and flushed: the same bytes as a disk that
    takes each write whole."""
    results = [_result(n, (f"u{n}@acme.example", "", "Zoë")) for n in range(2, 6)]

    def report(name: str) -> bytes:
        writer = ReportWriter(tmp_path / name, HEADER, held=held)
        for result in results:
            writer.write(result)
        writer.close()
        return (tmp_path / name).read_bytes()

    whole = report("whole.csv")
    real_write = os.write
    monkeypatch.setattr(os, "write", lambda fd, data: real_write(fd, bytes(data[:7])))
    assert report("short.csv") == whole
    assert whole.count(b"\r\n") == 5  # the header and the four lines


def test_a_write_refused_at_the_end_of_together_breaks_the_run(tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch
                                                              ) -> None:
    """A full disk when a block's lines are written stops the run with a clear reason; closing
    the report afterwards raises nothing."""
    from bulkusers.pipeline import Recorder, SilentObserver

    path = tmp_path / "r.csv"
    writer = ReportWriter(path, HEADER)
    record = Recorder(writer, _summary(), SilentObserver(), breaker=0)

    def full(fd: int, data: bytes) -> int:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "write", full)
    with record.together():
        record(_result(2, ("u2@acme.example", "", "")))
    assert record.broken is not None
    assert "No space left" in str(record.broken)
    writer.close()


@pytest.mark.parametrize("header", [HEADER, Header(columns=COLUMNS, index={"email": 0})],
                         ids=["a secret column", "no secret column"])
def test_lines_are_what_csv_writes_whatever_the_cells(tmp_path: Path, header: Header) -> None:
    """The writer's own join of plain lines, and its formula-only check of lines without a
    control character, match the careful way (each cell made safe, then csv.writer) byte for
    byte over random cells of commas, quotes, line breaks, formula
    starts, apostrophes, control and invisible characters, spaces and accents."""
    import random

    rng = random.Random(7)
    alphabet = ["a", "é", " ", ",", '"', "\n", "\r", ";", "'", "x@y.example", "", "=", "+",
                "-", "@", "\t", "\x1b", "\x85", "\u00a0", "\u202e", "\u200b", "1", "'="]
    results = []
    for number in range(2, 3002):
        cells = tuple("".join(rng.choice(alphabet) for _ in range(rng.randrange(0, 4)))
                      for _ in range(rng.randrange(1, 5)))  # ragged rows and extra cells
        result = _result(number, cells, changes=rng.choice(["", "role a, b", "x", "-y"]),
                         error=rng.choice(["", "", "=bad", "no, this"]))
        previous = rng.choice(["", "", '{"a": 1}', "=x", "p\x1bq", "plain"])
        results.append(dataclasses.replace(result, previous=previous))
    fast, by_csv = tmp_path / "fast.csv", tmp_path / "csv.csv"
    writer, reference = ReportWriter(fast, header), ReportWriter(by_csv, header)
    careful = _CountingRows(writer)
    for result in results:
        writer.write(result)
        # The reference never goes through write(): every line the careful way, cell by cell.
        reference._careful(result, reference._values(result))
    for each in (writer, reference):
        each.close()
    assert fast.read_bytes() == by_csv.read_bytes()
    assert len(_lines(fast)) == 3001
    # Both ways were taken: lines joined as they are, and lines through csv (of them, those
    # with no control character checked for formulas alone).
    assert 0 < careful.rows < len(results) - 100


class _CountingRows:
    """Counts the lines a writer sends the careful way (through its csv writer)."""

    def __init__(self, writer: ReportWriter) -> None:
        self.rows = 0
        self._writerow = writer._csv.writerow
        writer._csv = self  # type: ignore[assignment]

    def writerow(self, cells: list[str]) -> None:
        self.rows += 1
        self._writerow(cells)


@pytest.mark.parametrize("header", [HEADER, Header(columns=COLUMNS, index={"email": 0})],
                         ids=["a secret column", "no secret column"])
def test_lines_written_together_are_the_lines_written_one_by_one(tmp_path: Path,
                                                                 header: Header) -> None:
    """Lines made for a block (a dry run's planned item, joined_lines then write_line) are
    byte for byte what the careful way writes line by line: blocks of plain lines judged
    whole, and blocks in which one line holds a comma, quote, line break, formula start or
    control character refused, to be written line by line; rows numbered 0 or less (no row
    number in the line) among them."""
    import random

    rng = random.Random(11)
    plain = ["a", "é", " ", "x@y.example", "1", "", "Sales", "role Viewer; groups +Sales"]
    risky = [",", '"', "\n", "=", "'", "\x1b", "\u202e", "-1", "@x"]
    blocks: list[list[RowResult]] = []
    number = 2
    for turn in range(300):
        block = []
        for _ in range(rng.randrange(1, 60)):
            cells = tuple(rng.choice(plain) + rng.choice(plain)
                          for _ in range(rng.randrange(1, 5)))
            # Now and then a line for no input row (sync's users missing from the file).
            shown = number if rng.random() > 0.1 else -rng.randrange(3)
            block.append(_result(shown, cells, changes=rng.choice(plain)))
            number += 1
        if turn % 2:
            at = rng.randrange(len(block))
            text = rng.choice(risky) + rng.choice(plain)
            if turn % 4 == 1:  # in the Notes column (the Password column would be masked)
                values = (*block[at].row.values, "", "")[:2]
                row = Row(block[at].row.number, (*values, text))
                block[at] = dataclasses.replace(block[at], row=row)
            else:
                block[at] = dataclasses.replace(block[at], changes=text)
        blocks.append(block)
    together, by_csv = tmp_path / "together.csv", tmp_path / "csv.csv"
    writer, careful = ReportWriter(together, header, held=True), ReportWriter(by_csv, header)
    alone = _CountingLines(writer)
    for block in blocks:
        lines = writer.joined_lines(block)
        if lines is None:
            for result in block:
                writer.write(result)
        else:
            assert len(lines) == len(block)
            for line in lines:
                writer.write_line(line)
        for result in block:  # the reference never goes through write(): cell by cell
            careful._careful(result, careful._values(result))
    writer.close()
    careful.close()
    assert together.read_bytes() == by_csv.read_bytes()
    # Both ways were taken: the plain blocks whole, each line of the others alone.
    assert alone.lines == sum(len(block) for block in blocks[1::2])


def test_a_held_report_recorded_a_block_at_a_time_is_the_one_recorded_row_by_row(
        tmp_path: Path) -> None:
    """A dry run's report (held) made by Recorder.all, a planned item at a time, has the bytes,
    counts and observer calls of the same results recorded one by one, over enough blocks to
    flush more than once."""
    from bulkusers.pipeline import Recorder

    blocks = [[_result(n, (f"u{n}@acme.example", "", "Zoë")) for n in range(b, b + 50)]
              for b in range(2, 3002, 50)]
    blocks[7][3] = _result(blocks[7][3].row.number, ("a, comma@acme.example", "", ""))

    def recorded(together: bool) -> tuple[bytes, object, list[int]]:
        path = tmp_path / f"{together}.csv"
        observer = _Failing(at=-1)
        record = Recorder(ReportWriter(path, HEADER, held=True), _summary(), observer,
                          breaker=0)
        for block in blocks:
            if together:
                record.all(block)
            else:
                for result in block:
                    record(result)
        assert record.writer is not None
        record.writer.close()
        return path.read_bytes(), dict(record.summary.counts), observer.told

    together = recorded(True)
    assert together == recorded(False)
    assert len(together[0]) > 2 * HELD_BYTES
    assert len(together[2]) == 3000


class _CountingLines:
    """Counts the lines a writer judges one by one."""

    def __init__(self, writer: ReportWriter) -> None:
        self.lines = 0
        self._write = writer.write
        writer.write = self.write  # type: ignore[method-assign]

    def write(self, result: RowResult) -> None:
        self.lines += 1
        self._write(result)


class _Failing:
    """An observer that raises when told of row ``at`` (a caller's on_result with a bug)."""

    def __init__(self, at: int) -> None:
        self.told: list[int] = []
        self._at = at

    def started(self, summary: RunSummary) -> None:
        """Nothing to do."""

    def row_done(self, result: RowResult, summary: RunSummary) -> None:
        self.told.append(result.row.number)
        if result.row.number == self._at:
            raise RuntimeError("on_result failed")


@pytest.mark.parametrize("block", [["plain"] * 12, ["plain"] * 5 + ["a, comma"] + ["plain"] * 6],
                         ids=["a plain block", "a block written line by line"])
def test_recording_together_fails_as_recording_one_by_one(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, block: list[str]) -> None:
    """Recorder.all (a dry run's planned item) leaves the report, the counts and the observer
    exactly as one call a row would: when the observer raises at the 4th row, and when the
    disk fills after the 6th line."""
    from bulkusers.pipeline import Recorder

    results = [_result(n, (f"u{n}@acme.example", "", note)) for n, note in
               enumerate(block, start=2)]

    def recorded(name: str, together: bool,
                 observer: _Failing) -> tuple[bytes, object, list[int], str]:
        path = tmp_path / f"{name}-{together}-{len(list(tmp_path.iterdir()))}.csv"
        record = Recorder(ReportWriter(path, HEADER), _summary(), observer, breaker=0)
        try:
            if together:
                record.all(results)
            else:
                for result in results:
                    record(result)
        except RuntimeError:
            pass
        assert record.writer is not None
        record.writer.close()
        return (path.read_bytes(), dict(record.summary.counts), observer.told,
                str(record.broken).replace(str(path), "REPORT"))

    for together in (False, True):
        assert recorded("raises", together, _Failing(5))[2] == [2, 3, 4, 5]
    assert recorded("raises", True, _Failing(5)) == recorded("raises", False, _Failing(5))

    real_write, lines = os.write, []

    def filling(fd: int, data: bytes) -> int:
        lines.append(data)
        if len(lines) > 8:  # the BOM, the header and 6 lines fit
            raise OSError(28, "No space left on device")
        return real_write(fd, data)

    outcomes = []
    for together in (False, True):
        lines.clear()
        monkeypatch.setattr(os, "write", filling)
        outcome = recorded("full", together, _Failing(0))
        monkeypatch.setattr(os, "write", real_write)
        outcomes.append(outcome)
    assert outcomes[0] == outcomes[1]
    assert outcomes[0][2] == list(range(2, 8))
    assert "No space left" in outcomes[0][3]
