"""Shared fixtures: an emulator on a loopback port in a background thread, and a CLI runner.

With ``BULKUSERS_TEST_TLS=1`` in the environment every emulator these fixtures start serves HTTPS
with a certificate from a throwaway trustme CA, and `run_cli` passes that CA with ``--ca-bundle``
to every command given an ``https://`` URL (by ``--url`` or ``SISENSE_URL``): the whole suite
then runs over TLS (the CA itself is made in ``tests/__init__.py``, before aiohttp is imported).
"""

from __future__ import annotations

import asyncio
import json
import os
import ssl
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from bulkusers.cli import cli
from bulkusers.emulator import Emulator, EmulatorSettings, running_emulator
from bulkusers.words import speaking_cli
from tests import SUITE_CA, SUITE_CERT

TOKEN = "test-token-5f1e"
GROUPS = ("Finance", "Sales", "Engineering", "Marketing", "Human Resources", "Operations",
          "Customer Success", "Leadership")


@dataclass(frozen=True)
class SuiteTls:
    """The suite's throwaway CA (its PEM file) and the server context it signed, for TLS runs."""

    context: ssl.SSLContext
    ca_file: Path


def _make_suite_tls() -> SuiteTls | None:
    """The suite's TLS set-up when BULKUSERS_TEST_TLS=1, else None."""
    if SUITE_CA is None or SUITE_CERT is None:
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(SUITE_CERT)
    return SuiteTls(context, SUITE_CA)


_SUITE_TLS = _make_suite_tls()


def suite_tls() -> SuiteTls | None:
    """The suite's TLS set-up (a CA and a server context) when BULKUSERS_TEST_TLS=1, else None."""
    return _SUITE_TLS


def with_test_ca(args: Sequence[str]) -> list[str]:
    """`args`, plus ``--ca-bundle`` with the suite's CA when they (or ``SISENSE_URL``) name an
    https:// URL."""
    args = list(args)
    tls = suite_tls()
    chosen = {"--ca-bundle", "--insecure"} & set(args) or {
        name for name in ("SISENSE_CA_BUNDLE", "SISENSE_INSECURE") if os.environ.get(name)}
    if tls is None or chosen:  # the test chose how to trust the server: leave it so
        return args
    at = args.index("--url") if "--url" in args else -1
    url = args[at + 1] if 0 <= at < len(args) - 1 else os.environ.get("SISENSE_URL", "")
    if url.startswith("https://"):
        args += ["--ca-bundle", str(tls.ca_file)]
    return args


class EmulatorThread:
    """An emulator serving from its own event loop in a thread, so sync CLI tests can use it."""

    def __init__(self, settings: EmulatorSettings, *, plain: bool = False) -> None:
        self._settings = settings
        self._plain = plain  # plain HTTP even in a TLS run
        self._ready: Future[Emulator] = Future()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=self._serve, daemon=True)

    def _serve(self) -> None:
        asyncio.run(self._main())

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        tls = None if self._plain else suite_tls()
        context = tls.context if tls is not None else None
        try:
            async with running_emulator(self._settings, ssl_context=context) as emulator:
                self._ready.set_result(emulator)
                await self._stop.wait()
        except BaseException as exc:  # surface start-up failures in the test, not the thread
            if not self._ready.done():
                self._ready.set_exception(exc)
            raise

    def start(self) -> Emulator:
        """Start serving; the running emulator (url, store, faults, request log)."""
        self._thread.start()
        return self._ready.result(timeout=10)

    def call(self, func: Callable[[], Any]) -> Any:
        """Run func on the emulator's loop (for changing faults while it serves)."""
        assert self._loop is not None
        done: Future[Any] = Future()

        def run() -> None:
            try:
                done.set_result(func())
            except Exception as exc:
                done.set_exception(exc)

        self._loop.call_soon_threadsafe(run)
        return done.result(timeout=10)

    def stop(self) -> None:
        """Stop serving and join the thread."""
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(timeout=10)


@dataclass
class Served:
    """A running emulator plus the thread hosting it."""

    emulator: Emulator
    host: EmulatorThread

    @property
    def url(self) -> str:
        """Base URL of the emulator."""
        return self.emulator.url

    def connect(self) -> list[str]:
        """The CLI's connection options for this emulator (its fixed token; its CA over TLS)."""
        return with_test_ca(["--url", self.url, "--token", TOKEN])


class FakeClock:
    """A wall clock that moves one second forward every time it is read."""

    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        self.now += 1.0
        return self.now


def serve(settings: EmulatorSettings, *, plain: bool = False) -> Iterator[Served]:
    """Run an emulator for the duration of a fixture (over plain HTTP if `plain`, even in a TLS
    run)."""
    host = EmulatorThread(settings, plain=plain)
    emulator = host.start()
    try:
        yield Served(emulator, host)
    finally:
        host.stop()


@pytest.fixture(autouse=True)
def private_state(monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory
                  ) -> Path:
    """Each test keeps bulkusers' machine records (deactivations) in a folder of its own,
    and so does every CLI process it starts (they inherit the variable)."""
    folder = tmp_path_factory.mktemp("state")
    monkeypatch.setenv("BULKUSERS_STATE_DIR", str(folder))
    return folder


@pytest.fixture
def cli_words() -> Iterator[None]:
    """Messages made during the test name the CLI's flags, as when the CLI runs (a test
    that calls the core directly otherwise reads a Python caller's words)."""
    with speaking_cli():
        yield


@pytest.fixture
def served() -> Iterator[Served]:
    """An emulator with the HR groups and a fixed token, in a thread."""
    yield from serve(EmulatorSettings(token=TOKEN, groups=GROUPS))


def isolate_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No SISENSE_* or BULKUSERS_* variable leaks in, and no configuration file of the
    person running the tests is read (the per-user location points into tmp_path)."""
    import os

    for name in list(os.environ):
        # The test's own deactivation-records folder (private_state) stays.
        if name.startswith(("SISENSE_", "BULKUSERS_")) and name != "BULKUSERS_STATE_DIR":
            monkeypatch.delenv(name)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / ".no-config"))
    # Nothing reaches the state folder of the person running the tests either.
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / ".no-state"))


@pytest.fixture
def run_cli(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Callable[..., Result]:
    """Invoke the CLI in-process from tmp_path, with no SISENSE_* variables leaking in."""
    isolate_environment(monkeypatch, tmp_path)
    monkeypatch.chdir(tmp_path)

    def invoke(*args: str, input: str | None = None) -> Result:
        runner = CliRunner()
        return runner.invoke(cli, with_test_ca(args), input=input, catch_exceptions=False)

    return invoke


def write_csv(path: Path, header: Sequence[str], rows: Sequence[Sequence[str]]) -> Path:
    """Write a small UTF-8 CSV input file."""
    import csv

    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def summary_of(report: Path) -> dict[str, Any]:
    """The JSON summary written beside a report (or an export, or a diff's changes)."""
    data = json.loads(report.with_name(report.stem + ".summary.json").read_text("utf-8"))
    assert isinstance(data, dict)
    return data


def read_report(path: Path) -> list[dict[str, str]]:
    """A report's lines as dicts (BOM handled)."""
    import csv

    with path.open(encoding="utf-8-sig", newline="") as handle:
        return list(csv.DictReader(handle))
