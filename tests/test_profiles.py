"""Profiles: a TOML file with one section per Sisense instance, chosen by --profile, and the
precedence flag > environment > profile > default, end to end against emulators."""

from __future__ import annotations

import re
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from click.testing import Result

from bulkusers.emulator import EmulatorSettings
from tests.conftest import GROUPS, TOKEN, Served, read_report, serve, write_csv
from tests.test_security import tls  # noqa: F401  (an HTTPS emulator fixture)

RunCli = Callable[..., Result]
OTHER_TOKEN = "second-instance-token-93"
HEADER = ("Email", "Role", "Groups")


@pytest.fixture
def second() -> Iterator[Served]:
    """A second emulator, with its own token: another Sisense instance."""
    yield from serve(EmulatorSettings(token=OTHER_TOKEN, groups=GROUPS))


def write_config(path: Path, text: str, mode: int = 0o600) -> Path:
    """Write a configuration file with the given permissions."""
    path.write_text(text, encoding="utf-8")
    path.chmod(mode)
    return path


def show(run_cli: RunCli, *args: str) -> dict[str, tuple[str, str]]:
    """`bulkusers config show` parsed: setting -> (value, origin)."""
    result = run_cli(*args)
    assert result.exit_code == 0, result.output
    settings: dict[str, tuple[str, str]] = {}
    for line in result.output.splitlines()[2:]:
        name, value, origin = re.split(r"\s{2,}", line.strip(), maxsplit=2)
        settings[name] = (value, origin)
    return settings


