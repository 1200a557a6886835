"""The emulator's in-memory Sisense directory: roles, users, groups, tokens and the API's rules.

Pure Python (no aiohttp) so tests can inspect and prepare it directly. The rules that need the
directory (unique names, one super user, built-in groups) live here, what one user body may hold in
`bodies`; all fail with `StoreError`, which the HTTP layer turns into the Sisense error envelope.
The records and error codes live in `records`.
"""

from __future__ import annotations

import secrets
import time
import warnings
from collections import Counter
from collections.abc import Callable, Iterable
from datetime import UTC, datetime

import jwt

from bulkusers.emulator.bodies import user_fields
from bulkusers.emulator.records import (
    ADMIN_ROLES,
    ADMINS,
    ALL_USERS,
    BUILTIN_GROUP,
    BUILTIN_GROUPS,
    DUPLICATE_IN_PAYLOAD,
    EVERYONE,
    GROUP_EXISTS,
    GROUP_NOT_FOUND,
    MULTIPLE_SUPER,
    NOT_AN_ARRAY,
    ROLES,
    SUPER_UNDELETABLE,
    USER_EXISTS,
    USER_NOT_FOUND,
    GroupRecord,
    Json,
    Role,
    StoreError,
    UserRecord,
    identity,
    iso,
    object_id,
    password_matches,
    require_object,
    text_field,
)


