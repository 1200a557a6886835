"""A corpus of broken inputs and options: each is one clear line and an exit code, never a
traceback, and (for exit 2) not a single request reaches the server."""

from __future__ import annotations

import io
import os
import random
import socket
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from aiohttp.client_reqrep import ConnectionKey
from click.testing import Result
from openpyxl import Workbook

from bulkusers.network import unreachable_message
from tests.conftest import TOKEN, Served, read_report, write_csv
from tests.loopback import AppThread

RunCli = Callable[..., Result]
Build = Callable[[Path], str]
HEADER = ("Email", "First Name", "Role")
ROW = ["ann@acme.example", "Ann", "viewer"]
OLE2_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
# Rows enough to lie beyond the readers' 64 KiB sample and their first read buffer.
FAR = 5000


def error_message(result: Result) -> str:
    """The one `bulkusers: error:` message of a failed run (wrapped lines joined); no traceback."""
    assert "Traceback" not in result.output, result.output
    lines = result.output.splitlines()
    starts = [i for i, line in enumerate(lines) if line.startswith("bulkusers: error:")]
    assert len(starts) == 1, result.output
    message = [lines[starts[0]]]
    # Off a terminal the console wraps long lines; its continuation lines belong to it.
    for line in lines[starts[0] + 1:]:
        if not line.strip() or line.startswith("bulkusers:"):
            break
        message.append(line.strip())
    return " ".join(message)


def connect(served: Served) -> list[str]:
    """Connection options that would work, so only the input can be at fault."""
    return ["--url", served.url, "--token", TOKEN, "--retries", "0"]


# --- builders: each writes one broken input into a directory and returns its file name ----


def _csv_text(name: str, text: str, encoding: str = "utf-8") -> Build:
    def build(folder: Path) -> str:
        (folder / name).write_bytes(text.encode(encoding))
        return name

    return build


def _raw(name: str, data: bytes) -> Build:
    def build(folder: Path) -> str:
        (folder / name).write_bytes(data)
        return name

    return build


def _workbook_bytes(sheets: dict[str, list[list[str]]]) -> bytes:
    """An XLSX package with these sheets, in memory."""
    book = Workbook()
    first = True
    for title, rows in sheets.items():
        sheet = book.active if first else book.create_sheet()
        assert sheet is not None
        sheet.title = title
        for row in rows:
            sheet.append(row)
        first = False
    buffer = io.BytesIO()
    book.save(buffer)
    return buffer.getvalue()


def _directory(folder: Path) -> str:
    (folder / "users.csv").mkdir()
    return "users.csv"


def _far_bad_byte(folder: Path) -> str:
    """Valid UTF-8 for thousands of lines, then one cp1252 byte far past the sample."""
    lines = [",".join(HEADER)] + [f"user{n}@acme.example,Ann,viewer" for n in range(FAR)]
    lines.append("zoe@acme.example,Ren\xe9e,viewer")
    (folder / "late.csv").write_bytes("\n".join(lines).encode("cp1252"))
    return "late.csv"


def _wide_row_far(folder: Path) -> str:
    """A row with one cell more than the header, at line FAR + 2: only a full scan finds it."""
    rows = [[f"user{n}@acme.example", "Ann", "viewer"] for n in range(FAR)]
    rows.append(["zoe@acme.example", "Zoe", "viewer", "extra"])
    write_csv(folder / "wide.csv", HEADER, rows)
    return "wide.csv"


def _zip_without_workbook(folder: Path) -> str:
    with zipfile.ZipFile(folder / "notabook.xlsx", "w") as package:
        package.writestr("readme.txt", "not a workbook")
    return "notabook.xlsx"


