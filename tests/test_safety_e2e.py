"""End to end: dry runs, strict pre-flight, --create-groups, --max-changes and confirmations."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import Result

from tests.conftest import Served, read_report, summary_of, write_csv
from tests.terminal import CTRL_C, CTRL_D, Terminal

RunCli = Callable[..., Result]
HEADER = ("Email", "First Name", "Role", "Groups")
PEOPLE = [["ann@acme.example", "Ann", "Admin", "Finance; Sales"],
          ["bob@acme.example", "Bob", "Viewer", "Sales"],
          ["cat@acme.example", "Cat", "Designer", "Engineering"]]



def seed(served: Served, run_cli: RunCli, tmp_path: Path) -> None:
    """Create the three people."""
    source = write_csv(tmp_path / "seed.csv", HEADER, PEOPLE)
    result = run_cli("import", str(source), *served.connect(), "--report",
                     str(tmp_path / "seed-report.csv"))
    assert result.exit_code == 0, result.output


def snapshot(served: Served) -> str:
    """The emulator's users as comparable text."""
    store = served.emulator.store
    return json.dumps(sorted((u.to_json() for u in store.users.values()),
                             key=lambda u: str(u["_id"])), sort_keys=True, default=str)


def test_dry_run_sends_no_write_and_reports_the_exact_plan(
        served: Served, run_cli: RunCli, tmp_path: Path) -> None:
    """--dry-run reads only: the emulator is untouched, the report says 'planned' with the
    exact changes, and the summary counts what would happen."""
    seed(served, run_cli, tmp_path)
    before, writes = snapshot(served), len(served.emulator.writes())
    changed = [["ann@acme.example", "Ann", "Viewer", "Finance; Sales"],   # role change
               ["bob@acme.example", "Bob", "Viewer", "Sales"],            # unchanged
               ["dan@acme.example", "Dan", "Viewer", "Marketing"],        # new
               ["bad-email", "X", "Viewer", ""]]                          # invalid
    source = write_csv(tmp_path / "changed.csv", HEADER, changed)
    report = tmp_path / "plan.csv"
    result = run_cli("import", str(source), *served.connect(), "--on-existing", "update",
                     "--dry-run", "--report", str(report))
    assert result.exit_code == 1, result.output  # the invalid row needs attention
    assert snapshot(served) == before
    assert len(served.emulator.writes()) == writes
    lines = {line["email"]: line for line in read_report(report)}
    assert (lines["ann@acme.example"]["status"], lines["ann@acme.example"]["changes"]) == (
        "planned", "role: Admin -> Viewer")
    assert lines["bob@acme.example"]["status"] == "unchanged"
    assert (lines["dan@acme.example"]["status"], lines["dan@acme.example"]["action"]) == (
        "planned", "create")
    assert lines["bad-email"]["status"] == "skipped"
    summary = summary_of(tmp_path / "plan.csv")
    assert summary["dry_run"] is True
    assert summary["planned"] == {"create": 1, "update": 1}
    assert "dry run" in result.output


def test_dry_run_of_a_delete_needs_no_yes_and_deletes_nothing(
        served: Served, run_cli: RunCli, tmp_path: Path) -> None:
    """delete --dry-run off a terminal plans the deletions, sends nothing, asks nothing."""
    seed(served, run_cli, tmp_path)
    writes = len(served.emulator.writes())
    leavers = write_csv(tmp_path / "leavers.csv", ("Email",), [["ann@acme.example"]])
    report = tmp_path / "plan.csv"
    result = run_cli("delete", str(leavers), *served.connect(), "--dry-run", "--report",
                     str(report))
    assert result.exit_code == 0, result.output
    (line,) = read_report(report)
    assert (line["status"], line["action"]) == ("planned", "delete")
    assert json.loads(line["previous"])["role"] == "admin"
    assert len(served.emulator.writes()) == writes


