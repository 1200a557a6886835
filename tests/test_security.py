"""Secret hygiene, formula-safe output and TLS verification, end to end over loopback."""

from __future__ import annotations

import asyncio
import logging
import os
import re
import shutil
import socket
import ssl
import subprocess
import sys
import traceback
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from click.testing import Result
from openpyxl import load_workbook

from bulkusers.client import SisenseClient
from bulkusers.config import Connection, RetryPolicy, build_connection
from bulkusers.emulator import EmulatorSettings, running_emulator
from bulkusers.errors import AuthError
from bulkusers.readers import open_table
from tests.conftest import GROUPS, TOKEN, EmulatorThread, Served, read_report, serve, write_csv
from tests.terminal import RUN_S

RunCli = Callable[..., Result]

TOKEN_SECRET = "tok-SECRET-123"
PASSWORD_SECRET = "pw-SECRET-456"
API_SECRET = "sec-SECRET-789-0123456789abcdef"
ROW_SECRET = "row-SECRET-000"
WRONG_PASSWORD = "pw-SECRET-999"
WRONG_TOKEN = "tok-SECRET-998"
SECRETS = (TOKEN_SECRET, PASSWORD_SECRET, API_SECRET, ROW_SECRET, WRONG_PASSWORD, WRONG_TOKEN)
# Every JWT starts with the base64 of '{"': a login token or a legacy x-api-key in the output
# would show up as this, whatever its (random) value.
JWT_PREFIX = "eyJ"
ADMIN = "admin@example.com"

PEOPLE_HEADER = ("Email", "First Name", "Last Name", "Role", "Groups", "Password")
PEOPLE = [
    ["ann@acme.example", "Ann", "Lee", "viewer", "Finance", ROW_SECRET],
    ["bob@acme.example", "Bob", "Ray", "designer", "Sales", ROW_SECRET],
    ["cy@acme.example", "Cy", "Diaz", "viewer", "", ""],
]


def leaks(text: str) -> list[str]:
    """The secrets (and JWT-looking strings) found in ``text``."""
    found = [secret for secret in SECRETS if secret in text]
    if JWT_PREFIX in text:
        found.append(JWT_PREFIX)
    return found


def file_texts(path: Path) -> Iterator[tuple[str, str]]:
    """Every file under ``path`` as text (XLSX and other ZIPs unpacked), with its name."""
    for item in sorted(path.rglob("*")):
        if not item.is_file():
            continue
        if zipfile.is_zipfile(item):
            with zipfile.ZipFile(item) as package:
                for member in package.namelist():
                    yield f"{item.name}!{member}", package.read(member).decode("utf-8", "replace")
        else:
            yield item.name, item.read_bytes().decode("utf-8", "replace")


def debug_run(run_cli: RunCli, *args: str) -> Result:
    """`bulkusers --debug ...`, leaving the logging set-up as it found it."""
    logger = logging.getLogger("bulkusers")
    handlers, level = list(logger.handlers), logger.level
    try:
        return run_cli("--debug", *args)
    finally:
        # --debug adds a stderr handler; in one process it would outlive the command.
        for handler in logger.handlers[:]:
            if handler not in handlers:
                logger.removeHandler(handler)
        logger.setLevel(level)


def free_port() -> int:
    """A loopback port nothing listens on."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


@pytest.fixture
def guarded() -> Iterator[Served]:
    """An emulator whose token, admin password and REST API secret are the test's secrets."""
    yield from serve(EmulatorSettings(token=TOKEN_SECRET, admin_password=PASSWORD_SECRET,
                                      api_secret=API_SECRET, groups=GROUPS))


def _clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("SISENSE_")}


# --- 1. secrets --------------------------------------------------------------------------


