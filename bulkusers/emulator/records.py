"""The emulator's records (roles, users, groups), Sisense error codes and body-field validators.

Pure data and pure functions: `Store` builds on them, and the HTTP layers import the codes. Codes
come from sisense-api.md; those marked "guess" are undocumented.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from bulkusers.frozen import frozen
from bulkusers.identity import EMAIL as SPEC_EMAIL
from bulkusers.identity import identity_key

Json = dict[str, Any]

# Sisense error codes, as documented in sisense-api.md section 3.2.
INVALID_EXPAND, INVALID_OBJECT_ID, USER_NOT_FOUND, NOT_AN_ARRAY = 202, 601, 2001, 2002
MANDATORY_MISSING, USER_EXISTS = 2003, 2004
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
ADMIN_ROLES = frozenset({"super", "admin"})  # members of the built-in Admins group
#: Roles that may write users and groups. Documented: permissions are per capability
#: (``manage/users/*``) and a tenant admin can manage users, viewers cannot ([SPEC-v1], section 12).
#: Inferred: data admins and designers cannot either (their capabilities are about data).
USER_MANAGER_ROLES = frozenset({"super", "admin", "tenantAdmin"})
#: Roles that may read ``/api/roles`` (documented: ``x-permission-type: designers-and-admins-only``,
#: [SPEC-v09]) and, inferred from the same rule, users and groups: everyone but a Viewer.
READER_ROLES = frozenset({"super", "admin", "tenantAdmin", "dataAdmin", "dataDesigner",
                          "contributor"})
EVERYONE, ALL_USERS, ADMINS = "Everyone", "All users in system", "Admins"
BUILTIN_GROUPS = (EVERYONE, ALL_USERS, ADMINS)

_OBJECT_ID = re.compile(r"^[0-9a-fA-F]{24}$")
#: (body key, record attribute, must not be blank) of the user's text fields.
TEXT_FIELDS = (("email", "email", True), ("userName", "user_name", True),
               ("firstName", "first_name", False), ("lastName", "last_name", False),
               ("password", "password", True))
#: The email rule of Sisense's v1 specification (see bulkusers.identity.EMAIL): the emulator
#: refuses what a real server refuses, and bulkusers judges rows by the same rule.
EMAIL = SPEC_EMAIL


def iso(moment: datetime) -> str:
    """Format a moment the way Sisense does: ISO-8601 UTC with milliseconds and ``Z``."""
    # isoformat is C code; strftime plus an f-string cost a created user several microseconds.
    return moment.astimezone(UTC).isoformat(timespec="milliseconds")[:-6] + "Z"


class StoreError(Exception):
    """A request the directory refuses, carrying the HTTP status and Sisense error code."""

    def __init__(self, status: int, code: int, message: str, **extra: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.extra = status, code, message, extra


@frozen
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


_MD5_PREFIX = "md5$"
MD5_HEX = re.compile(r"^[0-9a-fA-F]{32}$")


def hash_password(password: str, salt: str | None = None) -> str:
    """Salted SHA-256: an emulator is no vault, and a slow KDF would throttle bulk imports."""
    salt = salt or secrets.token_hex(8)
    return salt + "$" + hashlib.sha256((salt + password).encode()).hexdigest()


def md5_password(md5_hex: str) -> str:
    """The stored form of a password given as v0.9's ``hash`` (the md5 hex of the password)."""
    return _MD5_PREFIX + md5_hex.lower()


def password_matches(user: UserRecord, password: str) -> bool:
    """True if the user has a password and it is exactly `password`."""
    if user.password_hash is None:
        return False
    if user.password_hash.startswith(_MD5_PREFIX):
        digest = hashlib.md5(password.encode(), usedforsecurity=False).hexdigest()
        return hmac.compare_digest(user.password_hash, md5_password(digest))
    salt = user.password_hash.split("$", 1)[0]
    return hmac.compare_digest(user.password_hash, hash_password(password, salt))


def object_id(value: object, what: str) -> str:
    """Return `value` if it is a 24-hex ObjectId string, else refuse it with 422 code 601."""
    if isinstance(value, str) and _OBJECT_ID.match(value):
        return value.lower()
    raise StoreError(422, INVALID_OBJECT_ID, f"Invalid ObjectId for {what}: {value!r}")


def require_object(body: object) -> dict[str, Any]:
    """The body as a JSON object, else 422."""
    if not isinstance(body, dict):
        raise StoreError(422, VALIDATION, "Expected a JSON object")
    return body


def text_field(data: dict[str, Any], key: str, *, required: bool,
               nonempty: bool = False) -> str | None:
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


#: The uniqueness key of an email or userName: ASCII letter case ignored, nothing else folded
#: (inferred: Sisense documents no rule; mail systems tell straße from strasse).
identity = identity_key
