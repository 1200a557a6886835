"""The per-row result report: written as rows finish (CSV, formula-safe), and read back."""

from __future__ import annotations

import csv
import json
import os
import re
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import IO, Any

from bulkusers.cells import restore
from bulkusers.columns import REPORT_COLUMNS
from bulkusers.errors import ConfigError, InputError
from bulkusers.frozen import frozen
from bulkusers.identity import identity_key
from bulkusers.inputfile import InputFile
from bulkusers.models import Header
from bulkusers.words import flag

MASK = "***"
FINISHED = frozenset({"created", "updated", "unchanged", "deactivated", "deleted"})


def check_report_path(path: Path | None, input_path: Path,
                      directory: Path | None = None) -> None:
    """Refuse a --report (or --report-dir) that cannot be written, or would overwrite
    something, before anything is read or sent."""
    if path is None:
        folder = directory or Path.cwd()
        option = f"--report-dir {folder}" if directory else f"the current folder {folder}"
        if not folder.is_dir():
            raise ConfigError(f"{option}: no such folder; create it or choose another")
        if not os.access(folder, os.W_OK):
            fix = "choose another" if directory else "cd elsewhere or pass --report-dir DIR"
            raise ConfigError(f"reports go to {option}, which is not writable; {fix}")
        return
    if path.exists() and input_path.exists() and path.resolve() == input_path.resolve():
        raise ConfigError(f"{flag('--report')} {path} is the input file; give the report "
                          "another name")
    if path.is_file():
        raise ConfigError(f"{flag('--report')} {path} already exists (a report is never "
                          "written over: it may be an earlier run's record); choose a new "
                          f"name, remove it, or continue that run with {flag('--resume')}")
    if path.is_dir():
        raise ConfigError(f"{flag('--report')} {path} is a folder; give a file name such as "
                          f"{path / 'report.csv'}")
    folder = path.parent
    if not folder.is_dir():
        raise ConfigError(f"{flag('--report')} {path}: the folder {folder} does not exist; "
                          "create it "
                          "or choose another path")
    if not os.access(folder, os.W_OK):
        raise ConfigError(f"{flag('--report')} {path}: the folder {folder} is not writable")


#: What a default report name adds after the input's stem: ``.COMMAND.TIME`` (``-N`` when
#: that name was taken), then ``.report``. A report given as input (``reactivate``, or a
#: filtered report re-run) loses it, so names never stack.
_RUN_SUFFIX = re.compile(r"(?:\.(?:import|update|deactivate|reactivate|delete|export|sync)"
                         r"\.\d{8}[-T]?\d{4,6}(?:-\d+)?)?(?:\.report)?$")


def report_stem(input_path: Path) -> str:
    """The input's name without extension and without an earlier run's suffixes."""
    stem = input_path.stem
    while (shorter := _RUN_SUFFIX.sub("", stem, count=1)) not in (stem, ""):
        stem = shorter  # a name that stacked earlier suffixes loses all of them
    return stem


def default_report_path(input_path: Path, command: str, directory: Path | None = None,
                        now: datetime | None = None) -> Path:
    """A new report path in ``directory`` (default: the current folder) that never names an
    existing file: ``STEM.COMMAND.YYYYmmdd-HHMMSS.report.csv``."""
    stamp = (now or datetime.now()).strftime("%Y%m%d-%H%M%S")
    base = (directory or Path.cwd()) / f"{report_stem(input_path)}.{command}.{stamp}"
    candidate = base.with_name(base.name + ".report.csv")
    counter = 2
    while candidate.exists() or summary_path(candidate).exists():
        candidate = base.with_name(f"{base.name}-{counter}.report.csv")
        counter += 1
    return candidate


def summary_path(report_path: Path) -> Path:
    """Where the JSON summary of a report lives: beside it."""
    name = report_path.name.removesuffix(".csv").removesuffix(".report")
    return report_path.with_name(name + ".summary.json")


#: Parts of a column name that suggest a secret wherever they appear ("Temporary Password",
#: "x_api_token", "ClientSecret", "LicenseKey", "Recovery Code", "Kennwort").
SECRET_PART = re.compile(r"pass|pwd|secret|token|credential|apikey|accesskey|privatekey|"
                         r"signingkey|signature|authorization|bearer|cookie|key$|"
                         r"(recovery|backup|verification|access|security|unlock|reset|onetime|"
                         r"activation|invite|invitation|auth|sms|login|pairing|enrol+ment)code|"
                         r"securityanswer|seedphrase|mnemonic|"
                         r"kennwort|wachtwoord|contrase|senha|salasana")
#: Short words that suggest a secret only as a word of their own ("API Key", "PIN", "OTP",
#: "Initial PW"): inside a longer word ("Power", "Upward", "Spinner") they mean nothing.
SECRET_WORDS = frozenset({"key", "keys", "pin", "pw", "otp", "totp", "mfa", "auth", "cred",
                          "creds", "jwt", "sig", "salt", "hash", "session", "sso", "pat", "cvv"})