def test_no_secret_in_any_output_or_file(guarded: Served, run_cli: RunCli,
                                         tmp_path: Path) -> None:
    """Every command with --debug, ok or failing, any credentials: no secret in output/files."""
    url = guarded.url
    token = ["--url", url, "--token", TOKEN_SECRET]
    login = ["--url", url, "--username", ADMIN, "--password", PASSWORD_SECRET]
    legacy = [*login, "--api", "legacy", "--api-secret", API_SECRET]
    write_csv(tmp_path / "people.csv", PEOPLE_HEADER, PEOPLE)
    write_csv(tmp_path / "more.csv", PEOPLE_HEADER,
              [["dee@acme.example", "Dee", "Fox", "viewer", "Sales", ROW_SECRET]])
    write_csv(tmp_path / "changes.csv", PEOPLE_HEADER,
              [["cy@acme.example", "Cyrus", "Diaz", "designer", "Sales", ROW_SECRET]])
    write_csv(tmp_path / "leavers.csv", ("Email",), [["ann@acme.example"]])
    write_csv(tmp_path / "gone.csv", ("Email",), [["bob@acme.example"]])
    write_csv(tmp_path / "failing.csv", PEOPLE_HEADER,
              [["eve@acme.example", "Eve", "Ng", "viewer", "", ROW_SECRET]])

    runs: list[tuple[list[str], int]] = [
        (["import", "people.csv", "--report", "import.csv", *token], 0),
        (["import", "more.csv", "--report", "import-login.csv", *login], 0),
        (["update", "changes.csv", "--report", "update.csv", *legacy], 0),
        (["deactivate", "leavers.csv", "--yes", "--report", "deactivate.csv", *token], 0),
        (["reactivate", "deactivate.csv", "--report", "reactivate.csv", *login], 0),
        (["delete", "gone.csv", "--yes", "--report", "delete.csv", *legacy], 0),
        (["export", "users.csv", *token], 0),
        (["export", "users.xlsx", *login], 0),
        (["export", "legacy.csv", *legacy], 0),
        (["import", "more.csv", "--report", "refused.csv", "--url", url, "--username", ADMIN,
          "--password", WRONG_PASSWORD], 3),
        (["import", "more.csv", "--report", "refused-token.csv", "--url", url, "--token",
          WRONG_TOKEN], 3),
        (["import", "more.csv", "--report", "unreachable.csv", "--url",
          f"http://127.0.0.1:{free_port()}", "--token", TOKEN_SECRET, "--retries", "0"], 3),
    ]
    outputs: list[str] = []
    for args, expected in runs:
        result = debug_run(run_cli, *args)
        assert result.exit_code == expected, (args, result.output)
        outputs.append(result.output)

    # Server errors: a 500 failing a row, and a 500 aborting an export.
    guarded.host.call(lambda: guarded.emulator.faults.script("POST", "/api/v1/users", [500]))
    result = debug_run(run_cli, "import", "failing.csv", "--report", "server-error.csv",
                       *token, "--batch-size", "1")
    assert result.exit_code == 1, result.output
    assert read_report(tmp_path / "server-error.csv")[0]["http_status"] == "500"
    outputs.append(result.output)
    guarded.host.call(lambda: guarded.emulator.faults.script("GET", "/api/v1/users", [500]))
    result = debug_run(run_cli, "export", "failed-export.csv", *login)
    assert result.exit_code == 3, result.output
    outputs.append(result.output)

    # The runs really did their work, and --debug really logged requests.
    store = guarded.emulator.store
    assert store.check_password("dee@acme.example", ROW_SECRET)  # the row password was sent
    assert store.user_by_email("bob@acme.example") is None
    assert any("GET /api/roles" in output for output in outputs)
    assert {line["Password"] for line in read_report(tmp_path / "import.csv")} == {"***", ""}

    for args_output in outputs:
        assert leaks(args_output) == [], args_output
    written = list(file_texts(tmp_path))
    assert {"import.csv", "users.xlsx!xl/worksheets/sheet1.xml"} <= {n for n, _ in written}
    for name, text in written:
        if name.endswith(".csv") and name.split("!")[0] in {
                "people.csv", "more.csv", "changes.csv", "failing.csv"}:
            continue  # the inputs hold the row password on purpose
        assert leaks(text) == [], name


