"""The command line as a user meets it: exit codes, one-line errors, nothing sent on bad input."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from click.testing import Result

from bulkusers.config import build_connection
from tests.conftest import TOKEN, Served, read_report, write_csv
from tests.terminal import RUN_S, Terminal, clean_env, emulator_command

RunCli = Callable[..., Result]
LEGACY_SECRET = "legacy-rest-secret-0123456789abcdef"
HEADER = ("Email", "Role", "Groups")
ROWS = [["ann@acme.example", "viewer", "Sales"], ["bob@acme.example", "designer", "Finance"]]


def one_error_line(result: Result) -> str:
    """The single error line of a failed command (and proof there is no traceback)."""
    assert "Traceback" not in result.output
    errors = [line for line in result.output.splitlines() if line.startswith("bulkusers: error")]
    assert len(errors) == 1, result.output
    return errors[0]


def test_missing_email_column_exits_2_and_sends_nothing(
        served: Served, run_cli: RunCli, tmp_path: Path) -> None:
    """A file without an email column: one line naming the columns found, exit 2, no request."""
    source = write_csv(tmp_path / "hr.csv", ("Name", "Role"), [["Ann", "viewer"]])
    result = run_cli("import", str(source), "--url", served.url, "--token", TOKEN)
    assert result.exit_code == 2
    assert "email" in one_error_line(result).lower()
    assert served.emulator.requests == []


def test_missing_file_exits_2(run_cli: RunCli, tmp_path: Path) -> None:
    """A path that does not exist is one clear line and exit 2."""
    result = run_cli("import", str(tmp_path / "nope.csv"), "--url", "http://127.0.0.1:9",
                     "--token", "x")
    assert result.exit_code == 2
    assert "nope.csv" in one_error_line(result)


def test_missing_credentials_exit_2(run_cli: RunCli, tmp_path: Path) -> None:
    """No token and no username: exit 2 with the options and variables to use."""
    source = write_csv(tmp_path / "hr.csv", HEADER, ROWS)
    result = run_cli("import", str(source), "--url", "http://127.0.0.1:9")
    assert result.exit_code == 2
    assert "SISENSE_TOKEN" in one_error_line(result)


def test_bad_url_exits_2(run_cli: RunCli, tmp_path: Path) -> None:
    """A URL without a scheme is refused before anything is sent."""
    source = write_csv(tmp_path / "hr.csv", HEADER, ROWS)
    result = run_cli("import", str(source), "--url", "sisense.example.com", "--token", "x")
    assert result.exit_code == 2
    assert "http" in one_error_line(result)


def test_refused_token_aborts_with_exit_3_and_writes_nothing(
        served: Served, run_cli: RunCli, tmp_path: Path) -> None:
    """A wrong token stops the run at the first request: exit 3, no write, token not shown."""
    source = write_csv(tmp_path / "hr.csv", HEADER, ROWS)
    result = run_cli("import", str(source), "--url", served.url, "--token", "wrong-tok3n")
    assert result.exit_code == 3
    line = one_error_line(result)
    assert "401" in line
    assert "wrong-tok3n" not in result.output
    assert served.emulator.writes() == []


def test_unreachable_server_exits_3(run_cli: RunCli, tmp_path: Path) -> None:
    """A closed port: one line naming the address, exit 3."""
    source = write_csv(tmp_path / "hr.csv", HEADER, ROWS)
    result = run_cli("import", str(source), "--url", "http://127.0.0.1:9", "--token", "x",
                     "--retries", "0")
    assert result.exit_code == 3
    assert "127.0.0.1:9" in one_error_line(result)


def test_username_and_password_login_works(served: Served, run_cli: RunCli,
                                           tmp_path: Path) -> None:
    """--username/--password log in at /api/v1/authentication/login and import the rows."""
    source = write_csv(tmp_path / "hr.csv", HEADER, ROWS)
    report = tmp_path / "r.csv"
    result = run_cli("import", str(source), "--url", served.url, "--username",
                     "admin@example.com", "--password", "Admin-Pass-1", "--report", str(report))
    assert result.exit_code == 0, result.output
    assert {line["status"] for line in read_report(report)} == {"created"}
    assert "Admin-Pass-1" not in result.output


def test_environment_variables_supply_the_connection(
        served: Served, run_cli: RunCli, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """SISENSE_URL and SISENSE_TOKEN work in place of --url and --token (cron style)."""
    source = write_csv(tmp_path / "hr.csv", HEADER, ROWS)
    monkeypatch.setenv("SISENSE_URL", served.url)
    monkeypatch.setenv("SISENSE_TOKEN", TOKEN)
    result = run_cli("import", str(source), "--quiet", "--report", str(tmp_path / "r.csv"))
    assert result.exit_code == 0, result.output
    assert result.output == ""  # --quiet: the exit code tells the outcome
    assert served.emulator.store.user_by_email("bob@acme.example") is not None


def test_max_rate_paces_a_run_that_still_completes(served: Served, run_cli: RunCli,
                                                   tmp_path: Path) -> None:
    """--max-rate is accepted by import and export, and the paced runs do all their work."""
    source = write_csv(tmp_path / "hr.csv", HEADER, ROWS)
    result = run_cli("import", str(source), "--url", served.url, "--token", TOKEN,
                     "--max-rate", "200", "--batch-size", "1", "--report",
                     str(tmp_path / "r.csv"))
    assert result.exit_code == 0, result.output
    exported = run_cli("export", "all.csv", "--url", served.url, "--token", TOKEN,
                       "--max-rate", "200")
    assert exported.exit_code == 0, exported.output
    assert len(read_report(tmp_path / "r.csv")) == 2


def test_summary_names_the_report_and_the_counts(served: Served, run_cli: RunCli,
                                                 tmp_path: Path) -> None:
    """Without --quiet the summary on stderr shows counts per status and the report path."""
    source = write_csv(tmp_path / "hr.csv", HEADER, [*ROWS, ["bad", "viewer", ""]])
    report = tmp_path / "r.csv"
    result = run_cli("import", str(source), "--url", served.url, "--token", TOKEN, "--report",
                     str(report))
    assert result.exit_code == 1
    assert re.search(r"created\s+2", result.output)
    assert re.search(r"invalid\s+1", result.output)
    assert str(report) in result.output.replace("\n", "")


def test_demo_runs_end_to_end(run_cli: RunCli, tmp_path: Path) -> None:
    """`bulkusers demo` imports the sample into its own emulator and explains the outcome."""
    result = run_cli("demo", "--latency-ms", "0")
    assert result.exit_code == 0, result.output
    assert re.search(r"created\s+314", result.output)
    assert "malformed email" in result.output
    assert len(list(tmp_path.glob("hr_users.import.*.report.csv"))) == 1


@pytest.fixture
def emulator_process(tmp_path: Path) -> Iterator[str]:
    """`bulkusers emulator` as a separate process on a free port; yields its URL."""
    with emulator_command("--token", TOKEN, "--groups", "Sales,Finance", "--api-secret",
                          LEGACY_SECRET, "--latency-ms", "15", cwd=tmp_path) as url:
        yield url


def test_separate_processes_import_then_reimport(emulator_process: str, tmp_path: Path) -> None:
    """As an admin would: emulator and import as two processes; exit 1 with bad rows, then
    a re-run creates nothing."""
    source = write_csv(tmp_path / "hr.csv", HEADER, [*ROWS, ["x@", "viewer", "Sales"]])
    env = {k: v for k, v in os.environ.items() if not k.startswith("SISENSE_")}
    command = [sys.executable, "-m", "bulkusers", "import", str(source), "--url",
               emulator_process, "--token", TOKEN]
    first = subprocess.run([*command, "--report", str(tmp_path / "1.csv")], env=env,
                           capture_output=True, text=True, timeout=RUN_S, check=False)
    assert first.returncode == 1, first.stderr
    assert [line["status"] for line in read_report(tmp_path / "1.csv")].count("created") == 2
    second = subprocess.run([*command, "--report", str(tmp_path / "2.csv")], env=env,
                            capture_output=True, text=True, timeout=RUN_S, check=False)
    assert second.returncode == 1  # the bad row is still bad
    statuses = [line["status"] for line in read_report(tmp_path / "2.csv")]
    assert statuses.count("created") == 0
    assert statuses.count("skipped") == 3
    assert "Traceback" not in first.stderr + second.stderr


def test_unwritable_report_path_is_refused_before_anything_is_sent(
        served: Served, run_cli: RunCli, tmp_path: Path) -> None:
    """--report into a missing folder, or onto a folder, is one line and exit 2, no request."""
    source = write_csv(tmp_path / "hr.csv", HEADER, ROWS)
    for report in (tmp_path / "missing" / "r.csv", tmp_path):
        result = run_cli("import", str(source), "--url", served.url, "--token", TOKEN,
                         "--report", str(report))
        assert result.exit_code == 2, result.output
        assert "--report" in one_error_line(result)
    assert served.emulator.requests == []


def test_token_with_a_control_character_is_a_usage_error(run_cli: RunCli,
                                                         tmp_path: Path) -> None:
    """A token read with a stray carriage return inside is refused with one line, exit 2,
    and a trailing newline (a token file) is simply ignored."""
    source = write_csv(tmp_path / "hr.csv", HEADER, ROWS)
    result = run_cli("import", str(source), "--url", "http://127.0.0.1:9", "--token",
                     "abc\rdef")
    assert result.exit_code == 2
    assert "control character" in one_error_line(result)
    connection = build_connection(url="http://127.0.0.1:9", token="abc\n", username=None,
                                  password=None)
    assert connection.token is not None
    assert connection.token.reveal() == "abc"


def test_strict_update_refuses_unknown_users(served: Served, run_cli: RunCli,
                                             tmp_path: Path) -> None:
    """update --strict sends nothing when a row names no existing user (exit 2)."""
    source = write_csv(tmp_path / "hr.csv", HEADER, ROWS)
    assert run_cli("import", str(source), "--url", served.url, "--token", TOKEN, "--report",
                   str(tmp_path / "seed.csv")).exit_code == 0
    writes = len(served.emulator.writes())
    changes = write_csv(tmp_path / "u.csv", ("Email", "Role"),
                        [["ann@acme.example", "designer"], ["nobody@acme.example", "viewer"]])
    result = run_cli("update", str(changes), "--url", served.url, "--token", TOKEN,
                     "--strict", "--report", str(tmp_path / "u-report.csv"))
    assert result.exit_code == 2, result.output
    assert len(served.emulator.writes()) == writes


def test_unknown_columns_are_named_in_the_summary(served: Served, run_cli: RunCli,
                                                  tmp_path: Path) -> None:
    """Columns that name no field (a typo such as 'Rolle') are listed in the summary on
    stderr and in the JSON summary, so a misspelt header is not silently ignored."""
    source = write_csv(tmp_path / "hr.csv", ("Email", "Rolle", "Department"),
                       [["ann@acme.example", "viewer", "Sales"]])
    result = run_cli("import", str(source), "--url", served.url, "--token", TOKEN,
                     "--default-role", "viewer", "--report", str(tmp_path / "r.csv"))
    assert result.exit_code == 0, result.output
    assert "ignored columns" in result.output
    assert "'Rolle'" in result.output
    summary = json.loads((tmp_path / "r.summary.json").read_text(encoding="utf-8"))
    assert summary["ignored_columns"] == ["Rolle", "Department"]


def test_emulator_command_verifies_the_legacy_jwt(emulator_process: str, tmp_path: Path) -> None:
    """`bulkusers emulator --api-secret S` accepts the x-api-key JWT signed with S (import in
    --api legacy mode succeeds) and refuses one signed with another secret (exit 3)."""
    source = write_csv(tmp_path / "hr.csv", HEADER, ROWS)
    env = {k: v for k, v in os.environ.items() if not k.startswith("SISENSE_")}
    command = [sys.executable, "-m", "bulkusers", "import", str(source), "--url",
               emulator_process, "--api", "legacy", "--username", "admin@example.com",
               "--password", "Admin-Pass-1"]
    good = subprocess.run([*command, "--api-secret", LEGACY_SECRET, "--report",
                           str(tmp_path / "1.csv")], env=env, capture_output=True, text=True,
                          timeout=RUN_S, check=False)
    assert good.returncode == 0, good.stderr
    assert {line["status"] for line in read_report(tmp_path / "1.csv")} == {"created"}
    bad = subprocess.run([*command, "--api-secret", "another-secret-0123456789abcdef",
                          "--report", str(tmp_path / "2.csv")], env=env, capture_output=True,
                         text=True, timeout=RUN_S, check=False)
    assert bad.returncode == 3, bad.stderr


def test_progress_bar_is_drawn_on_a_terminal_only(emulator_process: str,
                                                  tmp_path: Path) -> None:
    """On a terminal the import draws a progress bar (rows done of the total, rate,
    problems, time left); off a terminal the same run prints the summary and no bar."""
    rows = [[f"bar{i:03d}@acme.example", "viewer", "Sales"] for i in range(60)]
    source = write_csv(tmp_path / "hr.csv", HEADER, rows)
    env = {k: v for k, v in os.environ.items() if not k.startswith("SISENSE_")}
    env["COLUMNS"] = "120"
    command = [sys.executable, "-m", "bulkusers", "import", str(source), "--url",
               emulator_process, "--token", TOKEN, "--batch-size", "1", "--concurrency", "2"]
    args = command[3:]  # Terminal runs ``python -m bulkusers`` itself
    with Terminal([*args, "--report", str(tmp_path / "tty.csv")], tmp_path, env) as terminal:
        assert terminal.wait(timeout=RUN_S) == 0, terminal.text
    text = terminal.text
    assert re.search(r"Importing.*\d+/60", text), text[-500:]
    assert "rows/s" in text
    assert "0 problems" in text
    assert re.search(r"ETA (-:--:--|\d+:\d\d:\d\d)", text)
    piped = subprocess.run([*command, "--report", str(tmp_path / "pipe.csv")], env=env,
                           capture_output=True, text=True, timeout=RUN_S, check=False)
    assert piped.returncode == 0, piped.stderr
    assert "Importing" not in piped.stderr
    assert "60 of 60 rows have an outcome" in piped.stderr  # the summary, without a bar


@pytest.mark.parametrize("where", ["bulkusers.cli.write.settings_from",
                                   "bulkusers.cli.export.settings_from"])
def test_ctrl_c_before_a_run_starts_is_exit_130_with_one_line(
        where: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    """A Ctrl-C while a command still reads its options (before the run's own handling) ends
    with exit 130 and one "interrupted" line, not click's "Aborted!" and exit 1."""
    from bulkusers.cli import main

    def interrupted(*_: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(where, interrupted)
    source = write_csv(tmp_path / "hr.csv", HEADER, ROWS)
    command = "import" if "write" in where else "export"
    target = str(source) if command == "import" else str(tmp_path / "out.csv")
    monkeypatch.setattr(sys, "argv", ["bulkusers", command, target, "--url",
                                      "http://127.0.0.1:9", "--token", TOKEN])
    with pytest.raises(SystemExit) as stopped:
        main()
    assert stopped.value.code == 130
    errors = capsys.readouterr().err
    assert "bulkusers: error: interrupted" in errors
    assert "Aborted" not in errors


@pytest.mark.parametrize(("args", "code"), [(["--version"], 0), (["--help"], 0),
                                            (["import"], 2), (["no-such-command"], 2)])
def test_main_keeps_clicks_exit_codes(args: list[str], code: int,
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """The entry point exits 0 after --help and --version and 2 on a usage error, as click's
    standalone mode did."""
    from bulkusers.cli import main

    monkeypatch.setattr(sys, "argv", ["bulkusers", *args])
    with pytest.raises(SystemExit) as stopped:
        main()
    assert stopped.value.code == code


@pytest.mark.parametrize(("options", "named"), [
    (["--groups", "Everyone"], "--groups: 'Everyone' names the built-in group Everyone"),
    (["--groups", "Finance,ADMINS"], "--groups: 'ADMINS' names the built-in group Admins"),
    (["--groups", "Sales,Finance,sales"], "--groups: 'sales' repeats 'Sales'"),
    (["--admin-email", "User0002@example.com", "--users", "2"],
     "--admin-email 'User0002@example.com' is also a generated user's email"),
    (["--admin-email", "admin"], "--admin-email 'admin' is not an email address"),
])
def test_emulator_refuses_a_directory_it_cannot_seed(options: list[str], named: str,
                                                     tmp_path: Path) -> None:
    """`bulkusers emulator` with a built-in or repeated group name (any case), or an admin
    email that is no email or a generated user's, exits 2 with one line naming the option."""
    done = subprocess.run([sys.executable, "-m", "bulkusers", "emulator", "--port", "0",
                           *options], env=clean_env(tmp_path), cwd=tmp_path,
                          capture_output=True, text=True, timeout=RUN_S, check=False)
    assert done.returncode == 2, done.stderr
    lines = done.stderr.splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith(f"bulkusers: error: {named}"), lines[0]


def test_emulator_names_host_or_port_as_the_listen_failure_says(run_cli: RunCli) -> None:
    """`bulkusers emulator` on an address this machine does not have names --host; on a port
    already taken it names --port (exit 2 both)."""
    result = run_cli("emulator", "--host", "192.0.2.1", "--port", "0")  # TEST-NET-1
    assert result.exit_code == 2, result.output
    assert "choose another --host" in one_error_line(result)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = str(taken.getsockname()[1])
        result = run_cli("emulator", "--host", "127.0.0.1", "--port", port)
    assert result.exit_code == 2, result.output
    assert "choose another --port" in one_error_line(result)


@pytest.mark.parametrize("how", ["flag", "environment"])
def test_an_unknown_default_role_stops_the_run_before_anything_is_sent(
        served: Served, run_cli: RunCli, tmp_path: Path, how: str,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """--default-role naming no role of the server (typed, or from BULKUSERS_DEFAULT_ROLE as
    a profile or cron job sets it) is one line with a hint, exit 2, nothing sent, instead of
    every row without a role skipped as invalid."""
    source = write_csv(tmp_path / "hr.csv", ("Email",), [["z1@acme.example"], ["z2@acme.example"]])
    extra = ["--default-role", "Vewer"] if how == "flag" else []
    if how == "environment":
        monkeypatch.setenv("BULKUSERS_DEFAULT_ROLE", "Vewer")
    writes = len(served.emulator.writes())
    result = run_cli("import", str(source), "--url", served.url, "--token", TOKEN, *extra)
    assert result.exit_code == 2, result.output
    line = one_error_line(result)
    assert "--default-role 'Vewer'" in line
    assert "Viewer" in line
    assert len(served.emulator.writes()) == writes


def test_one_of_our_errors_that_reaches_main_is_its_one_line_not_an_internal_error(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    """A BulkUsersError that no command turned into its line itself ends as that line with
    its exit code (2 for a configuration error), never as 'internal error', exit 70."""
    from bulkusers.cli import main
    from bulkusers.errors import ConfigError

    def refused(*_: object) -> None:
        raise ConfigError("concurrency=32 is above max_concurrency=8")

    monkeypatch.setattr("bulkusers.cli.write.settings_from", refused)
    source = write_csv(tmp_path / "hr.csv", HEADER, ROWS)
    monkeypatch.setattr(sys, "argv", ["bulkusers", "import", str(source), "--url",
                                      "http://127.0.0.1:9", "--token", TOKEN])
    with pytest.raises(SystemExit) as stopped:
        main()
    assert stopped.value.code == 2
    errors = capsys.readouterr().err
    assert errors.strip() == "bulkusers: error: concurrency=32 is above max_concurrency=8"


def test_the_cli_names_its_flags_in_messages_the_library_words_otherwise(
        served: Served, run_cli: RunCli, tmp_path: Path) -> None:
    """The messages that name a Python caller's arguments (see test_library) name the
    flags when the CLI runs: a taken report, an unscoped removing sync, an unknown export
    role, a row without a role, an unknown group."""
    source = write_csv(tmp_path / "hr.csv", ("Email", "Role", "Groups"),
                       [["nr@acme.example", "", ""], ["ng@acme.example", "viewer", "Nowhere"]])
    taken = tmp_path / "taken.csv"
    taken.write_text("x\n", encoding="utf-8")
    common = ("--url", served.url, "--token", TOKEN)
    result = run_cli("import", str(source), "--report", str(taken), *common)
    assert "continue that run with --resume" in one_error_line(result)
    result = run_cli("sync", str(source), "--missing", "delete", *common)
    assert "pass --scope-domain DOMAIN and/or --scope-group NAME" in one_error_line(result)
    result = run_cli("export", str(tmp_path / "out.csv"), "--role", "wizard", *common)
    assert one_error_line(result).startswith("bulkusers: error: --role: ")
    report = tmp_path / "r.csv"
    run_cli("import", str(source), "--report", str(report), *common)
    errors = report.read_text(encoding="utf-8-sig")
    assert "pass --default-role viewer" in errors
    assert "pass --create-groups" in errors
