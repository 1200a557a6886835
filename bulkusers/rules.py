"""The rules every planner applies, as values and small pure functions: the options, what a
cell means (blank, ``(clear)``, a list of groups), and who may never be touched."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, Literal, get_args

from bulkusers.directory import Directory, Group, Role, Unknown
from bulkusers.errors import ConfigError
from bulkusers.frozen import frozen
from bulkusers.identity import identity_key
from bulkusers.safetext import clean

GROUP_SEPARATORS = re.compile(r"[;|]")
#: Characters that show nothing (zero-width spaces and joiners, soft hyphen, word joiner,
#: byte-order mark, direction marks): inside an address they make a look-alike of another.
INVISIBLE = re.compile("[\u00ad\u180e\u200b-\u200f\u2060-\u2064\ufeff]")
#: A cell holding exactly this (any case) empties the field; a blank cell leaves it alone.
CLEAR = "(clear)"
#: The shortest cell that can say (clear).
CLEAR_LENGTH = len(CLEAR)
#: The role a deactivated user is given: Viewer, the least a Sisense user can hold.
DEACTIVATED_ROLE = "consumer"
#: Marks where execution puts a fresh random password; planning stays deterministic.
NEW_PASSWORD = "<random>"
#: How a plan names a group that --create-groups creates before the first write.
NEW_GROUP_ID = "(new group) "

OnExisting = Literal["skip", "update", "fail"]
GroupsMode = Literal["add", "replace"]


@frozen
class PlanOptions:
    """How rows are turned into tasks."""

    default_role: str | None = None
    #: What an import does with a user that exists; None: the command's own default (skip
    #: for import; sync always updates).
    on_existing: OnExisting | None = None
    #: How a groups cell changes a user's groups; None: the command's own default (add; sync
    #: replaces).
    groups_mode: GroupsMode | None = None
    create_groups: bool = False
    #: Create and update emails exactly as typed instead of in lower case (--keep-email-case).
    keep_email_case: bool = False

    def __post_init__(self) -> None:
        # The CLI's choices are checked by click; a Python caller's are checked here, so that
        # a misspelt mode is refused instead of planned as the default.
        if self.on_existing is not None:
            _choice("on_existing", self.on_existing, OnExisting)
        if self.groups_mode is not None:
            _choice("groups_mode", self.groups_mode, GroupsMode)


def _choice(name: str, value: object, allowed: object) -> None:
    """ConfigError unless ``value`` is one of the ``Literal`` type ``allowed``'s values."""
    choices = get_args(allowed)
    if value not in choices:
        raise ConfigError(f"{name}={value!r}: choose one of "
                          f"{', '.join(repr(c) for c in choices)}")


def split_groups(cell: str) -> list[str]:
    """Group names from a cell separated by ``;`` or ``|``, blank-looking parts dropped, order
    kept; a cell of separators only names no group."""
    names: list[str] = []
    for part in GROUP_SEPARATORS.split(cell):
        name = clean(part)
        if name and identity_key(name) not in (identity_key(n) for n in names):
            names.append(name)
    return names


def is_clear(text: str) -> bool:
    # Most cells are far from 7 characters: only those near it can be "(clear)".
    return len(text) >= CLEAR_LENGTH and clean(text).casefold() == CLEAR


def clears_alone(cell: str) -> bool:
    """True for a groups cell that holds (clear) and separators only, such as "(clear);"."""
    if CLEAR not in cell.casefold():
        return False
    names = split_groups(cell)
    return bool(names) and all(is_clear(name) for name in names)


@frozen
class Wanted:
    """What a row asks for. None: leave alone (blank cell); "" or []: clear it."""

    #: The address as it is to be stored (trimmed; lower case unless --keep-email-case).
    email: str
    user_name: str | None
    first_name: str | None
    last_name: str | None
    role: Role | None
    groups: tuple[Group, ...] | None
    password: str
    language: str | None
    clear_groups: bool = False


def protected_users(directory: Directory, me: Mapping[str, Any] | None) -> dict[str, str]:
    """Users no run may deactivate or delete: the ``super`` user(s) and the account in use."""
    protected: dict[str, str] = {}
    super_role = directory.role("super")
    if not isinstance(super_role, Unknown):
        for user in directory.users():
            if user.role_id == super_role.id:
                protected[user.id] = f"the super user {user.email}"
    if me and me.get("_id"):
        me_id = str(me["_id"])
        running = f"the account running bulkusers ({me.get('email', '')})"
        protected[me_id] = f"{protected[me_id]}, {running}" if me_id in protected else running
    return protected