def test_two_profiles_for_two_emulators_without_connection_options(
        served: Served, second: Served, tls: tuple[Served, Path],  # noqa: F811
        run_cli: RunCli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Three instances (one over HTTPS with its CA) are used by profile name alone: each
    import lands on its own server with its own token; none repeats a connection option."""
    secure, cert = tls
    monkeypatch.setenv("PROD_TOKEN", TOKEN)
    monkeypatch.setenv("TEST_TOKEN", OTHER_TOKEN)
    config = write_config(tmp_path / "bulkusers.toml", f"""
default_profile = "prod"

[profiles.prod]
url = "{served.url}"
token_env = "PROD_TOKEN"

[profiles.test]
url = "{second.url}"
token_command = 'echo "$TEST_TOKEN"'

[profiles.secure]
url = "{secure.url}"
token_env = "PROD_TOKEN"
ca_bundle = "{cert}"
""")
    monkeypatch.setenv("BULKUSERS_CONFIG", str(config))
    for name, target in (("test", second), ("secure", secure)):
        source = write_csv(tmp_path / f"{name}.csv", HEADER, [[f"{name}@acme.example",
                                                               "viewer", "Sales"]])
        result = run_cli("import", str(source), "--profile", name)
        assert result.exit_code == 0, result.output
        assert target.emulator.store.user_by_email(f"{name}@acme.example") is not None
    source = write_csv(tmp_path / "prod.csv", HEADER, [["prod@acme.example", "viewer", ""]])
    result = run_cli("import", str(source))  # default_profile
    assert result.exit_code == 0, result.output
    assert served.emulator.store.user_by_email("prod@acme.example") is not None
    assert second.emulator.store.user_by_email("prod@acme.example") is None
    assert served.emulator.store.user_by_email("test@acme.example") is None
    # BULKUSERS_PROFILE picks one too, and so does --profile before the command name.
    monkeypatch.setenv("BULKUSERS_PROFILE", "test")
    result = run_cli("export", "from-test.csv")
    assert result.exit_code == 0, result.output
    assert "test@acme.example" in (tmp_path / "from-test.csv").read_text(encoding="utf-8-sig")
    result = run_cli("--profile", "prod", "export", "from-prod.csv")
    assert result.exit_code == 0, result.output
    exported = (tmp_path / "from-prod.csv").read_text(encoding="utf-8-sig")
    assert "prod@acme.example" in exported
    assert "test@acme.example" not in exported


def test_precedence_flag_then_environment_then_profile_then_default(
        run_cli: RunCli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """For several settings at once, config show reports the value and origin that win."""
    config = write_config(tmp_path / "c.toml", """
[profiles.p]
url = "https://profile.example"
retries = 7
timeout = 30
concurrency = 3
default_role = "designer"
report_dir = "reports"
insecure = true
""")
    (tmp_path / "reports").mkdir()  # a missing one would be warned of
    base = ("config", "show", "--config", str(config), "--profile", "p")
    settings = show(run_cli, *base)
    assert settings["url"] == ("https://profile.example", "profile p")
    assert settings["retries"] == ("7", "profile p")
    assert settings["timeout"] == ("30.0", "profile p")
    assert settings["concurrency"] == ("3", "profile p")
    assert settings["default_role"] == ("designer", "profile p")
    assert settings["report_dir"] == (str(tmp_path / "reports"), "profile p")
    assert settings["insecure"] == ("yes", "profile p")
    assert settings["batch_size"] == ("50", "default")
    assert settings["api"] == ("v1", "default")
    monkeypatch.setenv("SISENSE_URL", "https://env.example")
    monkeypatch.setenv("SISENSE_RETRIES", "2")
    monkeypatch.setenv("BULKUSERS_CONCURRENCY", "5")
    monkeypatch.setenv("SISENSE_INSECURE", "false")
    settings = show(run_cli, *base, "--retries", "1")
    assert settings["url"] == ("https://env.example", "env SISENSE_URL")
    assert settings["retries"] == ("1", "flag --retries")
    assert settings["concurrency"] == ("5", "env BULKUSERS_CONCURRENCY")
    assert settings["insecure"] == ("no", "env SISENSE_INSECURE")
    assert settings["timeout"] == ("30.0", "profile p")
    settings = show(run_cli, *base, "--url", "https://flag.example", "--concurrency", "9")
    assert settings["url"] == ("https://flag.example", "flag --url")
    assert settings["concurrency"] == ("9", "flag --concurrency")


def test_profile_settings_drive_a_real_run(served: Served, run_cli: RunCli, tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """default_role and report_dir from the profile shape an import; a flag overrides one."""
    monkeypatch.setenv("PROD_TOKEN", TOKEN)
    write_config(tmp_path / "c.toml", f"""
[profiles.prod]
url = "{served.url}"
token_env = "PROD_TOKEN"
default_role = "Designer"
report_dir = "reports"
""")
    (tmp_path / "reports").mkdir()
    source = write_csv(tmp_path / "new.csv", ("Email",), [["a@acme.example"]])
    result = run_cli("import", str(source), "--config", "c.toml", "--profile", "prod")
    assert result.exit_code == 0, result.output
    user = served.emulator.store.user_by_email("a@acme.example")
    assert user is not None
    assert served.emulator.store.role_name_of(user["_id"]) == "contributor"
    assert len(list((tmp_path / "reports").glob("new.import.*.report.csv"))) == 1
    assert len(list((tmp_path / "reports").glob("new.import.*.summary.json"))) == 1
    assert not list(tmp_path.glob("*.report.csv"))
    source = write_csv(tmp_path / "more.csv", ("Email",), [["b@acme.example"]])
    result = run_cli("import", str(source), "--config", "c.toml", "--profile", "prod",
                     "--default-role", "viewer", "--report-dir", str(tmp_path))
    assert result.exit_code == 0, result.output
    user = served.emulator.store.user_by_email("b@acme.example")
    assert user is not None
    assert served.emulator.store.role_name_of(user["_id"]) == "consumer"
    assert len(list(tmp_path.glob("more.import.*.report.csv"))) == 1


def test_config_show_masks_every_secret(run_cli: RunCli, tmp_path: Path,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """Secrets from a file, a variable or a flag show as ***; commands are not run."""
    marker = tmp_path / "ran"
    config = write_config(tmp_path / "c.toml", f"""
[profiles.p]
url = "https://s.example"
username = "admin@acme.example"
password = "Pw-in-file-51"
api_secret = "Api-secret-77"
token_command = "touch {marker}; echo Token-from-command-3"
""")
    monkeypatch.setenv("SISENSE_PASSWORD", "Pw-from-env-62")
    result = run_cli("config", "show", "--config", str(config), "--profile", "p")
    assert result.exit_code == 0, result.output
    for secret in ("Pw-in-file-51", "Api-secret-77", "Token-from-command", "Pw-from-env-62"):
        assert secret not in result.output
    assert not marker.exists()
    # The password came from the environment: the credentials are that layer's, as a set.
    settings = show(run_cli, "config", "show", "--config", str(config), "--profile", "p")
    assert settings["password"] == ("***", "env SISENSE_PASSWORD")
    assert settings["token"] == ("(not set)", "default")
    monkeypatch.delenv("SISENSE_PASSWORD")
    settings = show(run_cli, "config", "show", "--config", str(config), "--profile", "p",
                    "--token", "Flag-token-11")
    assert settings["token"] == ("***", "flag --token")
    settings = show(run_cli, "config", "show", "--config", str(config), "--profile", "p")
    assert settings["token"] == ("***", "profile p: token_command")
    assert settings["password"] == ("***", "profile p")
    assert settings["username"] == ("admin@acme.example", "profile p")


def test_token_command_supplies_the_token(served: Served, run_cli: RunCli,
                                          tmp_path: Path) -> None:
    """A token_command's first output line is the token; the file holds no secret."""
    secret_file = tmp_path / "token.txt"
    secret_file.write_text(TOKEN + "\n", encoding="utf-8")
    config = write_config(tmp_path / "c.toml", f"""
[profiles.p]
url = "{served.url}"
token_command = "cat {secret_file}"
""", mode=0o644)
    result = run_cli("export", "users.csv", "--config", str(config), "--profile", "p")
    assert result.exit_code == 0, result.output


@pytest.mark.parametrize(("command", "why"), [
    ("echo Leaked-secret-45; exit 3", "exit status 3"),
    ("no-such-command-bulkusers-test", "exit status 127 (command not found)"),
    ("true", "printed nothing"),
])
def test_failing_token_command_is_one_line_without_its_output(
        served: Served, run_cli: RunCli, tmp_path: Path, command: str, why: str) -> None:
    """A token_command that fails: exit 2, one line with its status, never its output."""
    config = write_config(tmp_path / "c.toml", f"""
[profiles.p]
url = "{served.url}"
token_command = "{command}"
""")
    result = run_cli("export", "users.csv", "--config", str(config), "--profile", "p")
    assert result.exit_code == 2, result.output
    assert "Leaked-secret-45" not in result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1, result.output
    assert "token_command" in lines[0]
    assert why in lines[0]
    assert served.emulator.requests == []


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX permission bits")
@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604])
def test_readable_file_with_a_secret_is_refused_with_the_chmod(
        run_cli: RunCli, tmp_path: Path, mode: int) -> None:
    """A file holding a secret in clear that group or others can read: exit 2, and the one
    line names the chmod to run; mode 600 is accepted."""
    config = write_config(tmp_path / "c.toml", """
[profiles.p]
url = "https://s.example"
token = "Clear-token-88"
""", mode=mode)
    result = run_cli("config", "show", "--config", str(config), "--profile", "p")
    assert result.exit_code == 2, result.output
    assert f"chmod 600 {config}" in result.output
    assert "Clear-token-88" not in result.output
    assert len(result.output.strip().splitlines()) == 1
    config.chmod(0o600)
    assert run_cli("config", "show", "--config", str(config), "--profile", "p").exit_code == 0


