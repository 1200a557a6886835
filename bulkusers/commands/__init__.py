"""The registry of write commands: one declaration per command, one line here each.

To add a command: a module beside these with its ``SPEC`` (see ``spec.CommandSpec``), and its
line below.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal

from bulkusers.commands import (
    deactivate_users,
    delete_users,
    import_users,
    reactivate_users,
    sync_users,
    update_users,
)
from bulkusers.commands.spec import CommandSpec
from bulkusers.errors import ConfigError

Command = Literal["import", "update", "deactivate", "delete", "reactivate", "sync"]

COMMANDS: Mapping[str, CommandSpec] = {spec.name: spec for spec in (
    import_users.SPEC,
    update_users.SPEC,
    deactivate_users.SPEC,
    reactivate_users.SPEC,
    delete_users.SPEC,
    sync_users.SPEC,
)}


def command_spec(name: str) -> CommandSpec:
    """The declaration of a write command (ConfigError for an unknown name)."""
    try:
        return COMMANDS[name]
    except KeyError:
        raise ConfigError(f"no command {name!r}: choose one of "
                          f"{', '.join(sorted(COMMANDS))}") from None
