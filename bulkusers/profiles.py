"""The configuration file: one TOML section per Sisense instance (a profile), read safely.

A profile holds an instance's URL, API flavour, TLS settings, run defaults and where its
credentials come from: the environment (``token_env``) or a command (``token_command``), so
no secret needs to sit in the file. A file that does hold a secret in clear is refused while
others can read it. This module only reads and checks the file; which value wins over which
(flag, environment, profile, default) is decided by the command line.
"""

from __future__ import annotations

import os
import stat
import tomllib
from collections.abc import Mapping
from dataclasses import field
from pathlib import Path

from bulkusers.errors import ConfigError
from bulkusers.frozen import frozen

CONFIG_ENV = "BULKUSERS_CONFIG"
PROFILE_ENV = "BULKUSERS_PROFILE"
#: Credentials a profile may give literally, from a variable (``_env``) or a command.
CREDENTIALS = ("token", "username", "password", "api_secret")
#: The credentials that are secrets (a username is not).
SECRETS = frozenset({"token", "password", "api_secret"})
#: Settings a profile may hold besides the credentials, and the TOML types each accepts.
SETTINGS: Mapping[str, tuple[type, ...]] = {
    "url": (str,), "api": (str,), "ca_bundle": (str,), "insecure": (bool,),
    "retries": (int,), "timeout": (int, float), "max_rate": (int, float),
    "concurrency": (int, str), "max_concurrency": (int,), "batch_size": (int,),
    "default_role": (str,),
    "report_dir": (str,),
}
#: Settings naming a file or folder: ``~`` is expanded and a relative path is taken from
#: the configuration file's folder, so a profile means the same wherever the tool runs.
PATHS = frozenset({"ca_bundle", "report_dir"})
#: Seconds a credential command may take (a password manager waiting for a PIN, say).
COMMAND_TIMEOUT_S = 120.0


def default_config_path() -> Path:
    """The per-user configuration file (e.g. ~/.config/bulkusers/config.toml on Linux)."""
    import platformdirs  # here: the CLI imports this module to declare its options

    return Path(platformdirs.user_config_dir("bulkusers", appauthor=False)) / "config.toml"


@frozen
class CredentialSource:
    """Where a profile's credential comes from: a literal, a variable or a command."""

    name: str
    kind: str  # "value", "env" or "command"
    text: str = field(repr=False)

    def describe(self, profile: str) -> str:
        """Where the credential comes from, for ``config show`` (never the secret)."""
        if self.kind == "value":
            return f"profile {profile}"
        return f"profile {profile}: {self.place()}"

    def place(self) -> str:
        """Where the value is kept, in a few words (never the value): ``$VAR``,
        ``token_command``, or ``token in the file``."""
        if self.kind == "env":
            return f"${self.text}"
        if self.kind == "command":
            return f"{self.name}_command"
        return f"{self.name} in the file"

    def resolve(self, profile: str, environ: Mapping[str, str]) -> str | None:
        """The credential's value; ConfigError (exit 2) when it cannot be had."""
        if self.kind == "value":
            return self.text
        if self.kind == "env":
            value = environ.get(self.text)
            if not value:
                raise ConfigError(f"profile {profile}: {self.name}_env names ${self.text}, "
                                  "which is not set; export it or change the profile")
            return value
        return _run_command(profile, self.name, self.text)


