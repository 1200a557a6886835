"""Tests of the input readers: CSV/TSV/XLSX to a header and text-only rows."""

from __future__ import annotations

import ast
import csv
import datetime as dt
import json
import zipfile
from collections.abc import Sequence
from pathlib import Path

import openpyxl
import pytest
from openpyxl.workbook.workbook import Workbook

from bulkusers import readers
from bulkusers.columns import REPORT_COLUMNS
from bulkusers.errors import ConfigError, InputError
from bulkusers.models import Row
from bulkusers.readers import ReadOptions, neutralise, normalise_header, open_table, restore

PACKAGE = Path(readers.__file__).parent


def write(path: Path, text: str, encoding: str = "utf-8") -> Path:
    """Write ``text`` to ``path`` with exact line endings and return the path."""
    path.write_bytes(text.encode(encoding))
    return path


def read_all(path: Path, options: ReadOptions | None = None) -> list[Row]:
    """Open ``path`` and return every row it streams."""
    return list(open_table(path, options or ReadOptions()).rows())


def error_of(path: Path, options: ReadOptions | None = None) -> str:
    """The InputError message that opening ``path`` raises."""
    with pytest.raises(InputError) as caught:
        open_table(path, options or ReadOptions())
    message = str(caught.value)
    assert "\n" not in message
    return message


def workbook(rows: Sequence[Sequence[object]], title: str = "Users") -> Workbook:
    """A workbook whose first sheet, named ``title``, holds ``rows`` from A1."""
    book = openpyxl.Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.title = title
    for row in rows:
        sheet.append(list(row))
    return book


# --- CSV: encodings, delimiters, text fidelity ---------------------------------------------


def test_utf8_bom_header_is_found(tmp_path: Path) -> None:
    """A UTF-8 BOM before the header does not hide the email column."""
    path = tmp_path / "users.csv"
    path.write_bytes(b"\xef\xbb\xbfEmail,First Name\r\nann@example.com,Zo\xc3\xab\r\n")
    table = open_table(path)
    assert table.header.columns == ("Email", "First Name")
    assert table.header.index == {"email": 0, "firstName": 1}
    assert list(table.rows()) == [Row(2, ("ann@example.com", "Zoë"))]


def test_bom_is_stripped_even_with_plain_utf8(tmp_path: Path) -> None:
    """With encoding="utf-8" the BOM still does not become part of the first column name."""
    path = tmp_path / "users.csv"
    path.write_bytes(b"\xef\xbb\xbfemail,role\na@example.com,viewer\n")
    table = open_table(path, ReadOptions(encoding="utf-8"))
    assert table.header.index["email"] == 0
    assert [row.values for row in table.rows()] == [("a@example.com", "viewer")]


@pytest.mark.usefixtures("cli_words")  # its hint as the CLI words it
def test_cp1252_file_fails_with_encoding_hint(tmp_path: Path) -> None:
    """A cp1252 file read as UTF-8 fails with one line naming the encoding option."""
    path = write(tmp_path / "users.csv", "email,lastName\na@example.com,Müller\n", "cp1252")
    message = error_of(path)
    assert "not valid utf-8-sig text" in message
    assert "--encoding cp1252" in message
    assert "line 2" in message


def test_cp1252_file_reads_with_its_encoding(tmp_path: Path) -> None:
    """The same cp1252 file reads correctly when its encoding is given."""
    path = write(tmp_path / "users.csv", "email,lastName\na@example.com,Müller\n", "cp1252")
    rows = read_all(path, ReadOptions(encoding="cp1252"))
    assert rows == [Row(2, ("a@example.com", "Müller"))]


@pytest.mark.usefixtures("cli_words")  # its hint as the CLI words it
def test_bad_bytes_past_the_sample_fail_while_streaming(tmp_path: Path) -> None:
    """Bytes of the wrong encoding deep in the file raise InputError with the hint mid-stream."""
    body = "".join(f"user{i}@example.com,Plain\n" for i in range(5000))
    path = write(tmp_path / "users.csv", "email,lastName\n" + body + "z@example.com,Müller\n",
                 "cp1252")
    table = open_table(path)
    with pytest.raises(InputError, match="--encoding cp1252"):
        list(table.rows())


