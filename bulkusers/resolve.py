"""What a row asks for, checked and resolved against the directory snapshot.

``RowResolver`` is the part of planning every command shares: the row's email and whether it
can be used, the user it names, the role and groups it asks for (each distinct groups cell
resolved once; with ``--create-groups`` a missing group gets a stand-in), and the userNames
earlier rows of the same run will hold.
"""

from __future__ import annotations

from collections.abc import Mapping

from bulkusers.directory import Directory, Group, Role, Unknown, User
from bulkusers.identity import EMAIL, identity_key, stored_email
from bulkusers.intake import Repeats
from bulkusers.journal import JournalEntry
from bulkusers.ledger import Deactivation
from bulkusers.models import Header, Row, RowResult, Status
from bulkusers.report import ReportLine
from bulkusers.results import decided
from bulkusers.rules import (
    CLEAR,
    CLEAR_LENGTH,
    INVISIBLE,
    NEW_GROUP_ID,
    PlanOptions,
    Wanted,
    clears_alone,
    is_clear,
    split_groups,
)
from bulkusers.safetext import quote
from bulkusers.words import flag


class RowResolver:
    """Reads rows against one directory snapshot; the state planning one run accumulates."""

    def __init__(self, header: Header, directory: Directory, repeats: Repeats,
                 options: PlanOptions, protected: Mapping[str, str] | None = None,
                 prior: Mapping[int, JournalEntry] | None = None,
                 deactivated: Mapping[str, Deactivation] | None = None,
                 report_lines: Mapping[int, ReportLine] | None = None) -> None:
        self.header = header
        self.directory = directory
        self.repeats = repeats
        self.options = options
        #: user id -> why it must never be deactivated or deleted
        self.protected = dict(protected or {})
        #: Group names rows asked for that the server does not have, by matching key. With
        #: --create-groups the plan names each by a stand-in (see ``new_groups``).
        self.missing_groups: dict[str, str] = {}
        self._stand_ins: dict[str, Group] = {}
        self._stand_in_names: dict[str, str] = {}  # stand-in id -> name
        #: userNames rows planned so far will hold (matching key -> the row's email): a later
        #: row asking for one is a conflict found while planning, not a refusal mid-run.
        self._claimed: dict[str, str] = {}
        self._group_cells: dict[str, tuple[tuple[Group, ...] | str | None, bool]] = {}
        #: The snapshot's users by email key and by userName key, looked up directly by
        #: ``Planner._common_create`` for every common import row.
        self._by_email, self._by_name = directory.user_indexes()
        #: Whether an import row may take ``Planner._common_create``: only where emails are
        #: stored in lower case (no --keep-email-case).
        self._common_creates = not options.keep_email_case
        self._roles: dict[str, Role | Unknown] = {}
        #: A create's changes text by its role's and groups' names (``Planner._create_changes``).
        self._created_changes: dict[tuple[str, ...], str] = {}
        #: reactivate's input: the lines of an earlier report, by line number.
        self.report_lines = dict(report_lines or {})
        #: What an interrupted run of this command was about to do, by row (--resume).
        self.prior = dict(prior or {})
        #: Users bulkusers deactivated earlier on this server, by id, with their records.
        self.deactivated = dict(deactivated or {})

    # -- shared validation --------------------------------------------------------------------

    def _key_problem(self, row: Row, email: str) -> str:
        if not email:
            return "no email; every row needs one"
        if not EMAIL.match(email):
            return f"malformed email {quote(email)}"
        if not email.isascii() and INVISIBLE.search(email):  # its characters are not ASCII
            # It would create an account whose address looks exactly like another's.
            return f"email {quote(email)} holds an invisible character; retype it"
        # Most inputs repeat no email: no call for them.
        others = self.repeats.other_rows(email, row.number) if self.repeats.rows else ()
        if others:
            return f"email also on row {', '.join(map(str, others))}; keep one row per user"
        return ""

    def _wanted(self, row: Row, cells: tuple[str, ...]) -> Wanted | str:
        """What a row asks for (``cells``: its fields, Header.cells), or why it cannot be
        used."""
        (email, user_name_cell, first_name, last_name, role_cell, groups_cell, password,
         language) = cells
        role: Role | None = None
        if role_cell:
            found = self._roles.get(role_cell)  # a cell seen before: never (clear)
            if found is None:
                if is_clear(role_cell):
                    return f"the role cannot be cleared ({CLEAR}); name a role such as viewer"
                found = self._role(role_cell)
            if isinstance(found, Unknown):
                return found.describe()
            role = found
        groups: tuple[Group, ...] | None = None
        clear_groups = False
        if groups_cell:
            resolved = self._group_cells.get(groups_cell) or self._group_cell(groups_cell)
            outcome, clear_groups = resolved
            if isinstance(outcome, str):
                return outcome
            groups = outcome
        user_name = plain_text(user_name_cell)
        if user_name == "":
            return f"the userName cannot be cleared ({CLEAR})"
        email = stored_email(email, keep_case=self.options.keep_email_case or row.recorded)
        # By position (Wanted's field order): keywords cost a lookup each, for every row.
        return Wanted(email, user_name, plain_text(first_name), plain_text(last_name), role, groups,
                      password, plain_text(language), clear_groups)

    def _role(self, cell: str) -> Role | Unknown:
        """The role a role cell names (HR files repeat a few: each is resolved once)."""
        found = self._roles[cell] = self.directory.role(cell)
        return found

    def _group_cell(self, cell: str) -> tuple[tuple[Group, ...] | str | None, bool]:
        """What a (non-blank) groups cell asks for: the groups it names (None when it names
        no writable group) or why not, and whether it empties them ((clear)). HR files repeat
        a few cells: each is read once."""
        outcome: tuple[Group, ...] | str | None
        clear = is_clear(cell) or clears_alone(cell)
        names = () if clear else split_groups(cell)
        if clear:
            outcome = ()
        elif any(is_clear(name) for name in names):
            outcome = (f"{CLEAR} must be alone in the groups cell; remove the group names to "
                       "empty the groups, or remove (clear) to keep them")
        else:
            resolved = self._groups("; ".join(names))
            # A cell that names no writable group (only separators, or only built-in groups
            # that Sisense computes) looks blank: it leaves the groups alone. Only (clear)
            # empties them.
            outcome = resolved if isinstance(resolved, str) else resolved or None
        self._group_cells[cell] = (outcome, clear)
        return outcome, clear

    def _groups(self, cell: str) -> tuple[Group, ...] | str:
        groups: list[Group] = []
        problems: list[str] = []
        for name in split_groups(cell):
            found = self.directory.group(name)
            if isinstance(found, Unknown) and self.options.create_groups:
                found = self._stand_in(name)
            if isinstance(found, Unknown):
                self.missing_groups.setdefault(identity_key(name), name)
                problems.append(found.describe())
            elif not found.builtin and found not in groups:
                # Built-in memberships are computed by Sisense; writing them is refused.
                # A group named twice (by name and by id) is one membership.
                groups.append(found)
        if not problems:
            return tuple(groups)
        hint = ("" if self.options.create_groups
                else f"; fix the name or pass {flag('--create-groups')}")
        return "; ".join(problems) + hint

    def _stand_in(self, name: str) -> Group:
        """The group a row names that the server lacks, to be created before the first write
        (--create-groups): the plan names it by a stand-in id the sender replaces."""
        key = identity_key(name)
        if key not in self._stand_ins:
            self.missing_groups[key] = name
            self._stand_ins[key] = Group(id=f"{NEW_GROUP_ID}{name}", name=name)
            self._stand_in_names[self._stand_ins[key].id] = name
        return self._stand_ins[key]

    def new_groups(self) -> tuple[str, ...]:
        """The groups the plan needs created first (--create-groups), sorted by name."""
        return tuple(sorted((g.name for g in self._stand_ins.values()), key=str.casefold))

    def _group_names(self, group_ids: list[str]) -> list[str]:
        """Names of groups by id, the stand-ins of groups to create included."""
        known = self.directory.group_names(group_ids)
        return [self._stand_in_names.get(g) or name for g, name in zip(group_ids, known,
                                                                       strict=True)]

    def _claimed_by_another(self, user_name: str, email: str) -> str:
        """Why this row's user cannot have a userName an earlier row will give its user."""
        if not self._claimed:
            return ""
        holder = self._claimed.get(identity_key(user_name))
        if holder is not None and identity_key(holder) != identity_key(email):
            return f"userName {quote(user_name)} is also wanted by {holder} on an earlier row"
        return ""

    def _claim(self, key: str, email: str) -> None:
        """Reserve a userName (by its matching key) for a row that will be sent (a refused row
        holds nothing); only a name another row of the input may also want is worth
        remembering."""
        if self.repeats.may_share_name(key):
            self._claimed[key] = email

    def _user_or_problem(self, row: Row, action: str, email: str | None = None, *,
                         existing: str | None = None,
                         ) -> tuple[str, User | None, RowResult | None]:
        """The email a row names (as the server stores it when the user exists), that user,
        or the row's result when it cannot be used (``email``: its cell, when already read).
        ``existing``: the action of a row whose user exists, when not ``action`` (import's
        update)."""
        if email is None:
            email = self.header.value(row, "email")
        problem = row.problem or self._key_problem(row, email)
        if problem:
            # A row refused for its email (repeated on another row), or for the row itself,
            # still names a user it finds as the server stores them, with the action it had
            # in store for them: what the admin fixes is that user's row.
            found = self.directory.user_by_email(email) if email else None
            if found is None:
                return email, None, decided(row, email, action, Status.SKIPPED, error=problem)
            return found.email, None, decided(row, found.email, existing or action,
                                              Status.SKIPPED, user_id=found.id, error=problem)
        user = self.directory.user_by_email(email)
        # Results name a user as the server stores it, so the operator sees who is affected,
        # not only how the file spelt the address.
        return (user.email if user else email), user, None


def plain_text(cell: str) -> str | None:
    """A text field's cell as planning reads it: None (blank: leave it), "" ((clear)), or
    the text."""
    if not cell:
        return None
    # Most names are shorter than (clear): they are told apart without a call.
    return cell if len(cell) < CLEAR_LENGTH or not is_clear(cell) else ""
