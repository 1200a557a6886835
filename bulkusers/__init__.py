"""bulkusers: async bulk import, export, deactivation and deletion of Sisense users.

Use from Python::

    import asyncio
    import bulkusers

    async def main() -> None:
        sisense = bulkusers.connect("https://sisense.example.com", token="...")
        summary = await bulkusers.run(
            "import", sisense,
            rows=[{"email": "ann@example.com", "role": "viewer", "groups": "Sales"}],
            on_result=lambda result: print(result.email, result.status))
        print(summary.counts)

    asyncio.run(main())

The names below are the whole public API; everything else is internal and may change. They
are loaded on first use, so ``import bulkusers`` (and the CLI's ``--help``) stays fast.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

__version__ = "0.1.0"

__all__ = [
    "AuthError",
    "BulkUsersError",
    "Change",
    "Command",
    "ConfigError",
    "Connection",
    "ExportResult",
    "GuardTripped",
    "InputError",
    "Limit",
    "PlanOptions",
    "ReadOptions",
    "RetryPolicy",
    "RowResult",
    "RunSummary",
    "Safety",
    "ServerUnavailable",
    "Status",
    "SyncOptions",
    "__version__",
    "connect",
    "diff_exports",
    "export_users",
    "run",
    "users",
]

#: Where each public name lives.
_HOMES = {
    "AuthError": "bulkusers.errors",
    "BulkUsersError": "bulkusers.errors",
    "Change": "bulkusers.diff",
    "Command": "bulkusers.commands",
    "ConfigError": "bulkusers.errors",
    "Connection": "bulkusers.config",
    "ExportResult": "bulkusers.export",
    "GuardTripped": "bulkusers.errors",
    "InputError": "bulkusers.errors",
    "Limit": "bulkusers.guards",
    "PlanOptions": "bulkusers.rules",
    "ReadOptions": "bulkusers.readers",
    "RetryPolicy": "bulkusers.config",
    "RowResult": "bulkusers.models",
    "RunSummary": "bulkusers.summary",
    "Safety": "bulkusers.runconfig",
    "ServerUnavailable": "bulkusers.errors",
    "Status": "bulkusers.models",
    "SyncOptions": "bulkusers.sync",
    "connect": "bulkusers.library",
    "diff_exports": "bulkusers.library",
    "export_users": "bulkusers.library",
    "run": "bulkusers.library",
    "users": "bulkusers.library",
}

if TYPE_CHECKING:
    from bulkusers.commands import Command
    from bulkusers.config import Connection, RetryPolicy
    from bulkusers.diff import Change
    from bulkusers.errors import (
        AuthError,
        BulkUsersError,
        ConfigError,
        GuardTripped,
        InputError,
        ServerUnavailable,
    )
    from bulkusers.export import ExportResult
    from bulkusers.guards import Limit
    from bulkusers.library import connect, diff_exports, export_users, run, users
    from bulkusers.models import RowResult, Status
    from bulkusers.readers import ReadOptions
    from bulkusers.rules import PlanOptions
    from bulkusers.runconfig import Safety
    from bulkusers.summary import RunSummary
    from bulkusers.sync import SyncOptions


def __getattr__(name: str) -> object:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'bulkusers' has no attribute {name!r}")
    value = getattr(importlib.import_module(home), name)
    globals()[name] = value  # once loaded, a plain attribute
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
