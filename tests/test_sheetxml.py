"""The lean worksheet reader gives, cell by cell, the values openpyxl's own reader gives for
the same sheet (load_workbook(read_only=True, data_only=True)), over every kind of cell the
standard names, and marks what openpyxl cannot tell apart (a formula without a saved value,
an error value)."""

from __future__ import annotations

import datetime as dt
import io
import zipfile
from pathlib import Path
from typing import Any

import openpyxl
import pytest

from bulkusers.readers import ReadOptions, open_table
from bulkusers.rowcheck import ERROR_VALUE, UNCACHED_FORMULA
from bulkusers.sheetxml import SheetStyles, sheet_rows

_MAIN = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"
_REL = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"

_CONTENT_TYPES = """<?xml version="1.0" encoding="UTF-8"?>
<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">
<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/>
<Default Extension="xml" ContentType="application/xml"/>
<Override PartName="/xl/workbook.xml"
 ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml"/>
<Override PartName="/xl/worksheets/sheet1.xml"
 ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.worksheet+xml"/>
<Override PartName="/xl/styles.xml"
 ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.styles+xml"/>
<Override PartName="/xl/sharedStrings.xml"
 ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.sharedStrings+xml"/>
</Types>"""

_ROOT_RELS = f"""<?xml version="1.0" encoding="UTF-8"?>
<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">
<Relationship Id="rId1" Target="xl/workbook.xml"
 Type="{_REL}/officeDocument"/></Relationships>"""

_WORKBOOK = f"""<?xml version="1.0" encoding="UTF-8"?>
<workbook xmlns="{_MAIN}" xmlns:r="{_REL}"><workbookPr{{date1904}}/>
<sheets><sheet name="Users" sheetId="1" r:id="rId1"/></sheets></workbook>"""

_WORKBOOK_RELS = f"""<?xml version="1.0" encoding="UTF-8"?>
<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">
<Relationship Id="rId1" Target="worksheets/sheet1.xml" Type="{_REL}/worksheet"/>
<Relationship Id="rId2" Target="styles.xml" Type="{_REL}/styles"/>
<Relationship Id="rId3" Target="sharedStrings.xml" Type="{_REL}/sharedStrings"/>
</Relationships>"""

# Style ids: 0 general, 1 zero-padded 000000, 2 a date, 3 a duration, 4 a time, 5 two decimals.
_STYLES = f"""<?xml version="1.0" encoding="UTF-8"?>
<styleSheet xmlns="{_MAIN}">
<numFmts count="2"><numFmt numFmtId="164" formatCode="000000"/>
<numFmt numFmtId="165" formatCode="[h]:mm:ss"/></numFmts>
<fonts count="1"><font><sz val="11"/><name val="Calibri"/></font></fonts>
<fills count="1"><fill><patternFill patternType="none"/></fill></fills>
<borders count="1"><border/></borders>
<cellStyleXfs count="1"><xf numFmtId="0" fontId="0" fillId="0" borderId="0"/></cellStyleXfs>
<cellXfs count="6"><xf numFmtId="0" fontId="0" fillId="0" borderId="0" xfId="0"/>
<xf numFmtId="164" fontId="0" fillId="0" borderId="0" xfId="0" applyNumberFormat="1"/>
<xf numFmtId="14" fontId="0" fillId="0" borderId="0" xfId="0" applyNumberFormat="1"/>
<xf numFmtId="165" fontId="0" fillId="0" borderId="0" xfId="0" applyNumberFormat="1"/>
<xf numFmtId="21" fontId="0" fillId="0" borderId="0" xfId="0" applyNumberFormat="1"/>
<xf numFmtId="2" fontId="0" fillId="0" borderId="0" xfId="0" applyNumberFormat="1"/>
</cellXfs><cellStyles count="1"><cellStyle name="Normal" xfId="0" builtinId="0"/></cellStyles>
</styleSheet>"""

_SHARED = f"""<?xml version="1.0" encoding="UTF-8"?>
<sst xmlns="{_MAIN}" count="4" uniqueCount="4">
<si><t>ann@acme.example</t></si>
<si><r><rPr><b/></rPr><t>Fi</t></r><r><t xml:space="preserve">nance </t></r></si>
<si><t xml:space="preserve">  spaced  </t></si>
<si><t>東京</t><rPh sb="0" eb="2"><t>トウキョウ</t></rPh></si>
</sst>"""

