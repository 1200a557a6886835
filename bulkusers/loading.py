"""Load the directory (roles, groups, users) from the user API, once, at the start of a run.

It sits between ``api`` (which builds ``User`` values from ``directory``) and ``directory``
(which knows nothing of the API), so that neither imports the other both ways.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from bulkusers.directory import Directory, Group, Role, User

if TYPE_CHECKING:
    from bulkusers.api import UserApi


async def load_directory(api: UserApi, *, with_users: bool = True,
                         page_size: int = 500) -> Directory:
    """Read roles, groups and (when asked) every user, once, at the start of a run."""
    roles_raw, groups_raw = await asyncio.gather(api.roles(), api.groups())
    roles = [Role(id=str(r.get("_id", "")), name=str(r.get("name") or ""),
                  display_name=str(r.get("displayName") or "")) for r in roles_raw]
    groups = [Group(id=str(g.get("_id", "")), name=str(g.get("name") or "")) for g in groups_raw]
    users: list[User] = []
    if with_users:
        users = [User.from_api(u) async for u in api.iter_users(page_size=page_size)]
    return Directory(roles, groups, users)
