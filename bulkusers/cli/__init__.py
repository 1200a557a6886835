"""The ``bulkusers`` command line: options to config, call the core, draw progress, exit codes.

This package is the only place that imports click or prints (through ``cli/console.py``).
One module per command (``write`` holds the five commands that share one run); each declares
its options with light imports only, and imports the core when the command runs.
"""

from __future__ import annotations

import sys

import click

from bulkusers import __version__
from bulkusers.cli.common import EXIT_INTERRUPTED, global_options
from bulkusers.cli.config import config_group
from bulkusers.cli.demo import demo_command
from bulkusers.cli.diff import diff_command
from bulkusers.cli.emulator import emulator_command
from bulkusers.cli.export import export_command
from bulkusers.cli.sync import sync_command
from bulkusers.cli.write import (
    deactivate_command,
    delete_command,
    import_command,
    reactivate_command,
    update_command,
)
from bulkusers.errors import BulkUsersError
from bulkusers.words import speaking_cli


@click.group(context_settings={"help_option_names": ["-h", "--help"],
                               "max_content_width": 100})
@click.version_option(__version__, prog_name="bulkusers")
@global_options(connects=True)
@click.pass_context
def cli(ctx: click.Context) -> None:
    """Bulk import, update, export, deactivation and deletion of Sisense users.

    Every write command reads a CSV or XLSX file, sends the rows through a pool of concurrent
    requests with retries, and writes a report with one line per input row. Exit codes:
    0 every row ok, 1 some rows failed or were invalid, 2 bad usage or unreadable input
    (nothing sent), 3 run aborted (credentials refused, server unreachable), 130 interrupted,
    70 internal error (a bug: run with --debug and report it); diff and export --compare
    exit 4 when the exports differ.

    --debug, --quiet, --profile and --config work before or after the command name.
    """
    ctx.with_resource(speaking_cli())  # messages name the flags the person typed


for command in (import_command, update_command, deactivate_command, reactivate_command,
                delete_command, sync_command, export_command, diff_command, config_group,
                emulator_command, demo_command):
    cli.add_command(command)


def main() -> None:
    """Entry point of the ``bulkusers`` console script."""
    debug = "--debug" in sys.argv[1:]
    try:
        # Not click's standalone mode: it answers a Ctrl-C that arrives before a command's own
        # handling (while options are read or the run core is imported) with "Aborted!" and
        # exit 1, which means "some rows failed". Its other answers are kept below.
        code = cli.main(prog_name="bulkusers", standalone_mode=False)
    except click.ClickException as exc:  # a usage error: click's message, exit 2
        exc.show()
        sys.exit(exc.exit_code)
    except BulkUsersError as exc:
        # One of ours that a command did not turn into its line itself: the same line.
        click.echo(f"bulkusers: error: {exc}", err=True)
        sys.exit(exc.exit_code)
    except (click.Abort, KeyboardInterrupt):
        # click turns a Ctrl-C (and an end of input at one of its prompts) into Abort.
        click.echo("bulkusers: error: interrupted", err=True)
        sys.exit(EXIT_INTERRUPTED)
    except SystemExit:
        raise
    except Exception as exc:  # an unexpected bug: one line, the traceback only on --debug
        if debug:
            raise
        click.echo(f"bulkusers: internal error: {exc.__class__.__name__}: {exc} "
                   "(run again with --debug for details)", err=True)
        sys.exit(70)
    # --help and --version end in click's Exit, returned here as its code; a command that
    # returns normally succeeded.
    sys.exit(code if isinstance(code, int) else 0)


__all__ = ["cli", "main"]
