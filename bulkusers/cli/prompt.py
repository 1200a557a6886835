"""A yes/no question on the terminal that Ctrl-C ends at once, however the signal arrives.

``input()`` (what ``click.confirm`` uses) cannot promise that: a SIGINT that lands after the
question is written but before ``read`` blocks (or on another thread of the process) only sets
Python's "signal pending" flag, and nothing looks at that flag until a key is pressed. Here the
signal also writes to a pipe (``signal.set_wakeup_fd``), and the wait watches that pipe beside
the terminal, so a Ctrl-C is seen whenever and wherever it was delivered.
"""

from __future__ import annotations

import asyncio
import os
import select
import signal
import sys
import threading

YES = frozenset({"y", "yes"})
NO = frozenset({"n", "no"})


def ask_yes_no(question: str) -> bool:
    """Ask on stderr and read the answer from the terminal on stdin; a blank answer is no.

    Raises KeyboardInterrupt the moment SIGINT arrives (a Ctrl-C keystroke or ``kill -INT``)
    and on end of input (Ctrl-D). Must run on the main thread, the only one that may install
    signal handlers; nothing else runs while it waits.
    """
    if threading.current_thread() is not threading.main_thread():
        raise RuntimeError("ask_yes_no must run on the main thread")
    wake_read, wake_write = os.pipe()
    os.set_blocking(wake_read, False)
    os.set_blocking(wake_write, False)
    previous_handler = signal.signal(signal.SIGINT, signal.default_int_handler)
    previous_fd = signal.set_wakeup_fd(wake_write, warn_on_full_buffer=False)
    try:
        _raise_if_cancelled()
        while True:
            answer = _read_answer(f"{question} [y/N]: ", wake_read)
            if answer in YES:
                return True
            if answer in NO or not answer:
                return False
            sys.stderr.write("Please answer y or n.\n")
    finally:
        signal.set_wakeup_fd(previous_fd)
        signal.signal(signal.SIGINT, previous_handler)
        os.close(wake_read)
        os.close(wake_write)


def _raise_if_cancelled() -> None:
    """A Ctrl-C pressed just before the prompt took over SIGINT went to asyncio, which only
    asked the run's task to cancel: honour it now rather than wait for a second press."""
    try:
        task = asyncio.current_task()
    except RuntimeError:
        return  # no event loop: nobody else can have seen the signal
    if task is not None and task.cancelling():
        raise KeyboardInterrupt


def _read_answer(prompt: str, wake_read: int) -> str:
    """Write the prompt, then one line from stdin, lower-cased and stripped."""
    sys.stderr.write(prompt)
    sys.stderr.flush()
    stdin = sys.stdin.fileno()
    line = b""
    while not line.endswith(b"\n"):
        # No timeout: the wake-up pipe ends the wait for any signal. When the signal arrived
        # on this thread, select itself raises KeyboardInterrupt (PEP 475 runs the handler).
        ready, _, _ = select.select([stdin, wake_read], [], [])
        if wake_read in ready:
            _drain(wake_read)
            continue  # the pending handler runs at this loop's next turn and raises
        chunk = os.read(stdin, 1024)
        if not chunk:
            raise KeyboardInterrupt  # end of input (Ctrl-D): no answer will come
        line += chunk
    return line.decode(errors="replace").strip().lower()


def _drain(fd: int) -> None:
    try:
        while os.read(fd, 512):
            pass
    except BlockingIOError:
        pass
