"""Words a person reads: counts with the right plural, and the names of the settings they
gave, as they gave them (the CLI's flags, or the Python API's arguments)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from contextvars import ContextVar


def count(number: int, singular: str, plural: str | None = None) -> str:
    """``1 row``, ``2 rows``, ``0 rows``: the number and the noun in the form it takes."""
    noun = singular if number == 1 else (plural or singular + "s")
    return f"{number} {noun}"


#: True while the CLI runs a command: messages name its flags. Otherwise (a Python caller)
#: they name the arguments the caller wrote.
_SPEAKING_CLI: ContextVar[bool] = ContextVar("bulkusers_speaking_cli", default=False)

#: Each flag a message may name, as a Python caller of bulkusers.run, export_users or users
#: gave that setting.
_ARGUMENTS = {
    "--default-role": "PlanOptions(default_role=...)",
    "--create-groups": "PlanOptions(create_groups=True)",
    "--report": "report",
    "--resume": "Safety(resume=...)",
    "--strict": "Safety(strict=True)",
    "--max-changes": "Safety(max_changes=...)",
    "--dry-run": "Safety(dry_run=True)",
    "--max-missing": "SyncOptions(max_missing=...)",
    "--missing": "SyncOptions(missing=...)",
    "--scope-domain": "SyncOptions(domains=...)",
    "--scope-group": "SyncOptions(groups=...)",
    "--role": "role",
    "--group": "group",
    "--inactive-days": "inactive_days",
    "--concurrency": "concurrency",
    "--url": "connect()'s url",
    "--token": "connect()'s token",
    "--username": "connect()'s username",
    "--password": "connect()'s password",
    "--api": "connect()'s api",
    "--api-secret": "connect()'s api_secret",
    "--ca-bundle": "connect()'s ca_bundle",
    "--encoding": "ReadOptions(encoding=...)",
    "--sheet": "ReadOptions(sheet=...)",
    "--header-row": "ReadOptions(header_row=...)",
    "--max-cell-bytes": "ReadOptions(max_cell_bytes=...)",
}


def flag(name: str) -> str:
    """``name``, a CLI flag (``--default-role``), as the person reading gave that setting:
    the flag itself when the CLI runs, else the Python argument (``PlanOptions(default_role=
    ...)``)."""
    return name if _SPEAKING_CLI.get() else _ARGUMENTS.get(name, name)


def said(cli: str, python: str) -> str:
    """``cli`` when the CLI runs, else ``python``: one phrase in the words of each (``--retries
    0`` and ``RetryPolicy(attempts=1)``)."""
    return cli if _SPEAKING_CLI.get() else python


@contextlib.contextmanager
def speaking_cli() -> Iterator[None]:
    """Messages made inside the block (and the tasks and threads it starts) name flags."""
    token = _SPEAKING_CLI.set(True)
    try:
        yield
    finally:
        _SPEAKING_CLI.reset(token)