def test_destructive_run_off_a_terminal_needs_yes(served: Served, run_cli: RunCli,
                                                  tmp_path: Path) -> None:
    """delete and deactivate without --yes off a terminal: exit 2 and nothing is sent."""
    seed(served, run_cli, tmp_path)
    requests = len(served.emulator.requests)
    leavers = write_csv(tmp_path / "leavers.csv", ("Email",), [["ann@acme.example"]])
    for command in ("delete", "deactivate"):
        result = run_cli(command, str(leavers), *served.connect())
        assert result.exit_code == 2
        assert "--yes" in result.output
    assert len(served.emulator.requests) == requests
    assert served.emulator.store.user_by_email("ann@acme.example") is not None


def strict_import(served: Served, run_cli: RunCli, tmp_path: Path) -> tuple[Result, Path, Path]:
    """An import --strict of PEOPLE and one row with an unknown role (row 5): its result, its
    input file and its report."""
    rows = [*PEOPLE, ["dan@acme.example", "Dan", "Viewr", "Sales"]]
    source = write_csv(tmp_path / "hr.csv", HEADER, rows)
    report = tmp_path / "strict.csv"
    result = run_cli("import", str(source), *served.connect(), "--strict", "--report",
                     str(report))
    return result, source, report


def test_strict_refuses_to_write_when_any_row_is_invalid(
        served: Served, run_cli: RunCli, tmp_path: Path) -> None:
    """--strict with one invalid row sends nothing (exit 2); the report shows every row."""
    result, _, report = strict_import(served, run_cli, tmp_path)
    assert result.exit_code == 2
    assert "--strict" in result.output
    assert "row 5" in result.output.replace("\n", " ")
    assert served.emulator.writes() == []
    statuses = {line["email"]: line["status"] for line in read_report(report)}
    assert statuses["dan@acme.example"] == "skipped"
    assert {statuses[p[0]] for p in PEOPLE} == {"planned"}
    dan = next(line for line in read_report(report) if line["email"] == "dan@acme.example")
    assert "did you mean 'Viewer'" in dan["error"]


def test_a_strict_refusal_is_not_called_a_dry_run_and_cannot_be_resumed(
        served: Served, run_cli: RunCli, tmp_path: Path) -> None:
    """A plan --strict refused says so (not "dry run"), its summary keeps dry_run false with
    the refusal, a --resume of it is refused in one line, nothing sent, and a dry run with
    --strict says the real run would be refused."""
    result, source, report = strict_import(served, run_cli, tmp_path)
    assert result.exit_code == 2
    assert "refused by --strict: nothing was sent" in result.output
    assert "dry run" not in result.output
    summary = summary_of(tmp_path / "strict.csv")
    assert (summary["dry_run"], summary["options"]["dry_run"]) == (False, False)
    assert "--strict" in summary["refused"]

    again = run_cli("import", str(source), *served.connect(), "--strict", "--resume",
                    str(report))

    assert again.exit_code == 2
    assert "--strict refused that run and it sent nothing" in again.output
    rehearsal = run_cli("import", str(source), *served.connect(), "--strict", "--dry-run",
                        "--report", str(tmp_path / "rehearsal.csv"))
    assert rehearsal.exit_code == 1, rehearsal.output  # a dry run: the invalid row, no refusal
    assert "without --dry-run this run would be refused" in rehearsal.output
    summary = summary_of(tmp_path / "rehearsal.csv")
    assert "--strict" in summary["would_refuse"]
    assert served.emulator.writes() == []