def test_debug_logs_the_login_like_any_request_but_never_its_password(
        guarded: Served, run_cli: RunCli, tmp_path: Path) -> None:
    """--debug logs the v1 login (also in --api legacy, also refused with 401) as
    ``POST /api/v1/authentication/login -> STATUS``, and the password appears nowhere."""
    write_csv(tmp_path / "people.csv", PEOPLE_HEADER, PEOPLE)
    runs = [([], PASSWORD_SECRET, 0, 200), (["--api", "legacy"], PASSWORD_SECRET, 0, 200),
            ([], WRONG_PASSWORD, 3, 401), (["--api", "legacy"], WRONG_PASSWORD, 3, 401)]
    for options, password, code, status in runs:
        result = debug_run(run_cli, "import", "people.csv", "--dry-run", "--url", guarded.url,
                           "--username", ADMIN, "--password", password, *options)
        assert result.exit_code == code, result.output
        line = f"bulkusers.http: POST /api/v1/authentication/login -> {status} in "
        assert line in result.output, result.output
        assert leaks(result.output) == [], result.output


def test_no_secret_from_environment_in_a_real_process(guarded: Served, tmp_path: Path) -> None:
    """`python -m bulkusers --debug` with SISENSE_* credentials shows none of them anywhere."""
    write_csv(tmp_path / "people.csv", PEOPLE_HEADER, PEOPLE)
    runs = [
        (["import", "people.csv", "--report", "env-import.csv"],
         {"SISENSE_URL": guarded.url, "SISENSE_TOKEN": TOKEN_SECRET}),
        (["update", "people.csv", "--api", "legacy", "--report", "env-update.csv"],
         {"SISENSE_URL": guarded.url, "SISENSE_USERNAME": ADMIN,
          "SISENSE_PASSWORD": PASSWORD_SECRET, "SISENSE_API_SECRET": API_SECRET}),
    ]
    for args, env in runs:
        done = subprocess.run([sys.executable, "-m", "bulkusers", "--debug", *args],
                              env={**_clean_env(), **env}, cwd=tmp_path, capture_output=True,
                              text=True, timeout=RUN_S, check=False)
        assert done.returncode == 0, done.stderr
        assert "/api/" in done.stderr  # --debug did log the requests
        assert leaks(done.stdout + done.stderr) == [], done.stderr
    for name in ("env-import.csv", "env-update.csv", "env-import.summary.json"):
        assert leaks((tmp_path / name).read_text(encoding="utf-8-sig")) == [], name


def test_connection_repr_shows_no_secret() -> None:
    """repr() and str() of a connection (token, login or legacy) never show a secret."""
    connections = [
        build_connection(url="https://s.example", token=TOKEN_SECRET, username=None,
                         password=None),
        build_connection(url="https://s.example", token=None, username=ADMIN,
                         password=PASSWORD_SECRET),
        build_connection(url="https://s.example", token=None, username=ADMIN,
                         password=PASSWORD_SECRET, api="legacy", api_secret=API_SECRET),
    ]
    for connection in connections:
        assert leaks(repr(connection) + str(connection)) == []
        assert "***" in repr(connection)


async def _refusal(connection: Connection) -> AuthError:
    async with SisenseClient(connection, RetryPolicy(attempts=1)) as client:
        try:
            await client.check()
        except AuthError as exc:
            return exc
    raise AssertionError("the server accepted the credentials")


