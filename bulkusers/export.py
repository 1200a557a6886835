"""Users to a CSV or XLSX file, streamed page by page, with role and group names resolved.

The file is valid input for ``bulkusers import``: the columns the importer knows come first
under their canonical names, and the others (``roleDisplayName``, ``active``, the dates,
``id``) are ignored by it. This module chooses the users (the filters, resolved against the
directory) and runs the export; the file itself, written to a temporary file and put in place
only once every page was read, is exportfile.py's.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import AsyncGenerator, AsyncIterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, BinaryIO

import aiohttp

from bulkusers.api import UserApi, make_api
from bulkusers.client import SisenseClient
from bulkusers.config import Connection, RetryPolicy
from bulkusers.directory import Directory, Group, Unknown, User
from bulkusers.errors import EXIT_CHANGED, ApiError, ConfigError, ServerUnavailable
from bulkusers.exportfile import (
    STDOUT,
    SUFFIXES,
    Record,
    check_output,
    days_before,
    inactive_before,
    open_output,
)
from bulkusers.frozen import frozen
from bulkusers.loading import load_directory
from bulkusers.network import describe_network_error as network_problem
from bulkusers.words import flag

GROUP_SEPARATOR = "; "


@frozen
class ExportOptions:
    """What to export and where: the output file, the filters and the page size."""

    output: Path
    role: str | None = None
    group: str | None = None
    inactive_days: int | None = None
    page_size: int = 500

    @property
    def filters(self) -> UserFilters:
        """The users this export keeps."""
        return UserFilters(self.role, self.group, self.inactive_days)

    @property
    def to_stdout(self) -> bool:
        """True for OUTPUT ``-``: CSV for a pipe, given to a stream once complete."""
        return str(self.output) == STDOUT

    def __post_init__(self) -> None:
        if not self.to_stdout and self.output.suffix.lower() not in SUFFIXES:
            raise ConfigError(f"{self.output}: the export must end in .csv or .xlsx (or be - "
                              "for CSV on standard output)")
        check_page_size(self.page_size)
        _ = self.filters  # UserFilters checks its own fields


@frozen
class ExportResult:
    """What an export did: where the file is, users written and read, and how long it took."""

    path: Path
    written: int
    read: int
    seconds: float


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
            return inactive_before(_text(data.get("lastLogin")), _text(data.get("created")),
                                   self.cutoff)
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
    """One user as an export row, in exportfile.COLUMNS order."""
    role = directory.role_by_id(user.role_id)
    groups = GROUP_SEPARATOR.join(g.name for g in selection.groups_of(user))
    return (user.email, user.user_name, user.first_name, user.last_name,
            role.name if role else user.role_id, role.display_name if role else "", groups,
            user.language, user.active, _text(data.get("created")),
            _text(data.get("lastLogin")), _text(data.get("lastUpdated")), user.id)


async def _select(api: UserApi, directory: Directory, filters: UserFilters) -> _Selection:
    """Resolve the filters (an unknown name is a ConfigError) and fetch built-in members once."""
    role_id = None
    if filters.role is not None:
        role = directory.role(filters.role)
        if isinstance(role, Unknown):
            names = ", ".join(r.display_name or r.name for r in directory.roles)
            raise ConfigError(f"{flag('--role')}: {role.describe()}; the roles are {names}")
        role_id = role.id
    group = None
    if filters.group is not None:
        found = directory.group(filters.group)
        if isinstance(found, Unknown):
            raise ConfigError(f"{flag('--group')}: {found.describe()}")
        group = found
    cutoff = None
    if filters.inactive_days is not None:
        cutoff = days_before(datetime.now(UTC), filters.inactive_days)
    builtin = {g: frozenset(await api.group_member_ids(g.id))
               for g in directory.groups if g.builtin}
    return _Selection(role_id, group, cutoff, {g.id: g for g in directory.groups}, builtin)


# -- the run --------------------------------------------------------------------------------


@frozen
class UserFilters:
    """Which users an export keeps: a role and a group (by name), and users inactive for at
    least ``inactive_days``; None keeps everyone."""

    role: str | None = None
    group: str | None = None
    inactive_days: int | None = None

    def __post_init__(self) -> None:
        if self.inactive_days is not None:
            check_inactive_days(self.inactive_days)


def check_inactive_days(days: int) -> None:
    """Refuse a number of inactive days below 1 (ConfigError), as the CLI's --inactive-days
    does: 0 days would keep everyone, which no one means."""
    if days < 1:
        raise ConfigError(f"{flag('--inactive-days')} must be 1 or more, not {days}")


#: The largest page an export asks for (the CLI's ``--page-size`` allows as much): Sisense
#: documents no maximum, and a page is one answer held whole in memory on both sides.
MAX_EXPORT_PAGE = 10_000


def check_page_size(page_size: int) -> None:
    """Refuse a page size out of 1 to MAX_EXPORT_PAGE (ConfigError)."""
    if not 1 <= page_size <= MAX_EXPORT_PAGE:
        raise ConfigError(f"the page size must be from 1 to {MAX_EXPORT_PAGE:,}, not "
                          f"{page_size}")


@dataclass(slots=True)
class _Tally:
    """Users read and kept so far by ``selected_records``."""

    read: int = 0
    kept: int = 0


async def selected_records(api: UserApi, filters: UserFilters, page_size: int,
                           tally: _Tally | None = None) -> AsyncGenerator[Record, None]:
    """Every user the filters keep, as an export row (exportfile.COLUMNS order), read a page
    at a time; ``tally`` counts them as they go."""
    tally = tally or _Tally()
    directory = await load_directory(api, with_users=False)
    selection = await _select(api, directory, filters)
    # Closed with this generator (a caller stopping early): no page is left to a
    # clean-up task that would run after the connection closed.
    async with contextlib.aclosing(api.iter_users(page_size)) as found:
        async for data in found:
            tally.read += 1
            user = User.from_api(data)
            if selection.accepts(user, data):
                tally.kept += 1
                yield _record(user, data, directory, selection)


async def _write_users(api: UserApi, options: ExportOptions,
                       stream: BinaryIO | None) -> tuple[int, int]:
    """Stream every selected user into the export's file (given to ``stream`` for ``-``);
    (written, read)."""
    tally = _Tally()
    with open_output(options.output, stream) as write:
        async with contextlib.aclosing(selected_records(api, options.filters,
                                                        options.page_size, tally)) as records:
            async for record in records:
                write(record)
    return tally.kept, tally.read


@contextlib.asynccontextmanager
async def exporting(connection: Connection, policy: RetryPolicy,
                    lost: str) -> AsyncIterator[UserApi]:
    """A checked connection for an export; a server's refusal or a lost connection inside
    is a ServerUnavailable that ends with ``lost`` (what was not done)."""
    async with SisenseClient(connection, policy, max_connections=4) as client:
        try:
            await client.check()
            yield make_api(client)
        except ApiError as exc:
            raise ServerUnavailable(f"the server answered {exc.method} {exc.path} with "
                                    f"{exc.describe()}; {lost}") from None
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise ServerUnavailable(f"lost {connection.url} during the export "
                                    f"({network_problem(exc)}); {lost}") from None


async def run_export(connection: Connection, policy: RetryPolicy, options: ExportOptions,
                     stream: BinaryIO | None = None) -> ExportResult:
    """Export the selected users to ``options.output`` (to ``stream`` for ``-``); every
    failure is a BulkUsersError."""
    started = time.monotonic()
    check_output(options.output)
    async with exporting(connection, policy, f"{options.output} was not written") as api:
        written, read = await _write_users(api, options, stream)
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
class Comparison:
    """What ``export --compare PREVIOUS`` compared, or why it compared nothing."""

    previous: Path
    #: Where the changes went; None when nothing was compared.
    changes: Path | None = None
    changed: int = 0
    #: The changes counted by kind, in one line for people.
    counts: str = ""
    #: Why nothing was compared (PREVIOUS missing, unreadable, or the changes unwritable).
    reason: str = ""
    exit_code: int = 0

    @classmethod
    def made(cls, previous: Path, changes: Path, changed: int, counts: str) -> Comparison:
        """A comparison that wrote its changes: exit 4 when there were any."""
        return cls(previous, changes, changed, counts,
                   exit_code=EXIT_CHANGED if changed else 0)

    @classmethod
    def failed(cls, previous: Path, reason: str, exit_code: int) -> Comparison:
        """No comparison, for an error (PREVIOUS unreadable, the changes unwritable)."""
        return cls(previous, reason=reason, exit_code=exit_code)

    @classmethod
    def nothing_to_compare(cls, previous: Path) -> Comparison:
        """No comparison because PREVIOUS does not exist yet: not an error (exit 0)."""
        return cls(previous, reason=f"{previous}: no such file")

    @property
    def missing(self) -> bool:
        """True when nothing was compared because there was nothing to compare with."""
        return self.changes is None and self.exit_code == 0

    def to_json(self) -> dict[str, Any]:
        """The summary's ``compare``: whether a comparison was made, and its outcome."""
        compared = self.changes is not None
        return {"previous": str(self.previous), "compared": compared,
                "changes": str(self.changes) if compared else None,
                "changed": self.changed if compared else None,
                "reason": self.reason or None}


@frozen
class ExportSummary:
    """What an export did, for scripts: written beside the output like the write commands'."""

    options: ExportOptions
    url: str
    api: str
    started: datetime
    ended: datetime
    result: ExportResult
    #: ``--compare``'s outcome (None without it); its exit code is the run's.
    comparison: Comparison | None = None

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
            "exit_code": self.comparison.exit_code if self.comparison is not None else 0,
            "options": {"url": self.url, "api": self.api, "role": self.options.role,
                        "group": self.options.group,
                        "inactive_days": self.options.inactive_days,
                        "page_size": self.options.page_size},
            "compare": self.comparison.to_json() if self.comparison is not None else None,
        }

    def write_json(self, path: Path) -> None:
        """Write the summary atomically (a reader never sees half of it)."""
        partial = path.with_name(path.name + ".tmp")
        partial.write_text(json.dumps(self.to_json(), indent=2) + "\n", encoding="utf-8")
        partial.replace(path)
