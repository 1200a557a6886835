"""Audit diffs: what changed between two user exports (CSV or XLSX), for people and cron.

Both files are read with the project's readers, so rows and columns may come in any order
and under the export's or an HR file's column names. Users are keyed by email with ASCII
letter case ignored. A change is one line: a user added or removed, a role change, a group
change (names added and removed, order and letter case ignored), or a user newly past
``--inactive-days``. Each export is judged at its own time (its file's modification time),
so "newly past" means: inactive at NEW's time, not yet at OLD's.
"""

from __future__ import annotations

import csv
import json
import re
import secrets
import sys
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO

from openpyxl import Workbook
from openpyxl.cell import WriteOnlyCell
from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE, Cell

from bulkusers.cells import neutralise
from bulkusers.directory import BUILTIN_GROUPS
from bulkusers.errors import EXIT_CHANGED, ConfigError, InputError
from bulkusers.exportfile import days_before, inactive_before, parse_time
from bulkusers.frozen import frozen
from bulkusers.identity import identity_key
from bulkusers.readers import ReadOptions, open_table
from bulkusers.sync import ascii_key
from bulkusers.words import count

#: Change kinds, in the order the output lists them.
KINDS: tuple[str, ...] = ("added", "removed", "role", "groups", "inactive")
COLUMNS: tuple[str, ...] = (
    "change", "email", "role_old", "role_new", "groups_old", "groups_new", "groups_added",
    "groups_removed", "lastLogin_old", "lastLogin_new",
)
SEPARATOR = "; "
_GROUP_SPLIT = re.compile(r"[;|]")
_NAME_NOISE = re.compile(r"[\s_.\-]+")


@frozen
class UserState:
    """What one export says about one user."""

    email: str
    role: str
    groups: Mapping[str, str]  # name (ASCII case ignored) -> name as written
    last_login: str
    created: str

    def inactive(self, at: datetime, days: int) -> bool:
        """Past ``days`` without signing in at time ``at``. Never signed in: counted from
        ``created`` (a new account gets the same grace); neither date readable: inactive."""
        return inactive_before(self.last_login, self.created, days_before(at, days))


@frozen
class Snapshot:
    """One export: its users by email key, and the time it is judged at."""

    path: Path
    users: Mapping[str, UserState]
    taken: datetime


def _column(columns: Sequence[str], *names: str) -> int | None:
    wanted = {n.casefold() for n in names}
    for position, name in enumerate(columns):
        if _NAME_NOISE.sub("", name).casefold() in wanted:
            return position
    return None


def split_groups(cell: str) -> dict[str, str]:
    """Group names of a cell (``;`` or ``|`` separated) by name ignoring ASCII case, without the
    built-in groups: Sisense computes those from the role and from existing, so they would
    only repeat an ``added``, ``removed`` or ``role`` line."""
    names: dict[str, str] = {}
    for part in _GROUP_SPLIT.split(cell):
        name = part.strip()
        if name and identity_key(name) not in BUILTIN_GROUPS:
            names.setdefault(identity_key(name), name)
    return names


def read_snapshot(path: Path, read: ReadOptions | None = None,
                  taken: datetime | None = None) -> Snapshot:
    """Read an export (InputError, exit 2, when it cannot be, or repeats an email)."""
    table = open_table(path, read or ReadOptions())
    header = table.header
    columns = header.columns
    role_at = header.index.get("role")
    display_at = _column(columns, "roledisplayname")
    login_at = _column(columns, "lastlogin")
    created_at = _column(columns, "created")

    def cell(values: Sequence[str], position: int | None) -> str:
        return values[position].strip() if position is not None and position < len(values) \
            else ""

    users: dict[str, UserState] = {}
    rows: dict[str, int] = {}
    for row in table.rows():
        email = header.value(row, "email")
        if not email:
            continue
        key = ascii_key(email)
        if key in users:
            raise InputError(f"{path}: {email!r} is on rows {rows[key]} and {row.number}; an "
                             "export has one row per user")
        role = cell(row.values, role_at) or cell(row.values, display_at)
        users[key] = UserState(email=email, role=role,
                               groups=split_groups(header.value(row, "groups")),
                               last_login=server_time(cell(row.values, login_at)),
                               created=server_time(cell(row.values, created_at)))
        rows[key] = row.number
    if taken is None:
        taken = datetime.fromtimestamp(path.stat().st_mtime, UTC)
    return Snapshot(path, users, taken)