#: Every kind of cell, with and without references, gaps between columns and rows, a row
#: number written as a float, and empty elements.
_SHEET_DATA = """
<row r="1"><c r="A1" t="s"><v>0</v></c><c r="B1" t="s"><v>1</v></c><c r="C1" t="s"><v>2</v></c>
<c r="D1" t="s"><v>3</v></c><c r="F1" t="inlineStr"><is><t>inline</t></is></c></row>
<row r="2"><c r="A2"><v>42</v></c><c r="B2" s="1"><v>42</v></c><c r="C2"><v>1.5</v></c>
<c r="D2"><v>1E3</v></c><c r="E2" s="2"><v>43831</v></c><c r="F2" s="3"><v>1.25</v></c>
<c r="G2" s="4"><v>0.5</v></c><c r="H2" s="5"><v>3.14159</v></c><c r="I2" t="n"><v>-7</v></c>
</row>
<row r="4"><c r="A4" t="b"><v>1</v></c><c r="B4" t="b"><v>0</v></c><c r="C4" t="e"><v>#N/A</v></c>
<c r="D4" t="str"><f>A1&amp;"x"</f><v>ann@acme.examplex</v></c><c r="E4"><f>1+1</f></c>
<c r="F4" t="str"><f>B1</f><v></v></c><c r="G4" t="d"><v>2021-03-04T05:06:07</v></c>
<c r="H4" s="2"><v>99999999</v></c></row>
<row><c t="inlineStr"><is><r><t>Rich </t></r><r><rPr><i/></rPr><t>text</t></r>
<rPh sb="0" eb="1"><t>ignored</t></rPh></is></c><c><v>7</v></c><c t="inlineStr"/>
<c t="inlineStr"><is><t></t></is></c><c r="G5" t="s"><v>2</v></c></row>
<row r="7.0"><c r="B7"/><c r="C7" s="1"/><c r="D7"><v></v></c><c r="AB7"><v>5</v></c></row>
"""


def _workbook(path: Path, sheet_data: str = _SHEET_DATA, *, date1904: bool = False) -> Path:
    sheet = (f'<?xml version="1.0" encoding="UTF-8"?><worksheet xmlns="{_MAIN}">'
             f"<sheetData>{sheet_data}</sheetData></worksheet>")
    parts = {"[Content_Types].xml": _CONTENT_TYPES, "_rels/.rels": _ROOT_RELS,
             "xl/workbook.xml": _WORKBOOK.replace(
                 "{date1904}", ' date1904="1"' if date1904 else ""),
             "xl/_rels/workbook.xml.rels": _WORKBOOK_RELS, "xl/styles.xml": _STYLES,
             "xl/sharedStrings.xml": _SHARED, "xl/worksheets/sheet1.xml": sheet}
    with zipfile.ZipFile(path, "w") as package:
        for name, text in parts.items():
            package.writestr(name, text)
    return path


def _openpyxl_cells(path: Path) -> dict[tuple[int, int], Any]:
    """Every non-empty cell openpyxl's own read-only reader gives, by (row, column)."""
    book = openpyxl.load_workbook(path, read_only=True, data_only=True)
    sheet: Any = book.active
    cells = {(cell.row, cell.column): cell.value for row in sheet.iter_rows()
             for cell in row if getattr(cell, "value", None) is not None}
    book.close()
    return cells


def _our_cells(path: Path) -> dict[tuple[int, int], Any]:
    """Every non-empty cell of sheet_rows, by (row, column), over openpyxl's workbook parts."""
    book: Any = openpyxl.load_workbook(path, read_only=True, data_only=True)
    sheet: Any = book.active
    styles = SheetStyles(sheet._shared_strings, book.epoch, book._date_formats,
                         book._timedelta_formats)
    with book._archive.open(sheet._worksheet_path) as stream:
        found = {(number, column): value for number, cells in sheet_rows(stream, styles)
                 for column, value, _ in cells if value is not None}
    book.close()
    return found