def _run_command(profile: str, name: str, command: str) -> str:
    """Run a credential command and return its first output line.

    Its output is never shown, even when it fails: it may hold the secret, or part of it.
    """
    import subprocess  # here: the CLI imports this module to declare its options

    where = f"profile {profile}: {name}_command"
    try:
        done = subprocess.run(command, shell=True, capture_output=True, check=False,
                              timeout=COMMAND_TIMEOUT_S, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        raise ConfigError(f"{where} did not finish within {COMMAND_TIMEOUT_S:.0f} s; run it "
                          "yourself to see why") from None
    except OSError as exc:
        raise ConfigError(f"{where} could not be started ({exc.strerror})") from None
    if done.returncode != 0:
        hint = " (command not found)" if done.returncode == 127 else ""
        raise ConfigError(f"{where} failed with exit status {done.returncode}{hint}; run it "
                          "yourself to see why (its output is not shown: it may hold the "
                          "secret)")
    lines = done.stdout.decode("utf-8", errors="replace").strip().splitlines()
    if not lines or not lines[0].strip():
        raise ConfigError(f"{where} printed nothing; it must print the {name} on its "
                          "first line")
    return lines[0].strip()


@frozen
class Profile:
    """One checked ``[profiles.NAME]`` section: its settings and credential sources."""

    name: str
    settings: Mapping[str, object] = field(default_factory=dict)
    credentials: Mapping[str, CredentialSource] = field(default_factory=dict)


@frozen
class ConfigFile:
    """A read configuration file: its path, default profile and profiles."""

    path: Path
    exists: bool
    default_profile: str | None = None
    profiles: Mapping[str, Profile] = field(default_factory=dict)

    def profile(self, name: str) -> Profile:
        """The profile called ``name``; ConfigError naming the ones there are."""
        if name in self.profiles:
            return self.profiles[name]
        if not self.exists:
            raise ConfigError(f"profile {name!r} asked for, but {self.path} does not exist; "
                              "create it with a [profiles." + name + "] section, or point "
                              f"--config / {CONFIG_ENV} at your file")
        known = ", ".join(sorted(self.profiles)) or "none"
        raise ConfigError(f"{self.path}: no profile {name!r} (profiles: {known})")


def load_config(path: Path) -> ConfigFile:
    """Read and check a configuration file; a missing file is an empty configuration."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return ConfigFile(path, exists=False)
    except IsADirectoryError:
        raise ConfigError(f"{path}: is a folder; the configuration is a TOML file") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot be read ({exc.strerror})") from None
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"{path}: is not valid TOML ({exc}); fix the file") from None
    unknown = sorted(set(data) - {"default_profile", "profiles"})
    if unknown:
        raise ConfigError(f"{path}: unknown key {unknown[0]!r} at the top level (expected "
                          "default_profile and [profiles.NAME] sections)")
    default = data.get("default_profile")
    if default is not None and not isinstance(default, str):
        raise ConfigError(f"{path}: default_profile must be a profile name in quotes")
    sections = data.get("profiles", {})
    if not isinstance(sections, dict):
        raise ConfigError(f"{path}: profiles must be sections like [profiles.prod]")
    profiles = {name: _profile(path, name, body) for name, body in sections.items()}
    if default is not None and default not in profiles:
        raise ConfigError(f"{path}: default_profile {default!r} has no [profiles.{default}] "
                          "section")
    _check_permissions(path, profiles)
    return ConfigFile(path, True, default, profiles)


def _profile(path: Path, name: str, body: object) -> Profile:
    """Check one profile section's keys and types."""
    where = f"{path}: [profiles.{name}]"
    if not isinstance(body, dict):
        raise ConfigError(f"{where} must be a section of key = value lines")
    settings: dict[str, object] = {}
    credentials: dict[str, CredentialSource] = {}
    for key, value in body.items():
        credential, kind = _credential_key(key)
        if credential:
            if not isinstance(value, str) or not value:
                raise ConfigError(f"{where} {key} must be a non-empty text in quotes")
            if credential in credentials:
                raise ConfigError(f"{where} gives the {credential} twice ({key} and "
                                  f"{_key_of(credentials[credential])}); keep one")
            credentials[credential] = CredentialSource(credential, kind, value)
            continue
        if key not in SETTINGS:
            raise ConfigError(f"{where} unknown key {key!r}; known keys: "
                              f"{', '.join(sorted(SETTINGS))}, and token, username, password, "
                              "api_secret (each also as NAME_env or NAME_command)")
        types = SETTINGS[key]
        # bool is an int in Python: "concurrency = true" must not pass for 1.
        if isinstance(value, bool) != (bool in types) or not isinstance(value, types):
            wanted = {bool: "true or false", str: "a text in quotes"}.get(types[0], "a number")
            raise ConfigError(f"{where} {key} must be {wanted}, not {value!r}")
        if key in PATHS:
            value = str(_resolve_path(path, str(value)))
        settings[key] = value
    return Profile(name, settings, credentials)


def _credential_key(key: str) -> tuple[str, str]:
    """(credential, kind) for a credential key such as token_env; ("", "") otherwise."""
    for credential in CREDENTIALS:
        if key == credential:
            return credential, "value"
        if key == f"{credential}_env":
            return credential, "env"
        if key == f"{credential}_command":
            return credential, "command"
    return "", ""


def _key_of(source: CredentialSource) -> str:
    return source.name if source.kind == "value" else f"{source.name}_{source.kind}"


def _resolve_path(config: Path, text: str) -> Path:
    path = Path(text).expanduser()
    return path if path.is_absolute() else config.parent / path


def _check_permissions(path: Path, profiles: Mapping[str, Profile]) -> None:
    """Refuse a file that holds a secret in clear while others may read it."""
    holders = [(profile.name, source.name) for profile in profiles.values()
               for source in profile.credentials.values()
               if source.kind == "value" and source.name in SECRETS]
    if not holders or os.name != "posix":
        return
    mode = path.stat().st_mode
    if mode & (stat.S_IRGRP | stat.S_IROTH):
        name, secret = holders[0]
        raise ConfigError(f"{path} holds a secret ({secret} in [profiles.{name}]) and others "
                          f"can read it; run: chmod 600 {path}")


def choose_profile(config: ConfigFile, flag: str | None,
                   environ: Mapping[str, str]) -> tuple[Profile | None, str]:
    """The profile a run uses and what chose it: --profile, $BULKUSERS_PROFILE, the file's
    default_profile, or none."""
    if flag:
        return config.profile(flag), "--profile"
    if environ.get(PROFILE_ENV):
        return config.profile(environ[PROFILE_ENV]), PROFILE_ENV
    if config.default_profile:
        return config.profile(config.default_profile), "default_profile"
    return None, ""


def config_location(flag: Path | None, environ: Mapping[str, str]) -> tuple[Path, str]:
    """The configuration file to read and what chose it: --config, $BULKUSERS_CONFIG or the
    standard per-user location."""
    if flag is not None:
        return flag.expanduser(), "--config"
    if environ.get(CONFIG_ENV):
        return Path(environ[CONFIG_ENV]).expanduser(), CONFIG_ENV
    return default_config_path(), "default"