def server_time(text: str) -> str:
    """A time as the server writes it (``2023-08-30T10:17:00.000Z``) whichever export it comes
    from: a CSV keeps the server's text, an XLSX date cell reads back as ``2023-08-30
    10:17:00``, and a diff of the two must show one user's time one way. Text that is no time
    is kept as it is."""
    moment = parse_time(text) if text else None
    if moment is None:
        return text
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


@frozen
class Change:
    """One line of a diff."""

    change: str
    email: str
    role_old: str = ""
    role_new: str = ""
    groups_old: str = ""
    groups_new: str = ""
    groups_added: str = ""
    groups_removed: str = ""
    last_login_old: str = ""
    last_login_new: str = ""

    def cells(self) -> tuple[str, ...]:
        """The line's values in COLUMNS order."""
        return (self.change, self.email, self.role_old, self.role_new, self.groups_old,
                self.groups_new, self.groups_added, self.groups_removed, self.last_login_old,
                self.last_login_new)


def _names(groups: Mapping[str, str], keys: Iterable[str] | None = None) -> str:
    chosen = groups if keys is None else {k: groups[k] for k in keys}
    return SEPARATOR.join(sorted(chosen.values(), key=str.casefold))


def compare(old: Snapshot, new: Snapshot, inactive_days: int | None = None) -> list[Change]:
    """Every change from OLD to NEW, ordered by kind (KINDS) then email."""
    found: list[Change] = []
    for key in new.users.keys() - old.users.keys():
        user = new.users[key]
        found.append(Change("added", user.email, role_new=user.role,
                            groups_new=_names(user.groups), last_login_new=user.last_login))
    for key in old.users.keys() - new.users.keys():
        user = old.users[key]
        found.append(Change("removed", user.email, role_old=user.role,
                            groups_old=_names(user.groups), last_login_old=user.last_login))
    for key in old.users.keys() & new.users.keys():
        before, after = old.users[key], new.users[key]
        if before.role.casefold() != after.role.casefold():
            found.append(Change("role", after.email, role_old=before.role, role_new=after.role))
        if before.groups.keys() != after.groups.keys():
            found.append(Change(
                "groups", after.email, groups_old=_names(before.groups),
                groups_new=_names(after.groups),
                groups_added=_names(after.groups, after.groups.keys() - before.groups.keys()),
                groups_removed=_names(before.groups,
                                      before.groups.keys() - after.groups.keys())))
        if (inactive_days is not None and after.inactive(new.taken, inactive_days)
                and not before.inactive(old.taken, inactive_days)):
            found.append(Change("inactive", after.email, last_login_old=before.last_login,
                                last_login_new=after.last_login))
    return sorted(found, key=lambda c: (KINDS.index(c.change), ascii_key(c.email), c.email))


# -- output ---------------------------------------------------------------------------------


def default_output(new: Path) -> Path:
    """Where a diff goes by default: beside NEW, named after it, in NEW's format."""
    suffix = ".xlsx" if new.suffix.lower() in (".xlsx", ".xlsm") else ".csv"
    return new.with_name(f"{new.stem}.changes{suffix}")


def check_output(output: Path, *inputs: Path, option: str = "--output") -> None:
    """Refuse an output that is not .csv/.xlsx, is an input, or has no folder (exit 2)."""
    if output.suffix.lower() not in (".csv", ".xlsx"):
        stdout = " (or be - for CSV on stdout)" if option == "--output" else ""
        raise ConfigError(f"{option} {output}: the changes file must end in .csv or "
                          f".xlsx{stdout}")
    for source in inputs:
        if output.exists() and source.exists() and output.resolve() == source.resolve():
            raise ConfigError(f"{option} {output} is one of the compared files; give the "
                              "changes another name")
    if output.is_dir():
        raise ConfigError(f"{option} {output} is a folder; give a file name")
    if not output.parent.is_dir():
        raise ConfigError(f"{option} {output}: the folder {output.parent} does not exist")