@pytest.mark.filterwarnings("ignore:Cell H4 is marked as a date")  # openpyxl's own
@pytest.mark.parametrize("date1904", [False, True])
def test_every_kind_of_cell_reads_as_openpyxl_reads_it(tmp_path: Path, date1904: bool) -> None:
    """Shared, rich, phonetic and inline strings, numbers, dates in both epochs, durations,
    times, booleans, formula results, ISO dates, gaps and unreferenced cells: the same values
    at the same places as openpyxl's reader, except the two marked kinds."""
    path = _workbook(tmp_path / "kinds.xlsx", date1904=date1904)
    theirs, ours = _openpyxl_cells(path), _our_cells(path)
    # openpyxl reads a formula without a saved value as empty, and an error as its text.
    assert ours.pop((4, 5)) == ours.pop((4, 6)) == UNCACHED_FORMULA
    assert ours[(4, 3)] == ERROR_VALUE + "#N/A"
    ours[(4, 3)] = theirs[(4, 3)]
    assert ours[(4, 8)] == ERROR_VALUE + "#VALUE!"  # a date serial beyond every date
    ours[(4, 8)] = theirs[(4, 8)]
    assert ours == theirs
    assert ours[(5, 1)] == "Rich text"
    assert ours[(1, 4)] == "東京"
    assert ours[(1, 3)] == "  spaced  "
    assert isinstance(ours[(2, 5)], dt.datetime)
    assert (7, 28) in ours


def test_a_workbook_reads_as_the_text_excel_shows(tmp_path: Path) -> None:
    """Through the whole XLSX reader: zero padding from the number format, ISO dates, no
    ``.0``, durations and booleans as Excel shows them, rows left out of the file blank."""
    header = ('<row r="1"><c r="A1" t="inlineStr"><is><t>email</t></is></c>'
              '<c r="B1" t="inlineStr"><is><t>employee id</t></is></c>'
              '<c r="C1" t="inlineStr"><is><t>start</t></is></c>'
              '<c r="D1" t="inlineStr"><is><t>notes</t></is></c></row>')
    rows = ('<row r="2"><c r="A2" t="s"><v>0</v></c><c r="B2" s="1"><v>42</v></c>'
            '<c r="C2" s="2"><v>43831</v></c><c r="D2"><v>2.0</v></c></row>'
            '<row r="4"><c r="A4" t="inlineStr"><is><t>bo@acme.example</t></is></c>'
            '<c r="B4" t="b"><v>1</v></c><c r="C4" s="3"><v>1.5</v></c></row>')
    path = _workbook(tmp_path / "shown.xlsx", header + rows)
    table = open_table(path, ReadOptions())
    found = [(row.number, row.values) for row in table.rows()]
    assert found == [(2, ("ann@acme.example", "000042", "2020-01-01", "2")),
                     (4, ("bo@acme.example", "TRUE", "1 day, 12:00:00", ""))]


def test_a_damaged_sheet_is_one_line_naming_the_last_good_row(tmp_path: Path) -> None:
    """Broken XML part-way through the sheet is an InputError naming the rows read, never a
    traceback from the parser."""
    from bulkusers.errors import InputError

    header = '<row r="1"><c r="A1" t="inlineStr"><is><t>email</t></is></c></row>'
    good = '<row r="2"><c r="A2" t="inlineStr"><is><t>a@acme.example</t></is></c></row>'
    path = _workbook(tmp_path / "broken.xlsx", header + good + '<row r="3"><c r="A3"><v>1</c>')
    with pytest.raises(InputError, match=r"damaged after row 2"):
        list(open_table(path, ReadOptions()).rows())


def test_shared_string_index_beyond_the_table_is_damage(tmp_path: Path) -> None:
    """A cell naming a shared string the workbook lacks is reported as a damaged sheet."""
    from bulkusers.errors import InputError

    data = ('<row r="1"><c r="A1" t="inlineStr"><is><t>email</t></is></c></row>'
            '<row r="2"><c r="A2" t="s"><v>99</v></c></row>')
    path = _workbook(tmp_path / "index.xlsx", data)
    with pytest.raises(InputError, match="damaged"):
        list(open_table(path, ReadOptions()).rows())


def test_the_reader_streams(tmp_path: Path) -> None:
    """Rows come out as the stream is read: the first row is there before the stream ends."""
    data = "".join(f'<row r="{n}"><c r="A{n}"><v>{n}</v></c></row>' for n in range(1, 2001))
    path = _workbook(tmp_path / "long.xlsx", data)
    book: Any = openpyxl.load_workbook(path, read_only=True, data_only=True)
    sheet: Any = book.active
    styles = SheetStyles(sheet._shared_strings, book.epoch, book._date_formats,
                         book._timedelta_formats)
    raw = book._archive.read(sheet._worksheet_path)
    stream = io.BytesIO(raw)
    rows = sheet_rows(stream, styles)
    assert next(rows) == (1, [(1, 1, 0)])
    assert stream.tell() < len(raw)
    assert sum(1 for _ in rows) == 1999
    book.close()