def test_unknown_encoding_is_a_clear_error(tmp_path: Path) -> None:
    """An encoding name Python does not know is reported as such."""
    path = write(tmp_path / "users.csv", "email\na@example.com\n")
    assert "unknown encoding 'utf-99'" in error_of(path, ReadOptions(encoding="utf-99"))


@pytest.mark.parametrize(
    ("name", "text"),
    [
        ("semi.csv", "email;firstName;groups\na@example.com;Ann;a,b\nb@example.com;Bo;c\n"),
        ("tabs.txt", "email\tfirstName\tgroups\na@example.com\tAnn\ta,b\nb@example.com\tBo\tc\n"),
        ("tabs.tsv", "email\tfirstName\tgroups\na@example.com\tAnn\ta,b\nb@example.com\tBo\tc\n"),
    ],
)
def test_delimiter_is_sniffed(tmp_path: Path, name: str, text: str) -> None:
    """Semicolon and tab files are split on the right delimiter without being told."""
    rows = read_all(write(tmp_path / name, text))
    assert rows == [Row(2, ("a@example.com", "Ann", "a,b")), Row(3, ("b@example.com", "Bo", "c"))]


def test_comma_wins_when_semicolons_are_inside_cells(tmp_path: Path) -> None:
    """Group lists separated by ";" inside a comma file do not fool the sniffer."""
    path = write(tmp_path / "users.csv", "email,groups\na@example.com,A;B\nb@example.com,C;D\n")
    assert [row.values for row in read_all(path)] == [("a@example.com", "A;B"),
                                                      ("b@example.com", "C;D")]


def test_explicit_delimiter_is_used(tmp_path: Path) -> None:
    """A given delimiter overrides sniffing, and "\\t" typed on a command line means tab."""
    pipe = write(tmp_path / "pipe.csv", "email|role\na@example.com|viewer\n")
    assert [r.values for r in read_all(pipe, ReadOptions(delimiter="|"))] == [
        ("a@example.com", "viewer")
    ]
    tabs = write(tmp_path / "tabs.csv", "email\trole\na@example.com\tviewer\n")
    assert [r.values for r in read_all(tabs, ReadOptions(delimiter="\\t"))] == [
        ("a@example.com", "viewer")
    ]


def test_bad_options_are_config_errors() -> None:
    """A multi-character delimiter or a zero chunk size is refused when the options are built."""
    with pytest.raises(ConfigError):
        ReadOptions(delimiter="||")
    with pytest.raises(ConfigError):
        ReadOptions(chunk_size=0)


def test_values_stay_text_exactly(tmp_path: Path) -> None:
    """Leading zeros, phone numbers, dates, NA/null and exponent-like values are kept verbatim."""
    cells = ["00123", "+44 20 7946 0958", "2024-03-01", "NA", "null", "1e5", "N/A", " x ", ""]
    header = ",".join(["email"] + [f"c{i}" for i in range(len(cells))])
    path = write(tmp_path / "users.csv", f"{header}\na@example.com,{','.join(cells)}\n")
    assert read_all(path) == [Row(2, ("a@example.com", *cells))]


def test_blank_rows_are_skipped_but_counted(tmp_path: Path) -> None:
    """Blank, whitespace-only and all-empty rows are not yielded, yet numbering matches Excel
    (a quoted line break spans two lines and is a control character that invalidates its row)."""
    text = (
        "email,firstName\n"
        "a@example.com,Ann\n"
        "\n"
        ",\n"
        "   \n"
        'b@example.com,"two\nlines"\n'
        "c@example.com,Cy\n"
    )
    rows = read_all(write(tmp_path / "users.csv", text), ReadOptions(chunk_size=2))
    assert rows == [
        Row(2, ("a@example.com", "Ann")),
        Row(6, ("b@example.com", "two\nlines"), "column 'firstName' holds a control character "
                                                 "(\\x0a at character 4); remove it"),
        Row(7, ("c@example.com", "Cy")),
    ]


