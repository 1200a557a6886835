"""``bulkusers demo``: import a sample HR file into an emulator started in this process.

The demo is a CLI feature (it prints, and it starts the emulator), so it lives here and not in
the core. The core and the emulator are imported when the demo runs, not when ``--help`` does.
"""

from __future__ import annotations

import shlex
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import click

import bulkusers
from bulkusers.cli.common import global_options, guard, run
from bulkusers.errors import ConfigError
from bulkusers.frozen import frozen
from bulkusers.words import count

if TYPE_CHECKING:
    from bulkusers.cli.console import Console
    from bulkusers.pipeline import Observer
    from bulkusers.summary import RunSummary

#: The groups an HR export of the sample company names; the emulator starts with them.
DEMO_GROUPS = ("Finance", "Sales", "Engineering", "Marketing", "Human Resources", "Operations",
               "Customer Success", "Leadership")


@frozen
class DemoOutcome:
    """What the demo did: the run's summary and the emulator's user count before and after."""

    summary: RunSummary
    users_before: int
    users_after: int
    groups: tuple[str, ...]
    source: Path


def find_sample() -> Path:
    """The sample HR workbook of a source checkout."""
    sample = Path(bulkusers.__file__).resolve().parent.parent / "samples" / "hr_users.xlsx"
    if not sample.is_file():
        raise ConfigError("the sample file samples/hr_users.xlsx is not beside this "
                          "installation; pass --file PATH to import another file")
    return sample


async def run_demo(source: Path, *, concurrency: int, latency_ms: float,
                   observer: Observer | None = None) -> DemoOutcome:
    """Start an emulator on a free loopback port and import ``source`` into it."""
    import secrets

    from bulkusers.config import build_connection
    from bulkusers.emulator import EmulatorSettings, running_emulator
    from bulkusers.jobs import run_command
    from bulkusers.runconfig import RunConfig

    token = secrets.token_urlsafe(24)
    settings = EmulatorSettings(token=token, groups=DEMO_GROUPS, latency_ms=latency_ms)
    async with running_emulator(settings) as emulator:
        before = len(emulator.store.users)
        connection = build_connection(url=emulator.url, token=token, username=None,
                                      password=None)
        config = RunConfig(command="import", connection=connection, input_path=source,
                           concurrency=concurrency)
        summary = await run_command(config, observer)
        return DemoOutcome(summary=summary, users_before=before,
                           users_after=len(emulator.store.users), groups=DEMO_GROUPS,
                           source=source)


def show_intro(console: Console, source: Path, groups: tuple[str, ...]) -> None:
    """What the demo is about to do."""
    from bulkusers.cli.console import escape

    console.rich.print(f"[bold]bulkusers demo[/]: importing {escape(str(source))} into a "
                       "Sisense emulator started on this machine\n"
                       f"(groups seeded: {', '.join(groups)}; nothing leaves this machine)")


def show_outro(console: Console, outcome: DemoOutcome) -> None:
    """What happened in the demo, and what to try next."""
    from bulkusers.cli.console import escape

    console.rich.print(
        f"\nThe emulator now holds {count(outcome.users_after, 'user')} "
        f"({outcome.users_before} before). Rows the tool refused are 'skipped' with the "
        "reason in the report's error column, and were never sent.\nNext, with a "
        "rehearsal server in another terminal:", soft_wrap=True)
    groups = shlex.quote(",".join(outcome.groups))
    sample = shlex.quote(str(outcome.source.with_suffix(".csv")))
    for command in (
            f"bulkusers emulator --port 30845 --token secret-token --groups {groups}",
            f"bulkusers import {sample} --url http://127.0.0.1:30845 "
            "--token secret-token --dry-run",
            "bulkusers import --help"):
        console.rich.print("  " + escape(command), soft_wrap=True)


@click.command("demo")
@click.option("--file", "file", type=click.Path(path_type=Path), default=None,
              help="input to import (default: samples/hr_users.xlsx)")
@click.option("--concurrency", type=click.IntRange(1, 64), default=8, show_default=True,
              help="requests in flight at once")
@click.option("--latency-ms", type=click.FloatRange(0), default=20.0, show_default=True,
              help="simulated server latency")
@global_options(connects=False, quiet=False)
def demo_command(file: Path | None, concurrency: int, latency_ms: float) -> None:
    """Import a sample HR file into a built-in emulator: see the tool work in seconds."""
    from bulkusers.cli.console import Console, ProgressObserver

    console = Console(quiet=False)
    source = guard(console, lambda: file or find_sample())
    show_intro(console, source, DEMO_GROUPS)
    observer = ProgressObserver(console, "Importing")
    with observer:
        outcome = run(console, run_demo(source, concurrency=concurrency,
                                         latency_ms=latency_ms, observer=observer))
    console.summary(outcome.summary)
    show_outro(console, outcome)
    sys.exit(0)
