"""The undo journal: each user's record, written before a destructive request is sent.

A report line is written when a request's answer arrives. A crash between the request and
its answer would lose the one record that can undo a deletion or deactivation, so each
destructive task is first appended here (flushed to the operating system). ``--resume``
reads it back to report what the interrupted run did and to keep the original state.
"""

from __future__ import annotations

from pathlib import Path
from typing import IO

from bulkusers.frozen import frozen
from bulkusers.jsonlines import append, open_for_append, read_objects
from bulkusers.ledger import Ledger
from bulkusers.tasks import DeleteTask, UserPatch


def journal_path(report: Path) -> Path:
    """Where a report's undo journal lives: beside it."""
    name = report.name.removesuffix(".csv").removesuffix(".report")
    return report.with_name(name + ".undo.jsonl")


@frozen
class JournalEntry:
    """What a run was about to do to one row's user, and the user's state before it."""

    row: int
    email: str
    user_id: str
    action: str
    previous: str


class Journal:
    """Appends one line per destructive task, flushed before the request goes out."""

    def __init__(self, path: Path, *, fresh: bool, ledger: Ledger | None = None) -> None:
        """Open for a new run (``fresh``: an old journal at that path is replaced, it belongs
        to another run) or for a resumed one (appended); deactivations are also recorded in
        the machine's ``ledger``."""
        self.path = path
        self._file: IO[str] = (path.open("w", encoding="utf-8") if fresh
                               else open_for_append(path))
        self._ledger = ledger

    def note(self, task: UserPatch | DeleteTask) -> None:
        """Record a task's target and its previous state."""
        append(self._file, {"row": task.row.number, "email": task.email,
                            "user_id": task.user.id, "action": task.action,
                            "previous": task.previous})
        if self._ledger is not None and task.action == "deactivate":
            self._ledger.pending(task.user.id, task.email, task.previous)

    def close(self) -> None:
        """Close the file (idempotent)."""
        if not self._file.closed:
            self._file.close()


def read_journal(path: Path) -> dict[int, JournalEntry]:
    """The first entry per row (the state before the first attempt), or {} without a file."""
    entries: dict[int, JournalEntry] = {}
    for data in read_objects(path):
        try:
            entry = JournalEntry(row=int(data["row"]), email=str(data["email"]),
                                 user_id=str(data["user_id"]), action=str(data["action"]),
                                 previous=str(data["previous"]))
        except (ValueError, KeyError, TypeError):
            continue  # a record without its fields
        entries.setdefault(entry.row, entry)
    return entries