def test_leading_blank_lines_before_the_header_are_counted(tmp_path: Path) -> None:
    """Blank lines above the header are tolerated and still count for row numbers."""
    path = write(tmp_path / "users.csv", "\n\nemail\na@example.com\n")
    assert read_all(path) == [Row(4, ("a@example.com",))]


def test_short_rows_are_padded(tmp_path: Path) -> None:
    """A row with fewer cells than the header is padded with empty strings."""
    path = write(tmp_path / "users.csv", "email,firstName,lastName\na@example.com\n")
    assert read_all(path) == [Row(2, ("a@example.com", "", ""))]


def test_extra_cells_fail_mid_stream_with_line_number(tmp_path: Path) -> None:
    """A row wider than the header raises InputError naming its line, after the good rows."""
    good = "".join(f"u{i}@example.com,Ann\n" for i in range(5))
    path = write(tmp_path / "users.csv", "email,firstName\n" + good + "x@example.com,Ann,extra\n")
    rows = open_table(path, ReadOptions(chunk_size=2)).rows()
    seen: list[int] = []
    with pytest.raises(InputError, match=r"line 7 has 3 cells but the header has 2"):
        seen.extend(row.number for row in rows)
    assert seen == [2, 3, 4, 5, 6]


def test_unclosed_quote_names_its_row(tmp_path: Path) -> None:
    """A quote that is never closed is reported with the row it starts in."""
    path = write(tmp_path / "users.csv", 'email,name\na@example.com,"open\nb@example.com,x\n')
    with pytest.raises(InputError, match="quoted value starting in row 2 is never closed"):
        list(open_table(path).rows())


@pytest.mark.usefixtures("cli_words")  # its hint as the CLI words it
def test_utf16_file_gets_its_encoding_hint(tmp_path: Path) -> None:
    """A UTF-16 export (Excel "Unicode text") is named as such, and reads when told."""
    path = write(tmp_path / "users.txt", "email\tname\na@example.com\tZoë\n", "utf-16")
    assert "pass --encoding utf-16" in error_of(path)
    assert read_all(path, ReadOptions(encoding="utf-16")) == [Row(2, ("a@example.com", "Zoë"))]


def test_duplicate_header_names_stay_distinct(tmp_path: Path) -> None:
    """Two columns with the same unknown name are both kept, unmangled, with their own values."""
    path = write(tmp_path / "users.csv", "email,Note,Note\na@example.com,one,two\n")
    table = open_table(path)
    assert table.header.columns == ("email", "Note", "Note")
    assert table.header.unknown == ("Note",)
    assert [row.values for row in table.rows()] == [("a@example.com", "one", "two")]


def test_trailing_unnamed_columns_are_dropped(tmp_path: Path) -> None:
    """Empty header cells at the right end (trailing delimiters) add no columns."""
    path = write(tmp_path / "users.csv", "email,role,,\na@example.com,viewer,,\n")
    table = open_table(path)
    assert table.header.columns == ("email", "role")
    assert [row.values for row in table.rows()] == [("a@example.com", "viewer")]


# --- header mapping ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "field"),
    [
        ("email", "email"),
        ("E-mail", "email"),
        ("Email Address", "email"),
        ("WORK_EMAIL", "email"),
        ("Mail", "email"),
        ("Business Email", "email"),
        ("e.mail", "email"),
        ("Username", "userName"),
        ("User Name", "userName"),
        ("Login", "userName"),
        ("First Name", "firstName"),
        ("given-name", "firstName"),
        ("Forename", "firstName"),
        ("first", "firstName"),
        ("Last Name", "lastName"),
        ("Surname", "lastName"),
        ("Family Name", "lastName"),
        ("Role", "role"),
        ("Sisense Role", "role"),
        ("Role Name", "role"),
        ("roleId", "role"),
        ("Groups", "groups"),
        ("Group", "groups"),
        ("Group Names", "groups"),
        ("Teams", "groups"),
        ("Password", "password"),
        ("Language", "language"),
        ("Locale", "language"),
        ("localeId", "language"),
        ("Department", ""),
        ("Team", ""),
        ("User ID", ""),
        ("Email Notes", ""),
        ("", ""),
    ],
)
def test_normalise_header(name: str, field: str) -> None:
    """Header names map to canonical fields through case, punctuation and HR aliases only."""
    assert normalise_header(name) == field


