"""``bulkusers emulator`` over HTTPS: --tls-self-signed (trustme) and --tls-cert/--tls-key, driven
end to end by the CLI with --ca-bundle; a wrong CA is refused; bad TLS options exit 2."""

from __future__ import annotations

import os
import queue
import re
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import pytest
import trustme
from click.testing import Result

from tests.conftest import read_report, write_csv

RunCli = Callable[..., Result]
TOKEN = "tls-token-3c9"
WAIT_S = 20


def _env() -> dict[str, str]:
    """The environment for a subprocess: no SISENSE_* leaking in, no suite-wide CA, wide lines."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("SISENSE_") and k != "SSL_CERT_FILE"}
    env["COLUMNS"] = "250"
    return env


def read_lines_until(stream: IO[str], pattern: str) -> list[str]:
    """Lines of `stream` up to the first matching `pattern`; fails after WAIT_S seconds."""
    lines: queue.Queue[str] = queue.Queue()

    def pump() -> None:
        for line in stream:
            lines.put(line)
        lines.put("")  # end of stream

    threading.Thread(target=pump, daemon=True).start()
    seen: list[str] = []
    while True:
        try:
            line = lines.get(timeout=WAIT_S)
        except queue.Empty:
            pytest.fail(f"no line matching {pattern!r} within {WAIT_S} s: {seen}")
        if not line:
            pytest.fail(f"the emulator ended before printing {pattern!r}: {seen}")
        seen.append(line)
        if re.search(pattern, line):
            return seen


@dataclass
class TlsEmulator:
    """A `bulkusers emulator` process serving HTTPS: its URL and, if it made one, its CA file."""

    url: str
    ca_file: Path | None
    output: list[str]


def start_emulator(tmp_path: Path, *tls: str, until: str) -> Iterator[TlsEmulator]:
    """Run `bulkusers emulator --port 0 ... <tls>` until the fixture ends."""
    process = subprocess.Popen(
        [sys.executable, "-m", "bulkusers", "emulator", "--port", "0", "--token", TOKEN, *tls],
        stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True, env=_env(), cwd=tmp_path)
    try:
        assert process.stderr is not None
        output = read_lines_until(process.stderr, until)
        url = re.search(r"https://127\.0\.0\.1:\d+", "".join(output))
        assert url, output
        ca = re.search(r"--ca-bundle: (\S+)", "".join(output))
        yield TlsEmulator(url.group(0), Path(ca.group(1)) if ca else None, output)
    finally:
        process.terminate()
        process.wait(timeout=10)


@pytest.fixture
def self_signed(tmp_path: Path) -> Iterator[TlsEmulator]:
    """`bulkusers emulator --tls-self-signed` as a separate process."""
    yield from start_emulator(tmp_path, "--tls-self-signed", until=r"--ca-bundle: ")


def import_one(run_cli: RunCli, url: str, email: str, *trust: str) -> Result:
    """Import one Viewer into the emulator at `url`, trusting as `trust` says."""
    write_csv(Path("users.csv"), ("Email", "Role"), [[email, "viewer"]])
    return run_cli("import", "users.csv", "--url", url, "--token", TOKEN, "--report",
                   f"{email}.csv", *trust)


def exported_emails(run_cli: RunCli, url: str, ca_file: Path) -> set[str]:
    """Emails of the users an export over HTTPS finds."""
    result = run_cli("export", "all.csv", "--url", url, "--token", TOKEN, "--ca-bundle",
                     str(ca_file))
    assert result.exit_code == 0, result.output
    return {line["email"] for line in read_report(Path("all.csv"))}


def test_self_signed_emulator_prints_its_ca_and_serves_an_import(
        self_signed: TlsEmulator, run_cli: RunCli) -> None:
    """--tls-self-signed serves HTTPS and prints a CA file; import and export with --ca-bundle
    of that file work (exit 0)."""
    assert self_signed.ca_file is not None
    assert self_signed.ca_file.read_text().startswith("-----BEGIN CERTIFICATE-----")
    result = import_one(run_cli, self_signed.url, "tls1@acme.example", "--ca-bundle",
                        str(self_signed.ca_file))
    assert result.exit_code == 0, result.output
    assert [line["status"] for line in read_report(Path("tls1@acme.example.csv"))] == ["created"]
    assert "tls1@acme.example" in exported_emails(run_cli, self_signed.url, self_signed.ca_file)


@pytest.mark.parametrize("trust", ["other-ca", "system"])
def test_a_wrong_ca_is_refused_and_nothing_is_sent(
        self_signed: TlsEmulator, run_cli: RunCli, tmp_path: Path, trust: str) -> None:
    """Another CA's bundle, or only the system's CAs: exit 3, one line about the certificate
    and --ca-bundle, no user created."""
    assert self_signed.ca_file is not None
    options: list[str] = []
    if trust == "other-ca":
        other = tmp_path / "other-ca.pem"
        trustme.CA().cert_pem.write_to_path(str(other))
        options = ["--ca-bundle", str(other)]
    result = import_one(run_cli, self_signed.url, "tls2@acme.example", *options)
    assert result.exit_code == 3, result.output
    assert "Traceback" not in result.output
    errors = [line for line in result.output.splitlines() if line.startswith("bulkusers: error")]
    assert len(errors) == 1, result.output
    message = " ".join(result.output[result.output.index("bulkusers: error"):].split())
    assert "certificate" in message
    assert "--ca-bundle" in message
    assert "tls2@acme.example" not in exported_emails(run_cli, self_signed.url,
                                                      self_signed.ca_file)


@pytest.fixture
def own_certificate(tmp_path: Path) -> Iterator[tuple[TlsEmulator, Path]]:
    """`bulkusers emulator --tls-cert --tls-key` with files from a CA of the test's own."""
    ca = trustme.CA()
    leaf = ca.issue_cert("127.0.0.1", "localhost")
    cert, key, ca_file = tmp_path / "cert.pem", tmp_path / "key.pem", tmp_path / "ca.pem"
    leaf.cert_chain_pems[0].write_to_path(str(cert))
    leaf.private_key_pem.write_to_path(str(key))
    ca.cert_pem.write_to_path(str(ca_file))
    for emulator in start_emulator(tmp_path, "--tls-cert", str(cert), "--tls-key", str(key),
                                   until=r"listening on https://"):
        yield emulator, ca_file


