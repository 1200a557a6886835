"""Deactivation records kept on this machine, per server: the state to restore survives a
second deactivation of the same user.

A deactivated user looks like any Viewer without groups; only the record written when it was
deactivated knows its real role and groups. The report of that run holds it too, but a nightly
leavers list deactivates the same people again, and its report must not record the
deactivated state as the one to restore. So each deactivation is also recorded here: pending
before the request goes out, done once verified, released when the user is reactivated or
deleted. A later run that finds a user still deactivated reports it ``unchanged`` and carries
the first record forward.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Literal

import platformdirs

from bulkusers.frozen import frozen
from bulkusers.jsonlines import append, open_for_append, read_objects
from bulkusers.models import RowResult, Status

#: Overrides where the records live (tests, or a shared folder for several admins).
STATE_DIR_VARIABLE = "BULKUSERS_STATE_DIR"

State = Literal["pending", "done", "released"]


def state_dir() -> Path:
    """The folder of bulkusers' records on this machine."""
    chosen = os.environ.get(STATE_DIR_VARIABLE)
    return Path(chosen) if chosen else Path(platformdirs.user_state_dir("bulkusers"))


def ledger_path(url: str) -> Path:
    """The deactivation records of one server (by URL)."""
    digest = hashlib.sha256(url.rstrip("/").encode()).hexdigest()[:16]
    return state_dir() / "deactivations" / f"{digest}.jsonl"


@frozen
class Deactivation:
    """One user's deactivation: the state before it (report JSON), when, and how far it got."""

    user_id: str
    email: str
    previous: str
    at: str
    state: State

    def describe(self) -> str:
        """When it happened, for a report line."""
        return f"by bulkusers on {self.at[:16].replace('T', ' ')} UTC"


def read_ledger(url: str) -> dict[str, Deactivation]:
    """The latest record of every user deactivated and not since released, by user id."""
    found: dict[str, Deactivation] = {}
    for data in read_objects(ledger_path(url)):
        try:
            record = Deactivation(user_id=str(data["user_id"]), email=str(data["email"]),
                                  previous=str(data["previous"]), at=str(data["at"]),
                                  state=data["state"])
        except KeyError:
            continue
        if record.state == "released":
            found.pop(record.user_id, None)
        elif record.state == "done":
            # Done confirms the pending record before it (its state to restore).
            if (pending := found.get(record.user_id)) is not None:
                found[record.user_id] = Deactivation(pending.user_id, pending.email,
                                                     pending.previous, record.at, "done")
        else:
            # The planner chose what a new attempt restores (the earlier record while the
            # user is still deactivated): the latest pending record is the one in force.
            found[record.user_id] = record
    return found


class Ledger:
    """Appends deactivation records for one server; each line is flushed as written."""

    def __init__(self, url: str, known: Mapping[str, Deactivation]) -> None:
        self._path = ledger_path(url)
        self._known = dict(known)
        self._file: IO[str] | None = None

    @property
    def path(self) -> Path:
        """The file the records are kept in."""
        return self._path

    def open(self) -> IO[str]:
        """Create the folder and open the file (once): done before the first request, so that
        a folder that cannot be written stops the run before anything is sent (OSError)."""
        if self._file is None:
            self._path.parent.mkdir(parents=True, exist_ok=True)
            self._file = open_for_append(self._path)
        return self._file

    def _append(self, user_id: str, email: str, previous: str, state: State) -> None:
        at = datetime.now(UTC).isoformat(timespec="seconds")
        append(self.open(), {"user_id": user_id, "email": email, "previous": previous,
                             "at": at, "state": state})

    def pending(self, user_id: str, email: str, previous: str) -> None:
        """A deactivation is about to be sent: record the state it replaces."""
        known = self._known.get(user_id)
        if known is None or known.previous != previous:
            self._known[user_id] = Deactivation(user_id, email, previous, "", "pending")
            self._append(user_id, email, previous, "pending")

    def settle(self, result: RowResult) -> None:
        """Mark what a finished row did: a verified deactivation is done; a reactivation or a
        deletion releases the record."""
        if not result.user_id:
            return
        if result.action == "deactivate" and result.status is Status.DEACTIVATED:
            self._append(result.user_id, result.email, "", "done")
            return
        released = ((result.action == "reactivate"
                     and result.status in (Status.UPDATED, Status.UNCHANGED))
                    or (result.action == "delete" and result.status is Status.DELETED))
        if released and self._known.pop(result.user_id, None) is not None:
            self._append(result.user_id, result.email, "", "released")

    def close(self) -> None:
        """Close the file (idempotent)."""
        if self._file is not None and not self._file.closed:
            self._file.close()