def test_aliases_and_unknown_columns(tmp_path: Path) -> None:
    """HR-style headers are mapped and unknown columns are listed once, in order."""
    path = write(
        tmp_path / "hr.csv",
        "Employee ID,Work Email,First Name,Surname,Department,Sisense Role\n"
        "007,a@example.com,Ann,Lee,Sales,viewer\n",
    )
    header = open_table(path).header
    assert header.index == {"email": 1, "firstName": 2, "lastName": 3, "role": 5}
    assert header.unknown == ("Employee ID", "Department")


def test_missing_email_column_lists_columns(tmp_path: Path) -> None:
    """Without an email column the error lists the columns found and the accepted names."""
    path = write(tmp_path / "users.csv", "Name,Department\nAnn,Sales\n")
    message = error_of(path)
    assert "no email column" in message
    assert "'Name', 'Department'" in message
    assert "Work Email" in message


def test_two_columns_for_one_field_are_named(tmp_path: Path) -> None:
    """Two columns meaning the same field are rejected, naming both."""
    path = write(tmp_path / "users.csv", "Email,Work Email\na@example.com,b@example.com\n")
    message = error_of(path)
    assert "'Email' and 'Work Email' both mean email" in message


# --- files that cannot be read -------------------------------------------------------------


def test_missing_file_and_directory(tmp_path: Path) -> None:
    """A missing path and a directory each get their own one-line error."""
    assert "no such file" in error_of(tmp_path / "nope.csv")
    assert "is a directory" in error_of(tmp_path)


def test_old_xls_and_unknown_extension(tmp_path: Path) -> None:
    """An .xls file is told to be re-saved; an unknown extension lists the accepted ones."""
    xls = tmp_path / "users.xls"
    xls.write_bytes(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(512))
    assert "old binary Excel format; save it as .xlsx or CSV" in error_of(xls)
    renamed = tmp_path / "renamed.xls"
    workbook([["email"]]).save(renamed)
    assert "rename it to .xlsx" in error_of(renamed)
    json = write(tmp_path / "users.json", "{}")
    assert ".csv, .tsv, .txt, .xlsx or .xlsm" in error_of(json)


def test_binary_garbage_is_rejected(tmp_path: Path) -> None:
    """Binary data named .csv is reported as binary, not as an encoding problem."""
    path = tmp_path / "users.csv"
    path.write_bytes(bytes(range(256)) * 8)
    assert "is a binary file" in error_of(path)


def test_stray_control_characters_beyond_a_share_make_a_file_binary(tmp_path: Path) -> None:
    """Tabs, line breaks, vertical tabs and form feeds are text however many; other control
    characters refuse the file only beyond max(32, a twentieth of its characters)."""
    rows = "".join(f"u{i}@example.com,\tA\x0b\x0c\r\n" for i in range(30))
    text = tmp_path / "text.csv"
    text.write_text("email,firstName\n" + rows, encoding="utf-8", newline="")
    assert list(open_table(text, ReadOptions()).rows())  # read, not refused
    body = "email,firstName\n" + "x" * 933 + "\n"  # 950 characters
    at_share = tmp_path / "at_share.csv"
    at_share.write_text(body + "\x01" * 50, encoding="utf-8", newline="")  # 50 in 1,000
    open_table(at_share, ReadOptions())  # at the share: bad cells, not a binary file
    beyond = tmp_path / "beyond.csv"
    beyond.write_text(body + "\x01\x1f" * 26, encoding="utf-8", newline="")  # 52 in 1,002
    assert "is a binary file" in error_of(beyond)


def test_workbook_renamed_to_csv_is_recognised(tmp_path: Path) -> None:
    """An XLSX saved under a .csv name is identified as a workbook."""
    path = tmp_path / "users.csv"
    workbook([["email"], ["a@example.com"]]).save(path)
    assert "Excel workbook" in error_of(path)


