"""A CLI process on a pseudo-terminal that is its controlling terminal, as in a real shell.

``setsid --ctty`` (util-linux) gives the process a session of its own with the terminal as its
controlling terminal, so bytes written to the terminal's other end are keystrokes: ``\\x03``
is Ctrl-C, and the terminal's line discipline turns it into SIGINT for the process. Every wait
has a short deadline and fails with the text seen so far, so a hung process costs seconds.
"""

from __future__ import annotations

import contextlib
import os
import pty
import re
import select
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType

import pytest

#: Long enough for a loaded machine to start Python and run a small command to its end (or a
#: given point); short enough that a test whose process hangs fails in seconds, not minutes.
RUN_S = 20.0
#: How long a process told to stop (an answer, Ctrl-C) may take to end.
EXIT_S = 10.0
CTRL_C = b"\x03"
CTRL_D = b"\x04"
_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def clean_env(cwd: Path, **extra: str) -> dict[str, str]:
    """The environment without SISENSE_* or BULKUSERS_* variables (but the test's own
    BULKUSERS_STATE_DIR) and with no user configuration file, plus `extra`."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("SISENSE_", "BULKUSERS_")) or k == "BULKUSERS_STATE_DIR"}
    env["XDG_CONFIG_HOME"] = str(cwd / ".no-config")
    env.update(extra)
    return env


class Terminal:
    """``python -m bulkusers ARGS`` attached to a fresh pseudo-terminal; a context manager
    that always leaves the process gone."""

    def __init__(self, args: list[str], cwd: Path, env: dict[str, str] | None = None) -> None:
        setsid = shutil.which("setsid")
        if setsid is None:
            pytest.skip("setsid (util-linux) is needed to give a process a terminal")
        self._controller, terminal = pty.openpty()
        try:
            self.process = subprocess.Popen(
                [setsid, "--ctty", sys.executable, "-m", "bulkusers", *args],
                stdin=terminal, stdout=terminal, stderr=terminal, cwd=cwd,
                env=env if env is not None else clean_env(cwd), close_fds=True)
        finally:
            os.close(terminal)
        self._seen = b""
        self._closed = False

    @property
    def text(self) -> str:
        """Everything the process wrote so far, without colour codes."""
        return _ANSI.sub("", self._seen.decode(errors="replace"))

    def _read(self, timeout: float) -> bool:
        """Read what is available within `timeout`; False once the terminal is closed."""
        if self._closed:
            return False
        ready, _, _ = select.select([self._controller], [], [], timeout)
        if not ready:
            return True
        try:
            chunk = os.read(self._controller, 65536)
        except OSError:  # EIO: every process holding the terminal has closed it
            chunk = b""
        if not chunk:
            self._closed = True
            return False
        self._seen += chunk
        return True

    def expect(self, pattern: str, timeout: float = RUN_S) -> None:
        """Wait until the output matches the regex `pattern`; fail after `timeout` seconds."""
        deadline = time.monotonic() + timeout
        while not re.search(pattern, self.text):
            left = deadline - time.monotonic()
            assert left > 0, f"no {pattern!r} after {timeout} s; the terminal shows:\n{self.text}"
            if not self._read(min(left, 0.5)):
                assert re.search(pattern, self.text), (
                    f"the process ended without {pattern!r}; the terminal shows:\n{self.text}")

    def send(self, keys: bytes) -> None:
        """Type `keys` on the terminal (CTRL_C is the Ctrl-C keystroke)."""
        os.write(self._controller, keys)

    def interrupt(self) -> None:
        """Send SIGINT with kill, as another program (or a service manager) would."""
        self.process.send_signal(signal.SIGINT)

    def wait(self, timeout: float = EXIT_S) -> int:
        """The exit code, reading the output to its end; fail after `timeout` seconds."""
        deadline = time.monotonic() + timeout
        while self._read(max(0.0, min(deadline - time.monotonic(), 0.5))):
            if time.monotonic() >= deadline:
                break
        try:
            return self.process.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            raise AssertionError(f"the process did not end within {timeout} s; the terminal "
                                 f"shows:\n{self.text}") from None

    def __enter__(self) -> Terminal:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=EXIT_S)
        os.close(self._controller)


def answer_prompt(args: list[str], cwd: Path, answer: bytes) -> tuple[int, str]:
    """Run ``bulkusers ARGS`` on a terminal, type `answer` at its ``[y/N]`` prompt; (exit code,
    what the terminal showed). Fails within seconds if the prompt or the end never comes."""
    with Terminal(args, cwd) as terminal:
        terminal.expect(r"\[y/N\]")
        terminal.send(answer)
        return terminal.wait(), terminal.text


@contextlib.contextmanager
def emulator_command(*options: str, cwd: Path) -> Iterator[str]:
    """``bulkusers emulator --port 0 OPTIONS`` as a process of its own (no SISENSE_* variables
    leaking in); yields its URL, stops it afterwards (killed if it will not end)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SISENSE_")}
    process = subprocess.Popen([sys.executable, "-m", "bulkusers", "emulator", "--port", "0",
                                *options], stderr=subprocess.PIPE, text=True, env=env, cwd=cwd)
    try:
        assert process.stderr is not None
        ready, _, _ = select.select([process.stderr], [], [], RUN_S)
        assert ready, f"the emulator printed nothing within {RUN_S} s"
        line = process.stderr.readline()
        match = re.search(r"http://127\.0\.0\.1:\d+", line)
        assert match, line
        yield match.group(0)
    finally:
        process.terminate()
        try:
            process.wait(timeout=EXIT_S)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=EXIT_S)