def test_own_certificate_and_key_serve_https(own_certificate: tuple[TlsEmulator, Path],
                                             run_cli: RunCli) -> None:
    """--tls-cert/--tls-key serve HTTPS with that certificate: trusted through its CA."""
    emulator, ca_file = own_certificate
    assert emulator.ca_file is None
    result = import_one(run_cli, emulator.url, "tls3@acme.example", "--ca-bundle", str(ca_file))
    assert result.exit_code == 0, result.output
    assert "tls3@acme.example" in exported_emails(run_cli, emulator.url, ca_file)


def run_emulator(tmp_path: Path, *args: str, prelude: str = "") -> subprocess.CompletedProcess[str]:
    """Run `bulkusers emulator --port 0 <args>` to completion (it must fail fast)."""
    code = (f"{prelude}import sys\nfrom bulkusers.cli import main\n"
            f"sys.argv = ['bulkusers', 'emulator', '--port', '0', *{list(args)!r}]\nmain()\n")
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=_env(), cwd=tmp_path, timeout=WAIT_S)


def one_error_line(done: subprocess.CompletedProcess[str]) -> str:
    """The one ``bulkusers: error`` line of a failed run (exit 2), checked to be alone."""
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert "Traceback" not in done.stderr
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("bulkusers: error: ")
    return lines[0]


def test_self_signed_without_the_extra_exits_2_with_the_install_hint(tmp_path: Path) -> None:
    """Without trustme installed, --tls-self-signed exits 2 with one line naming the extra."""
    done = run_emulator(tmp_path, "--tls-self-signed",
                        prelude="import sys\nsys.modules['trustme'] = None\n")
    assert "pip install 'bulkusers[tls]'" in one_error_line(done)


@pytest.mark.parametrize(("files", "expected"), [
    (("--tls-cert", "cert.pem"), "--tls-key"),
    (("--tls-key", "key.pem"), "--tls-cert"),
    (("--tls-cert", "missing.pem", "--tls-key", "key.pem"), "missing.pem"),
    (("--tls-cert", "key.pem", "--tls-key", "cert.pem"), "PEM"),
    (("--tls-cert", "junk.pem", "--tls-key", "junk.pem"), "PEM"),
    (("--tls-self-signed", "--tls-cert", "cert.pem", "--tls-key", "key.pem"), "not both"),
])
def test_bad_tls_options_exit_2_in_one_line(tmp_path: Path, files: tuple[str, ...],
                                            expected: str) -> None:
    """A lone --tls-cert or --tls-key, a missing, swapped or junk file, or both TLS modes:
    exit 2, one line saying which."""
    leaf = trustme.CA().issue_cert("127.0.0.1")
    leaf.cert_chain_pems[0].write_to_path(str(tmp_path / "cert.pem"))
    leaf.private_key_pem.write_to_path(str(tmp_path / "key.pem"))
    (tmp_path / "junk.pem").write_text("not a certificate\n")
    assert expected in one_error_line(run_emulator(tmp_path, *files))
