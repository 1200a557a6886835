"""A local Sisense emulator: the v1 and v0.9 user, group, role and auth API, with faults."""

from __future__ import annotations

from bulkusers.emulator.faults import DROPPED, Faults, RequestRecord
from bulkusers.emulator.records import StoreError
from bulkusers.emulator.server import (
    Emulator,
    EmulatorSettings,
    SettingsError,
    check_settings,
    create_app,
    running_emulator,
    serve_forever,
)
from bulkusers.emulator.shared import FAULTS, LOGIN_PATH, REQUESTS, STORE
from bulkusers.emulator.store import Store

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
    "SettingsError",
    "Store",
    "StoreError",
    "check_settings",
    "create_app",
    "running_emulator",
    "serve_forever",
]
