"""``bulkusers sync``: make Sisense match an HR file within an explicit scope.

The rows of the file are planned as ``import --on-existing update`` plans them (create the new,
update only what differs). What sync adds lives here: the **scope** (email domains and group
members; never the super user or the running account), the users in scope that the file does
not list (deactivated, deleted or only listed), the guards against a truncated export
(``--max-missing``, an empty file) and the bookkeeping that lets ``--resume`` finish those users.

The seam with the run core (``jobs.run_command``) is :class:`Reconciler`: it plans one row,
yields the out-of-file work after the rows, and accounts for it in the summary. Out-of-file
users carry negative row numbers inside a run, which the report writes as an empty ``row``.
"""

from __future__ import annotations

import csv
import json
import re
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from bulkusers.columns import REPORT_COLUMNS
from bulkusers.directory import UI_ROLE_NAMES, Directory, Group, Unknown, User
from bulkusers.errors import ConfigError, GuardTripped
from bulkusers.frozen import frozen
from bulkusers.guards import Limit
from bulkusers.identity import identity_key
from bulkusers.journal import journal_path
from bulkusers.models import Header, Row, RowResult, Status
from bulkusers.plan import Preflight
from bulkusers.planner import Planner
from bulkusers.report import read_report
from bulkusers.results import DEACTIVATED_BY_INTERRUPTED, DELETED_BY_INTERRUPTED, decided
from bulkusers.rules import DEACTIVATED_ROLE
from bulkusers.tasks import DeactivateTask, DeleteTask, UpdateTask, WorkItem, snapshot
from bulkusers.words import flag, said

if TYPE_CHECKING:
    from bulkusers.api import UserApi

Missing = Literal["deactivate", "delete", "report"]
MISSING_CHOICES: tuple[Missing, ...] = ("deactivate", "delete", "report")
#: The default --max-missing: a tenth of the users in scope.
DEFAULT_MAX_MISSING = Limit(percent=10.0)
#: How many users of each set a dry run names on screen.
LIST_SIZE = 20

_DOMAIN = re.compile(r"^[^@\s]+(\.[^@\s.]+)+$")


def ascii_key(text: str) -> str:
    """An email (or domain) as identities are compared: trimmed, ASCII letters lower-cased,
    nothing else folded (``straße`` and ``strasse`` stay two addresses)."""
    return identity_key(text.strip())


def email_domain(email: str) -> str:
    """The domain of an address (after its last ``@``), as compared: ASCII case ignored."""
    return ascii_key(email.rpartition("@")[2])


def parse_max_missing(text: str | None) -> Limit:
    """``--max-missing``: "25" users or "5%" of the scope; ConfigError with a hint otherwise."""
    if text is None:
        return DEFAULT_MAX_MISSING
    try:
        return Limit.parse(text)
    except ValueError:
        raise ConfigError(f"--max-missing {text!r} is not a number of users (25) or a "
                          "percentage of the users in scope (5%)") from None


@frozen
class SyncOptions:
    """What sync does with the users in scope that the file does not list, and the scope."""

    missing: Missing = "deactivate"
    domains: tuple[str, ...] = ()
    groups: tuple[str, ...] = ()
    max_missing: Limit = DEFAULT_MAX_MISSING

    def __post_init__(self) -> None:
        if self.missing not in MISSING_CHOICES:
            raise ConfigError(f"{flag('--missing')} {self.missing!r}: choose deactivate, "
                              "delete or report")
        cleaned = []
        for domain in self.domains:
            name = ascii_key(domain).removeprefix("@")
            if not _DOMAIN.match(name):
                raise ConfigError(f"{flag('--scope-domain')} {domain!r} is not an email "
                                  "domain; give the part after @, e.g. " + said(
                                      "--scope-domain corp.example", 'domains=("corp.example",)'))
            cleaned.append(name)
        object.__setattr__(self, "domains", tuple(dict.fromkeys(cleaned)))
        names = tuple(dict.fromkeys(g.strip() for g in self.groups))
        if "" in names:
            raise ConfigError(f"{flag('--scope-group')} needs a group name, e.g. "
                              + said("--scope-group Sales", 'groups=("Sales",)'))
        object.__setattr__(self, "groups", names)
        if self.removes and not self.scoped:
            raise ConfigError(
                f"sync {said('--missing ' + self.missing, f'missing={self.missing!r}')} needs "
                "a scope before it removes anyone: pass "
                + said("--scope-domain DOMAIN and/or --scope-group NAME (or --missing report",
                       "domains=(...) and/or groups=(...) (or missing=\"report\"")
                + " to only list who is not in the file)")

    @property
    def scoped(self) -> bool:
        """True when a scope was given."""
        return bool(self.domains or self.groups)

    @property
    def removes(self) -> bool:
        """True when the users in scope the file does not list are deactivated or deleted."""
        return self.missing != "report"


