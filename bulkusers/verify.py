"""Asking the server what a write did when its answer never arrived.

A request whose connection dropped after it was sent, whose answer timed out, or that a gateway
answered with a 5xx may have been carried out all the same. Before such a row is reported
``failed`` the executor reads the user back and compares it with what the write asked for; the
helpers here do the reading and the comparing, and word the outcome for the report.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from bulkusers.api import UserApi, UserDict
from bulkusers.client import Trace
from bulkusers.directory import Directory, User
from bulkusers.errors import ApiError
from bulkusers.frozen import frozen
from bulkusers.network import describe_failure, is_retryable

#: How the report names the fields a patch or a create payload sets.
FIELD_NAMES = {"roleId": "role", "groups": "groups", "firstName": "firstName",
               "lastName": "lastName", "userName": "userName", "email": "email"}
#: Appended to a row's changes when the server, not an answer, showed that the write happened.
CONFIRMED = "(confirmed on the server: the request was carried out though its answer was lost)"


@frozen
class Check:
    """The server's answer to "what does this user look like now?"."""

    #: The user as the server holds it now; None when it has no such user (or was not asked).
    user: User | None
    #: Why the server could not be asked ("" when it answered).
    error: str = ""

    @property
    def answered(self) -> bool:
        """True when the server said what it holds."""
        return not self.error


async def by_id(api: UserApi, user_id: str) -> Check:
    """The user with this id as the server holds it now."""
    return await _ask(lambda trace: api.get_user(user_id, trace))


async def by_email(api: UserApi, email: str) -> Check:
    """The user with this email as the server holds it now."""
    return await _ask(lambda trace: api.find_user(email, trace))


async def _ask(call: Callable[[Trace], Awaitable[UserDict | None]]) -> Check:
    try:
        found = await call(Trace())
    except Exception as exc:
        if not (isinstance(exc, ApiError) or is_retryable(exc)):
            raise
        return Check(None, f"asking the server failed too: {describe_failure(exc)}")
    return Check(User.from_api(found) if found is not None else None)


def not_applied(patch: Mapping[str, Any], after: User, directory: Directory) -> list[str]:
    """Fields of a patch (or a create payload) that the user ``after`` does not show.

    A password cannot be read back: it is neither applied nor missing here. It travels in the
    same request as the role, so a role that changed says the password did too.
    """
    missing = []
    if "roleId" in patch and after.role_id and after.role_id != patch["roleId"]:
        missing.append("roleId")
    if "groups" in patch:
        explicit = {g for g in after.group_ids
                    if not ((group := directory.group_by_id(g)) and group.builtin)}
        if explicit != set(patch["groups"]):
            missing.append("groups")
    for key, value in (("firstName", after.first_name), ("lastName", after.last_name),
                       ("userName", after.user_name), ("email", after.email)):
        if key in patch and value != patch[key]:
            missing.append(key)
    return missing


def checkable(patch: Mapping[str, Any]) -> list[str]:
    """The fields of a patch the server's copy of the user can show."""
    return [key for key in patch if key in FIELD_NAMES]


def names(keys: list[str]) -> str:
    """Field keys as the report names them: "role, groups"."""
    return ", ".join(FIELD_NAMES.get(key, key) for key in keys)
