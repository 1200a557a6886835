"""What a user create or update body may hold, checked into record attributes, as Sisense checks it.

Pure functions over one body: the text fields, the email pattern, ``roleId`` and ``groups`` (looked
up in a `Directory`), ``preferences``, the v0.9-only ``hash`` and ``active``, and the password
hashing. A refused body fails with `StoreError`. Rules that need the whole directory (unique emails
and userNames, a single super user) stay with `Store`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Protocol

from bulkusers.emulator.records import (
    EMAIL,
    MANDATORY_EMPTY,
    MANDATORY_MISSING,
    MD5_HEX,
    ROLE_NOT_FOUND,
    TEXT_FIELDS,
    VALIDATION,
    GroupRecord,
    Role,
    StoreError,
    hash_password,
    md5_password,
    object_id,
    require_object,
    text_field,
)


class Directory(Protocol):
    """The lookups a body's ``roleId`` and ``groups`` are checked against (a `Store` is one)."""

    @property
    def roles(self) -> Mapping[str, Role]:
        """Role id -> role."""

    @property
    def role_ids(self) -> Mapping[str, str]:
        """Role API name -> role id."""

    def get_group(self, group_id: str) -> GroupRecord:
        """The group with this id, else 422/601 (malformed) or 404."""


def user_fields(body: object, directory: Directory, *, create: bool,
                legacy: bool = False) -> dict[str, Any]:
    """Check a create or update body; return the record attributes it sets.

    `legacy` applies the v0.9 rules (``hash``, ``active``, an optional ``roleId``).
    """
    data = require_object(body)
    fields: dict[str, Any] = {}
    if not create and "email" in data and data["email"] is None:
        raise StoreError(400, MANDATORY_EMPTY, "Field must not be empty: email")
    for key, attr, nonempty in TEXT_FIELDS:
        value = text_field(data, key, required=create and key == "email", nonempty=nonempty)
        if value is not None:
            fields[attr] = value
        elif key in data and not nonempty:
            fields[attr] = ""  # an explicit null clears a name; other nulls mean "not given"
    if "email" in fields and not EMAIL.match(fields["email"]):
        # Documented: the spec's email pattern, see records.EMAIL. 400, like every other
        # invalid field value of a create (inferred: the spec names no status for it).
        raise StoreError(400, VALIDATION, f"Invalid email: {fields['email']!r}")
    if create:
        fields.setdefault("user_name", fields["email"])  # no userName: the email is one
    if "roleId" in data:
        fields["role_id"] = _role_id(data["roleId"], directory.roles)
    elif create and legacy:
        # Inferred: the pre-6.5 script creates users without a roleId ([KB-LEGACY]) and
        # they could sign in, so the server must have given them its default role, Viewer.
        fields["role_id"] = directory.role_ids["consumer"]
    elif create:
        raise StoreError(422, MANDATORY_MISSING, "Mandatory field is missing: roleId")
    if legacy:
        fields.update(_legacy_fields(data, create=create))
    if "groups" in data:
        fields["groups"] = _group_ids(data["groups"], directory.get_group)
    if "preferences" in data:
        if not isinstance(data["preferences"], dict):
            raise StoreError(422, VALIDATION, "preferences must be an object")
        fields["preferences"] = dict(data["preferences"])
    if "password" in fields:
        # Setting a password is what activates an account (sisense-api.md section 5).
        fields["password_hash"], fields["active"] = hash_password(fields.pop("password")), True
        fields.pop("md5", None)
    elif "md5" in fields:
        fields["password_hash"] = md5_password(fields.pop("md5"))
        fields.setdefault("active", True)
    return fields


def _role_id(value: object, roles: Mapping[str, Role]) -> str:
    """The id ``roleId`` names, else 422/601 (malformed) or 404 (no such role)."""
    role_id = object_id(value, "roleId")
    if role_id not in roles:
        raise StoreError(404, ROLE_NOT_FOUND, "Role not found", resourceType="role",
                         resourceName=role_id)
    return role_id


def _group_ids(value: object, group: Callable[[str], GroupRecord]) -> list[str]:
    """The stored group ids ``groups`` names, once each, in order; any unknown one fails."""
    if not isinstance(value, list):
        raise StoreError(422, VALIDATION, "groups must be an array of group ids")
    found = {g.id: g for g in (group(object_id(item, "groups")) for item in value)}
    # Built-in groups are computed, never stored on a user, so naming them is a no-op.
    return [g.id for g in found.values() if not g.builtin]


def _legacy_fields(data: dict[str, Any], *, create: bool) -> dict[str, Any]:
    """The v0.9-only body fields of a user: ``hash`` (md5 hex of the password) and ``active``."""
    fields: dict[str, Any] = {}
    digest = data.get("hash")
    # Documented: pre-6.5 creates carry the md5 hex of the password as `hash` ([KB-LEGACY]).
    # A sync script sends the text "null" for no password (sisense-api.md section 4): inferred
    # to mean no password, as JSON null does.
    if digest is not None and digest != "null":
        if not isinstance(digest, str) or not MD5_HEX.match(digest):
            raise StoreError(400, VALIDATION, "hash must be the md5 hex digest of the password")
        fields["md5"] = digest
    # Documented: the script sends `active` as the string "true" ([KB-LEGACY]); booleans are
    # accepted too (inferred), any other value is refused. On updates `active` is read-only and
    # ignored, as in v1 (inferred: the v0.9 PUT schema has no `active`).
    active = data.get("active") if create else None
    if active is not None:
        if isinstance(active, bool):
            fields["active"] = active
        elif isinstance(active, str) and active.lower() in ("true", "false"):
            fields["active"] = active.lower() == "true"
        else:
            raise StoreError(400, VALIDATION, "active must be true or false")
    return fields