@pytest.mark.parametrize(("token", "password", "api_secret"), [
    pytest.param(WRONG_TOKEN, None, None, id="token"),
    pytest.param(None, WRONG_PASSWORD, None, id="login"),
    pytest.param(None, WRONG_PASSWORD, API_SECRET, id="legacy"),
])
def test_auth_errors_carry_no_secret(guarded: Served, token: str | None, password: str | None,
                                     api_secret: str | None) -> None:
    """A refused token, login or legacy JWT: the AuthError repr, str and traceback are clean."""
    connection = build_connection(
        url=guarded.url, token=token, username=None if token else ADMIN, password=password,
        api="legacy" if api_secret else "v1", api_secret=api_secret)
    refusal = asyncio.run(_refusal(connection))
    shown = " ".join([repr(refusal), str(refusal), repr(refusal.args),
                      "".join(traceback.format_exception(refusal))])
    assert leaks(shown) == [], shown


# --- 2. formulas ---------------------------------------------------------------------------


FORMULA_HEADER = ("Email", "First Name", "Last Name", "Notes", "@Remark")
FORMULA_ROWS = [
    ["f1@acme.example", "=1+2", "+44 20 7946 0958", "-5 days", "@SUM(A1:A2)"],
    ["f2@acme.example", "\tTabbed", "\rReturn", "'=already quoted", '=HYPERLINK("http://x","y")'],
    ["f3@acme.example", "Plain", "''+two", "=cmd|' /C calc'!A0", "-"],
]


def _is_trigger(value: str) -> bool:
    return value.lstrip("'")[:1] in ("=", "+", "-", "@", "\t", "\r")


def _as_echoed(value: str) -> str:
    # Whitespace control characters around a cell are trimmed (they are never written raw).
    return value.strip() if value[:1] in "\t\r" else value


def test_formula_cells_are_neutralised_and_read_back_exactly(
        served: Served, run_cli: RunCli, tmp_path: Path) -> None:
    """Formula-like cells get a leading ' in the report, and reading it back restores them
    (a leading tab or carriage return is trimmed, never written raw)."""
    write_csv(tmp_path / "formulas.csv", FORMULA_HEADER, FORMULA_ROWS)
    originals = [list(row.values) for row in open_table(tmp_path / "formulas.csv").rows()]
    for original, written in zip(originals, FORMULA_ROWS, strict=True):
        # Read as written; only a cell already quoted with ' loses that quote (as a report's).
        assert [a for a, b in zip(original, written, strict=True) if a != b] == [
            b[1:] for b in written if b.startswith("'")]
    result = run_cli("import", "formulas.csv", "--default-role", "viewer", "--report", "r.csv",
                     "--url", served.url, "--token", TOKEN)
    assert result.exit_code == 0, result.output

    raw = read_report(tmp_path / "r.csv")
    assert "'@Remark" in raw[0]
    for line, row in zip(raw, originals, strict=True):
        for name, value in zip(FORMULA_HEADER, row, strict=True):
            shown = line["'@Remark" if name == "@Remark" else name]
            echoed = _as_echoed(value)
            assert shown == ("'" + echoed if _is_trigger(echoed) else echoed), (name, value)

    table = open_table(tmp_path / "r.csv")
    width = len(FORMULA_HEADER)
    assert table.header.columns[:width] == FORMULA_HEADER
    assert [list(row.values[:width]) for row in table.rows()] == [
        [_as_echoed(value) for value in row] for row in originals]