def test_empty_and_blank_files_are_errors(tmp_path: Path) -> None:
    """A zero-byte file and a file of blank lines both fail: there is no header."""
    assert "is empty" in error_of(write(tmp_path / "empty.csv", ""))
    assert "only blank lines" in error_of(write(tmp_path / "blank.csv", "\n \n\n"))


def test_header_only_file_has_no_rows(tmp_path: Path) -> None:
    """A file with a header and no data is valid and streams zero rows."""
    table = open_table(write(tmp_path / "users.csv", "email,role\n"))
    assert table.header.columns == ("email", "role")
    assert list(table.rows()) == []


def test_password_protected_and_corrupt_workbooks(tmp_path: Path) -> None:
    """An encrypted workbook (an OLE2 file) and a broken ZIP each fail with one line."""
    locked = tmp_path / "locked.xlsx"
    locked.write_bytes(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(1024))
    assert "password-protected" in error_of(locked)
    broken = tmp_path / "broken.xlsx"
    broken.write_bytes(b"this is not a zip file at all")
    assert "not an Excel workbook" in error_of(broken)
    hollow = tmp_path / "hollow.xlsx"
    with zipfile.ZipFile(hollow, "w") as archive:
        archive.writestr("hello.txt", "no workbook inside")
    assert "damaged" in error_of(hollow)


# --- XLSX ----------------------------------------------------------------------------------


def test_xlsx_values_as_excel_shows_them(tmp_path: Path) -> None:
    """Numbers, dates, booleans, padded numbers and leading-zero text become the shown text."""
    book = workbook([
        ["Email", "Text", "Whole", "Padded", "Float", "Date", "Stamp", "Flag", "Time", "Neg"],
        ["a@example.com", "01234", 5.0, 1234, 0.1, dt.datetime(2024, 3, 1),
         dt.datetime(2024, 3, 1, 12, 30, 5), True, dt.time(9, 30), -12],
        ["b@example.com", "+44 20 7946 0958", 447946095800, 7, 0.1 + 0.2, dt.date(2023, 12, 31),
         None, False, None, 3],
    ])
    sheet = book.active
    assert sheet is not None
    sheet["B2"].number_format = "@"
    for cell in ("D2", "D3", "J2"):
        sheet[cell].number_format = "00000"
    sheet["F2"].number_format = "yyyy-mm-dd"
    path = tmp_path / "users.xlsx"
    book.save(path)
    assert read_all(path) == [
        Row(2, ("a@example.com", "01234", "5", "01234", "0.1", "2024-03-01",
                "2024-03-01 12:30:05", "TRUE", "09:30:00", "-00012")),
        Row(3, ("b@example.com", "+44 20 7946 0958", "447946095800", "00007", "0.3",
                "2023-12-31", "", "FALSE", "", "3")),
    ]


def test_xlsx_blank_rows_and_short_rows(tmp_path: Path) -> None:
    """Blank sheet rows are skipped but counted, and short rows are padded to the header."""
    book = workbook([["email", "role", "groups"], ["a@example.com"], [], [None, None],
                     ["b@example.com", "viewer", "G"]])
    path = tmp_path / "users.xlsx"
    book.save(path)
    assert read_all(path) == [Row(2, ("a@example.com", "", "")),
                              Row(5, ("b@example.com", "viewer", "G"))]


def test_xlsx_sheet_choice_and_unknown_sheet(tmp_path: Path) -> None:
    """The first sheet is the default, --sheet picks another, an unknown one lists the names."""
    book = workbook([["email"], ["first@example.com"]], title="Users")
    other = book.create_sheet("Leavers")
    other.append(["Work Email"])
    other.append(["gone@example.com"])
    path = tmp_path / "users.xlsm"
    book.save(path)
    assert read_all(path) == [Row(2, ("first@example.com",))]
    assert read_all(path, ReadOptions(sheet="Leavers")) == [Row(2, ("gone@example.com",))]
    message = error_of(path, ReadOptions(sheet="Staff"))
    assert "no sheet named 'Staff'" in message
    assert "'Users', 'Leavers'" in message


