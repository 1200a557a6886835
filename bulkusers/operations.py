"""Per-row planning against the directory (pure), and the thin execution of each plan.

Planning decides everything a row will do before anything is sent: an invalid row becomes a
``skipped`` result with its reason; a valid one becomes a task that names the exact request.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from bulkusers.directory import Directory, Group, Role, Unknown, User
from bulkusers.models import Header, Row, RowResult, Status

EMAIL_PATTERN = re.compile(r"^[^@\s]+@[^@\s.]+(\.[^@\s.]+)+$")
GROUP_SEPARATORS = re.compile(r"[;|]")


@dataclass(frozen=True, slots=True)
class ImportOptions:
    """How ``import`` treats rows: the role for rows with a blank role cell."""

    default_role: str | None = None


@dataclass(frozen=True, slots=True)
class Prescan:
    """What one pass over the whole input found: row count and emails used more than once."""

    total: int
    duplicates: Mapping[str, tuple[int, ...]] = field(default_factory=dict)

    def other_rows(self, email: str, number: int) -> tuple[int, ...]:
        """The other rows that carry this email (empty when it is unique)."""
        return tuple(n for n in self.duplicates.get(email.casefold(), ()) if n != number)


def prescan(rows: Iterable[Row], header: Header) -> Prescan:
    """Count rows and find repeated emails, keeping memory small (hashes, not strings)."""
    first_row: dict[int, int] = {}
    repeated: dict[int, list[int]] = {}
    repeated_email: dict[int, str] = {}
    total = 0
    for row in rows:
        total += 1
        email = header.value(row, "email").casefold()
        if not email:
            continue
        digest = hash(email)
        if digest in first_row:
            repeated.setdefault(digest, [first_row[digest]]).append(row.number)
            repeated_email[digest] = email
        else:
            first_row[digest] = row.number
    duplicates = {repeated_email[d]: tuple(numbers) for d, numbers in repeated.items()}
    return Prescan(total=total, duplicates=duplicates)


@dataclass(frozen=True, slots=True)
class CreateTask:
    """Create one user with a fully resolved payload."""

    row: Row
    email: str
    payload: Mapping[str, Any]
    changes: str


def skipped(row: Row, email: str, action: str, reason: str) -> RowResult:
    """An invalid row: reported with its reason, never sent."""
    return RowResult(row=row, email=email, action=action, status=Status.SKIPPED, error=reason)


def split_groups(cell: str) -> list[str]:
    """Group names from a cell separated by ``;`` or ``|``, blanks dropped, order kept."""
    names: list[str] = []
    for part in GROUP_SEPARATORS.split(cell):
        name = part.strip()
        if name and name.casefold() not in (n.casefold() for n in names):
            names.append(name)
    return names


def _resolve_role(text: str, directory: Directory) -> Role | str:
    found = directory.role(text)
    return found.describe() if isinstance(found, Unknown) else found


def _resolve_groups(cell: str, directory: Directory) -> list[Group] | str:
    groups: list[Group] = []
    problems: list[str] = []
    for name in split_groups(cell):
        found = directory.group(name)
        if isinstance(found, Unknown):
            problems.append(found.describe())
        elif not found.builtin:
            # Built-in memberships are computed by Sisense; writing them is refused or ignored.
            groups.append(found)
    return "; ".join(problems) if problems else groups


def plan_create(row: Row, header: Header, directory: Directory, scan: Prescan,
                options: ImportOptions) -> CreateTask | RowResult:
    """Validate an import row and plan the user's creation, or say why it is skipped."""
    action = "create"
    email = header.value(row, "email")
    if not email:
        return skipped(row, email, action, "no email; every row needs one")
    if not EMAIL_PATTERN.match(email):
        return skipped(row, email, action, f"malformed email {email!r}")
    others = scan.other_rows(email, row.number)
    if others:
        listed = ", ".join(str(n) for n in others)
        return skipped(row, email, action,
                       f"email also on row {listed}; keep one row per user")
    if directory.user_by_email(email) is not None:
        existing = directory.user_by_email(email)
        return RowResult(row=row, email=email, action=action, status=Status.SKIPPED,
                         user_id=existing.id if existing else "",
                         changes="none: user already exists")
    user_name = header.value(row, "userName") or email
    holder = directory.user_by_name(user_name)
    if holder is not None:
        return skipped(row, email, action,
                       f"userName {user_name!r} is taken by {holder.email}")
    role_text = header.value(row, "role") or (options.default_role or "")
    if not role_text:
        return skipped(row, email, action,
                       "no role; fill the role column or pass --default-role viewer")
    role = _resolve_role(role_text, directory)
    if isinstance(role, str):
        return skipped(row, email, action, role)
    groups = _resolve_groups(header.value(row, "groups"), directory)
    if isinstance(groups, str):
        return skipped(row, email, action, groups)
    payload: dict[str, Any] = {"email": email, "userName": user_name, "roleId": role.id,
                               "groups": [g.id for g in groups]}
    for field_name in ("firstName", "lastName", "password"):
        if value := header.value(row, field_name):
            payload[field_name] = value
    if language := header.value(row, "language"):
        payload["preferences"] = {"language": language}
    changes = f"role {role.name}"
    if groups:
        changes += "; groups " + " ".join("+" + g.name for g in groups)
    return CreateTask(row=row, email=email, payload=payload, changes=changes)


def user_from_created(created: Mapping[str, Any], task: CreateTask) -> User:
    """The directory entry for a user the server just created."""
    merged = {**task.payload, **created}
    return User.from_api(merged)


class Stopwatch:
    """Milliseconds since construction, for the report's ``elapsed_ms``."""

    def __init__(self) -> None:
        self._start = time.perf_counter()

    def ms(self) -> float:
        """Elapsed milliseconds, rounded to 0.1."""
        return round((time.perf_counter() - self._start) * 1000, 1)