def _csv_rows(changes: Sequence[Change]) -> Iterator[list[str]]:
    yield list(COLUMNS)
    for change in changes:
        yield [neutralise(value) for value in change.cells()]


def write_csv(changes: Sequence[Change], handle: IO[str]) -> None:
    """The diff as CSV on an open text handle, every cell formula-safe."""
    csv.writer(handle).writerows(_csv_rows(changes))


def write_changes(changes: Sequence[Change], output: Path) -> None:
    """Write the diff to a .csv (UTF-8 with BOM) or .xlsx file, renamed into place whole."""
    partial = output.with_name(f".{output.name}.{secrets.token_hex(4)}.part")
    try:
        if output.suffix.lower() == ".xlsx":
            _write_xlsx(changes, partial)
        else:
            with partial.open("w", encoding="utf-8-sig", newline="") as handle:
                write_csv(changes, handle)
        partial.replace(output)
    except OSError as exc:
        raise ConfigError(f"cannot write {output} ({exc.strerror or exc})") from None
    finally:
        partial.unlink(missing_ok=True)


def _write_xlsx(changes: Sequence[Change], path: Path) -> None:
    book = Workbook(write_only=True)
    sheet = book.create_sheet("Changes")
    sheet.freeze_panes = "A2"

    def text(value: str) -> Cell:
        cell = WriteOnlyCell(sheet, ILLEGAL_CHARACTERS_RE.sub("", value))
        cell.data_type = "s"  # text, never a formula, whatever it starts with
        return cell

    sheet.append([text(name) for name in COLUMNS])
    for change in changes:
        sheet.append([text(value) if value else None for value in change.cells()])
    book.save(str(path))


# -- summary --------------------------------------------------------------------------------


@dataclass(slots=True)
class DiffSummary:
    """Counts of a diff, for people (one line) and machines (JSON)."""

    old: str
    new: str
    output: str
    inactive_days: int | None
    old_time: datetime
    new_time: datetime
    counts: Counter[str] = field(default_factory=Counter)

    @property
    def changed(self) -> int:
        """How many change lines the diff has."""
        return sum(self.counts.values())

    @property
    def exit_code(self) -> int:
        """0 when nothing changed, EXIT_CHANGED otherwise."""
        return EXIT_CHANGED if self.changed else 0

    def line(self) -> str:
        """One line for stderr."""
        counts = ", ".join(f"{self.counts.get(kind, 0)} {kind}" for kind in KINDS)
        return f"{count(self.changed, 'change')} ({counts})"

    def to_json(self) -> dict[str, object]:
        """The summary as plain JSON data."""
        return {"old": self.old, "new": self.new, "output": self.output,
                "old_time": self.old_time.isoformat(), "new_time": self.new_time.isoformat(),
                "inactive_days": self.inactive_days,
                "counts": {kind: self.counts.get(kind, 0) for kind in KINDS},
                "changes": self.changed, "exit_code": self.exit_code}

    def write_json(self, path: Path) -> None:
        """Write the JSON summary atomically."""
        partial = path.with_name(path.name + ".tmp")
        try:
            partial.write_text(json.dumps(self.to_json(), indent=2) + "\n", encoding="utf-8")
            partial.replace(path)
        except OSError as exc:
            raise ConfigError(f"cannot write {path} ({exc.strerror or exc})") from None


def summary_path(output: Path) -> Path:
    """Where a diff's JSON summary goes: beside it."""
    return output.with_name(output.stem + ".summary.json")


def run_diff(old: Snapshot, new: Snapshot, output: Path | None, *,
             inactive_days: int | None = None, summary: Path | None = None) -> DiffSummary:
    """Compare, write the changes (to ``output``, or CSV on stdout when None) and the JSON
    summary (beside ``output`` unless ``summary`` names a path); the counts."""
    changes = compare(old, new, inactive_days)
    if output is None:
        write_csv(changes, sys.stdout)
        sys.stdout.flush()
    else:
        write_changes(changes, output)
    result = DiffSummary(old=str(old.path), new=str(new.path),
                         output="-" if output is None else str(output),
                         inactive_days=inactive_days, old_time=old.taken, new_time=new.taken,
                         counts=Counter(c.change for c in changes))
    target = summary or (summary_path(output) if output is not None else None)
    if target is not None:
        result.write_json(target)
    return result
