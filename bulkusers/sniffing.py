"""What a text file's first bytes say: binary or text, the right encoding, the delimiter."""

from __future__ import annotations

import codecs
import csv
import io
import re
from collections.abc import Iterator
from pathlib import Path

from bulkusers.errors import InputError
from bulkusers.safetext import is_blank
from bulkusers.words import flag, given

DELIMITERS = (",", ";", "\t")
DELIMITER_NAMES = {",": "commas", ";": "semicolons", "\t": "tabs"}
ZIP_MAGIC = b"PK\x03\x04"
# OLE2 compound files: old .xls workbooks, and password-protected .xlsx (Excel encrypts the
# whole package into one of these).
OLE2_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
_UTF16_BOMS = (codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)
#: Control characters no text file holds (tab, line breaks and form feeds are text), found at
#: C speed: counting them a character at a time in Python took longer than the rest of
#: opening a CSV.
_STRAY_CONTROLS = re.compile("[\x00-\x08\x0e-\x1f]")
#: Rows below a header without an email column searched for the real header (a title above).
TITLE_LOOKAHEAD = 20


def _is_unicode_wide(encoding: str) -> bool:
    """True for UTF-16 and UTF-32, whose text legitimately holds NUL bytes."""
    return codecs.lookup(encoding).name.startswith(("utf-16", "utf-32"))


def _binary(path: Path) -> InputError:
    return InputError(f"{path}: is a binary file, not CSV text; export the data as CSV or XLSX")


def decode_sample(path: Path, sample: bytes, whole: bool, encoding: str) -> str:
    """Decode the start of a text file, rejecting binary files and the wrong encoding clearly."""
    try:
        info = codecs.lookup(encoding)
    except LookupError:
        info = None
    # Codecs such as base64, rot13 or zlib exist but do not turn bytes into text: open()
    # would fail on them deep inside with unrelated errors (open() checks this flag too).
    if info is None or not getattr(info, "_is_text_encoding", True):
        raise InputError(
            f"unknown encoding {encoding!r}; pass {flag('--encoding')} with a text encoding "
            "such as utf-8, cp1252 or latin-1"
        )
    wide = _is_unicode_wide(encoding)
    if sample.startswith(ZIP_MAGIC):
        raise InputError(
            f"{path}: is a ZIP archive, probably an Excel workbook; give it the .xlsx extension"
        )
    if sample.startswith(OLE2_MAGIC):
        raise InputError(
            f"{path}: is a binary Office file (old .xls, or a password-protected workbook); "
            "save it as .xlsx or CSV without a password"
        )
    if not wide and sample.startswith(_UTF16_BOMS):
        raise InputError(f"{path}: is UTF-16 text; pass {given('--encoding', 'utf-16')}")
    # A stray NUL is one bad cell (its row is refused when it is read); many NULs, or NULs in
    # bytes that are not text in this encoding at all, are a binary file.
    nuls = 0 if wide else sample.count(b"\x00")
    if nuls > max(8, len(sample) // 100):
        raise _binary(path)
    try:
        text = codecs.getincrementaldecoder(encoding)().decode(sample, final=whole)
    except UnicodeDecodeError as exc:
        if nuls:
            raise _binary(path) from None
        line = sample[: exc.start].count(b"\n") + 1
        raise InputError(encoding_message(path, encoding, line)) from None
    except UnicodeError:  # some codecs (punycode, idna) raise the base class without a position
        raise InputError(encoding_message(path, encoding, None)) from None
    controls = len(_STRAY_CONTROLS.findall(text))
    # Stray control characters are bad cells, refused row by row when read; only a share of
    # them no text file has (binary data is full of them) refuses the whole file.
    if controls > max(32, len(text) // 20):
        raise _binary(path)
    return text


def encoding_message(path: Path, encoding: str, line: int | None) -> str:
    """One line saying the file is not in ``encoding``, and which option fixes it."""
    where = f" (line {line})" if line else ""
    hint = f"pass {given('--encoding', 'cp1252')} (or the file's encoding)"
    if codecs.lookup(encoding).name == "cp1252":
        hint = (f"pass {flag('--encoding')} with the file's real encoding (such as utf-8 "
                "or latin-1)")
    return f"{path}: not valid {encoding} text{where}; {hint}"


def complete_lines(text: str, whole: bool) -> str:
    """The sample without its last, possibly cut, line."""
    if whole:
        return text
    cut = max(text.rfind("\n"), text.rfind("\r"))
    return text[:cut] if cut > 0 else text


def sniff_delimiter(text: str) -> str:
    """Pick among , ; and tab the delimiter giving every non-blank line the same width (> 1)."""
    widths: dict[str, list[int]] = {}
    for candidate in DELIMITERS:
        # newline="" as csv wants: a CR inside a quoted cell (a line break typed in a Mac
        # spreadsheet) is then data, not the "new-line character seen" error.
        records = csv.reader(io.StringIO(text, newline=""), delimiter=candidate, strict=False)
        try:
            widths[candidate] = [len(record) for record in records
                                 if not is_blank("".join(record))]
        except csv.Error:
            widths[candidate] = []  # this delimiter cannot even split the sample
    consistent = [
        candidate for candidate, seen in widths.items() if seen and seen[0] > 1
        and all(width == seen[0] for width in seen)
    ]
    if consistent:
        return max(consistent, key=lambda candidate: widths[candidate][0])
    # Ragged data: trust the header line, which the parser will then hold each row to.
    best = max(DELIMITERS, key=lambda candidate: (widths[candidate] or [0])[0])
    return best if (widths[best] or [0])[0] > 1 else ","


def split_candidates(text: str, after: int) -> Iterator[tuple[int, list[str]]]:
    """The records below ``after`` in a CSV sample, split by each delimiter in turn (a title
    line can mislead the delimiter's detection)."""
    for delimiter in DELIMITERS:
        records = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=False)
        try:
            for number, record in enumerate(records, start=1):
                if number > after + TITLE_LOOKAHEAD:
                    break
                if number > after:
                    yield number, record
        except csv.Error:
            continue
