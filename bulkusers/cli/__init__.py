"""The ``bulkusers`` command line: options to config, call the core, draw progress, exit codes.

This package is the only place that imports click or prints (through ``bulkusers.ui``).
"""

from __future__ import annotations

import logging
import sys

import click

from bulkusers import __version__
from bulkusers.cli.diff import diff_command
from bulkusers.cli.other import demo_command, emulator_command, export_command
from bulkusers.cli.sync import sync_command
from bulkusers.cli.write import (
    deactivate_command,
    delete_command,
    import_command,
    reactivate_command,
    update_command,
)


class _DebugHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """The stderr handler --debug installs (a class of its own, so it is found again)."""


@click.group(context_settings={"help_option_names": ["-h", "--help"],
                               "max_content_width": 100})
@click.version_option(__version__, prog_name="bulkusers")
@click.option("--debug", is_flag=True,
              help="log every request (method, path, status, time; never headers or bodies) "
                   "and retry to stderr, and show tracebacks of unexpected errors")
def cli(debug: bool) -> None:
    """Bulk import, update, export, deactivation and deletion of Sisense users.

    Every write command reads a CSV or XLSX file, sends the rows through a pool of concurrent
    requests with retries, and writes a report with one line per input row. Exit codes:
    0 every row ok, 1 some rows failed or were invalid, 2 bad usage or unreadable input
    (nothing sent), 3 run aborted (credentials refused, server unreachable), 130 interrupted,
    70 internal error (a bug: run with --debug and report it); diff and export --compare
    exit 4 when the exports differ.
    """
    if debug:
        logger = logging.getLogger("bulkusers")
        # One handler, also when the CLI is invoked several times in one process (tests).
        for old in [h for h in logger.handlers if isinstance(h, _DebugHandler)]:
            logger.removeHandler(old)
        handler = _DebugHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s %(name)s: %(message)s"))
        logger.addHandler(handler)
        logger.setLevel(logging.DEBUG)


for command in (import_command, update_command, deactivate_command, reactivate_command,
                delete_command, sync_command, export_command, diff_command, emulator_command,
                demo_command):
    cli.add_command(command)


def main() -> None:
    """Entry point of the ``bulkusers`` console script."""
    debug = "--debug" in sys.argv[1:]
    try:
        cli.main(prog_name="bulkusers", standalone_mode=True)
    except SystemExit:
        raise
    except Exception as exc:  # an unexpected bug: one line, the traceback only on --debug
        if debug:
            raise
        click.echo(f"bulkusers: internal error: {exc.__class__.__name__}: {exc} "
                   "(run again with --debug for details)", err=True)
        sys.exit(70)


__all__ = ["cli", "main"]