def _truncated_xlsx(folder: Path) -> str:
    data = _workbook_bytes({"Users": [list(HEADER), ROW]})
    (folder / "cut.xlsx").write_bytes(data[: len(data) // 2])
    return "cut.xlsx"


def _sheet_damaged_mid_stream(folder: Path) -> str:
    """A valid package whose sheet XML stops half way: the header reads, row FAR does not."""
    rows = [list(HEADER)] + [[f"user{n}@acme.example", "Ann", "viewer"] for n in range(FAR)]
    source = zipfile.ZipFile(io.BytesIO(_workbook_bytes({"Users": rows})))
    with zipfile.ZipFile(folder / "damaged.xlsx", "w") as package:
        for item in source.infolist():
            data = source.read(item)
            if item.filename == "xl/worksheets/sheet1.xml":
                data = data[: len(data) // 2]
            package.writestr(item, data)
    return "damaged.xlsx"


def _binary_garbage(folder: Path) -> str:
    data = random.Random(7).randbytes(4096)
    (folder / "garbage.csv").write_bytes(data)
    return "garbage.csv"


def _png(folder: Path) -> str:
    chunk = b"\x00\x00\x00\rIHDR\x00\x00\x00\x10\x00\x00\x00\x10\x08\x06\x00\x00\x00"
    (folder / "photo.csv").write_bytes(PNG_MAGIC + chunk + bytes(range(256)) * 8)
    return "photo.csv"


@dataclass(frozen=True)
class Case:
    """One broken input: how to build it, extra options, what the error line must say."""

    id: str
    proves: str
    build: Build
    expect: tuple[str, ...]
    args: tuple[str, ...] = ()


CORPUS = [
    Case("missing", "A path that does not exist is named, with what to check.",
         lambda folder: "nope.csv", ("nope.csv", "no such file")),
    Case("standard-input", "A FILE of '-' says rows cannot come from standard input.",
         lambda folder: "-", ("standard input", "not supported", "save them to a file")),
    Case("directory", "A directory given as FILE is refused by name.",
         _directory, ("users.csv", "directory")),
    Case("binary-garbage", "Random bytes named .csv are called binary, not parsed as CSV.",
         _binary_garbage, ("garbage.csv", "binary", "CSV or XLSX")),
    Case("png-as-csv", "A PNG image renamed .csv is called binary.",
         _png, ("photo.csv", "binary")),
    Case("utf-16", "UTF-16 text (with BOM) names the --encoding that reads it.",
         _csv_text("wide16.csv", "Email,First Name\nann@acme.example,Ann\n", "utf-16"),
         ("wide16.csv", "UTF-16", "--encoding utf-16")),
    Case("cp1252-as-utf8", "A cp1252 file read as UTF-8 names the line and --encoding.",
         _csv_text("legacy.csv", "Email,First Name\nann@acme.example,Ren\xe9e\n", "cp1252"),
         ("legacy.csv", "line 2", "--encoding cp1252")),
    Case("cp1252-byte-far-down", "A bad byte past the sample is still exit 2 with --encoding.",
         _far_bad_byte, ("late.csv", "--encoding")),
    Case("old-xls", "An old binary .xls (OLE2) asks to save as .xlsx or CSV.",
         _raw("old.xls", OLE2_MAGIC + bytes(504)), ("old.xls", ".xlsx or CSV")),
    Case("xlsx-named-xls", "An .xlsx package named .xls asks to be renamed.",
         _raw("book.xls", _workbook_bytes({"Users": [list(HEADER), ROW]})),
         ("book.xls", "rename it to .xlsx")),
    Case("zip-without-workbook", "A ZIP that holds no workbook is called damaged.",
         _zip_without_workbook, ("notabook.xlsx", "damaged", "save it as .xlsx")),
    Case("truncated-xlsx", "A workbook cut in half is refused before anything is sent.",
         _truncated_xlsx, ("cut.xlsx", ".xlsx")),
    Case("sheet-damaged-mid-stream", "A sheet that breaks after the header fails the scan.",
         _sheet_damaged_mid_stream, ("damaged.xlsx", "damaged", "save it as .xlsx")),
    Case("encrypted-xlsx", "A password-protected workbook (OLE2 inside .xlsx) says so.",
         _raw("secret.xlsx", OLE2_MAGIC + bytes(504)), ("secret.xlsx", "password")),
    Case("csv-is-a-workbook", "An XLSX package named .csv asks for the .xlsx extension.",
         _raw("book.csv", _workbook_bytes({"Users": [list(HEADER), ROW]})),
         ("book.csv", ".xlsx")),
    Case("empty-csv", "A zero-byte CSV is called empty.",
         _raw("empty.csv", b""), ("empty.csv", "empty")),
    Case("empty-xlsx", "A zero-byte XLSX is called empty.",
         _raw("empty.xlsx", b""), ("empty.xlsx", "empty")),
    Case("blank-lines-only", "A CSV of blank lines asks for a header line.",
         _csv_text("blank.csv", "\n\n  \n"), ("blank.csv", "header")),
    Case("empty-sheet", "A workbook whose sheet holds nothing asks for a header row.",
         _raw("nothing.xlsx", _workbook_bytes({"Users": []})), ("nothing.xlsx", "header")),
    Case("no-email-column", "A header without email lists the columns found and the names.",
         _csv_text("noemail.csv", "Name,Role\nAnn,viewer\n"),
         ("noemail.csv", "'Name', 'Role'", "Work Email")),
    Case("semicolons-inside-comma-header",
         "A header like 'Email;Role,Groups' (split at commas) names --delimiter ';'.",
         _csv_text("semis.csv", "Email;Role,Groups\nann@acme.example;viewer,Sales\n"),
         ("semis.csv", "'Email;Role', 'Groups'", "--delimiter ';'")),
    Case("tab-inside-comma-header", "A tab between the email and the next name names "
         "--delimiter tab.",
         _csv_text("tabs.csv", "Email\tRole,Groups\nann@acme.example\tviewer,Sales\n"),
         ("tabs.csv", "--delimiter tab")),
    Case("two-email-columns", "Two columns that both mean email are named together.",
         _csv_text("twice.csv", "Email,Work Email\na@acme.example,b@acme.example\n"),
         ("twice.csv", "'Email' and 'Work Email'", "remove one")),
    Case("wrong-sheet", "An unknown --sheet lists the workbook's sheets.",
         _raw("book.xlsx", _workbook_bytes({"Users": [list(HEADER), ROW], "Other": []})),
         ("book.xlsx", "'Nope'", "'Users', 'Other'", "--sheet"), ("--sheet", "Nope")),
    Case("wide-row-far-down", "A too-wide row at line 5002 is found by the scan before sending.",
         _wide_row_far, ("wide.csv", f"line {FAR + 2}", "double quotes")),
    Case("unclosed-quote", "A quote never closed names the row it starts in.",
         _csv_text("quote.csv", 'Email,First Name\nann@acme.example,"Ann\nbo@acme.example,Bo\n'),
         ("quote.csv", "never closed")),
    Case("json-extension", "An unsupported extension lists the supported ones.",
         _csv_text("users.json", '[{"email": "ann@acme.example"}]'),
         ("users.json", "'.json'", ".xlsx")),
    Case("unknown-encoding", "--encoding with a name Python does not know is one line.",
         _csv_text("ok.csv", "Email\nann@acme.example\n"),
         ("unknown encoding 'nope'", "--encoding"), ("--encoding", "nope")),
    Case("non-text-codec", "--encoding base64 (a codec, but not text) is one line, not exit 70.",
         _csv_text("ok.csv", "Email\nann@acme.example\n"),
         ("unknown encoding 'base64'", "--encoding"), ("--encoding", "base64")),
]


@pytest.mark.parametrize("case", CORPUS, ids=[case.id for case in CORPUS])
def test_broken_input_exits_2_with_one_line_and_sends_nothing(
        case: Case, served: Served, run_cli: RunCli, tmp_path: Path) -> None:
    """Each broken input (its ``proves`` says how): exit 2, one fixing line, no request."""
    name = case.build(tmp_path)
    result = run_cli("import", name, *case.args, *served.connect())
    assert result.exit_code == 2, (case.proves, result.output)
    message = error_message(result)
    for expected in case.expect:
        assert expected in message, (case.proves, message)
    assert served.emulator.requests == [], case.proves


def test_unreadable_file_exits_2(served: Served, run_cli: RunCli, tmp_path: Path) -> None:
    """A file without read permission is named with a hint about permissions."""
    source = write_csv(tmp_path / "locked.csv", HEADER, [ROW])
    source.chmod(0)
    try:
        if os.access(source, os.R_OK):
            pytest.skip("running as root: permissions do not stop reading")
        result = run_cli("import", "locked.csv", *served.connect())
    finally:
        source.chmod(0o600)
    assert result.exit_code == 2
    message = error_message(result)
    assert "locked.csv" in message
    assert "permission" in message
    assert served.emulator.requests == []


def test_every_write_command_refuses_broken_input(served: Served, run_cli: RunCli,
                                                  tmp_path: Path) -> None:
    """update, deactivate and delete read input through the same checks as import."""
    (tmp_path / "garbage.csv").write_bytes(random.Random(1).randbytes(2048))
    for command in ("update", "deactivate", "delete"):
        result = run_cli(command, "garbage.csv", "--yes", *served.connect())
        assert result.exit_code == 2, (command, result.output)
        assert "garbage.csv" in error_message(result)
    assert served.emulator.requests == []


def test_header_only_file_is_refused_unless_allowed(served: Served, run_cli: RunCli,
                                                    tmp_path: Path) -> None:
    """A header with no rows is one line and exit 2 with nothing sent (usually the wrong
    file); --allow-empty accepts it (cron jobs whose list is often empty): exit 0."""
    write_csv(tmp_path / "header.csv", HEADER, [])
    result = run_cli("import", "header.csv", "--report", "r.csv", *served.connect())
    assert result.exit_code == 2, result.output
    assert "--allow-empty" in error_message(result)
    assert served.emulator.requests == []
    allowed = run_cli("import", "header.csv", "--report", "r.csv", "--allow-empty",
                      *served.connect())
    assert allowed.exit_code == 0, allowed.output
    assert "Traceback" not in allowed.output
    assert read_report(tmp_path / "r.csv") == []
    assert served.emulator.writes() == []


def test_reactivate_of_a_file_that_is_not_a_report(served: Served, run_cli: RunCli,
                                                   tmp_path: Path) -> None:
    """reactivate given a plain user list (not a deactivate report) is exit 2, nothing sent."""
    write_csv(tmp_path / "users.csv", HEADER, [ROW])
    result = run_cli("reactivate", "users.csv", "--yes", *served.connect())
    assert result.exit_code == 2, result.output
    assert "users.csv" in error_message(result)
    assert served.emulator.requests == []


# --- options -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Option:
    """One bad option set: the arguments after FILE, what the line must and must not say."""

    id: str
    proves: str
    args: Callable[[Served], list[str]]
    expect: tuple[str, ...]
    hidden: tuple[str, ...] = ()


def _with_url(url: str) -> Callable[[Served], list[str]]:
    return lambda served: ["--url", url, "--token", TOKEN]


OPTIONS = [
    Option("ftp-url", "A non-http(s) URL is refused with an example of a good one.",
           _with_url("ftp://x"), ("'ftp://x'", "https://")),
    Option("url-with-credentials", "A URL carrying user:password is refused, password unsaid.",
           _with_url("http://user:pw-SECRET-1@127.0.0.1:9"), ("credentials", "--token"),
           ("pw-SECRET-1",)),
    Option("ftp-url-with-credentials", "Even a non-http URL never echoes its password.",
           _with_url("ftp://user:pw-SECRET-2@x"), ("credentials",), ("pw-SECRET-2",)),
    Option("broken-ipv6-url", "An unparsable URL is exit 2 (not an internal error), masked.",
           _with_url("https://u:pw-SECRET-3@[::1"), ("--url", "not a valid URL"),
           ("pw-SECRET-3",)),
    Option("port-out-of-range", "A port beyond 65535 is a usage error, not a network one.",
           _with_url("http://127.0.0.1:99999"), ("--url", "Port out of range")),
    Option("space-in-host", "A host name with a space is a usage error.",
           _with_url("http://sisense example.com"), ("--url", "host name")),
    Option("no-url", "No URL at all names --url and SISENSE_URL.",
           lambda served: ["--token", TOKEN], ("--url", "SISENSE_URL")),
    Option("no-credentials", "A URL without credentials names the options and variables.",
           lambda served: ["--url", served.url], ("--token", "SISENSE_TOKEN")),
    Option("username-without-password", "--username alone asks for --password.",
           lambda served: ["--url", served.url, "--username", "admin@example.com"],
           ("--password", "SISENSE_PASSWORD")),
    Option("token-and-password", "A token and a password together are ambiguous.",
           lambda served: ["--url", served.url, "--token", TOKEN, "--username", "a",
                           "--password", "pw-SECRET-4"], ("either a token",), ("pw-SECRET-4",)),
    Option("max-changes-not-a-number", "--max-changes abc explains the two accepted forms.",
           lambda served: [*served.connect(), "--max-changes", "abc"], ("--max-changes", "%")),
    Option("max-changes-over-100-percent", "--max-changes 200% names the percentages allowed.",
           lambda served: [*served.connect(), "--max-changes", "200%"],
           ("--max-changes '200%'", "from 0% to 100%")),
    Option("ca-bundle-missing", "A --ca-bundle that does not exist is named.",
           lambda served: [*served.connect(), "--ca-bundle", "missing.pem"],
           ("--ca-bundle", "missing.pem")),
    Option("ca-bundle-not-pem", "A --ca-bundle holding no certificate is exit 2, not exit 70.",
           lambda served: [*served.connect(), "--ca-bundle", "users.csv"],
           ("--ca-bundle", "users.csv", "PEM")),
    Option("insecure-and-ca-bundle", "--insecure with --ca-bundle is a contradiction.",
           lambda served: [*served.connect(), "--insecure", "--ca-bundle", "users.csv"],
           ("--insecure", "--ca-bundle")),
]


@pytest.mark.parametrize("option", OPTIONS, ids=[option.id for option in OPTIONS])
def test_bad_option_exits_2_with_one_line_and_sends_nothing(
        option: Option, served: Served, run_cli: RunCli, tmp_path: Path) -> None:
    """Each bad option (its ``proves`` says how): exit 2, one line, no secret, no request."""
    write_csv(tmp_path / "users.csv", HEADER, [ROW])
    result = run_cli("import", "users.csv", *option.args(served))
    assert result.exit_code == 2, (option.proves, result.output)
    message = error_message(result)
    for expected in option.expect:
        assert expected in message, (option.proves, message)
    for secret in option.hidden:
        assert secret not in result.output, option.proves
    assert served.emulator.requests == [], option.proves


def test_bogus_delimiter_is_refused_by_click(served: Served, run_cli: RunCli,
                                            tmp_path: Path) -> None:
    """--delimiter outside , ; tab is a click usage error: exit 2, the choices shown."""
    write_csv(tmp_path / "users.csv", HEADER, [ROW])
    result = run_cli("import", "users.csv", "--delimiter", "bogus", *served.connect())
    assert result.exit_code == 2
    assert "Traceback" not in result.output
    assert "--delimiter" in result.output
    assert "'tab'" in result.output
    assert served.emulator.requests == []


def test_long_error_stays_on_one_physical_line(served: Served, run_cli: RunCli,
                                              tmp_path: Path) -> None:
    """A long error message (many columns found) is still one line for logs and cron mail."""
    header = [f"Column number {n}" for n in range(12)]
    write_csv(tmp_path / "many.csv", header, [["x"] * 12])
    result = run_cli("import", "many.csv", *served.connect())
    assert result.exit_code == 2
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1, result.output


# --- the server side: exit 3 ---------------------------------------------------------------


def html_app(status: int) -> web.Application:
    """A web server that is not Sisense: every path answers an HTML page with ``status``."""
    async def page(request: web.Request) -> web.Response:
        return web.Response(text="<!doctype html><html><body><h1>Welcome</h1></body></html>",
                            content_type="text/html", status=status)

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", page)
    return app


@pytest.fixture(params=[200, 403, 404, 500], ids=lambda status: f"html-{status}")
def html_server(request: pytest.FixtureRequest) -> Iterator[str]:
    """The URL of a non-Sisense web server answering HTML with the parametrized status."""
    server = AppThread(lambda: html_app(int(request.param)))
    url = server.start()
    try:
        yield url
    finally:
        server.stop()


def free_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


def test_unreachable_server_exits_3(run_cli: RunCli, tmp_path: Path) -> None:
    """A closed loopback port: exit 3, one line naming the address and what to check."""
    write_csv(tmp_path / "users.csv", HEADER, [ROW])
    port = free_port()
    result = run_cli("import", "users.csv", "--url", f"http://127.0.0.1:{port}", "--token",
                     TOKEN, "--retries", "0")
    assert result.exit_code == 3, result.output
    message = error_message(result)
    assert f"127.0.0.1:{port}" in message
    assert "--url" in message


@pytest.mark.usefixtures("cli_words")  # its hint as the CLI words it
def test_unknown_host_name_is_named() -> None:
    """An unresolvable host name is named as such, not as "Unknown error -2"."""
    # Built by hand: a real lookup would leave the loopback. Resolver errnos are negative.
    key = ConnectionKey("sisense.invalid", 443, True, True, None, None, None)
    failure = aiohttp.ClientConnectorDNSError(
        key, socket.gaierror(socket.EAI_NONAME, "Name or service not known"))
    message = unreachable_message("https://sisense.invalid", failure)
    assert "cannot resolve the host name 'sisense.invalid'" in message
    assert "Name or service not known" in message
    assert "Unknown error" not in message
    assert "--url" in message


@pytest.mark.parametrize("command", ["import", "export"])
def test_non_sisense_server_exits_3(html_server: str, command: str, run_cli: RunCli,
                                    tmp_path: Path) -> None:
    """A web server answering HTML (any status) is not taken for Sisense: exit 3, one line."""
    write_csv(tmp_path / "users.csv", HEADER, [ROW])
    target = "users.csv" if command == "import" else "out.csv"
    result = run_cli(command, target, "--url", html_server, "--token", TOKEN, "--retries", "0")
    assert result.exit_code == 3, result.output
    message = error_message(result)
    assert "127.0.0.1" in message or "Sisense" in message, message
    assert not (tmp_path / "out.csv").exists()


def test_emulator_under_a_wrong_base_path_exits_3(served: Served, run_cli: RunCli,
                                                  tmp_path: Path) -> None:
    """A URL whose path is not the Sisense base (404 on /api/roles) is exit 3, --url named."""
    write_csv(tmp_path / "users.csv", HEADER, [ROW])
    result = run_cli("import", "users.csv", "--url", served.url + "/nothing", "--token", TOKEN,
                     "--retries", "0")
    assert result.exit_code == 3, result.output
    message = error_message(result)
    assert "/nothing" in message
    assert "--url" in message
    assert served.emulator.writes() == []


def test_bad_token_exits_3(served: Served, run_cli: RunCli, tmp_path: Path) -> None:
    """A token the server refuses: exit 3, one line pointing at --token, the token unsaid."""
    write_csv(tmp_path / "users.csv", HEADER, [ROW])
    result = run_cli("import", "users.csv", "--url", served.url, "--token", "tok-WRONG-77")
    assert result.exit_code == 3, result.output
    assert "--token" in error_message(result)
    assert "tok-WRONG-77" not in result.output
    assert served.emulator.writes() == []


def test_bad_password_exits_3(served: Served, run_cli: RunCli, tmp_path: Path) -> None:
    """A refused login: exit 3, one line naming the account, the password unsaid."""
    write_csv(tmp_path / "users.csv", HEADER, [ROW])
    result = run_cli("import", "users.csv", "--url", served.url, "--username",
                     "admin@example.com", "--password", "pw-WRONG-88")
    assert result.exit_code == 3, result.output
    message = error_message(result)
    assert "admin@example.com" in message
    assert "password" in message
    assert "pw-WRONG-88" not in result.output
    assert served.emulator.writes() == []


def test_server_error_on_first_call_exits_3(served: Served, run_cli: RunCli,
                                            tmp_path: Path) -> None:
    """A 500 on the first, read-only call aborts the run (exit 3), not "rows failed" (1)."""
    write_csv(tmp_path / "users.csv", HEADER, [ROW])
    served.host.call(lambda: served.emulator.faults.script("GET", "/api/roles", [500]))
    result = run_cli("import", "users.csv", *served.connect())
    assert result.exit_code == 3, result.output
    message = error_message(result)
    assert "500" in message
    assert served.url in message
    assert served.emulator.writes() == []


def test_server_error_while_loading_the_directory_exits_3(served: Served, run_cli: RunCli,
                                                          tmp_path: Path) -> None:
    """A 500 while loading the directory aborts before any write: exit 3, not exit 1."""
    write_csv(tmp_path / "users.csv", HEADER, [ROW])
    served.host.call(lambda: served.emulator.faults.script("GET", "/api/v1/groups", [500]))
    result = run_cli("import", "users.csv", *served.connect())
    assert result.exit_code == 3, result.output
    assert "500" in error_message(result)
    assert served.emulator.writes() == []
