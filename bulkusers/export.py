"""Users to a CSV or XLSX file, streamed page by page, with role and group names resolved.

The file is valid input for ``bulkusers import``: the columns the importer knows come first
under their canonical names, and the others (``roleDisplayName``, ``active``, the dates,
``id``) are ignored by it. Rows go to a temporary file beside the output, which is renamed into
place only once every page was read, so a failed run never leaves a file that looks complete.
"""

from __future__ import annotations

import csv
import json
import os
import secrets
import shutil
import tempfile
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, suppress
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, BinaryIO, Protocol

import aiohttp
from openpyxl import Workbook
from openpyxl.cell import WriteOnlyCell
from openpyxl.cell.cell import Cell
from openpyxl.utils import get_column_letter
from openpyxl.worksheet._write_only import WriteOnlyWorksheet

from bulkusers.api import UserApi, make_api
from bulkusers.cells import neutralise, restore
from bulkusers.client import SisenseClient
from bulkusers.config import Connection, RetryPolicy
from bulkusers.directory import Directory, Group, Unknown, User
from bulkusers.errors import AbortError, ApiError, ConfigError, ServerUnavailable
from bulkusers.frozen import frozen
from bulkusers.loading import load_directory
from bulkusers.network import describe_network_error as network_problem
from bulkusers.safetext import printable

COLUMNS: tuple[str, ...] = (
    "email", "userName", "firstName", "lastName", "role", "roleDisplayName", "groups",
    "language", "active", "created", "lastLogin", "lastUpdated", "id",
)
DATE_COLUMNS = frozenset({"created", "lastLogin", "lastUpdated"})
SUFFIXES = (".csv", ".xlsx")
#: OUTPUT that means standard output.
STDOUT = "-"
GROUP_SEPARATOR = "; "
DATE_FORMAT = "yyyy-mm-dd hh:mm:ss"
_WIDTHS = {"email": 32, "userName": 24, "groups": 36, "created": 20, "lastLogin": 20,
           "lastUpdated": 20, "id": 26}

#: One exported row in COLUMNS order: text, or a boolean (or None) for ``active``.
Record = tuple[str | bool | None, ...]


@frozen
class ExportOptions:
    """What to export and where: the output file, the filters and the page size."""

    output: Path
    role: str | None = None
    group: str | None = None
    inactive_days: int | None = None
    page_size: int = 500

    @property
    def to_stdout(self) -> bool:
        """True for OUTPUT ``-``: CSV for a pipe, given to a stream once complete."""
        return str(self.output) == STDOUT

    def __post_init__(self) -> None:
        if not self.to_stdout and self.output.suffix.lower() not in SUFFIXES:
            raise ConfigError(f"{self.output}: the export must end in .csv or .xlsx (or be - "
                              "for CSV on standard output)")
        if self.page_size < 1:
            raise ConfigError(f"the page size must be at least 1, not {self.page_size}")
        if self.inactive_days is not None and self.inactive_days < 0:
            raise ConfigError(f"--inactive-days must not be negative ({self.inactive_days})")


@frozen
class ExportResult:
    """What an export did: where the file is, users written and read, and how long it took."""

    path: Path
    written: int
    read: int
    seconds: float


def parse_time(text: str) -> datetime | None:
    """An ISO-8601 server time as an aware UTC datetime (naive taken as UTC); None if unreadable."""
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


@frozen
class _Selection:
    """The filters resolved against the directory, and the computed built-in memberships."""

    role_id: str | None
    group: Group | None
    cutoff: datetime | None
    groups_by_id: Mapping[str, Group]
    builtin: Mapping[Group, frozenset[str]]

    def accepts(self, user: User, data: Mapping[str, Any]) -> bool:
        """True when the user passes every filter."""
        if self.role_id is not None and user.role_id != self.role_id:
            return False
        if self.group is not None and self.group not in self.groups_of(user):
            return False
        if self.cutoff is not None:
            # A lastLogin that cannot be read proves no recent activity, so it counts as inactive.
            last = parse_time(_text(data.get("lastLogin")))
            return last is None or last < self.cutoff
        return True

    def groups_of(self, user: User) -> list[Group]:
        """Explicit memberships in the user's order, then the computed built-in ones."""
        computed = [g for g, members in self.builtin.items()
                    if user.id in members or g.id in user.group_ids]
        explicit: list[Group] = []
        for group_id in user.group_ids:
            # An unknown id stays visible as itself rather than vanishing from the export.
            group = self.groups_by_id.get(group_id) or Group(group_id, group_id)
            if group not in computed and group not in explicit:
                explicit.append(group)
        return explicit + computed