def test_create_groups_creates_missing_groups_then_the_users(
        served: Served, run_cli: RunCli, tmp_path: Path) -> None:
    """--create-groups creates unknown groups once, and the rows naming them succeed; in a
    dry run the groups are only announced."""
    rows = [["ann@acme.example", "Ann", "Viewer", "Data Science; Sales"],
            ["bob@acme.example", "Bob", "Viewer", "data science"]]
    source = write_csv(tmp_path / "hr.csv", HEADER, rows)
    dry = run_cli("import", str(source), *served.connect(), "--create-groups", "--dry-run",
                  "--report", str(tmp_path / "dry.csv"))
    assert dry.exit_code == 0, dry.output
    assert "Data Science" in dry.output
    assert served.emulator.store.group_by_name("Data Science") is None
    assert served.emulator.writes() == []
    result = run_cli("import", str(source), *served.connect(), "--create-groups", "--report",
                     str(tmp_path / "real.csv"))
    assert result.exit_code == 0, result.output
    store = served.emulator.store
    assert store.group_by_name("Data Science") is not None
    ann = store.user_by_email("ann@acme.example")
    bob = store.user_by_email("bob@acme.example")
    assert ann is not None
    assert bob is not None
    assert store.group_names_of(ann["_id"]) == {"Data Science", "Sales"}
    assert store.group_names_of(bob["_id"]) == {"Data Science"}
    group_posts = [r for r in served.emulator.writes() if "/groups" in r.path]
    assert len(group_posts) == 1


def test_create_groups_waits_for_the_guards(served: Served, run_cli: RunCli,
                                           tmp_path: Path) -> None:
    """When --max-changes refuses the plan, --create-groups has created no group either."""
    rows = [["ann@acme.example", "Ann", "Viewer", "Data Science"],
            ["bob@acme.example", "Bob", "Viewer", "Data Science"]]
    source = write_csv(tmp_path / "hr.csv", HEADER, rows)
    result = run_cli("import", str(source), *served.connect(), "--create-groups",
                     "--max-changes", "1")
    assert result.exit_code == 3
    assert served.emulator.writes() == []
    assert served.emulator.store.group_by_name("Data Science") is None


def test_without_create_groups_the_hint_names_the_option(
        served: Served, run_cli: RunCli, tmp_path: Path) -> None:
    """A row naming an unknown group is skipped with a hint to --create-groups."""
    source = write_csv(tmp_path / "hr.csv", HEADER, [["ann@acme.example", "A", "Viewer",
                                                      "Data Science"]])
    report = tmp_path / "r.csv"
    assert run_cli("import", str(source), *served.connect(), "--report",
                   str(report)).exit_code == 1
    assert "--create-groups" in read_report(report)[0]["error"]


def test_max_changes_aborts_before_any_write(served: Served, run_cli: RunCli,
                                             tmp_path: Path) -> None:
    """A plan larger than --max-changes (a count or a percentage) aborts with exit 3 and
    sends nothing; within the limit the run goes ahead."""
    seed(served, run_cli, tmp_path)
    writes = len(served.emulator.writes())
    leavers = write_csv(tmp_path / "leavers.csv", ("Email",),
                        [["ann@acme.example"], ["bob@acme.example"], ["cat@acme.example"]])
    too_many = run_cli("delete", str(leavers), *served.connect(), "--yes", "--max-changes", "2")
    assert too_many.exit_code == 3
    assert "--max-changes" in too_many.output
    percent = run_cli("delete", str(leavers), *served.connect(), "--yes", "--max-changes",
                      "50%")  # 4 users in the directory: at most 2
    assert percent.exit_code == 3
    assert len(served.emulator.writes()) == writes
    assert served.emulator.store.user_by_email("ann@acme.example") is not None
    allowed = run_cli("delete", str(leavers), *served.connect(), "--yes", "--max-changes", "3",
                      "--report", str(tmp_path / "ok.csv"))
    assert allowed.exit_code == 0, allowed.output
    assert served.emulator.store.user_by_email("ann@acme.example") is None