def test_xlsx_empty_sheet_is_an_error(tmp_path: Path) -> None:
    """A sheet with no cells has no header and is rejected."""
    path = tmp_path / "users.xlsx"
    workbook([]).save(path)
    assert "is empty" in error_of(path)


def test_xlsx_workbook_closed_when_generator_closed(tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """Abandoning a row stream part-way still closes the workbook it opened."""
    path = tmp_path / "users.xlsx"
    workbook([["email"], ["a@example.com"], ["b@example.com"]]).save(path)
    table = open_table(path)
    closed: list[Workbook] = []
    original = Workbook.close

    def spy(self: Workbook) -> None:
        closed.append(self)
        original(self)

    monkeypatch.setattr(Workbook, "close", spy)
    rows = table.rows()
    assert next(rows) == Row(2, ("a@example.com",))
    assert closed == []
    rows.close()  # type: ignore[attr-defined]
    assert len(closed) == 1


# --- reports read back, formula safety, re-reading -----------------------------------------


def report_line(*cells: str) -> str:
    """One CSV line of a report: the eleven report cells, then the input's cells."""
    return ",".join(cells) + "\r\n"


RESTORED = ("userName", "firstName", "lastName", "role", "groups", "language")


def test_report_read_back_drops_report_columns(tmp_path: Path) -> None:
    """A report as input yields the original columns and values, with neutralised cells undone."""
    header = report_line(*REPORT_COLUMNS, "Work Email", "Notes", "Phone")
    line = report_line("7", "a@example.com", "create", "failed", "", "409", "exists", "1", "12.5",
                       "", "", "a@example.com", neutralise("=HYPERLINK(1)"),
                       neutralise("+44 1"))
    path = tmp_path / "report.csv"
    path.write_bytes(b"\xef\xbb\xbf" + (header + line).encode())
    table = open_table(path)
    assert table.header.columns == ("Work Email", "Notes", "Phone", *RESTORED)
    assert table.header.index["email"] == 0
    (row,) = table.rows()
    assert row.number == 2
    assert row.values[:3] == ("a@example.com", "=HYPERLINK(1)", "+44 1")
    assert set(row.values[3:]) == {""}


def test_report_previous_state_fills_missing_fields(tmp_path: Path) -> None:
    """A delete report of an email-only list reads back with role, names and groups restored."""
    previous = json.dumps({"userName": "ann", "firstName": "Ann", "lastName": "Lee",
                           "role": "contributor", "groups": ["Finance", "Human Resources"]})
    path = tmp_path / "deleted.csv"
    with path.open("w", encoding="utf-8-sig", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow([*REPORT_COLUMNS, "Email"])
        writer.writerow(["2", "ann@example.com", "delete", "deleted", "a" * 24, "204", "", "1",
                         "3.0", "deleted", previous, "ann@example.com"])
    table = open_table(path)
    (row,) = table.rows()
    value = table.header.value
    assert value(row, "email") == "ann@example.com"
    assert value(row, "role") == "contributor"
    assert value(row, "groups") == "Finance; Human Resources"
    assert (value(row, "firstName"), value(row, "lastName")) == ("Ann", "Lee")


def test_report_read_back_from_xlsx(tmp_path: Path) -> None:
    """The report columns are dropped from an XLSX header the same way."""
    path = tmp_path / "report.xlsx"
    workbook([[*REPORT_COLUMNS, "email", "role"],
              [2, "a@example.com", "create", "failed", None, 500, "boom", 3, 10.5, None, None,
               "a@example.com", "'-admin"]]).save(path)
    table = open_table(path)
    assert table.header.columns[:2] == ("email", "role")
    (row,) = table.rows()
    assert row.values[:2] == ("a@example.com", "-admin")


@pytest.mark.parametrize(
    "value",
    ["", "plain", "=1+1", "+44", "-5", "@SUM(A1)", "\tx", "\rx", "'quoted", "'=x", "''+x", "a=b"],
)
def test_neutralise_restore_round_trip(value: str) -> None:
    """restore undoes neutralise exactly, and neutralised cells never start a formula."""
    safe = neutralise(value)
    assert restore(safe) == value
    assert safe[:1] not in {"=", "+", "-", "@", "\t", "\r"}


def test_neutralise_prefixes_only_formula_starts() -> None:
    """Only values starting with = + - @ tab or CR get the apostrophe."""
    assert neutralise("=1+1") == "'=1+1"
    assert neutralise("@x") == "'@x"
    assert neutralise("a@example.com") == "a@example.com"
    assert neutralise("'hello") == "'hello"
    assert restore("'hello") == "'hello"


def test_rows_can_be_streamed_twice(tmp_path: Path) -> None:
    """rows() re-reads the file from the start, for a pre-pass then a main pass."""
    csv_path = write(tmp_path / "users.csv", "email\na@example.com\nb@example.com\n")
    xlsx_path = tmp_path / "users.xlsx"
    workbook([["email"], ["a@example.com"], ["b@example.com"]]).save(xlsx_path)
    for path in (csv_path, xlsx_path):
        table = open_table(path)
        first = list(table.rows())
        assert first == list(table.rows())
        assert [row.number for row in first] == [2, 3]


def test_reader_modules_do_not_import_network_or_cli() -> None:
    """The reader modules, columns and cells import neither aiohttp nor click."""
    for name in ("readers.py", "tables.py", "inputfile.py", "sniffing.py", "csvfile.py",
                 "longfields.py", "workbooks.py", "rowcheck.py", "columns.py", "cells.py"):
        tree = ast.parse((PACKAGE / name).read_text())
        imported = {alias.name.split(".")[0] for node in ast.walk(tree)
                    if isinstance(node, ast.Import) for alias in node.names}
        imported |= {(node.module or "").split(".")[0] for node in ast.walk(tree)
                     if isinstance(node, ast.ImportFrom)}
        assert not imported & {"aiohttp", "click"}, name


def cover_and_users(path: Path, *cover_rows: list[str]) -> openpyxl.Workbook:
    """A workbook saved at ``path``: a first sheet "Cover" holding ``cover_rows``, then a
    "Users" sheet with a header and one user; returned for further changes."""
    book = openpyxl.Workbook()
    cover = book.active
    assert cover is not None
    cover.title = "Cover"
    for row in cover_rows:
        cover.append(row)
    users = book.create_sheet("Users")
    users.append(["email", "role"])
    users.append(["c@x.example", "viewer"])
    book.save(path)
    return book


@pytest.mark.usefixtures("cli_words")  # its hint as the CLI words it
def test_empty_first_sheet_names_the_other_sheets(tmp_path: Path) -> None:
    """Users on the second sheet behind an empty cover sheet: the error names the sheets
    and --sheet, and --sheet then reads them."""
    path = tmp_path / "two.xlsx"
    cover_and_users(path)
    message = error_of(path)
    assert "'Users'" in message
    assert "--sheet" in message
    (row,) = open_table(path, ReadOptions(sheet="Users")).rows()
    assert row.values == ("c@x.example", "viewer")


@pytest.mark.usefixtures("cli_words")  # its hint as the CLI words it
def test_a_cover_sheet_with_text_names_the_other_sheets_too(tmp_path: Path) -> None:
    """A cover sheet holding text but no email column, before the users' sheet: the error
    names the other sheets and --sheet; with --sheet naming that cover, only the missing
    column is reported (the admin chose it), and a single sheet gets no sheet hint."""
    path = tmp_path / "two.xlsx"
    book = cover_and_users(path, ["Nothing here"])
    message = error_of(path)
    assert "no email column" in message
    assert "'Users'" in message
    assert "--sheet" in message
    chosen = error_of(path, ReadOptions(sheet="Cover"))
    assert "no email column" in chosen
    assert "'Users'" not in chosen
    book.remove(book["Users"])
    book.save(path)
    alone = error_of(path)
    assert "no email column" in alone
    assert "--sheet" not in alone