#: What sync does when given no options (a run from Python with ``sync=None``): with no
#: scope, the users the rows do not list are only reported.
REPORT_ONLY = SyncOptions(missing="report")


def refuse_empty(path: Path, rows: int) -> None:
    """A file with no data rows never removes anyone: it is what a failed HR export looks
    like (exit 3, nothing sent)."""
    if rows == 0:
        raise GuardTripped(f"{path} has no data rows; sync never acts on an empty file (a "
                           "failed HR export looks like this); nothing was sent. Check the "
                           "export")


def looks_deactivated(user: User, directory: Directory) -> bool:
    """True when the user holds what ``deactivate`` leaves: the Viewer role and no group.

    Sisense keeps no "deactivated" flag: only with bulkusers' record of a deactivation (the
    ledger) does this state mean the user was deactivated.
    """
    viewer = directory.role(DEACTIVATED_ROLE)
    if isinstance(viewer, Unknown) or user.role_id != viewer.id:
        return False
    return not any(not (g.builtin if (g := directory.group_by_id(gid)) else False)
                   for gid in user.group_ids)


@frozen
class Scope:
    """The users sync may remove: by email domain or group membership, never protected."""

    domains: frozenset[str]
    member_ids: frozenset[str]
    protected: frozenset[str]
    everyone: bool = False

    def contains(self, user: User) -> bool:
        """True when the user is in scope."""
        if user.id in self.protected:
            return False
        if self.everyone:
            return True
        return email_domain(user.email) in self.domains or user.id in self.member_ids


async def resolve_scope(api: UserApi, directory: Directory, options: SyncOptions,
                        protected: Mapping[str, str]) -> Scope:
    """The scope the options name; an unknown group is a ConfigError with a hint (exit 2)."""
    members: set[str] = set()
    for name in options.groups:
        found = directory.group(name)
        if isinstance(found, Unknown):
            raise ConfigError(f"{flag('--scope-group')}: {found.describe()}; nothing was "
                              "sent")
        members |= await _members(api, directory, found)
    return Scope(domains=frozenset(options.domains), member_ids=frozenset(members),
                 protected=frozenset(protected), everyone=not options.scoped)


async def _members(api: UserApi, directory: Directory, group: Group) -> set[str]:
    if group.builtin:
        # Sisense computes these memberships; only the group side of the API shows them.
        return set(await api.group_member_ids(group.id))
    return {u.id for u in directory.users() if group.id in u.group_ids}


@frozen
class _Earlier:
    """What an interrupted sync did to out-of-file users, by email key."""

    #: Users whose line in the earlier report is finished, and that line's status.
    finished: Mapping[str, str] = field(default_factory=dict)
    #: The undo journal's first record per user: (action, user id, previous state).
    journal: Mapping[str, tuple[str, str, str]] = field(default_factory=dict)


def _read_earlier(report: Path | None) -> _Earlier:
    if report is None:
        return _Earlier()
    finished: dict[str, str] = {}
    for line in read_report(report, complete_only=True):
        if line.row == 0 and line.email:
            if line.finished:
                finished[ascii_key(line.email)] = line.status
            else:
                finished.pop(ascii_key(line.email), None)
    journal: dict[str, tuple[str, str, str]] = {}
    try:
        text = journal_path(report).read_text(encoding="utf-8")
    except FileNotFoundError:
        text = ""
    for raw in text.splitlines():
        try:
            data: Any = json.loads(raw)
            if int(data["row"]) >= 0:
                continue  # a file row: the planner's own resume handles it
            entry = (str(data["action"]), str(data["user_id"]), str(data["previous"]))
            journal.setdefault(ascii_key(str(data["email"])), entry)
        except (ValueError, KeyError, TypeError):
            continue  # a line torn by a crash
    return _Earlier(finished, journal)