def test_exports_never_hold_a_formula(served: Served, run_cli: RunCli, tmp_path: Path) -> None:
    """Exports hold no formula: XLSX text cells, CSV quoted with ' and read back exactly."""
    write_csv(tmp_path / "formulas.csv", FORMULA_HEADER, FORMULA_ROWS)
    assert run_cli("import", "formulas.csv", "--default-role", "viewer", "--report", "r.csv",
                   "--url", served.url, "--token", TOKEN).exit_code == 0
    for name in ("users.xlsx", "users.csv"):
        result = run_cli("export", name, "--url", served.url, "--token", TOKEN)
        assert result.exit_code == 0, result.output

    sheet = load_workbook(tmp_path / "users.xlsx").worksheets[0]
    names = [cell.value for cell in sheet[1]]
    first = names.index("firstName") + 1
    cells = {str(row[0].value): row[first - 1] for row in sheet.iter_rows(min_row=2)}
    formula = cells["f1@acme.example"]
    assert formula.value == "=1+2"
    assert formula.data_type == "s"
    assert all(cell.data_type != "f" for row in sheet.iter_rows() for cell in row)

    exported = {line["email"]: line for line in read_report(tmp_path / "users.csv")}
    assert exported["f1@acme.example"]["firstName"] == "'=1+2"
    assert exported["f1@acme.example"]["lastName"] == "'+44 20 7946 0958"
    table = open_table(tmp_path / "users.csv")
    first_index = table.header.index["firstName"]
    back = {row.values[table.header.index["email"]]: row.values[first_index]
            for row in table.rows()}
    assert back["f1@acme.example"] == "=1+2"


# --- 3. TLS ------------------------------------------------------------------------------


class TlsEmulatorThread(EmulatorThread):
    """The conftest emulator thread, serving HTTPS with the given server context."""

    def __init__(self, settings: EmulatorSettings, context: ssl.SSLContext) -> None:
        super().__init__(settings)
        self._context = context

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        try:
            async with running_emulator(self._settings, ssl_context=self._context) as emulator:
                self._ready.set_result(emulator)
                await self._stop.wait()
        except BaseException as exc:
            if not self._ready.done():
                self._ready.set_exception(exc)
            raise


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Served, Path]]:
    """An HTTPS emulator with a fresh self-signed certificate for 127.0.0.1; and that
    certificate's PEM file."""
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("the openssl command is not installed")
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        [openssl, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
         "-nodes", "-keyout", str(key), "-out", str(cert), "-days", "2", "-subj",
         "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"],
        check=True, capture_output=True, timeout=RUN_S)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    host = TlsEmulatorThread(EmulatorSettings(token=TOKEN, groups=GROUPS), context)
    emulator = host.start()
    try:
        yield Served(emulator, host), cert
    finally:
        host.stop()


def test_tls_emulator_serves_https(tls: tuple[Served, Path]) -> None:
    """running_emulator(ssl_context=...) serves HTTPS and says so in its URL."""
    served, _ = tls
    assert served.url.startswith("https://127.0.0.1:")


@pytest.mark.parametrize("command", ["import", "export"])
def test_untrusted_certificate_aborts_with_a_hint(tls: tuple[Served, Path], command: str,
                                                  run_cli: RunCli, tmp_path: Path) -> None:
    """A self-signed certificate: exit 3, one line naming it and --ca-bundle, no retries."""
    served, _ = tls
    write_csv(tmp_path / "users.csv", ("Email", "Role"), [["tls@acme.example", "viewer"]])
    target = "users.csv" if command == "import" else "out.csv"
    result = debug_run(run_cli, command, target, "--url", served.url, "--token", TOKEN)
    assert result.exit_code == 3, result.output
    assert "Traceback" not in result.output
    errors = [line for line in result.output.splitlines() if line.startswith("bulkusers: error")]
    assert len(errors) == 1, result.output
    message = re.sub(r"\s+", " ", result.output[result.output.index("bulkusers: error"):])
    assert "certificate" in message
    assert "--ca-bundle" in message
    assert "retrying" not in result.output
    assert not (tmp_path / "out.csv").exists()


def test_untrusted_certificate_on_login_has_the_same_hint(
        tls: tuple[Served, Path], run_cli: RunCli, tmp_path: Path) -> None:
    """With --username/--password the first request is the login: same line, same hint."""
    served, _ = tls
    write_csv(tmp_path / "users.csv", ("Email", "Role"), [["tls@acme.example", "viewer"]])
    result = run_cli("import", "users.csv", "--url", served.url, "--username", ADMIN,
                     "--password", PASSWORD_SECRET)
    assert result.exit_code == 3, result.output
    message = re.sub(r"\s+", " ", result.output)
    assert "certificate" in message
    assert "--ca-bundle" in message
    assert PASSWORD_SECRET not in result.output