def test_a_dry_run_says_which_guard_would_refuse_its_plan(served: Served, run_cli: RunCli,
                                                          tmp_path: Path) -> None:
    """A dry run whose plan --max-changes would refuse still writes its plan (exit 0), and
    says, on the console and in its JSON summary, that the real run would be refused; one
    within the limit says nothing of the kind."""
    seed(served, run_cli, tmp_path)
    writes = len(served.emulator.writes())
    leavers = write_csv(tmp_path / "leavers.csv", ("Email",),
                        [["ann@acme.example"], ["bob@acme.example"], ["cat@acme.example"]])
    over = run_cli("delete", str(leavers), *served.connect(), "--dry-run", "--max-changes", "2",
                   "--report", str(tmp_path / "over.csv"))
    assert over.exit_code == 0, over.output
    assert "without --dry-run this run would be refused" in over.output
    summary = summary_of(tmp_path / "over.csv")
    assert "--max-changes" in summary["would_refuse"]
    within = run_cli("delete", str(leavers), *served.connect(), "--dry-run", "--max-changes",
                     "3", "--report", str(tmp_path / "within.csv"))
    assert within.exit_code == 0, within.output
    assert "would be refused" not in within.output
    summary = summary_of(tmp_path / "within.csv")
    assert summary["would_refuse"] == ""
    assert len(served.emulator.writes()) == writes


def _prompted(served: Served, tmp_path: Path, *emails: str) -> Terminal:
    """`bulkusers delete` of `emails` on a terminal, stopped at its confirmation prompt."""
    leavers = write_csv(tmp_path / "leavers.csv", ("Email",), [[e] for e in emails])
    terminal = Terminal(["delete", str(leavers), *served.connect()], tmp_path)
    terminal.expect(r"\[y/N\]")
    return terminal


def test_confirmation_prompt_on_a_terminal(served: Served, run_cli: RunCli,
                                           tmp_path: Path) -> None:
    """On a terminal, delete shows the count and the users and asks: 'n' sends nothing
    (exit 3), 'y' deletes; the time spent at the prompt is shown apart and left out of the
    rows per second."""
    seed(served, run_cli, tmp_path)
    with _prompted(served, tmp_path, "ann@acme.example", "bob@acme.example") as terminal:
        terminal.send(b"n\n")
        assert terminal.wait() == 3, terminal.text
    assert re.search(r"would change\s+2\s+users", terminal.text)
    assert "ann@acme.example" in terminal.text
    assert served.emulator.store.user_by_email("ann@acme.example") is not None
    with _prompted(served, tmp_path, "ann@acme.example", "bob@acme.example") as terminal:
        time.sleep(0.5)  # a person reading the list: not the run's time
        terminal.send(b"y\n")
        assert terminal.wait() == 0, terminal.text
    assert served.emulator.store.user_by_email("ann@acme.example") is None
    assert served.emulator.store.user_by_email("bob@acme.example") is None
    assert "of them at the prompt" in terminal.text
    (summary_file,) = tmp_path.glob("leavers.delete.*.summary.json")
    summary = json.loads(summary_file.read_text(encoding="utf-8"))
    assert summary["prompt_seconds"] >= 0.5
    # The wait is left out: 2 rows over the run's own time (the JSON rounds the figures, and
    # the run's own time can be a few milliseconds, hence the loose tolerance; with the wait
    # counted the figure is several times lower).
    running = summary["seconds"] - summary["prompt_seconds"]
    assert summary["rows_per_second"] == pytest.approx(2 / running, rel=0.25)


def test_ctrl_c_at_the_prompt_stops_at_once(served: Served, run_cli: RunCli,
                                            tmp_path: Path) -> None:
    """The Ctrl-C keystroke while the confirmation waits ends the run at once (exit 130)
    with one calm line, and nothing is sent."""
    seed(served, run_cli, tmp_path)
    writes = len(served.emulator.writes())
    with _prompted(served, tmp_path, "ann@acme.example") as terminal:
        terminal.send(CTRL_C)
        assert terminal.wait() == 130, terminal.text
    assert "stopped at the confirmation prompt; nothing was sent" in terminal.text
    assert "Traceback" not in terminal.text
    assert "error" not in terminal.text.split("[y/N]")[-1]
    assert len(served.emulator.writes()) == writes