def _text(value: object) -> str:
    return "" if value is None else str(value)


def _record(user: User, data: Mapping[str, Any], directory: Directory,
            selection: _Selection) -> Record:
    """One user as an export row, in COLUMNS order."""
    role = directory.role_by_id(user.role_id)
    groups = GROUP_SEPARATOR.join(g.name for g in selection.groups_of(user))
    return (user.email, user.user_name, user.first_name, user.last_name,
            role.name if role else user.role_id, role.display_name if role else "", groups,
            user.language, user.active, _text(data.get("created")),
            _text(data.get("lastLogin")), _text(data.get("lastUpdated")), user.id)


async def _select(api: UserApi, directory: Directory, options: ExportOptions) -> _Selection:
    """Resolve the filters (an unknown name is a ConfigError) and fetch built-in members once."""
    role_id = None
    if options.role is not None:
        role = directory.role(options.role)
        if isinstance(role, Unknown):
            names = ", ".join(r.display_name or r.name for r in directory.roles)
            raise ConfigError(f"--role: {role.describe()}; the roles are {names}")
        role_id = role.id
    group = None
    if options.group is not None:
        found = directory.group(options.group)
        if isinstance(found, Unknown):
            raise ConfigError(f"--group: {found.describe()}")
        group = found
    cutoff = None
    if options.inactive_days is not None:
        cutoff = datetime.now(UTC) - timedelta(days=options.inactive_days)
    builtin = {g: frozenset(await api.group_member_ids(g.id))
               for g in directory.groups if g.builtin}
    return _Selection(role_id, group, cutoff, {g.id: g for g in directory.groups}, builtin)


# -- output files ---------------------------------------------------------------------------


class _Sink(Protocol):
    """A file being written row by row."""

    def write(self, record: Record) -> None:
        """Append one row."""

    def finish(self) -> None:
        """Complete the file (header and rows are all on disk afterwards)."""

    def abandon(self) -> None:
        """Release the file without completing it."""


class _CsvSink:
    """UTF-8 CSV with a BOM (so Excel shows accents), every cell formula-safe."""

    def __init__(self, path: Path, encoding: str = "utf-8-sig") -> None:
        self._file = path.open("w", encoding=encoding, newline="")
        self._writer = csv.writer(self._file)
        self._writer.writerow(COLUMNS)

    def write(self, record: Record) -> None:
        """Append one row; booleans as TRUE/FALSE, text through `neutralise`."""
        self._writer.writerow([_csv_cell(value) for value in record])

    def finish(self) -> None:
        """Flush and close."""
        self._file.close()

    def abandon(self) -> None:
        """Close, ignoring a second failure of the disk that caused the abandon."""
        with suppress(OSError):
            self._file.close()


def _csv_cell(value: str | bool | None) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    # A control character the server holds is shown as a visible escape, never written raw.
    return neutralise(printable(value))