_WORD = re.compile(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|\d+")


def is_secret_name(name: str) -> bool:
    """True when a column name suggests its cells hold a secret (password, key, token...)."""
    joined = re.sub(r"[^a-z0-9]", "", name.casefold())
    if SECRET_PART.search(joined):
        return True
    return any(word.casefold() in SECRET_WORDS for word in _WORD.findall(name))


def secret_columns(header: Header) -> set[int]:
    """Positions of the input columns a report must never echo: the password field and any
    column whose name suggests a secret."""
    found = {header.index["password"]} if "password" in header.index else set()
    found.update(i for i, name in enumerate(header.columns) if is_secret_name(name))
    return found


def complete_length(path: Path) -> int:
    """Bytes of a report up to the end of its last complete line (a crash may cut the last)."""
    end = position = 0
    quoted = False
    with path.open("rb") as handle:
        for chunk in handle:  # split at each b"\n", also those inside a quoted cell
            position += len(chunk)
            quoted ^= chunk.count(b'"') % 2 == 1  # "" inside a cell counts twice: no change
            if not quoted and chunk.endswith(b"\n"):
                end = position
    return end


@frozen
class ReportLine:
    """One line of an earlier report, as ``reactivate`` and ``--resume`` read it."""

    line: int
    row: int
    email: str
    action: str
    status: str
    user_id: str
    error: str
    previous: dict[str, Any]

    @property
    def finished(self) -> bool:
        """True when the row needs nothing more: a resumed run does not send it again."""
        if self.status == "skipped":
            return not self.error
        return self.status in FINISHED


class _Lines:
    """A text file's lines, remembering whether the last one read ended with a line break."""

    def __init__(self, handle: IO[str]) -> None:
        self._handle = handle
        self.terminated = True

    def __iter__(self) -> Iterator[str]:
        for line in self._handle:
            self.terminated = line.endswith("\n")
            yield line


def read_report(path: Path, *, complete_only: bool = False,
                source: InputFile | None = None) -> Iterator[ReportLine]:
    """Stream an earlier bulkusers report; InputError when the file is not one (or not
    readable as the UTF-8 CSV the tool writes). ``source``: the file already opened, hashing
    what it reads (``read_report_once``)."""
    try:
        yield from _report_lines(path, complete_only=complete_only, source=source)
    except (UnicodeDecodeError, csv.Error) as exc:
        raise InputError(f"{path}: cannot be read as a bulkusers report ({exc.__class__.__name__}"
                         "); if a spreadsheet re-saved it, save it again as 'CSV UTF-8'") \
            from None


def read_report_once(path: Path) -> tuple[tuple[ReportLine, ...], str]:
    """Every line of an earlier report and the SHA-256 of its bytes, from one read of the
    file (reactivate's input, which ``--resume`` recognises by its hash)."""
    with InputFile(path) as source:
        lines = tuple(read_report(path, source=source))
        return lines, source.sha256


def _report_lines(path: Path, *, complete_only: bool,
                  source: InputFile | None) -> Iterator[ReportLine]:
    """Stream an earlier bulkusers report; InputError when the file is not one.

    With ``complete_only`` (``--resume``), a last line without its line break is ignored: it
    is what a run killed while writing it leaves, and the resumed run cuts it off.
    """
    try:
        handle = (source.text("utf-8-sig") if source is not None
                  else path.open(encoding="utf-8-sig", newline=""))
    except OSError as exc:
        raise InputError(f"{path}: cannot be read ({exc.strerror}); check the path") from None
    with handle:
        lines = _Lines(handle)
        reader = csv.reader(lines)
        header = next(reader, None)
        if header is None or tuple(header[: len(REPORT_COLUMNS)]) != REPORT_COLUMNS:
            raise InputError(f"{path}: is not a bulkusers report (its first columns should "
                             f"be {', '.join(REPORT_COLUMNS)})")
        for number, cells in enumerate(reader, start=2):
            if complete_only and not lines.terminated:
                return
            if not any(cells):
                continue
            cells += [""] * (len(REPORT_COLUMNS) - len(cells))
            fields = dict(zip(REPORT_COLUMNS, (restore(c) for c in cells), strict=False))
            try:
                previous = json.loads(fields["previous"]) if fields["previous"] else {}
            except ValueError:
                previous = {}
            yield ReportLine(line=number, row=int(fields["row"]) if fields["row"].isdigit() else 0,
                             email=fields["email"], action=fields["action"],
                             status=fields["status"], user_id=fields["user_id"],
                             error=fields["error"],
                             previous=previous if isinstance(previous, dict) else {})


def compact_report(path: Path) -> None:
    """Rewrite a resumed report to one line per row, its last outcome, in row order.

    A resume appends the outcomes of the rows it sends again; compacting afterwards restores
    the report's contract (one line per input row). The file is replaced atomically, so a
    crash while compacting leaves the appended report, which resumes just as well.
    """
    with path.open(encoding="utf-8-sig", newline="") as handle:
        reader = csv.reader(handle)
        header = next(reader)
        last: dict[int, list[str]] = {}
        rowless: dict[str, list[str]] = {}  # sync's out-of-file users, by email
        for cells in reader:
            if cells and cells[0].isdigit():
                last[int(cells[0])] = cells
            elif len(cells) > 1 and not cells[0] and cells[1]:
                rowless[identity_key(cells[1])] = cells
    partial = path.with_name(path.name + ".tmp")
    with partial.open("w", encoding="utf-8-sig", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(last[row] for row in sorted(last))
        writer.writerows(rowless.values())
    partial.replace(path)