class Reconciler:
    """Sync's part of a run: the file's rows as upserts, then the out-of-file users."""

    def __init__(self, planner: Planner, header: Header, options: SyncOptions, scope: Scope,
                 in_file: frozenset[str], earlier: _Earlier) -> None:
        self.planner = planner
        self.header = header
        self.options = options
        self.scope = scope
        self.earlier = earlier
        directory = planner.directory
        #: Users in scope (for the --max-missing percentage).
        self.scope_size = sum(1 for u in directory.users() if scope.contains(u))
        out = [u for u in directory.users()
               if scope.contains(u) and ascii_key(u.email) not in in_file]
        self.out_of_file = tuple(sorted(out, key=lambda u: ascii_key(u.email)))
        #: Users bulkusers deactivated (its records) who are still deactivated.
        self._deactivated = frozenset(
            user_id for user_id in planner.deactivated
            if (user := directory.user_by_id(user_id)) is not None
            and looks_deactivated(user, directory))
        #: Out-of-file users the earlier (interrupted) run already finished.
        self.carried = Counter(earlier.finished.values())
        #: Users the interrupted run deleted whose answer never reached the report.
        self.gone = tuple(
            (email, entry) for email, entry in sorted(earlier.journal.items())
            if entry[0] == "delete" and email not in earlier.finished
            and directory.user_by_id(entry[1]) is None)

    @classmethod
    async def prepare(cls, api: UserApi, planner: Planner, header: Header,
                      rows: Callable[[], Iterator[Row]], options: SyncOptions,
                      protected: Mapping[str, str], resume: Path | None) -> Reconciler:
        """Resolve the scope, read which users the file lists, and what a resumed run did."""
        scope = await resolve_scope(api, planner.directory, options, protected)
        # Every row's email counts, valid or not: a user named on a row the run skips (an
        # unknown group, a repeated email) is still in the file and must not be removed.
        in_file = frozenset(ascii_key(header.value(row, "email")) for row in rows())
        return cls(planner, header, options, scope, in_file, _read_earlier(resume))

    # -- counting and guards ------------------------------------------------------------------

    @property
    def extra_rows(self) -> int:
        """Report lines this run adds after the file's rows."""
        pending = [u for u in self.out_of_file if ascii_key(u.email) not in self.earlier.finished]
        return len(pending) + len(self.gone)

    def refusal(self, counts: Preflight) -> str:
        """Why --max-missing refuses this plan ("" when it does not)."""
        allowed = self.options.max_missing.allowed(self.scope_size)
        if allowed is not None and self.options.max_missing.percent is not None:
            # A percentage of a small scope must still let one leaver go: the guard is against
            # a truncated file, and 10 % of 9 users rounds down to nobody.
            allowed = max(allowed, 1)
        removals = counts.removals
        if allowed is None or removals <= allowed:
            return ""
        limit = self.options.max_missing
        shown = (f"{limit.percent:g}% of {self.scope_size} = {allowed}"
                 if limit.percent is not None else str(allowed))
        return (f"sync would {self.options.missing} {removals} of the {self.scope_size} "
                f"users in scope who are not in the file, more than {flag('--max-missing')} "
                f"allows ({shown}); nothing was sent. Check the file is complete, or pass "
                + said(f"--max-missing {removals}", f"max_missing=Limit(count={removals})"))

    # -- planning -----------------------------------------------------------------------------

    def plan_row(self, row: Row) -> WorkItem:
        """One row of the file: created when new, updated when it differs (as ``update``)."""
        item = self.planner.plan_import(row)
        if (isinstance(item, UpdateTask) and item.user.id in self._deactivated
                and ("roleId" in item.patch or "groups" in item.patch)):
            # A rehire: the row gives the role and groups back, which ends the deactivation
            # (action reactivate releases its record); the password stays unknown.
            return replace(item, action="reactivate",
                           changes=item.changes + "; a rehire, deactivated before: password "
                                                  "not restored, the user resets it with "
                                                  "'Forgot password'")
        return item

    def tail(self) -> Iterator[WorkItem]:
        """One item per out-of-file user in scope, then the confirmed deletes of a resume."""
        number = 0
        for user in self.out_of_file:
            key = ascii_key(user.email)
            if key in self.earlier.finished:
                continue  # its line in the report being resumed stands
            number -= 1
            yield self._plan_missing(self._row(number, user.email), user)
        for email, (_, user_id, previous) in self.gone:
            number -= 1
            yield decided(self._row(number, email), email, "delete", Status.DELETED,
                          user_id=user_id, previous=previous, changes=DELETED_BY_INTERRUPTED)

    def _row(self, number: int, email: str) -> Row:
        """A row for an out-of-file user: its email in the file's email column, so that the
        report line is valid input (e.g. for ``deactivate``)."""
        values = [""] * len(self.header.columns)
        position = self.header.index.get("email")
        if position is not None and position < len(values):
            values[position] = email
        return Row(number, tuple(values))

    def _plan_missing(self, row: Row, user: User) -> WorkItem:
        mode = self.options.missing
        journal = self.earlier.journal.get(ascii_key(user.email))
        if mode == "report":
            return decided(row, user.email, "report", Status.SKIPPED, user_id=user.id,
                           previous=snapshot(user, self.planner.directory),
                           changes="none: not in the file ("
                           + said("--missing report", 'missing="report"') + " only lists)")
        if mode == "delete":
            item = self.planner.plan_delete(row)
        else:
            # A user bulkusers already deactivated (its records) is "unchanged", not again.
            item = self.planner.plan_deactivate(row)
        if (journal is not None and journal[0] == "deactivate" and isinstance(item, RowResult)
                and item.status is Status.UNCHANGED):
            # The interrupted run deactivated this user; its answer never reached the report.
            return decided(row, user.email, "deactivate", Status.DEACTIVATED, user_id=user.id,
                           previous=journal[2], changes=DEACTIVATED_BY_INTERRUPTED)
        if journal is not None and isinstance(item, DeactivateTask | DeleteTask):
            # Keep the state from before the first attempt: that is what an undo restores.
            return replace(item, previous=journal[2])
        return item

    def carry_over(self, counts: Counter[str]) -> int:
        """Count the out-of-file lines the run being resumed finished; how many there are."""
        counts.update(self.carried)
        return sum(self.carried.values())