def test_sigint_by_kill_at_the_prompt_stops_at_once(served: Served, run_cli: RunCli,
                                                    tmp_path: Path) -> None:
    """SIGINT sent with kill (no keystroke) while the confirmation waits also ends the run
    at once (exit 130), nothing sent; repeated, since a lost signal used to hang it."""
    seed(served, run_cli, tmp_path)
    writes = len(served.emulator.writes())
    for _ in range(3):
        with _prompted(served, tmp_path, "ann@acme.example") as terminal:
            terminal.interrupt()
            assert terminal.wait() == 130, terminal.text
        assert "stopped at the confirmation prompt; nothing was sent" in terminal.text
        assert "Traceback" not in terminal.text
    assert len(served.emulator.writes()) == writes
    assert served.emulator.store.user_by_email("ann@acme.example") is not None


def test_end_of_input_at_the_prompt_stops_like_ctrl_c(
        served: Served, run_cli: RunCli, tmp_path: Path) -> None:
    """Ctrl-D (end of input) at the prompt ends the run as Ctrl-C does: exit 130, nothing
    sent, never taken as an answer."""
    seed(served, run_cli, tmp_path)
    writes = len(served.emulator.writes())
    with _prompted(served, tmp_path, "ann@acme.example") as terminal:
        terminal.send(CTRL_D)
        assert terminal.wait() == 130, terminal.text
    assert "nothing was sent" in terminal.text
    assert len(served.emulator.writes()) == writes


def test_an_answer_that_is_neither_yes_nor_no_is_asked_again(
        served: Served, run_cli: RunCli, tmp_path: Path) -> None:
    """'maybe' at the prompt asks again instead of guessing; Enter alone means no (exit 3)."""
    seed(served, run_cli, tmp_path)
    with _prompted(served, tmp_path, "ann@acme.example") as terminal:
        terminal.send(b"maybe\n")
        terminal.expect(r"answer y or n")
        terminal.send(b"\n")
        assert terminal.wait() == 3, terminal.text
    assert served.emulator.store.user_by_email("ann@acme.example") is not None


def test_quiet_keeps_a_guards_verdict(served: Served, run_cli: RunCli,
                                      tmp_path: Path) -> None:
    """--quiet drops the summary but never a guard's verdict: each write command's dry run
    over --max-changes says the real run would be refused, and a --strict refusal says why."""
    seed(served, run_cli, tmp_path)
    writes = len(served.emulator.writes())
    changed = [[email, name, role, "Leadership"] for email, name, role, _ in PEOPLE]
    source = write_csv(tmp_path / "changed.csv", HEADER, changed)
    verdict = ("without --dry-run this run would be refused: the plan would change 3 users, "
               "more than --max-changes allows (2); nothing was sent. Check the input, or "
               "raise --max-changes")
    for command in ("import", "update", "deactivate", "delete"):
        extra = ("--on-existing", "update") if command == "import" else ()
        result = run_cli(command, str(source), *served.connect(), "--dry-run", "--quiet",
                         "--max-changes", "2", *extra)
        assert result.exit_code == 0, result.output
        assert result.output.splitlines()[0] == verdict, command
    invalid = write_csv(tmp_path / "strict.csv", HEADER,
                        [*PEOPLE, ["dan@acme.example", "Dan", "Viewr", "Sales"]])
    result = run_cli("import", str(invalid), *served.connect(), "--strict", "--quiet")
    assert result.exit_code == 2
    assert result.output.splitlines() == [
        "refused: --strict: 1 row is invalid (first: row 5: unknown role 'Viewr' (did you "
        "mean 'Viewer'?)); nothing was sent. Fix it, or run without --strict to skip it"]
    assert len(served.emulator.writes()) == writes