def test_ca_bundle_makes_the_certificate_trusted(tls: tuple[Served, Path], run_cli: RunCli,
                                                 tmp_path: Path) -> None:
    """--ca-bundle with the server's certificate: import and export work (exit 0)."""
    served, cert = tls
    write_csv(tmp_path / "users.csv", ("Email", "Role"), [["tls@acme.example", "viewer"]])
    trust = ["--url", served.url, "--token", TOKEN, "--ca-bundle", str(cert)]
    result = run_cli("import", "users.csv", "--report", "r.csv", *trust)
    assert result.exit_code == 0, result.output
    assert [line["status"] for line in read_report(tmp_path / "r.csv")] == ["created"]
    assert "insecure" not in result.output
    result = run_cli("export", "out.csv", *trust)
    assert result.exit_code == 0, result.output
    assert "tls@acme.example" in (tmp_path / "out.csv").read_text(encoding="utf-8-sig")


def test_insecure_works_and_warns(tls: tuple[Served, Path], run_cli: RunCli,
                                  tmp_path: Path) -> None:
    """--insecure skips verification (exit 0) and says so on a warning line."""
    served, _ = tls
    write_csv(tmp_path / "users.csv", ("Email", "Role"), [["tls@acme.example", "viewer"]])
    result = run_cli("import", "users.csv", "--report", "r.csv", "--url", served.url,
                     "--token", TOKEN, "--insecure")
    assert result.exit_code == 0, result.output
    warnings = [line for line in result.output.splitlines() if "warning" in line]
    assert any("insecure" in line for line in warnings), result.output


def test_insecure_export_warns_too(tls: tuple[Served, Path], run_cli: RunCli,
                                   tmp_path: Path) -> None:
    """export --insecure works and warns like the write commands do."""
    served, _ = tls
    result = run_cli("export", "out.csv", "--url", served.url, "--token", TOKEN, "--insecure")
    assert result.exit_code == 0, result.output
    assert "insecure" in result.output


@pytest.fixture
def plain_served() -> Iterator[Served]:
    """An emulator over plain HTTP, even when the suite runs over TLS."""
    yield from serve(EmulatorSettings(token=TOKEN, groups=GROUPS), plain=True)


def test_https_url_to_a_plain_http_server_says_which_scheme(
        plain_served: Served, run_cli: RunCli, tmp_path: Path) -> None:
    """https:// to a plain-HTTP server: exit 3, one line about the scheme, no retries."""
    served = plain_served
    write_csv(tmp_path / "users.csv", ("Email", "Role"), [["tls@acme.example", "viewer"]])
    url = served.url.replace("http://", "https://")
    result = debug_run(run_cli, "import", "users.csv", "--url", url, "--token", TOKEN)
    assert result.exit_code == 3, result.output
    message = re.sub(r"\s+", " ", result.output[result.output.index("bulkusers: error"):])
    assert "TLS" in message
    assert "http or https" in message
    assert "retrying" not in result.output


def test_http_url_to_an_https_server_exits_3(tls: tuple[Served, Path], run_cli: RunCli,
                                             tmp_path: Path) -> None:
    """http:// to a TLS-only server: one line and exit 3, never a traceback."""
    served, _ = tls
    write_csv(tmp_path / "users.csv", ("Email", "Role"), [["tls@acme.example", "viewer"]])
    url = served.url.replace("https://", "http://")
    result = run_cli("import", "users.csv", "--url", url, "--token", TOKEN, "--retries", "0")
    assert result.exit_code == 3, result.output
    assert "Traceback" not in result.output
    assert [line for line in result.output.splitlines()
            if line.startswith("bulkusers: error")], result.output
