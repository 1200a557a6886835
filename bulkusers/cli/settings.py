"""Which value each setting takes, and from where: flag, environment, profile or default.

Click parses the flags and the ``SISENSE_*`` / ``BULKUSERS_*`` variables and tells where each
value came from; a value it only defaulted is replaced by the chosen profile's, when it has one.
The credentials are chosen as one set: when a flag or a variable gives any of them, the
profile's are not used, so a token from one place is never paired with a password from another.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import click
from click.core import ParameterSource

from bulkusers.errors import ConfigError
from bulkusers.frozen import frozen
from bulkusers.profiles import (
    CREDENTIALS,
    SECRETS,
    ConfigFile,
    Profile,
    choose_profile,
    config_location,
    load_config,
)

#: Keys of ``click.Context.meta`` where the global options leave their values.
META_CONFIG = "bulkusers.config"
META_PROFILE = "bulkusers.profile"
META_QUIET = "bulkusers.quiet"


@frozen
class Origin:
    """Where a setting's value came from, as ``config show`` prints it."""

    kind: str  # "flag", "env", "profile" or "default"
    detail: str = ""

    def __str__(self) -> str:
        return f"{self.kind} {self.detail}".strip()


@dataclass(slots=True)
class Effective:
    """The settings of one run with their origins; credentials of a profile stay unread
    (their commands unrun) until ``credential`` asks for them."""

    #: Never in a repr: it holds the credentials once read.
    values: dict[str, Any] = field(default_factory=dict, repr=False)
    origins: dict[str, Origin] = field(default_factory=dict)
    config: ConfigFile | None = None
    config_origin: str = ""
    profile: Profile | None = None
    profile_origin: str = ""

    def __getitem__(self, name: str) -> Any:
        return self.values[name]

    def credential(self, name: str, environ: Mapping[str, str]) -> str | None:
        """The credential's value (a profile's variable is read, or its command run, now)."""
        origin = self.origins.get(name)
        if origin is None or origin.kind != "profile" or self.profile is None:
            value = self.values.get(name)
            return str(value) if value is not None else None
        if self.values.get(name) is None:
            self.values[name] = self.profile.credentials[name].resolve(self.profile.name,
                                                                       environ)
        return str(self.values[name])


def chosen_config(ctx: click.Context,
                  environ: Mapping[str, str]) -> tuple[ConfigFile, str, Profile | None, str]:
    """The configuration file and profile the global options and variables choose."""
    flag = ctx.meta.get(META_CONFIG)
    path, origin = config_location(flag, environ)
    config = load_config(path)
    if not config.exists and origin != "default":
        where = "--config" if origin == "--config" else f"${origin}"
        raise ConfigError(f"{where} {path}: no such file")
    profile, chosen_by = choose_profile(config, ctx.meta.get(META_PROFILE), environ)
    return config, origin, profile, chosen_by


def effective(ctx: click.Context, params: Mapping[str, Any],
              environ: Mapping[str, str] | None = None) -> Effective:
    """Every setting among ``params`` with its value and origin (flag > env > profile >
    default)."""
    environ = os.environ if environ is None else environ
    config, config_origin, profile, profile_origin = chosen_config(ctx, environ)
    result = Effective(config=config, config_origin=config_origin, profile=profile,
                       profile_origin=profile_origin)
    by_name = {p.name: p for p in ctx.command.params if p.name}
    given_credentials = any(_given(ctx, name) for name in CREDENTIALS if name in params)
    for name, value in params.items():
        param = by_name.get(name)
        if param is None:
            result.values[name] = value
            continue
        source = ctx.get_parameter_source(name)
        if source is ParameterSource.COMMANDLINE:
            result.origins[name] = Origin("flag", f"--{name.replace('_', '-')}")
            result.values[name] = value
        elif source is ParameterSource.ENVIRONMENT:
            result.origins[name] = Origin("env", _envvar(param))
            result.values[name] = value
        elif name in CREDENTIALS and profile is not None and not given_credentials \
                and name in profile.credentials:
            credential = profile.credentials[name]
            result.origins[name] = Origin("profile", credential.describe(profile.name)
                                          .removeprefix("profile "))
            # A variable is read, a command run, only when the run connects.
            result.values[name] = credential.text if credential.kind == "value" else None
        elif profile is not None and name in profile.settings:
            result.origins[name] = Origin("profile", profile.name)
            result.values[name] = _convert(ctx, param, profile, name)
        else:
            result.origins[name] = Origin("default")
            result.values[name] = value
    return result


