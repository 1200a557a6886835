"""``bulkusers config``: where the configuration file is, and the settings a run would use."""

from __future__ import annotations

import os
import sys
from typing import Any

import click

from bulkusers.cli.common import (
    BATCH_SIZE_OPTION,
    CONCURRENCY_OPTION,
    MAX_CONCURRENCY_OPTION,
    REPORT_DIR_OPTION,
    connection_settings,
    global_options,
    settings_from,
)
from bulkusers.cli.settings import (
    META_CONFIG,
    concurrency_over_cap,
    foreign_url,
    report_dir_problem,
    shown_value,
)
from bulkusers.profiles import config_location

#: The order ``config show`` lists the settings in.
SHOWN = ("url", "api", "token", "username", "password", "api_secret", "ca_bundle",
         "insecure", "retries", "timeout", "max_rate", "concurrency", "max_concurrency",
         "batch_size", "default_role", "report_dir")


@click.group("config")
def config_group() -> None:
    """Show the configuration file and the settings a run would use.

    The file is TOML with one [profiles.NAME] section per Sisense instance; see the README's
    "Profiles" section. Each setting is taken from the first of: a flag, an environment
    variable, the chosen profile, the built-in default.
    """


@config_group.command("path")
@global_options(connects=True, quiet=False)
def path_command() -> None:
    """Print the path of the configuration file (whether it exists or not)."""
    path, _origin = config_location(click.get_current_context().meta.get(META_CONFIG),
                                    os.environ)
    click.echo(str(path))


@config_group.command("show")
@connection_settings
@global_options(connects=True, quiet=False)
@CONCURRENCY_OPTION
@MAX_CONCURRENCY_OPTION
@BATCH_SIZE_OPTION
@click.option("--default-role", default=None, metavar="ROLE", envvar="BULKUSERS_DEFAULT_ROLE",
              show_envvar=True, help="role import gives new users whose role cell is blank")
@REPORT_DIR_OPTION
def show_command(**params: Any) -> None:
    """Print each setting's effective value and where it comes from (flag, env, profile NAME
    or default). Secrets are masked and credential commands are not run."""
    from bulkusers.cli.console import Console

    console = Console(quiet=False)
    settings = settings_from(console, params)
    config = settings.config
    assert config is not None
    where = "" if config.exists else " (does not exist)"
    lines = [f"config file: {config.path}{where} ({settings.config_origin})"]
    if settings.profile is None:
        lines.append("profile: none (pass --profile NAME or set BULKUSERS_PROFILE)")
    else:
        lines.append(f"profile: {settings.profile.name} ({settings.profile_origin})")
    width = max(len(name) for name in SHOWN)
    for name in SHOWN:
        origin = settings.origins[name]
        value = shown_value(name, settings.values[name], origin)
        lines.append(f"{name:<{width}}  {value:<40}  {origin}")
    click.echo("\n".join(lines))
    # config show is where one checks a set-up: say what a run would refuse.
    for refusal in (foreign_url(settings), concurrency_over_cap(settings),
                    report_dir_problem(settings)):
        if refusal:
            console.warning(f"a run with these settings would be refused: {refusal}")
    sys.exit(0)
