"""Append-only JSON-lines files that survive a crash: the undo journal and the ledger.

A crash can cut the last line short. Reading skips such a line; appending first ends it, so
that the next record is not glued to it and lost with it.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any


def read_objects(path: Path) -> Iterator[dict[str, Any]]:
    """Every whole JSON object in the file, in order; nothing when there is no file."""
    try:
        handle = path.open(encoding="utf-8")
    except (FileNotFoundError, NotADirectoryError):
        return  # no such file: nothing recorded yet (a folder that cannot hold one fails
        # when the first record is written, before anything is sent)
    with handle:
        for text in handle:
            try:
                data = json.loads(text)
            except ValueError:
                continue  # a line torn by a crash
            if isinstance(data, dict):
                yield data


def open_for_append(path: Path) -> IO[str]:
    """Open for appending whole lines, ending a last line a crash left without its break."""
    file = path.open("a", encoding="utf-8")
    if _ends_mid_line(path):
        file.write("\n")
        file.flush()
    return file


def append(file: IO[str], record: dict[str, Any]) -> None:
    """Write one record as a line and hand it to the operating system at once."""
    file.write(json.dumps(record, ensure_ascii=False) + "\n")
    file.flush()


def _ends_mid_line(path: Path) -> bool:
    """True when the file's last line has no line break (torn by a crash)."""
    with path.open("rb") as handle:
        if handle.seek(0, os.SEEK_END) == 0:
            return False
        handle.seek(-1, os.SEEK_END)
        return handle.read(1) != b"\n"
