"""The emulator's in-memory Sisense directory: roles, users, groups, tokens and the API's rules.

Pure Python (no aiohttp) so tests can inspect and prepare it directly. Every rule the real API
enforces on users and groups lives here and fails with `StoreError`, which the HTTP layer turns into
the Sisense error envelope. Codes come from sisense-api.md; those marked "guess" are undocumented.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import jwt

Json = dict[str, Any]

# Sisense error codes, as documented in sisense-api.md section 3.2.
INVALID_OBJECT_ID, USER_NOT_FOUND, MANDATORY_MISSING, USER_EXISTS = 601, 2001, 2003, 2004
DUPLICATE_IN_PAYLOAD, MULTIPLE_SUPER, MANDATORY_EMPTY, SUPER_UNDELETABLE = 2005, 2006, 2009, 2011
# Guessed codes: no source documents these (VALIDATION is a value of the wrong type or shape).
VALIDATION, ROLE_NOT_FOUND, GROUP_NOT_FOUND = 600, 2101, 2201
GROUP_EXISTS, BUILTIN_GROUP = 2204, 2211

#: (API name, UI display name) of the built-in roles, in Sisense's order.
ROLES: tuple[tuple[str, str], ...] = (
    ("super", "Sys. Admin"), ("admin", "Admin"), ("dataAdmin", "Data Admin"),
    ("dataDesigner", "Data Designer"), ("contributor", "Designer"), ("consumer", "Viewer"),
    ("tenantAdmin", "Tenant Admin"),
)
ADMIN_ROLES = frozenset({"super", "admin"})
EVERYONE, ALL_USERS, ADMINS = "Everyone", "All users in system", "Admins"
BUILTIN_GROUPS = (EVERYONE, ALL_USERS, ADMINS)

_OBJECT_ID = re.compile(r"^[0-9a-fA-F]{24}$")
#: (body key, record attribute, must not be blank) of the user's text fields.
_TEXT_FIELDS = (("email", "email", True), ("userName", "user_name", True),
                ("firstName", "first_name", False), ("lastName", "last_name", False),
                ("password", "password", True))
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


def iso(moment: datetime) -> str:
    """Format a moment the way Sisense does: ISO-8601 UTC with milliseconds and ``Z``."""
    moment = moment.astimezone(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


class StoreError(Exception):
    """A request the directory refuses, carrying the HTTP status and Sisense error code."""

    def __init__(self, status: int, code: int, message: str, **extra: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.extra = status, code, message, extra


@dataclass(frozen=True, slots=True)
class Role:
    """A built-in Sisense role."""

    id: str
    name: str
    display_name: str

    def to_json(self) -> Json:
        """The role as ``GET /api/roles`` shows it."""
        return {"_id": self.id, "name": self.name, "displayName": self.display_name,
                "baseRoleName": self.name, "desc": f"Built-in {self.display_name} role"}


@dataclass(slots=True)
class UserRecord:
    """One stored user; `to_json` gives the public v1 form (never the password hash)."""

    id: str
    email: str
    user_name: str
    role_id: str
    tenant_id: str
    created: str
    first_name: str = ""
    last_name: str = ""
    groups: list[str] = field(default_factory=list)
    preferences: Json = field(default_factory=lambda: {"localeId": None, "language": None})
    password_hash: str | None = None
    active: bool = False
    last_login: str | None = None
    last_updated: str = ""

    def to_json(self) -> Json:
        """The user as ``GET /api/v1/users`` shows it, unexpanded."""
        return {"_id": self.id, "email": self.email, "userName": self.user_name,
                "firstName": self.first_name, "lastName": self.last_name, "roleId": self.role_id,
                "groups": list(self.groups), "active": self.active, "created": self.created,
                "lastUpdated": self.last_updated or self.created, "lastLogin": self.last_login,
                "preferences": dict(self.preferences), "origin": "sisense",
                "tenantId": self.tenant_id}


@dataclass(slots=True)
class GroupRecord:
    """One stored group; built-in groups have their membership derived, never stored."""

    id: str
    name: str
    tenant_id: str
    created: str
    mail: str | None = None
    builtin: bool = False

    def to_json(self) -> Json:
        """The group as ``GET /api/v1/groups`` shows it, unexpanded."""
        return {"_id": self.id, "name": self.name, "mail": self.mail, "ad": False, "roleId": None,
                "created": self.created, "lastUpdated": self.created, "tenantId": self.tenant_id}


def hash_password(password: str, salt: str | None = None) -> str:
    """Salted SHA-256: an emulator is no vault, and a slow KDF would throttle bulk imports."""
    salt = salt or secrets.token_hex(8)
    return salt + "$" + hashlib.sha256((salt + password).encode()).hexdigest()


def object_id(value: object, what: str) -> str:
    """Return `value` if it is a 24-hex ObjectId string, else refuse it with 422 code 601."""
    if isinstance(value, str) and _OBJECT_ID.match(value):
        return value.lower()
    raise StoreError(422, INVALID_OBJECT_ID, f"Invalid ObjectId for {what}: {value!r}")


class Store:
    """Roles, users, groups and bearer tokens of one emulated Sisense tenant."""

    def __init__(self, seed: int = 0, clock: Callable[[], datetime] | None = None) -> None:
        self._prefix = f"65f1{seed & 0xFFFF:04x}"
        self._counter = 0
        self._secret = secrets.token_hex(16)
        self.clock = clock or (lambda: datetime.now(UTC))
        self.token_ttl_s: float | None = None  # set to make newly issued tokens expire
        self.tenant_id = self.new_id()
        self.roles = {r.id: r for r in (Role(self.new_id(), n, d) for n, d in ROLES)}
        self.role_ids = {role.name: role.id for role in self.roles.values()}  # API name -> id
        self.users: dict[str, UserRecord] = {}
        self.groups: dict[str, GroupRecord] = {}
        self._emails: dict[str, str] = {}  # lower-cased email -> user id
        self._user_names: dict[str, str] = {}  # lower-cased userName -> user id
        self._group_names: dict[str, str] = {}  # lower-cased group name -> group id
        self._tokens: dict[str, tuple[str, float | None]] = {}  # token -> (user id, expiry)
        for name in BUILTIN_GROUPS:
            self._add_group(name, None, builtin=True)

    def new_id(self) -> str:
        """A fresh 24-hex ObjectId-like id, deterministic for a given seed."""
        self._counter += 1
        return f"{self._prefix}{self._counter:016x}"

    def now(self) -> str:
        """The store clock's current time, Sisense-formatted."""
        return iso(self.clock())

    def user_by_email(self, email: str) -> Json | None:
        """The public JSON of the user with this email (case-insensitive), or None."""
        user_id = self._emails.get(email.lower())
        return self.users[user_id].to_json() if user_id else None

    def group_by_name(self, name: str) -> Json | None:
        """The public JSON of the group with this name (case-insensitive), or None."""
        group_id = self._group_names.get(name.lower())
        return self.groups[group_id].to_json() if group_id else None

    def role_by_name(self, name: str) -> Json | None:
        """The JSON of the role with this API name, or None."""
        role_id = self.role_ids.get(name)
        return self.roles[role_id].to_json() if role_id else None

    def get_user(self, user_id: str) -> UserRecord:
        """The user with this id, else 422/601 (malformed) or 404/2001."""
        user = self.users.get(object_id(user_id, "user id"))
        if user is None:
            raise StoreError(404, USER_NOT_FOUND, "User not found")
        return user

    def get_group(self, group_id: str) -> GroupRecord:
        """The group with this id, else 422/601 (malformed) or 404."""
        group = self.groups.get(object_id(group_id, "group id"))
        if group is None:
            raise StoreError(404, GROUP_NOT_FOUND, "Group not found", resourceType="group",
                             resourceName=group_id)
        return group

    def group_names_of(self, user_id: str) -> set[str]:
        """Names of the user's explicit (stored) group memberships."""
        return {self.groups[g].name for g in self.users[user_id].groups}

    def role_name_of(self, user_id: str) -> str:
        """API name of the user's role."""
        return self.roles[self.users[user_id].role_id].name

    def group_members(self, group_id: str) -> list[UserRecord]:
        """Members of a group, with the built-in groups' membership derived from the directory."""
        group = self.groups[group_id]
        if group.name in (EVERYONE, ALL_USERS) and group.builtin:
            return list(self.users.values())
        if group.name == ADMINS and group.builtin:
            return [u for u in self.users.values() if self.role_name_of(u.id) in ADMIN_ROLES]
        return [u for u in self.users.values() if group_id in u.groups]

    def check_password(self, email: str, password: str) -> bool:
        """True if the user with this email has exactly this password."""
        user_id = self._emails.get(email.lower())
        return user_id is not None and self._password_ok(self.users[user_id], password)

    def login(self, username: str, password: str) -> tuple[str, UserRecord] | None:
        """Log in by userName or email: a new token and the user, or None if refused."""
        key = username.lower()
        user_id = self._user_names.get(key) or self._emails.get(key)
        if user_id is None or not self._password_ok(self.users[user_id], password):
            return None
        user = self.users[user_id]
        user.last_login = self.now()
        return self.issue_token(user.id), user

    def issue_token(self, user_id: str, fixed: str | None = None) -> str:
        """Issue a bearer token for the user: an HS256 JWT shaped like Sisense's, or `fixed`."""
        if fixed is not None:  # the settings' token: accepted as is, never expires
            self._tokens[fixed] = (user_id, None)
            return fixed
        issued = time.time()
        claims: Json = {"user": user_id, "apiSecret": secrets.token_hex(16), "iat": int(issued)}
        expiry = None if self.token_ttl_s is None else issued + self.token_ttl_s
        if expiry is not None:
            claims["exp"] = int(expiry)
        token = jwt.encode(claims, self._secret, algorithm="HS256")
        self._tokens[token] = (user_id, expiry)
        return token

    def token_user(self, token: str) -> str | None:
        """The id of the live user a valid, unexpired token belongs to, or None."""
        user_id, expiry = self._tokens.get(token, ("", None))
        alive = expiry is None or time.time() < expiry
        return user_id if alive and user_id in self.users else None

    def revoke_token(self, token: str) -> None:
        """Forget one token."""
        self._tokens.pop(token, None)

    def revoke_tokens(self, user_id: str) -> int:
        """Forget every token of the user (fixed ones included); return how many."""
        doomed = [t for t, (owner, _) in self._tokens.items() if owner == user_id]
        for token in doomed:
            del self._tokens[token]
        return len(doomed)

    def create_users(self, bodies: list[object], *, bulk: bool) -> list[UserRecord]:
        """Validate every body, then create them all or refuse them all (all-or-nothing)."""
        drafts = [self._user_draft(body) for body in bodies]
        seen: set[str] = set()
        for draft in drafts:
            keys = {"e:" + draft.email.lower(), "u:" + draft.user_name.lower()}
            if bulk and keys & seen:
                raise StoreError(400, DUPLICATE_IN_PAYLOAD, "The payload contains duplicate users.")
            seen |= keys
        if any(self._clashes(d.email, d.user_name, None) for d in drafts):
            message = "One or more of the given users already exists." if bulk else (
                "A user with this email or userName already exists.")
            raise StoreError(400, USER_EXISTS, message)
        for draft in drafts:
            self.insert_user(draft)
        return drafts

    def update_user(self, user_id: str, body: object) -> UserRecord:
        """Apply a partial update; `groups` replaces membership and `active` is read-only."""
        user = self.get_user(user_id)
        fields = self._validated(body, create=False)
        email, user_name = fields.get("email", user.email), fields.get("user_name", user.user_name)
        if self._clashes(email, user_name, user.id):
            raise StoreError(400, USER_EXISTS, "A user with this email or userName already exists.")
        role_id = fields.get("role_id", user.role_id)
        if role_id != user.role_id and self.role_ids["super"] in (user.role_id, role_id):
            raise StoreError(400, MULTIPLE_SUPER, "There can be only one super user.")
        # Every check passed: only now touch the record, so a refused PATCH changes nothing.
        self._unindex_user(user)
        for attr, value in fields.items():
            setattr(user, attr, value)
        user.last_updated = self.now()
        self.insert_user(user)
        return user

    def delete_users(self, user_ids: Iterable[str]) -> None:
        """Delete users, all or none: 404/2001 if any is unknown, 400/2011 for the super user."""
        users = [self.get_user(user_id) for user_id in dict.fromkeys(user_ids)]
        if any(self.roles[u.role_id].name == "super" for u in users):
            raise StoreError(400, SUPER_UNDELETABLE, "The super user cannot be deleted.")
        for user in users:
            self._unindex_user(user)
            del self.users[user.id]
            self.revoke_tokens(user.id)

    def _user_draft(self, body: object) -> UserRecord:
        """Validate one create body into an unsaved record (uniqueness is checked by the caller)."""
        fields = self._validated(body, create=True)
        if fields["role_id"] == self.role_ids["super"]:
            raise StoreError(400, MULTIPLE_SUPER, "There can be only one super user.")
        fields.setdefault("user_name", fields["email"])
        now = self.now()
        return UserRecord(self.new_id(), tenant_id=self.tenant_id, created=now, last_updated=now,
                          **fields)

    def _validated(self, body: object, *, create: bool) -> dict[str, Any]:
        """Check a create or PATCH body; return the record attributes it sets."""
        data = _require_object(body)
        fields: dict[str, Any] = {}
        if not create and "email" in data and data["email"] is None:
            raise StoreError(400, MANDATORY_EMPTY, "Field must not be empty: email")
        for key, attr, nonempty in _TEXT_FIELDS:
            value = _text(data, key, required=create and key == "email", nonempty=nonempty)
            if value is not None:
                fields[attr] = value
            elif key in data and not nonempty:
                fields[attr] = ""  # an explicit null clears a name; other nulls mean "not given"
        if "email" in fields and not _EMAIL.match(fields["email"]):
            raise StoreError(422, VALIDATION, f"Invalid email: {fields['email']!r}")
        if "roleId" in data:
            fields["role_id"] = self._role_id(data["roleId"])
        elif create:
            raise StoreError(422, MANDATORY_MISSING, "Mandatory field is missing: roleId")
        if "groups" in data:
            fields["groups"] = self._group_ids(data["groups"])
        if "preferences" in data:
            if not isinstance(data["preferences"], dict):
                raise StoreError(422, VALIDATION, "preferences must be an object")
            fields["preferences"] = dict(data["preferences"])
        if "password" in fields:
            # Setting a password is what activates an account (sisense-api.md section 5).
            fields["password_hash"], fields["active"] = hash_password(fields.pop("password")), True
        return fields

    def _role_id(self, value: object) -> str:
        role_id = object_id(value, "roleId")
        if role_id not in self.roles:
            raise StoreError(404, ROLE_NOT_FOUND, "Role not found", resourceType="role",
                             resourceName=role_id)
        return role_id

    def _group_ids(self, value: object) -> list[str]:
        if not isinstance(value, list):
            raise StoreError(422, VALIDATION, "groups must be an array of group ids")
        ids = [self.get_group(object_id(item, "groups")).id for item in value]
        # Built-in groups are computed, never stored on a user, so naming them is a no-op.
        return [g for g in dict.fromkeys(ids) if not self.groups[g].builtin]

    def _clashes(self, email: str, user_name: str, own_id: str | None) -> bool:
        others = {self._emails.get(email.lower()), self._user_names.get(user_name.lower())}
        return bool(others - {None, own_id})

    def insert_user(self, user: UserRecord) -> None:
        """Store a ready-made record as is, without validation (for seeding)."""
        self.users[user.id] = user
        self._emails[user.email.lower()] = user.id
        self._user_names[user.user_name.lower()] = user.id

    def _unindex_user(self, user: UserRecord) -> None:
        self._emails.pop(user.email.lower(), None)
        self._user_names.pop(user.user_name.lower(), None)

    @staticmethod
    def _password_ok(user: UserRecord, password: str) -> bool:
        if user.password_hash is None:
            return False
        salt = user.password_hash.split("$", 1)[0]
        return hmac.compare_digest(user.password_hash, hash_password(password, salt))

    def create_groups(self, bodies: list[object]) -> list[GroupRecord]:
        """Validate every group body, then create them all or none; names are unique, any case."""
        names: list[tuple[str, str | None]] = []
        for body in bodies:
            data = _require_object(body)
            name = _text(data, "name", required=True, nonempty=True) or ""
            if name.lower() in self._group_names:
                raise StoreError(400, GROUP_EXISTS, f"A group named {name!r} already exists.")
            if any(name.lower() == seen.lower() for seen, _ in names):
                raise StoreError(400, DUPLICATE_IN_PAYLOAD, "The payload repeats a group name.")
            names.append((name, _text(data, "mail", required=False)))
        return [self._add_group(name, mail) for name, mail in names]

    def delete_group(self, group_id: str) -> None:
        """Delete a group and every membership in it; built-in groups are refused."""
        group = self.get_group(group_id)
        if group.builtin:
            raise StoreError(400, BUILTIN_GROUP, f"Built-in group {group.name} can't be deleted.")
        del self.groups[group.id]
        del self._group_names[group.name.lower()]
        for user in self.users.values():
            if group.id in user.groups:
                user.groups.remove(group.id)

    def _add_group(self, name: str, mail: str | None, *, builtin: bool = False) -> GroupRecord:
        group = GroupRecord(self.new_id(), name, self.tenant_id, self.now(), mail, builtin)
        self.groups[group.id] = group
        self._group_names[name.lower()] = group.id
        return group


def _require_object(body: object) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise StoreError(422, VALIDATION, "Expected a JSON object")
    return body


def _text(data: dict[str, Any], key: str, *, required: bool, nonempty: bool = False) -> str | None:
    """A string field: None when absent or null, 422/2003 if required, 400/2009 if blank."""
    value = data.get(key)
    if value is None:
        if required:
            raise StoreError(422, MANDATORY_MISSING, f"Mandatory field is missing: {key}")
        return None
    if not isinstance(value, str):
        raise StoreError(422, VALIDATION, f"{key} must be a string")
    if nonempty and not value.strip():
        raise StoreError(400, MANDATORY_EMPTY, f"Field must not be empty: {key}")
    return value