class Store:
    """Roles, users, groups and bearer tokens of one emulated Sisense tenant."""

    def __init__(self, seed: int = 0, clock: Callable[[], datetime] | None = None) -> None:
        self._prefix = f"65f1{seed & 0xFFFF:04x}"
        self._counter = 0
        self._secret = secrets.token_hex(16)
        self.clock = clock or (lambda: datetime.now(UTC))
        self._stamped = (-1, "")
        #: Wall-clock seconds for token expiry and x-api-key age; tests may swap in a fake clock.
        self.wall: Callable[[], float] = time.time
        self.token_ttl_s: float | None = None  # set to make newly issued tokens expire
        self.api_secret: str | None = None  # legacy x-api-key signing secret; None: scheme off
        self.legacy_max_age_s = 300.0  # oldest x-api-key `iat` accepted, in seconds
        #: Whether users' ``groups`` list the built-in Everyone group. The public sources do not
        #: settle it (sisense-api.md section 12: pysisense 2.0 stopped filtering it out, so some
        #: servers store it), so both behaviours can be rehearsed.
        self.list_everyone = False
        self.tenant_id = self.new_id()
        self.roles = {r.id: r for r in (Role(self.new_id(), n, d) for n, d in ROLES)}
        self.role_ids = {role.name: role.id for role in self.roles.values()}  # API name -> id
        self.users: dict[str, UserRecord] = {}
        self.groups: dict[str, GroupRecord] = {}
        self._emails: dict[str, str] = {}  # lower-cased email -> user id
        self._user_names: dict[str, str] = {}  # lower-cased userName -> user id
        self._group_names: dict[str, str] = {}  # lower-cased group name -> group id
        self._tokens: dict[str, tuple[str, float | None]] = {}  # token -> (user id, expiry)
        #: How often each (lower-cased) email was created through the API: lets tests prove
        #: that no user was ever created twice, even one deleted and re-created in between.
        self.creations: Counter[str] = Counter()
        for name in BUILTIN_GROUPS:
            self._add_group(name, None, builtin=True)

    def new_id(self) -> str:
        """A fresh 24-hex ObjectId-like id, deterministic for a given seed."""
        self._counter += 1
        return f"{self._prefix}{self._counter:016x}"

    def now(self) -> str:
        """The store clock's current time, Sisense-formatted."""
        moment = self.clock()
        millisecond = int(moment.timestamp() * 1000)
        # A bulk create stamps its users within one millisecond: the text is made once.
        if millisecond != self._stamped[0]:
            self._stamped = (millisecond, iso(moment))
        return self._stamped[1]

    def user_doc(self, user: UserRecord) -> Json:
        """A user's public v1 JSON, listing Everyone in ``groups`` when `list_everyone` says so."""
        doc = user.to_json()
        if self.list_everyone:
            doc["groups"] = [self.everyone_id, *doc["groups"]]
        return doc

    @property
    def everyone_id(self) -> str:
        """The id of the built-in Everyone group."""
        return self._group_names[EVERYONE.lower()]

    def user_by_email(self, email: str) -> Json | None:
        """The public JSON of the user with this email (case-insensitive), or None."""
        user_id = self._emails.get(identity(email))
        return self.user_doc(self.users[user_id]) if user_id else None

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

    def find_user(self, key: str) -> UserRecord:
        """The user whose id, userName or email (any case) is `key`, else 404/2001."""
        key = key.lower()
        user_id = key if key in self.users else self._user_names.get(key) or self._emails.get(key)
        if user_id is None:
            raise StoreError(404, USER_NOT_FOUND, "User not found")
        return self.users[user_id]

    def find_group(self, key: str) -> GroupRecord:
        """The group whose id or name (any case) is `key`, else 404."""
        group_id = key.lower() if key.lower() in self.groups else self._group_names.get(key.lower())
        if group_id is None:
            raise StoreError(404, GROUP_NOT_FOUND, "Group not found", resourceType="group",
                             resourceName=key)
        return self.groups[group_id]

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
        user_id = self._emails.get(identity(email))
        return user_id is not None and password_matches(self.users[user_id], password)

    def login(self, username: str, password: str) -> tuple[str, UserRecord] | None:
        """Log in by userName or email: a new token and the user, or None if refused."""
        key = identity(username)
        user_id = self._user_names.get(key) or self._emails.get(key)
        if user_id is None or not password_matches(self.users[user_id], password):
            return None
        user = self.users[user_id]
        user.last_login = self.now()
        return self.issue_token(user.id), user

    def issue_token(self, user_id: str, fixed: str | None = None) -> str:
        """Issue a bearer token for the user: an HS256 JWT shaped like Sisense's, or `fixed`."""
        issued = self.wall()
        # Expiry is enforced on L2024.1+ servers (documented: [DOC-BEARER]); --token-ttl turns it
        # on, for the settings' fixed token too, as an API token issued at start-up.
        expiry = None if self.token_ttl_s is None else issued + self.token_ttl_s
        if fixed is not None:  # the settings' token: accepted as is
            self._tokens[fixed] = (user_id, expiry)
            return fixed
        claims: Json = {"user": user_id, "apiSecret": secrets.token_hex(16), "iat": int(issued)}
        if expiry is not None:
            claims["exp"] = int(expiry)
        token = jwt.encode(claims, self._secret, algorithm="HS256")
        self._tokens[token] = (user_id, expiry)
        return token

    def token_user(self, token: str) -> str | None:
        """The id of the live user a valid, unexpired token belongs to, or None."""
        user_id, expiry = self._tokens.get(token, ("", None))
        alive = expiry is None or self.wall() < expiry
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

    def revoke_user_tokens(self, user_ids: Iterable[str]) -> int:
        """Forget every token of each listed user, all or none: 404/2001 if any is unknown."""
        users = [self.get_user(user_id) for user_id in dict.fromkeys(user_ids)]
        return sum(self.revoke_tokens(user.id) for user in users)

    def api_key_user(self, api_key: str) -> str | None:
        """The id of the user a legacy ``x-api-key`` JWT speaks for, or None if it fails."""
        if self.api_secret is None:
            return None
        try:
            with warnings.catch_warnings():
                # The operator picks the secret, as Sisense admins did: a short one is their call,
                # not something to warn about on every request.
                warnings.simplefilter("ignore", jwt.InsecureKeyLengthWarning)
                # A minute of leeway on `iat`: the scheme wants a fresh `iat` per request, and a
                # client clock slightly ahead of ours must not make every call fail.
                claims = jwt.decode(api_key, self.api_secret, algorithms=["HS256"], leeway=60,
                                    options={"require": ["iat", "email", "password"]})
        except jwt.PyJWTError:
            return None
        # The scheme wants a fresh `iat` per request (documented: [KB-LEGACY]); how old a key the
        # server accepted is not documented, so the limit is a setting (inferred).
        if self.wall() - float(claims["iat"]) > self.legacy_max_age_s:
            return None
        email, password = claims["email"], claims["password"]
        if not isinstance(email, str) or not isinstance(password, str):
            return None
        user_id = self._emails.get(identity(email))
        if user_id is None or not password_matches(self.users[user_id], password):
            return None
        # Authentication only: what the user may do is its role's business, as with a bearer
        # token (a Viewer's key reads its own user and gets 403 on user writes).
        return user_id

    def create_users(self, bodies: list[object], *, bulk: bool,
                     legacy: bool = False) -> list[UserRecord]:
        """Validate every body, then create them all or refuse them all (all-or-nothing).

        `legacy` applies the v0.9 create rules (``hash``, ``active``, an optional ``roleId``).
        """
        drafts = [self._user_draft(body, legacy) for body in bodies]
        seen: set[str] = set()
        for draft in drafts:
            keys = {"e:" + identity(draft.email), "u:" + identity(draft.user_name)}
            if bulk and keys & seen:
                raise StoreError(400, DUPLICATE_IN_PAYLOAD, "The payload contains duplicate users.")
            seen |= keys
        if any(self._clashes(d.email, d.user_name, None) for d in drafts):
            message = "One or more of the given users already exists." if bulk else (
                "A user with this email or userName already exists.")
            raise StoreError(400, USER_EXISTS, message)
        for draft in drafts:
            self.insert_user(draft)
            self.creations[identity(draft.email)] += 1
        return drafts

    def update_user(self, user_id: str, body: object, *, legacy: bool = False) -> UserRecord:
        """Apply a partial update; `groups` replaces membership and `active` is read-only."""
        user = self.get_user(user_id)
        fields = user_fields(body, self, create=False, legacy=legacy)
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

    def _user_draft(self, body: object, legacy: bool) -> UserRecord:
        """Validate one create body into an unsaved record (uniqueness is checked by the caller)."""
        fields = user_fields(body, self, create=True, legacy=legacy)
        if fields["role_id"] == self.role_ids["super"]:
            raise StoreError(400, MULTIPLE_SUPER, "There can be only one super user.")
        now = self.now()
        return UserRecord(self.new_id(), tenant_id=self.tenant_id, created=now, last_updated=now,
                          **fields)

    def role_allows(self, user_id: str, roles: frozenset[str]) -> bool:
        """True if the user's role is one of `roles` (API names)."""
        return self.role_name_of(user_id) in roles

    def _clashes(self, email: str, user_name: str, own_id: str | None) -> bool:
        others = {self._emails.get(identity(email)), self._user_names.get(identity(user_name))}
        return bool(others - {None, own_id})

    def insert_user(self, user: UserRecord) -> None:
        """Store a ready-made record as is, without validation (for seeding)."""
        self.users[user.id] = user
        self._emails[identity(user.email)] = user.id
        self._user_names[identity(user.user_name)] = user.id

    def _unindex_user(self, user: UserRecord) -> None:
        self._emails.pop(identity(user.email), None)
        self._user_names.pop(identity(user.user_name), None)

    def create_groups(self, bodies: list[object]) -> list[GroupRecord]:
        """Validate every group body, then create them all or none; names are unique, any case."""
        names: list[tuple[str, str | None]] = []
        for body in bodies:
            data = require_object(body)
            name = text_field(data, "name", required=True, nonempty=True) or ""
            if name.lower() in self._group_names:
                raise StoreError(400, GROUP_EXISTS, f"A group named {name!r} already exists.")
            if any(name.lower() == seen.lower() for seen, _ in names):
                raise StoreError(400, DUPLICATE_IN_PAYLOAD, "The payload repeats a group name.")
            names.append((name, text_field(data, "mail", required=False)))
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

    def update_group(self, key: str, body: object) -> GroupRecord:
        """Rename a group (found by id or name); built-in groups and taken names are refused."""
        group = self.find_group(key)
        data = require_object(body)
        name = text_field(data, "name", required=False, nonempty=True)
        if group.builtin:
            raise StoreError(400, BUILTIN_GROUP, f"Built-in group {group.name} can't be changed.")
        if name is not None and name.lower() != group.name.lower():
            if name.lower() in self._group_names:
                raise StoreError(400, GROUP_EXISTS, f"A group named {name!r} already exists.")
            del self._group_names[group.name.lower()]
            self._group_names[name.lower()] = group.id
        if name is not None:
            group.name = name
        if "mail" in data:
            group.mail = text_field(data, "mail", required=False)
        return group

    def change_members(self, group_key: str, user_keys: object, *,
                       add: bool) -> list[UserRecord]:
        """Add users (by id, userName or email) to a group or remove them, all or none."""
        group = self.find_group(group_key)
        if group.builtin:
            raise StoreError(400, BUILTIN_GROUP,
                             f"Membership of built-in group {group.name} is computed.")
        if not isinstance(user_keys, list) or not all(isinstance(k, str) for k in user_keys):
            raise StoreError(400, NOT_AN_ARRAY, "The request body must be an array of user ids.")
        users = list({u.id: u for u in (self.find_user(key) for key in user_keys)}.values())
        now = self.now()
        for user in users:
            if add and group.id not in user.groups:
                user.groups.append(group.id)
            elif not add and group.id in user.groups:
                user.groups.remove(group.id)
            else:
                continue
            user.last_updated = now
        return users

    def _add_group(self, name: str, mail: str | None, *, builtin: bool = False) -> GroupRecord:
        group = GroupRecord(self.new_id(), name, self.tenant_id, self.now(), mail, builtin)
        self.groups[group.id] = group
        self._group_names[name.lower()] = group.id
        return group