def _given(ctx: click.Context, name: str) -> bool:
    return ctx.get_parameter_source(name) in (ParameterSource.COMMANDLINE,
                                              ParameterSource.ENVIRONMENT)


def _envvar(param: click.Parameter) -> str:
    names = param.envvar
    return names if isinstance(names, str) else (names or [""])[0]


def _convert(ctx: click.Context, param: click.Parameter, profile: Profile, name: str) -> Any:
    """A profile's value checked as the option checks its own (ranges, choices, paths)."""
    value = profile.settings[name]
    try:
        return param.type.convert(value, param, ctx)
    except click.BadParameter as exc:
        raise ConfigError(f"profile {profile.name}: {name} = {value!r}: {exc.message}"
                          ) from None


def shown_value(name: str, value: Any, origin: Origin) -> str:
    """A setting's value as ``config show`` prints it: secrets masked, commands unrun."""
    if name in SECRETS:
        return "(not set)" if value is None and origin.kind == "default" else "***"
    if value is None:
        return "(from the profile)" if origin.kind == "profile" else "(not set)"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, Path):
        return str(value)
    return str(value)


def foreign_url(settings: Effective) -> str:
    """The refusal when a profile's credentials would go to a URL the profile does not name
    (a typed ``--url`` or a ``SISENSE_URL`` for another server); "" when they may go.

    Judged before any credential is read or its command run: a credential kept for one
    Sisense is never sent to another because a URL was typed over the profile's.
    """
    from bulkusers.config import server_of  # here: --help does not load the URL checks

    profile, url = settings.profile, settings.origins.get("url")
    if profile is None or url is None or url.kind not in ("flag", "env"):
        return ""
    borrowed = [name for name in CREDENTIALS
                if (origin := settings.origins.get(name)) is not None
                and origin.kind == "profile"]
    typed = str(settings["url"])
    named = profile.settings.get("url")
    if not borrowed or server_of(typed) is None or (
            isinstance(named, str) and server_of(typed) == server_of(named)):
        return ""  # a URL that cannot be parsed is refused, on its own, when it is built
    what = " and ".join(f"{name} ({profile.credentials[name].place()})" for name in borrowed)
    whose = (f"profile {profile.name}'s URL ({named})" if isinstance(named, str)
             else f"a URL profile {profile.name} names (it has no url)")
    verb = "is" if len(borrowed) == 1 else "are"
    return (f"{url.detail} {typed} is not {whose}: the profile's {what} {verb} not sent to "
            "a server it does not name; pass --token (or --username and --password) for "
            "that server, or --profile NAME of the profile with that URL")


def concurrency_over_cap(settings: Effective) -> str:
    """The refusal when a fixed ``--concurrency`` is above a ``--max-concurrency`` that was
    set (flag, variable or profile); "" otherwise. The default cap bounds only ``auto``: a
    fixed number above it is what was asked for, but above a cap someone set it is a
    contradiction the run must not settle silently in either's favour."""
    concurrency = settings.values.get("concurrency")
    cap = settings.values.get("max_concurrency")
    fixed_from = settings.origins.get("concurrency")
    cap_from = settings.origins.get("max_concurrency")
    if not isinstance(concurrency, int) or not isinstance(cap, int) or concurrency <= cap \
            or fixed_from is None or cap_from is None or cap_from.kind == "default":
        return ""
    return (f"--concurrency {concurrency} (from {fixed_from}) is above --max-concurrency {cap} "
            f"(from {cap_from}), the most requests in flight allowed; lower the first or "
            "raise the second")


def report_dir_problem(settings: Effective) -> str:
    """The refusal when the folder reports go to (``--report-dir``, BULKUSERS_REPORT_DIR or a
    profile's ``report_dir``) is missing or not writable, naming where it was set; "" when
    it is fine or not set (the core checks the current folder)."""
    folder = settings.values.get("report_dir")
    origin = settings.origins.get("report_dir")
    if folder is None or origin is None or origin.kind == "default":
        return ""
    named = f"--report-dir {folder}" + (f" (from {origin})" if origin.kind != "flag" else "")
    if not Path(folder).is_dir():
        return f"{named}: no such folder; create it or choose another"
    if not os.access(folder, os.W_OK):
        return f"{named}: the folder is not writable; choose another"
    return ""
