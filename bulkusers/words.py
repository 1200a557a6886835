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

#: Where a Python caller gives the setting of each flag a message may name: (owner, name).
#: The owner is an options class, ``connect`` (its argument), or "" (an argument of
#: bulkusers.run, export_users or users).
_ARGUMENTS: dict[str, tuple[str, str]] = {
    "--default-role": ("PlanOptions", "default_role"),
    "--on-existing": ("PlanOptions", "on_existing"),
    "--groups": ("PlanOptions", "groups_mode"),
    "--create-groups": ("PlanOptions", "create_groups"),
    "--resume": ("Safety", "resume"),
    "--strict": ("Safety", "strict"),
    "--max-changes": ("Safety", "max_changes"),
    "--dry-run": ("Safety", "dry_run"),
    "--max-missing": ("SyncOptions", "max_missing"),
    "--missing": ("SyncOptions", "missing"),
    "--scope-domain": ("SyncOptions", "domains"),
    "--scope-group": ("SyncOptions", "groups"),
    "--encoding": ("ReadOptions", "encoding"),
    "--delimiter": ("ReadOptions", "delimiter"),
    "--sheet": ("ReadOptions", "sheet"),
    "--header-row": ("ReadOptions", "header_row"),
    "--max-cell-bytes": ("ReadOptions", "max_cell_bytes"),
    "--url": ("connect", "url"),
    "--token": ("connect", "token"),
    "--username": ("connect", "username"),
    "--password": ("connect", "password"),
    "--api": ("connect", "api"),
    "--api-secret": ("connect", "api_secret"),
    "--ca-bundle": ("connect", "ca_bundle"),
    "--report": ("", "report"),
    "--role": ("", "role"),
    "--group": ("", "group"),
    "--inactive-days": ("", "inactive_days"),
    "--concurrency": ("", "concurrency"),
}

#: The flags that switch a setting on: a Python caller sets it to True.
_SWITCHES = frozenset({"--create-groups", "--strict", "--dry-run"})


def flag(name: str) -> str:
    """``name``, a CLI flag (``--default-role``), as the person reading gave that setting:
    the flag itself when the CLI runs, else the Python argument (``PlanOptions(default_role=
    ...)``, ``Safety(strict=True)``, ``connect()'s url``, ``report``)."""
    if _SPEAKING_CLI.get() or name not in _ARGUMENTS:
        return name
    owner, argument = _ARGUMENTS[name]
    if not owner:
        return argument
    if owner == "connect":
        return f"connect()'s {argument}"
    return f"{owner}({argument}={'True' if name in _SWITCHES else '...'})"


def set_to(name: str, value: object) -> str:
    """How a Python caller sets the flag ``name`` to ``value``: ``PlanOptions(on_existing=
    'skip')``, ``connect(url='https://...')``."""
    owner, argument = _ARGUMENTS[name]
    return f"{owner}({argument}={value!r})" if owner else f"{argument}={value!r}"


def given(name: str, value: object, shown: str | None = None) -> str:
    """The flag ``name`` set to ``value``, as the person reading gives it: ``--encoding
    cp1252`` (``shown``, when the command line spells the value otherwise) when the CLI runs,
    else ``ReadOptions(encoding='cp1252')``."""
    if _SPEAKING_CLI.get():
        return f"{name} {value if shown is None else shown}"
    return set_to(name, value)


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
