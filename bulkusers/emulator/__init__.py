"""A local Sisense emulator: the user, group, role and auth API, with injectable faults."""

from __future__ import annotations

from bulkusers.emulator.app import FAULTS, LOGIN_PATH, REQUESTS, STORE
from bulkusers.emulator.faults import DROPPED, Faults, RequestRecord
from bulkusers.emulator.server import (
    Emulator,
    EmulatorSettings,
    create_app,
    running_emulator,
    serve_forever,
)
from bulkusers.emulator.store import Store, StoreError

__all__ = [
    "DROPPED",
    "FAULTS",
    "LOGIN_PATH",
    "REQUESTS",
    "STORE",
    "Emulator",
    "EmulatorSettings",
    "Faults",
    "RequestRecord",
    "Store",
    "StoreError",
    "create_app",
    "running_emulator",
    "serve_forever",
]