# -- the dry run's three sets -------------------------------------------------------------------


@frozen
class PlannedSet:
    """One set of a dry run: its users (email and what changes), the first LIST_SIZE shown."""

    label: str
    total: int
    shown: tuple[str, ...]
    #: Users to deactivate or delete (the other sets change no one's access away).
    destructive: bool = False


def planned_sets(report: Path) -> list[PlannedSet]:
    """The create, update and remove sets a sync dry run wrote to its report."""
    sets: dict[str, list[str]] = {"create": [], "update": [], "remove": []}
    labels = {"create": "to create", "update": "to update", "remove": "to remove"}
    with report.open(encoding="utf-8-sig", newline="") as handle:
        for line in _report_lines(handle):
            action, status = line.get("action", ""), line.get("status", "")
            if status == Status.PLANNED.value and action in ("create", "update", "reactivate"):
                sets["create" if action == "create" else "update"].append(_describe(line))
            elif status == Status.PLANNED.value and action in ("deactivate", "delete"):
                labels["remove"] = f"to {action}"
                sets["remove"].append(_describe(line))
            elif action == "report" and not line.get("row"):
                labels["remove"] = "not in the file (listed only)"
                sets["remove"].append(_describe(line))
    return [PlannedSet(labels[key], len(found), tuple(found[:LIST_SIZE]),
                       destructive=key == "remove" and labels[key] in ("to deactivate",
                                                                     "to delete"))
            for key, found in sets.items()]


def _report_lines(handle: Iterable[str]) -> Iterator[dict[str, str]]:
    """A report's lines by the report's own columns only. The input's columns are echoed
    after them, and one may share a name (an "email" column): a dict of every column would
    take the input's cell, the file's spelling, for the server's."""
    reader = csv.reader(handle)
    names = next(reader, [])[:len(REPORT_COLUMNS)]
    for cells in reader:
        yield dict(zip(names, cells, strict=False))


def _describe(line: Mapping[str, str]) -> str:
    """A user as a dry run names it: email, and the change or the state it holds."""
    email = line.get("email", "")
    previous = line.get("previous", "")
    if line.get("action") in ("create", "update", "reactivate"):
        return f"{email} ({line.get('changes', '')})"
    try:
        state = json.loads(previous) if previous else {}
    except ValueError:
        state = {}
    if isinstance(state, dict) and state:
        groups = ", ".join(str(g) for g in state.get("groups") or []) or "no groups"
        role = str(state.get("role", "?"))
        return f"{email} (role {UI_ROLE_NAMES.get(role, role)}; {groups})"
    return email
