"""Input files (CSV, TSV, XLSX) to a header and a stream of text-only rows, read once.

``open_table`` opens the file once: the checks, the delimiter and the header come from the
start of that one stream, and ``Table.rows()`` reads on from there to the end, hashing every
byte on the way (``Table.sha256``). CSV goes through csvfile.py (the stdlib csv module), XLSX
through workbooks.py (openpyxl, from the bytes read once); tables.py holds what both share.
"""

from __future__ import annotations

from pathlib import Path

from bulkusers.cells import neutralise, restore
from bulkusers.columns import build_header, is_report_header, normalise_header
from bulkusers.csvfile import CsvRecords
from bulkusers.errors import InputError
from bulkusers.inputfile import InputFile
from bulkusers.rowcheck import RowCheck
from bulkusers.sniffing import (
    ZIP_MAGIC,
    complete_lines,
    decode_sample,
    sniff_delimiter,
    split_candidates,
)
from bulkusers.tables import (
    DEFAULT_MAX_CELL_BYTES,
    ReadOptions,
    Table,
    check_header,
    delimiter_hint,
    delimiter_of,
    first_header,
    title_hint,
)
from bulkusers.words import flag

__all__ = [
    "DEFAULT_MAX_CELL_BYTES",
    "ReadOptions",
    "Table",
    "neutralise",
    "normalise_header",
    "open_table",
    "restore",
]

CSV_SUFFIXES = frozenset({".csv", ".tsv", ".txt"})
XLSX_SUFFIXES = frozenset({".xlsx", ".xlsm"})


def open_table(path: Path, options: ReadOptions | None = None) -> Table:
    """Open an input file, read and check its header, and return it ready to stream rows."""
    path = Path(path)
    options = options or ReadOptions()
    if str(path) == "-":
        # Not a file named "-" (no extension: refused below anyway) but the usual "standard
        # input": say so, not "no such file". A run needs a file, as for a pipe below.
        raise InputError("-: reading rows from standard input is not supported; save them to "
                         "a file (CSV or XLSX) and give its path")
    if not path.exists():
        raise InputError(f"{path}: no such file; check the path and name")
    if path.is_dir():
        raise InputError(f"{path}: is a directory; give the path of a CSV or XLSX file")
    if not path.is_file():
        # A pipe or device cannot be hashed and parsed the way a run needs.
        raise InputError(f"{path}: is not a regular file; save the list to a file first")
    suffix = path.suffix.lower()
    if suffix == ".xls":
        with InputFile(path) as source:
            if source.sample.startswith(ZIP_MAGIC):
                raise InputError(
                    f"{path}: is an .xlsx workbook with an .xls name; rename it to .xlsx")
        raise InputError(f"{path}: old binary Excel format; save it as .xlsx or CSV")
    if suffix not in XLSX_SUFFIXES | CSV_SUFFIXES:
        shown = f"'{suffix}'" if suffix else "no extension"
        raise InputError(f"{path}: unsupported file type ({shown}); use a .csv, .tsv, .txt, "
                         ".xlsx or .xlsm file")
    source = InputFile(path)
    try:
        if suffix in XLSX_SUFFIXES:
            from bulkusers.workbooks import open_xlsx  # openpyxl only for workbooks

            return open_xlsx(source, options, lambda: open_table(path, options))
        return _open_csv(source, options)
    except BaseException:
        source.close()
        raise


def _open_csv(source: InputFile, options: ReadOptions) -> Table:
    """A CSV, TSV or TXT file: check it is text, find the delimiter, read the header."""
    path = source.path
    if options.sheet is not None:
        raise InputError(f"{path}: {flag('--sheet')} applies to XLSX workbooks, and this "
                         f"is a text file; drop {flag('--sheet')}")
    if not source.sample:
        raise InputError(f"{path}: is empty; it needs a header line and one row per user")
    text = decode_sample(path, source.sample, source.whole, options.encoding)
    if options.delimiter is not None:
        delimiter = delimiter_of(options.delimiter)
    elif path.suffix.lower() == ".tsv":
        delimiter = "\t"
    else:
        lines = complete_lines(text, source.whole)
        if options.header_row is not None:
            # Title lines above the header would blur the delimiter's signal.
            lines = "\n".join(lines.splitlines()[options.header_row - 1:])
        delimiter = sniff_delimiter(lines)
    records = CsvRecords(source, options.encoding, delimiter, options.max_cell_bytes)
    found = first_header(path, records.records(), options.header_row, kind="file")
    if found is None:
        raise InputError(
            f"{path}: has only blank lines; it needs a header line naming the columns")
    header_number, cells = found
    cells[0] = cells[0].lstrip("\ufeff")
    check_header(path, cells, options.max_cell_bytes)
    if options.header_row is None:
        title_hint(str(path), header_number, cells, split_candidates(text, header_number))
    delimiter_hint(str(path), cells, delimiter)
    header, shape = build_header(str(path), [restore(cell) for cell in cells])
    check = RowCheck(header.columns, options.max_cell_bytes)
    plain = 0 if is_report_header(cells) else len(header.columns)
    rows = records.rows(len(cells), shape, check, plain)
    return Table(source, header, rows, lambda: open_table(path, options))
