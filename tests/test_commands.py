"""The command registry: one declaration per write command, and what derives from it."""

from __future__ import annotations

from typing import get_args

from bulkusers.commands import COMMANDS, Command, command_spec
from bulkusers.runconfig import (
    COMMON_RESUME_OPTIONS,
    PLAN_OPTIONS,
    differing_options,
    option_flags,
    option_setting,
)


def test_every_command_of_the_literal_is_declared_once() -> None:
    """The Command literal and the registry name the same six commands."""
    assert sorted(COMMANDS) == sorted(get_args(Command))
    assert all(COMMANDS[name].name == name for name in COMMANDS)


def test_declarations_say_what_each_command_is() -> None:
    """Only deactivate and delete take access away; reactivate reads a report; sync refuses an
    empty file and journals; every command has its progress label."""
    assert {n for n, spec in COMMANDS.items() if spec.destructive} == {"deactivate", "delete"}
    assert {n for n, spec in COMMANDS.items() if spec.reads_report} == {"reactivate"}
    assert {n for n, spec in COMMANDS.items() if spec.journals} == {"deactivate", "delete",
                                                                       "sync"}
    assert {n for n, spec in COMMANDS.items() if spec.refuses_empty} == {"sync"}
    assert command_spec("import").label == "Importing"


def test_resume_options_are_known_plan_options() -> None:
    """Each command's resume options are in the table that gives their flags."""
    known = {key for key, _, _ in PLAN_OPTIONS}
    for spec in COMMANDS.values():
        assert set(spec.resume_options) <= known, spec.name
    assert set(COMMON_RESUME_OPTIONS) <= known


def test_a_resume_compares_only_the_options_its_command_declares() -> None:
    """import must repeat --on-existing; deactivate has no such option, so it is not compared;
    the flags printed for a resume are the non-default declared ones."""
    earlier = {"url": "https://s.example", "on_existing": "update", "groups": "replace"}
    now = {"url": "https://s.example", "on_existing": "skip", "groups": "replace"}
    import_keys = (*COMMON_RESUME_OPTIONS, *command_spec("import").resume_options)
    deactivate_keys = (*COMMON_RESUME_OPTIONS, *command_spec("deactivate").resume_options)
    assert differing_options(earlier, now, import_keys) == ["--on-existing"]
    assert differing_options(earlier, now, deactivate_keys) == []
    assert option_flags(earlier, import_keys) == ["--url", "https://s.example",
                                                  "--on-existing", "update",
                                                  "--groups", "replace"]
    assert option_flags(earlier, deactivate_keys) == ["--url", "https://s.example"]


def test_option_setting_names_defaults_and_absent_options_too() -> None:
    """A refusal can name how each run set an option, its default included: a value, a flag,
    repeated flags, or its absence."""
    options = {"on_existing": "update", "create_groups": True, "delimiter": "\t",
               "scope_domains": ["a.example", "b.example"]}
    assert option_setting(options, "--on-existing") == "--on-existing update"
    assert option_setting({}, "--on-existing") == "--on-existing skip"
    assert option_setting(options, "--create-groups") == "--create-groups"
    assert option_setting({}, "--create-groups") == "no --create-groups"
    assert option_setting(options, "--delimiter") == "--delimiter tab"
    assert option_setting({}, "--default-role") == "no --default-role"
    assert option_setting(options, "--scope-domain") == ("--scope-domain a.example "
                                                         "--scope-domain b.example")
    assert option_setting({}, "--scope-domain") == "no --scope-domain"
