"""Roles, groups and users loaded once per run; names and aliases resolved to ids."""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable, Mapping
from typing import Any

from bulkusers.frozen import frozen
from bulkusers.identity import identity_key
from bulkusers.safetext import quote
from bulkusers.spool import spooled

#: Groups whose membership Sisense computes; bulkusers never writes them.
BUILTIN_GROUPS = frozenset({"everyone", "all users in system", "admins"})

#: Words admins and HR systems use for Sisense's API role names (after normalising).
ROLE_ALIASES: Mapping[str, str] = {
    "viewer": "consumer",
    "designer": "contributor",
    "dashboarddesigner": "contributor",
    "sysadmin": "super",
    "systemadministrator": "super",
    "administrator": "admin",
}


#: The names the Sisense admin UI shows for the built-in roles, for servers (the legacy API)
#: whose roles carry no displayName.
UI_ROLE_NAMES: Mapping[str, str] = {
    "super": "Sys. Admin", "admin": "Admin", "dataAdmin": "Data Admin",
    "dataDesigner": "Data Designer", "contributor": "Designer", "consumer": "Viewer",
    "tenantAdmin": "Tenant Admin",
}


_IGNORED_IN_NAMES = re.compile(r"[\s._\-]+")


def _key(text: str) -> str:
    """Case-, space- and punctuation-insensitive key: 'Sys. Admin' and 'sysadmin' meet."""
    return _IGNORED_IN_NAMES.sub("", text).casefold()


@frozen
class Role:
    """A Sisense role: id, API name and the name the admin UI shows."""

    id: str
    name: str
    display_name: str

    @property
    def shown(self) -> str:
        """The name the Sisense admin UI shows (Viewer, Designer...), else the API name."""
        return self.display_name or UI_ROLE_NAMES.get(self.name, self.name)


@frozen
class Group:
    """A Sisense group; built-in groups are read but never written."""

    id: str
    name: str

    @property
    def builtin(self) -> bool:
        """True for Everyone, All users in system and Admins."""
        return self.name.casefold() in BUILTIN_GROUPS


@spooled
@frozen
class User:
    """The parts of a Sisense user that planning compares against."""

    id: str
    email: str
    user_name: str
    first_name: str
    last_name: str
    role_id: str
    group_ids: tuple[str, ...]
    active: bool | None = None
    language: str = ""

    @classmethod
    def from_api(cls, data: Mapping[str, Any]) -> User:
        """Build from a v1 user object (unexpanded)."""
        # Called for every user of the directory: values that are already text (nearly all)
        # are taken as they are, without a str() call each.
        get = data.get
        preferences = get("preferences")
        language = preferences.get("language") if isinstance(preferences, dict) else None
        active = get("active")
        return cls(_text(get("_id")), _text(get("email")), _text(get("userName")),
                   _text(get("firstName")), _text(get("lastName")), _text(get("roleId")),
                   tuple(map(_group_id, get("groups") or ())),
                   active if active is True or active is False else None, _text(language))


def _text(value: Any) -> str:
    """A JSON value as text: a string as it is, null or a missing value as ""."""
    return value if type(value) is str else str(value or "")


def _group_id(group: Any) -> str:
    """A group of a user's ``groups``: its id, or the id of an expanded group."""
    if type(group) is str:
        return group
    return str(group.get("_id") if isinstance(group, dict) else group)


@frozen
class Unknown:
    """A role or group name that matches nothing, with close names for a hint."""

    kind: str
    text: str
    suggestions: tuple[str, ...]

    def describe(self) -> str:
        """One line for the report: what is unknown and what might have been meant."""
        hint = ""
        if self.suggestions:
            hint = " (did you mean " + " or ".join(repr(s) for s in self.suggestions) + "?)"
        return f"unknown {self.kind} {quote(self.text)}{hint}"