class _XlsxSink:
    """An XLSX workbook in openpyxl's write-only mode: rows stream to disk as they come."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._book = Workbook(write_only=True)
        self._sheet: WriteOnlyWorksheet = self._book.create_sheet("Users")
        self._sheet.freeze_panes = "A2"
        for number, name in enumerate(COLUMNS, start=1):
            width = _WIDTHS.get(name, 14)
            self._sheet.column_dimensions[get_column_letter(number)].width = width
        self._sheet.append([self._text_cell(name) for name in COLUMNS])

    def write(self, record: Record) -> None:
        """Append one row: dates as datetimes, ``active`` as a boolean, the rest as text."""
        self._sheet.append([self._cell(name, value) for name, value in zip(COLUMNS, record,
                                                                           strict=True)])

    def _cell(self, name: str, value: str | bool | None) -> Cell | None:
        # Always a Cell whose type we chose: raw values would go through openpyxl's guessing.
        if value is None or value == "":
            return None
        if isinstance(value, bool):
            return WriteOnlyCell(self._sheet, value)
        if name in DATE_COLUMNS and (moment := parse_time(value)) is not None:
            cell = WriteOnlyCell(self._sheet, moment.replace(tzinfo=None))
            cell.number_format = DATE_FORMAT
            return cell
        return self._text_cell(value)

    def _text_cell(self, text: str) -> Cell:
        # XML cannot hold control characters (openpyxl would refuse the row), and dropping
        # them would silently change an address: they are written as visible escapes.
        text = printable(text)
        # The importer strips one "'" from "'=..." (see cells.restore); quote such text once more
        # so that it reads back exactly.
        if restore(text) != text:
            text = neutralise(text)
        cell = WriteOnlyCell(self._sheet, text)
        # openpyxl stores text starting with "=" as a formula and "#N/A" as an error: force text.
        cell.data_type = "s"
        return cell

    def finish(self) -> None:
        """Write the workbook package."""
        self._book.save(str(self._path))

    def abandon(self) -> None:
        """Drop the workbook; openpyxl removes its own temporary row file at exit."""
        self._book.close()


def _temporary(output: Path) -> Path:
    """A new, empty file beside `output`, hidden and named so nobody takes it for the export."""
    for _ in range(10):
        candidate = output.with_name(f".{output.name}.{secrets.token_hex(4)}.part")
        try:
            candidate.open("x").close()
        except FileExistsError:
            continue
        except OSError as exc:
            raise ConfigError(f"cannot write in {output.parent} ({exc.strerror}); choose "
                              "another OUTPUT") from None
        return candidate
    raise ConfigError(f"cannot find a free temporary name beside {output}")


def check_output(output: Path) -> None:
    """Refuse an OUTPUT that can never be written, before anything is asked of the server."""
    if str(output) == STDOUT:
        return
    if output.is_dir():
        raise ConfigError(f"{output}: is a directory; give a file name ending in .csv or .xlsx")
    if not output.parent.is_dir():
        raise ConfigError(f"{output.parent}: no such directory; create it or choose another "
                          "OUTPUT")


# -- the run --------------------------------------------------------------------------------


@contextmanager
def _writing(output: Path) -> Iterator[None]:
    """Turn a failing disk (full, read-only, gone) into an abort that names the file."""
    try:
        yield
    except OSError as exc:
        raise AbortError(f"writing {output} failed ({exc.strerror or exc}); {output} was "
                         "not written") from None


def _open_sink(path: Path, output: Path) -> _Sink:
    with _writing(output):
        if str(output) == STDOUT:
            return _CsvSink(path, encoding="utf-8")  # a BOM would be data to the next command
        return _XlsxSink(path) if output.suffix.lower() == ".xlsx" else _CsvSink(path)


def _stdout_temporary() -> Path:
    """A private temporary file for an export to standard output."""
    handle, name = tempfile.mkstemp(prefix="bulkusers-export-", suffix=".csv.part")
    os.close(handle)
    return Path(name)


async def _write_users(api: UserApi, options: ExportOptions,
                       stream: BinaryIO | None) -> tuple[int, int]:
    """Stream every selected user into a temporary file, then rename it (or copy it to
    ``stream`` for ``-``); (written, read)."""
    directory = await load_directory(api, with_users=False)
    selection = await _select(api, directory, options)
    output = options.output
    temporary = _stdout_temporary() if options.to_stdout else _temporary(output)
    written = read = 0
    try:
        sink = _open_sink(temporary, output)
        try:
            async for data in api.iter_users(options.page_size):
                read += 1
                user = User.from_api(data)
                if selection.accepts(user, data):
                    with _writing(output):
                        sink.write(_record(user, data, directory, selection))
                    written += 1
        except BaseException:
            sink.abandon()
            raise
        with _writing(output):
            sink.finish()
            if not options.to_stdout:
                temporary.replace(output)
        if options.to_stdout:
            _copy_to(temporary, stream)
            temporary.unlink()
    except BaseException:
        # Failed or interrupted: no partial file may stand where a complete one is expected.
        temporary.unlink(missing_ok=True)
        raise
    return written, read


def _copy_to(path: Path, stream: BinaryIO | None) -> None:
    """Give a complete export to the stream: a pipe never receives half an export."""
    if stream is None:
        raise ConfigError("an export to - needs a stream to write to")
    try:
        with path.open("rb") as source:
            shutil.copyfileobj(source, stream)
        stream.flush()
    except BrokenPipeError:
        raise OutputClosed("standard output was closed before the export was written in "
                           "full (the next command stopped reading)") from None
    except OSError as exc:
        raise AbortError(f"writing to standard output failed ({exc.strerror or exc})"
                         ) from None


class OutputClosed(AbortError):
    """The reader of standard output went away (``export - | head``): not a failure of ours,
    and ended as a pipe's writer ends, with status 141 (SIGPIPE)."""

    exit_code = 141