@pytest.mark.parametrize(("text", "expected"), [
    ("[profiles.p]\nurl = 5\n", "url must be a text"),
    ("[profiles.p]\nconcurrency = 600\n", "concurrency"),
    ("[profiles.p]\nconcurrency = 'fast'\n", "neither 'auto' nor a number"),
    ("[profiles.p]\nmax_concurrency = 1000\n", "max_concurrency"),
    ("[profiles.p]\nconcurrency = true\n", "concurrency must be a number"),
    ("[profiles.p]\ncolour = 'blue'\n", "unknown key 'colour'"),
    ("[profiles.p]\napi = 'v3'\n", "api"),
    ("[profiles.p\n", "not valid TOML"),
    ("default_profile = 'x'\n[profiles.p]\n", "default_profile 'x'"),
    ("[profiles.p]\ntoken_env = 'A'\ntoken_command = 'b'\n", "gives the token twice"),
])
def test_bad_configuration_is_one_line_exit_2(run_cli: RunCli, tmp_path: Path, text: str,
                                              expected: str) -> None:
    """Wrong types, ranges, unknown keys and broken TOML: one line naming the key, exit 2."""
    config = write_config(tmp_path / "c.toml", text)
    result = run_cli("config", "show", "--config", str(config), "--profile", "p")
    assert result.exit_code == 2, result.output
    assert expected in result.output
    assert "Traceback" not in result.output


