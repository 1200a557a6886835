"""``bulkusers demo``: the import job against an emulator started in this process."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from pathlib import Path

import bulkusers
from bulkusers.config import build_connection
from bulkusers.emulator import EmulatorSettings, running_emulator
from bulkusers.errors import ConfigError
from bulkusers.jobs import run_command
from bulkusers.pipeline import Observer
from bulkusers.runconfig import RunConfig
from bulkusers.summary import RunSummary

#: The groups an HR export of the sample company names; the emulator starts with them.
DEMO_GROUPS = ("Finance", "Sales", "Engineering", "Marketing", "Human Resources", "Operations",
               "Customer Success", "Leadership")


@dataclass(frozen=True, slots=True)
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