class Directory:
    """Everything a run must know about the server, loaded once and indexed for O(1) lookups.

    A snapshot: read only once built. The plan is made against it, and nothing a run learns
    while it sends changes it."""

    def __init__(self, roles: Iterable[Role], groups: Iterable[Group],
                 users: Iterable[User] = ()) -> None:
        self.roles = tuple(roles)
        self.groups = tuple(groups)
        self._roles: dict[str, Role] = {}
        for role in self.roles:
            for name in (role.id, role.name, role.display_name):
                if name:
                    self._roles.setdefault(_key(name), role)
        for alias, target in ROLE_ALIASES.items():
            if target_role := self._roles.get(_key(target)):
                self._roles.setdefault(alias, target_role)
        self._groups: dict[str, Group] = {}
        for group in self.groups:
            self._groups.setdefault(identity_key(group.name), group)
            self._groups.setdefault(identity_key(group.id), group)
        self._users_by_email: dict[str, User] = {}
        self._users_by_name: dict[str, User] = {}
        self._users_by_id: dict[str, User] = {}
        for user in users:
            self._index(user)

    # -- roles and groups ---------------------------------------------------------------------

    def role(self, text: str) -> Role | Unknown:
        """The role named by API name, display name, alias or id, case-insensitively."""
        found = self._roles.get(_key(text))
        if found is not None:
            return found
        names = [r.display_name or r.name for r in self.roles] + [r.name for r in self.roles]
        return Unknown("role", text, _close(text, names))

    def role_by_id(self, role_id: str) -> Role | None:
        """The role with this id, or None."""
        return next((r for r in self.roles if r.id == role_id), None)

    def group(self, name: str) -> Group | Unknown:
        """The group with this name or id, ignoring ASCII letter case only (casefold() would
        make a row naming Strasse join Straße)."""
        found = self._groups.get(identity_key(name.strip()))
        if found is not None:
            return found
        return Unknown("group", name, _close(name, [g.name for g in self.groups]))

    def group_by_id(self, group_id: str) -> Group | None:
        """The group with this id, or None."""
        return self._groups.get(identity_key(group_id))

    # -- users --------------------------------------------------------------------------------

    def user_by_email(self, email: str) -> User | None:
        """The existing user with this email, ignoring ASCII letter case only."""
        return self._users_by_email.get(identity_key(email.strip()))

    def user_by_name(self, user_name: str) -> User | None:
        """The existing user with this userName, ignoring ASCII letter case only."""
        return self.user_by_name_key(identity_key(user_name.strip()))

    def user_by_name_key(self, key: str) -> User | None:
        """The existing user whose userName has this matching key (``identity_key`` of the
        trimmed userName: a caller that needs the key anyway computes it once)."""
        return self._users_by_name.get(key)

    def user_indexes(self) -> tuple[Mapping[str, User], Mapping[str, User]]:
        """The users by email key and by userName key (``identity_key`` of the trimmed
        text), for planning's look-ups of every row: a mapping's ``get`` is one C-level call
        where each method above is a Python one. Not to be changed."""
        return self._users_by_email, self._users_by_name

    def user_by_id(self, user_id: str) -> User | None:
        """The existing user with this id."""
        return self._users_by_id.get(user_id)

    def users(self) -> Iterable[User]:
        """Every known user."""
        return self._users_by_id.values()

    def _index(self, user: User) -> None:
        if user.email:
            self._users_by_email[identity_key(user.email)] = user
        if user.user_name:
            self._users_by_name[identity_key(user.user_name)] = user
        if user.id:
            self._users_by_id[user.id] = user

    def role_shown(self, role_id: str) -> str:
        """The name the admin UI shows for a role id ("?" when unknown)."""
        role = self.role_by_id(role_id)
        return role.shown if role else "?"

    def role_name(self, role_id: str) -> str:
        """The API name of a role id ("" when unknown)."""
        role = self.role_by_id(role_id)
        return role.name if role else ""

    def group_names(self, group_ids: Iterable[str]) -> list[str]:
        """Names of the given group ids, unknown ids shown as themselves."""
        names = []
        for group_id in group_ids:
            group = self.group_by_id(group_id)
            names.append(group.name if group else group_id)
        return names

    @property
    def user_count(self) -> int:
        """How many users the directory knows."""
        return len(self._users_by_email)


def _close(text: str, candidates: list[str]) -> tuple[str, ...]:
    by_key = {c.casefold(): c for c in candidates}
    matches = difflib.get_close_matches(text.casefold(), list(by_key), n=2, cutoff=0.75)
    return tuple(by_key[m] for m in matches)

