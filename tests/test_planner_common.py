"""The import planner's path for common rows (``Planner._common_create``) plans exactly what
the general path plans, for rows of every kind, read from real files, under every option that
changes an import's plan."""

from __future__ import annotations

import csv
import random
from dataclasses import replace
from pathlib import Path

import pytest

from bulkusers.directory import Directory
from bulkusers.intake import read_input
from bulkusers.models import FIELDS, Row
from bulkusers.planner import Planner
from bulkusers.readers import ReadOptions
from bulkusers.rules import PlanOptions
from bulkusers.tasks import CreateTask, WorkItem
from tests.planning_fixtures import GROUPS, ROLES, user

#: Existing users: found by email in any case, and a userName that is another address.
USERS = (user("u-ann", "ann@acme.example", user_name="ann"),
         user("u-taken", "other@acme.example", user_name="taken@x.example"))

#: Cells drawn for each field: the common ones, and each kind of row the common path must
#: leave to the general one (bad, repeated, existing, unresolved, (clear), not ASCII...).
POOLS: dict[str, tuple[str, ...]] = {
    "userName": ("",) * 6 + ("u1", "U1", "ann", "Ann", "(clear)", " (CLEAR) ", "Ünï",
                             "taken@x.example", "a1@x.example", "averyveryverylongname"),
    "firstName": ("", "Al", "Alexander", "(clear)", "(Clear) ", "Zoë", "x" * 7, "Bo\x07b"),
    "lastName": ("", "Lee", "(clear)", "Oppenheimer"),
    "role": ("Viewer",) * 4 + ("", "viewer", "designer", "nosuchrole", "(clear)",
                               "r-consumer", "super", "Sys. Admin"),
    "groups": ("Sales",) * 3 + ("", "sales; Marketing", "Nope", "(clear)", "Everyone",
                                "Sales;Nope", "Équipe", "(clear); (clear)", "Admins"),
    "password": ("", "", "s3cret!pass"),
    "language": ("", "", "en-US", "(clear)", "fr-FR"),
}

OPTIONS = (PlanOptions(), PlanOptions(on_existing="update"), PlanOptions(on_existing="fail"),
           PlanOptions(keep_email_case=True), PlanOptions(default_role="viewer"),
           PlanOptions(default_role="nosuchrole"), PlanOptions(create_groups=True))


def email(draw: random.Random) -> str:
    """An email cell: mostly new and valid, else repeated, bad, existing or not ASCII."""
    n = draw.randrange(60)
    if draw.random() < 0.6:
        return f"new{draw.randrange(10**6)}@x.example"
    return draw.choice((f"a{n}@x.example", f"new{draw.randrange(10**6)}@x.example",
                        f"A{n}@X.Example", f" a{n}@x.example ", "ANN@acme.example",
                        "taken@x.example", "bad-email", "", f"é{n}@x.example",
                        f'"Éva{n}"@x.example', f"a{n}@x.example\x07", "two@@x.example"))


def write_input(path: Path, seed: int, rows: int) -> Path:
    """A CSV of ``rows`` random rows, every canonical field a column."""
    draw = random.Random(seed)
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(FIELDS)
        for _ in range(rows):
            writer.writerow([email(draw) if f == "email" else draw.choice(POOLS[f])
                             for f in FIELDS])
    return path


def plan(source: Path, options: PlanOptions, *, common: bool) -> tuple[list[WorkItem], int]:
    """Every row's item, planned in order by one planner; and how many the common path
    planned (``common``: whether it may)."""
    intake = read_input(source, ReadOptions())
    planner = Planner(intake.header, Directory(ROLES, GROUPS, USERS), intake.repeats, options)
    # The switch under test: off, or as the planner set it for these options.
    planner._common_creates &= common
    taken = 0
    common_create = planner._common_create

    def counted(row: Row, cells: tuple[str, ...]) -> CreateTask | None:
        nonlocal taken
        task = common_create(row, cells)
        taken += task is not None
        return task

    planner._common_create = counted  # type: ignore[method-assign]
    # Every seventh row as a delete report read back gives it (its email's case kept).
    rows = [replace(row, recorded=True) if row.number % 7 == 0 else row
            for row in intake.rows()]
    return [planner.plan_import(row) for row in rows], taken


@pytest.mark.parametrize("options", OPTIONS, ids=repr)
@pytest.mark.parametrize("seed", range(4))
def test_common_rows_are_planned_as_the_general_path_plans_them(
        tmp_path: Path, options: PlanOptions, seed: int) -> None:
    """Each row's item, and so the state later rows are planned on, is the same with and
    without the common path; and the common path did plan most creates."""
    source = write_input(tmp_path / "users.csv", seed, 400)
    general, none_taken = plan(source, options, common=False)
    fast, taken = plan(source, options, common=True)
    assert none_taken == 0
    assert fast == general
    creates = sum(isinstance(item, CreateTask) for item in general)
    if not options.keep_email_case:
        assert taken > creates / 3, (taken, creates)


def test_a_common_create_claims_its_username_for_later_rows(tmp_path: Path) -> None:
    """A userName taken by a row the common path planned is refused to a later row."""
    source = tmp_path / "users.csv"
    source.write_text("email,userName,role,groups\n"
                      "a@x.example,,Viewer,Sales\nb@x.example,,Viewer,Sales\n"
                      "c@x.example,b@x.example,Viewer,Sales\n", encoding="utf-8")
    items, taken = plan(source, PlanOptions(), common=True)
    assert taken == 1  # b: a resolved the role and groups cells
    assert isinstance(items[1], CreateTask)
    assert not isinstance(items[2], CreateTask)
    assert "also wanted by b@x.example" in str(items[2])