async def export_users(connection: Connection, policy: RetryPolicy,
                       options: ExportOptions,
                       stream: BinaryIO | None = None) -> ExportResult:
    """Export the selected users to ``options.output`` (to ``stream`` for ``-``); every
    failure is a BulkUsersError."""
    started = time.monotonic()
    check_output(options.output)
    async with SisenseClient(connection, policy, max_connections=4) as client:
        try:
            await client.check()
            written, read = await _write_users(make_api(client), options, stream)
        except ApiError as exc:
            raise ServerUnavailable(f"the server answered {exc.method} {exc.path} with "
                                    f"{exc.describe()}; {options.output} was not written"
                                    ) from None
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise ServerUnavailable(f"lost {connection.url} during the export "
                                    f"({network_problem(exc)}); {options.output} was not "
                                    "written") from None
    return ExportResult(options.output, written, read, time.monotonic() - started)


# -- the summary for machines ---------------------------------------------------------------


def export_summary_path(options: ExportOptions, report_dir: Path | None = None,
                        now: datetime | None = None) -> Path:
    """Where an export's JSON summary goes: beside OUTPUT (``users.csv``:
    ``users.summary.json``), or for ``-`` in the report folder, named after the time."""
    if not options.to_stdout:
        return options.output.with_name(options.output.stem + ".summary.json")
    stamp = (now or datetime.now()).strftime("%Y%m%d-%H%M%S")
    folder = report_dir or Path.cwd()
    candidate = folder / f"export.{stamp}.summary.json"
    counter = 2
    while candidate.exists():
        candidate = folder / f"export.{stamp}-{counter}.summary.json"
        counter += 1
    return candidate


@frozen
class ExportSummary:
    """What an export did, for scripts: written beside the output like the write commands'."""

    options: ExportOptions
    url: str
    api: str
    started: datetime
    ended: datetime
    result: ExportResult

    def to_json(self) -> dict[str, Any]:
        """The summary as plain JSON data (never a secret: the URL carries none)."""
        return {
            "command": "export",
            "output": "-" if self.options.to_stdout else str(self.options.output),
            "started": self.started.isoformat(),
            "ended": self.ended.isoformat(),
            "seconds": round((self.ended - self.started).total_seconds(), 3),
            "written": self.result.written,
            "read": self.result.read,
            "exit_code": 0,
            "options": {"url": self.url, "api": self.api, "role": self.options.role,
                        "group": self.options.group,
                        "inactive_days": self.options.inactive_days,
                        "page_size": self.options.page_size},
        }

    def write_json(self, path: Path) -> None:
        """Write the summary atomically (a reader never sees half of it)."""
        partial = path.with_name(path.name + ".tmp")
        partial.write_text(json.dumps(self.to_json(), indent=2) + "\n", encoding="utf-8")
        partial.replace(path)
