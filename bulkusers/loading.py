"""Load the directory (roles, groups, users) from the user API, once, at the start of a run.

It sits between ``api`` (which builds ``User`` values from ``directory``) and ``directory``
(which knows nothing of the API), so that neither imports the other both ways.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from bulkusers.api import PLAN_FIELDS
from bulkusers.directory import Directory, Group, Role, User

if TYPE_CHECKING:
    from bulkusers.api import UserApi


async def load_directory(api: UserApi, *, with_users: bool = True, page_size: int = 500,
                         roles: Awaitable[Sequence[Mapping[str, Any]]] | None = None,
                         ) -> Directory:
    """Read roles (unless given: the client's check reads them, at the same time), groups
    and (when asked) every user, once, at the start of a run: the first pages of users are
    asked for with the groups, not a round trip later."""
    users: list[User] = []

    async def read_roles() -> Sequence[Mapping[str, Any]]:
        return await (roles if roles is not None else api.roles())

    async def read_users() -> None:
        if with_users:
            async for page in api.user_pages(page_size=page_size, fields=PLAN_FIELDS):
                users.extend(map(User.from_api, page))

    # The users first: their pages are the long part, and the limit may let only a few
    # requests through at the start.
    _, roles_raw, groups_raw = await together(read_users(), read_roles(), api.groups())
    return Directory(
        [Role(id=str(r.get("_id", "")), name=str(r.get("name") or ""),
              display_name=str(r.get("displayName") or "")) for r in roles_raw],
        [Group(id=str(g.get("_id", "")), name=str(g.get("name") or "")) for g in groups_raw],
        users)


async def together(*calls: Awaitable[Any]) -> list[Any]:
    """Await the calls concurrently; the first failure is raised as it is (no group), and
    the calls still running are cancelled first, so nothing goes on reading behind it."""
    tasks = [asyncio.ensure_future(call) for call in calls]
    try:
        return await asyncio.gather(*tasks)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