def test_unknown_profile_and_missing_file_are_named(run_cli: RunCli, tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """--profile naming no section lists the profiles; --config naming no file says so."""
    config = write_config(tmp_path / "c.toml", "[profiles.prod]\n[profiles.test]\n")
    result = run_cli("config", "show", "--config", str(config), "--profile", "staging")
    assert result.exit_code == 2
    assert "no profile 'staging' (profiles: prod, test)" in result.output
    result = run_cli("config", "show", "--config", str(tmp_path / "missing.toml"))
    assert result.exit_code == 2
    assert "missing.toml: no such file" in result.output
    monkeypatch.setenv("BULKUSERS_PROFILE", "prod")  # no file at the standard place
    result = run_cli("config", "show")
    assert result.exit_code == 2
    assert "profile 'prod' asked for" in result.output


def test_config_path_follows_the_standard_location_and_overrides(
        run_cli: RunCli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`config path` prints the per-user file, or the one BULKUSERS_CONFIG / --config names."""
    result = run_cli("config", "path")
    assert result.output.strip() == str(tmp_path / ".no-config" / "bulkusers" / "config.toml")
    monkeypatch.setenv("BULKUSERS_CONFIG", str(tmp_path / "env.toml"))
    assert run_cli("config", "path").output.strip() == str(tmp_path / "env.toml")
    result = run_cli("config", "path", "--config", str(tmp_path / "flag.toml"))
    assert result.output.strip() == str(tmp_path / "flag.toml")


def test_standard_location_is_read_without_options(served: Served, run_cli: RunCli,
                                                   tmp_path: Path) -> None:
    """A config.toml at the per-user location with a default_profile needs no option."""
    folder = tmp_path / ".no-config" / "bulkusers"
    folder.mkdir(parents=True)
    write_config(folder / "config.toml", f"""
default_profile = "prod"
[profiles.prod]
url = "{served.url}"
token = "{TOKEN}"
""")
    result = run_cli("export", "users.csv")
    assert result.exit_code == 0, result.output
    lines = read_report(tmp_path / "users.csv")
    assert lines[0]["email"] == "admin@example.com"
    assert (folder / "config.toml").stat().st_mode & 0o777 == 0o600


def test_url_and_credentials_from_different_places_are_warned_about(
        served: Served, run_cli: RunCli, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A profile's URL with a token from SISENSE_TOKEN (exported for another instance, say)
    runs, as the precedence says, but a warning names both origins; flags never warn."""
    config = write_config(tmp_path / "c.toml", f"""
[profiles.p]
url = "{served.url}"
token_env = "NOT_SET_ANYWHERE"
""")
    monkeypatch.setenv("SISENSE_TOKEN", TOKEN)
    result = run_cli("export", "u.csv", "--config", str(config), "--profile", "p")
    assert result.exit_code == 0, result.output
    assert ("warning: the URL comes from profile p but the token from env SISENSE_TOKEN"
            in result.output)
    assert TOKEN not in result.output
    monkeypatch.delenv("SISENSE_TOKEN")
    result = run_cli("export", "v.csv", "--config", str(config), "--profile", "p",
                     "--token", TOKEN)
    assert result.exit_code == 0, result.output
    assert "warning" not in result.output


def em2_config(tmp_path: Path, url: str) -> Path:
    """A configuration whose default profile em2 names `url` and reads its token from
    $EM2_TOKEN."""
    return write_config(tmp_path / "c.toml", f"""
default_profile = "em2"

[profiles.em2]
url = "{url}"
token_env = "EM2_TOKEN"
""")


CONNECTING = (("import", "--dry-run"), ("update", "--dry-run"), ("deactivate", "--dry-run"),
              ("reactivate", "--dry-run"), ("delete", "--dry-run"),
              ("sync", "--scope-domain", "acme.example", "--dry-run"), ("export",))


def test_a_url_the_profile_does_not_name_never_gets_the_profiles_token(
        served: Served, second: Served, run_cli: RunCli, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Every command that connects refuses (exit 2, one line, nothing sent) to send a
    profile's token to a --url or SISENSE_URL the profile does not name."""
    monkeypatch.setenv("BULKUSERS_CONFIG", str(em2_config(tmp_path, served.url)))
    monkeypatch.setenv("EM2_TOKEN", TOKEN)
    source = write_csv(tmp_path / "p.csv", HEADER, [["a@acme.example", "viewer", ""]])
    refusal = (f"bulkusers: error: --url {second.url} is not profile em2's URL ({served.url}): "
               "the profile's token ($EM2_TOKEN) is not sent to a server it does not name; "
               "pass --token (or --username and --password) for that server, or --profile "
               "NAME of the profile with that URL")
    for command, *options in CONNECTING:
        target = "out.csv" if command == "export" else str(source)
        result = run_cli(command, target, "--url", second.url, *options)
        assert result.exit_code == 2, (command, result.output)
        assert result.output.splitlines() == [refusal], command
    monkeypatch.setenv("SISENSE_URL", second.url)
    result = run_cli("import", str(source), "--dry-run")
    assert result.exit_code == 2, result.output
    assert result.output.splitlines() == [refusal.replace("--url", "SISENSE_URL", 1)]
    assert second.emulator.requests == []
    assert served.emulator.requests == []


def test_the_profiles_own_url_or_typed_credentials_are_not_refused(
        served: Served, second: Served, run_cli: RunCli, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The profile's URL typed again (with a trailing slash) runs with its token; another
    URL runs with credentials typed for it; config show warns of what a run would refuse."""
    monkeypatch.setenv("BULKUSERS_CONFIG", str(em2_config(tmp_path, served.url)))
    monkeypatch.setenv("EM2_TOKEN", TOKEN)
    source = write_csv(tmp_path / "p.csv", HEADER, [["a@acme.example", "viewer", ""]])
    result = run_cli("import", str(source), "--url", served.url + "/", "--dry-run")
    assert result.exit_code == 0, result.output
    assert "warning" not in result.output
    result = run_cli("import", str(source), "--url", second.url, "--token", OTHER_TOKEN)
    assert result.exit_code == 0, result.output
    assert second.emulator.store.user_by_email("a@acme.example") is not None
    result = run_cli("config", "show", "--url", second.url)
    assert result.exit_code == 0, result.output
    assert ("warning: a run with these settings would be refused: --url "
            f"{second.url} is not profile em2's URL") in result.output


def test_a_refused_profile_token_names_where_it_came_from(
        served: Served, run_cli: RunCli, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A 401 for a profile's token says which profile and variable to check, not --token."""
    monkeypatch.setenv("BULKUSERS_CONFIG", str(em2_config(tmp_path, served.url)))
    monkeypatch.setenv("EM2_TOKEN", "expired-token-17")
    result = run_cli("export", "users.csv")
    assert result.exit_code == 3, result.output
    assert "check the token of profile em2 ($EM2_TOKEN)," in result.output
    assert "--token or SISENSE_TOKEN" not in result.output
    assert "expired-token-17" not in result.output


def test_resolved_secrets_never_show_in_a_repr(tmp_path: Path) -> None:
    """A profile's literal secret and a resolved credential stay out of every repr."""
    from bulkusers.cli.settings import Effective, Origin
    from bulkusers.profiles import load_config

    config = load_config(write_config(tmp_path / "c.toml", """
[profiles.p]
token = "Repr-secret-31"
password_command = "echo Repr-secret-32"
"""))
    profile = config.profile("p")
    effective = Effective(values={"token": None}, origins={"token": Origin("profile", "p")},
                          profile=profile)
    assert effective.credential("token", {}) == "Repr-secret-31"
    for text in (repr(config), repr(profile), repr(effective)):
        assert "Repr-secret" not in text


def test_a_profile_can_ask_for_adaptive_or_fixed_concurrency(run_cli: RunCli,
                                                             tmp_path: Path) -> None:
    """concurrency = "auto" or a number, and max_concurrency, come from a profile."""
    config = write_config(tmp_path / "c.toml",
                          "[profiles.p]\nconcurrency = 'auto'\nmax_concurrency = 128\n"
                          "[profiles.q]\nconcurrency = 12\n")
    settings = show(run_cli, "config", "show", "--config", str(config), "--profile", "p")
    assert settings["concurrency"] == ("auto", "profile p")
    assert settings["max_concurrency"] == ("128", "profile p")
    settings = show(run_cli, "config", "show", "--config", str(config), "--profile", "q")
    assert settings["concurrency"] == ("12", "profile q")
    assert settings["max_concurrency"] == ("64", "default")


def test_a_profiles_username_and_password_never_go_to_another_url(
        served: Served, second: Served, run_cli: RunCli, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A profile that signs in with a username and password refuses them to a --url it
    does not name, another path on its own server included: one line naming both
    credentials, exit 2, nothing sent."""
    config = write_config(tmp_path / "login.toml", f"""
default_profile = "em2"

[profiles.em2]
url = "{served.url}"
username = "admin@example.com"
password_env = "EM2_PW"
""")
    monkeypatch.setenv("BULKUSERS_CONFIG", str(config))
    monkeypatch.setenv("EM2_PW", "not-to-be-sent")
    for url in (second.url, served.url + "/other"):
        result = run_cli("export", "out.csv", "--url", url)
        assert result.exit_code == 2, result.output
        (line,) = result.output.splitlines()
        assert ("the profile's username (username in the file) and password ($EM2_PW) are "
                "not sent to a server it does not name") in line
        assert "not-to-be-sent" not in result.output
    assert second.emulator.requests == []
    assert served.emulator.requests == []
