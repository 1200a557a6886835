"""End to end: `bulkusers sync` night after night against the emulator's state and reports."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest
from click.testing import Result

from bulkusers.ledger import read_ledger
from bulkusers.report import summary_path
from tests.conftest import TOKEN, Served, read_report, write_csv
from tests.terminal import answer_prompt

RunCli = Callable[..., Result]
HEADER = ("Work Email", "First Name", "Last Name", "Role", "Groups")
ADMIN = "admin@example.com"
Person = tuple[str, str, str, str, str]

STAFF: dict[str, Person] = {
    "ann": ("ann@corp.example", "Ann", "Lee", "Admin", "Finance; Sales"),
    "bob": ("bob@corp.example", "Bob", "Ray", "Viewer", "Sales"),
    "cat": ("cat@corp.example", "Cat", "Roe", "Designer", "Engineering"),
    "dan": ("dan@corp.example", "Dan", "Poe", "Designer", "Marketing; Sales"),
    "eve": ("eve@corp.example", "Eve", "Fox", "Viewer", "Operations"),
    "fay": ("fay@corp.example", "Fay", "Orr", "Viewer", "Finance"),
    "gus": ("gus@corp.example", "Gus", "Kim", "Viewer", "Sales"),
    "hal": ("hal@corp.example", "Hal", "Ito", "Viewer", "Engineering"),
    "ivy": ("ivy@corp.example", "Ivy", "Nash", "Designer", "Leadership"),
    "jon": ("jon@corp.example", "Jon", "Moe", "Viewer", ""),
}


def hr_file(path: Path, people: Sequence[Person]) -> Path:
    """An HR snapshot with the given people."""
    return write_csv(path, HEADER, [list(p) for p in people])


def sync(run_cli: RunCli, served: Served, source: Path, report: Path, *extra: str) -> Result:
    """`bulkusers sync` against the emulator, scoped to corp.example, with --yes."""
    return run_cli("sync", str(source), *served.connect(), "--report", str(report),
                   "--scope-domain", "corp.example", "--yes", *extra)


def state(served: Served, email: str) -> tuple[str, set[str]] | None:
    """A user's role and explicit groups on the server, or None when it does not exist."""
    store = served.emulator.store
    user = store.user_by_email(email)
    if user is None:
        return None
    return store.role_name_of(user["_id"]), store.group_names_of(user["_id"])


def ledger_emails(served: Served) -> set[str]:
    """Emails of the users this machine's records hold as deactivated on the emulator."""
    return {record.email for record in read_ledger(served.url).values()}


def lines(report: Path) -> dict[str, dict[str, str]]:
    """Report lines by email (each email once)."""
    found = read_report(report)
    keyed = {line["email"]: line for line in found}
    assert len(keyed) == len(found)
    return keyed


def outcome(report: Path) -> dict[str, tuple[str, str, str]]:
    """email -> (row, action, status) of a report."""
    return {email: (line["row"], line["action"], line["status"])
            for email, line in lines(report).items()}


def stranger(run_cli: RunCli, served: Served, tmp_path: Path) -> None:
    """A user outside the scope, made with import: sync must never touch it."""
    source = write_csv(tmp_path / "partner.csv", ("Email", "Role", "Groups"),
                       [["pat@partner.example", "Viewer", "Sales"]])
    result = run_cli("import", str(source), *served.connect(), "--report",
                     str(tmp_path / "partner.report.csv"))
    assert result.exit_code == 0, result.output


def test_nights_of_hires_leavers_changes_and_a_rehire(served: Served, run_cli: RunCli,
                                                    tmp_path: Path) -> None:
    """Night after night the server ends as each snapshot says: hires created, changes
    applied, leavers deactivated once, a rehire restored; the reports say the same."""
    stranger(run_cli, served, tmp_path)
    night1 = hr_file(tmp_path / "n1.csv", list(STAFF.values()))
    result = sync(run_cli, served, night1, tmp_path / "r1.csv")
    assert result.exit_code == 0, result.output
    assert {s for _, _, s in outcome(tmp_path / "r1.csv").values()} == {"created"}
    assert state(served, "ann@corp.example") == ("admin", {"Finance", "Sales"})

    # Night 2: two hires, dan leaves, bob becomes a designer, cat moves to Finance.
    people = dict(STAFF)
    del people["dan"]
    people["bob"] = ("bob@corp.example", "Bob", "Ray", "Designer", "Sales")
    people["cat"] = ("cat@corp.example", "Cat", "Roe", "Designer", "Finance")
    people["kim"] = ("kim@corp.example", "Kim", "Ng", "Viewer", "Sales")
    people["lou"] = ("lou@corp.example", "Lou", "Park", "Designer", "Engineering; Finance")
    night2 = hr_file(tmp_path / "n2.csv", list(people.values()))
    report2 = tmp_path / "r2.csv"
    result = sync(run_cli, served, night2, report2)
    assert result.exit_code == 0, result.output
    seen = outcome(report2)
    assert seen.pop("dan@corp.example") == ("", "deactivate", "deactivated")
    assert seen.pop("bob@corp.example")[2] == "updated"
    assert seen.pop("cat@corp.example")[2] == "updated"
    assert seen.pop("kim@corp.example")[2] == "created"
    assert seen.pop("lou@corp.example")[2] == "created"
    assert {s for _, _, s in seen.values()} == {"unchanged"}
    assert all(row.isdigit() for row, _, _ in seen.values())
    dan = lines(report2)["dan@corp.example"]
    assert json.loads(dan["previous"])["role"] == "contributor"
    assert set(json.loads(dan["previous"])["groups"]) == {"Marketing", "Sales"}
    assert lines(report2)["cat@corp.example"]["changes"] == "groups: +Finance -Engineering"
    assert state(served, "dan@corp.example") == ("consumer", set())
    assert ledger_emails(served) == {"dan@corp.example"}
    assert state(served, "bob@corp.example") == ("contributor", {"Sales"})
    assert state(served, "cat@corp.example") == ("contributor", {"Finance"})
    assert state(served, "lou@corp.example") == ("contributor", {"Engineering", "Finance"})
    assert state(served, "pat@partner.example") == ("consumer", {"Sales"})
    assert ADMIN not in outcome(report2)

    # Night 3: the same file: nothing is sent, dan is not deactivated a second time.
    writes = len(served.emulator.writes())
    report3 = tmp_path / "r3.csv"
    result = sync(run_cli, served, night2, report3)
    assert result.exit_code == 0, result.output
    assert len(served.emulator.writes()) == writes
    assert outcome(report3)["dan@corp.example"] == ("", "deactivate", "unchanged")
    assert "already deactivated" in lines(report3)["dan@corp.example"]["changes"]

    # Night 4: dan is rehired as a designer in Marketing; eve leaves.
    people["dan"] = ("dan@corp.example", "Dan", "Poe", "Designer", "Marketing")
    del people["eve"]
    night4 = hr_file(tmp_path / "n4.csv", list(people.values()))
    report4 = tmp_path / "r4.csv"
    result = sync(run_cli, served, night4, report4)
    assert result.exit_code == 0, result.output
    assert outcome(report4)["dan@corp.example"][1:] == ("reactivate", "updated")
    assert "password not restored" in lines(report4)["dan@corp.example"]["changes"]
    assert "dan@corp.example" not in ledger_emails(served)
    assert state(served, "dan@corp.example") == ("contributor", {"Marketing"})
    assert outcome(report4)["eve@corp.example"] == ("", "deactivate", "deactivated")
    assert state(served, "eve@corp.example") == ("consumer", set())

    # Night 5: a truncated export (3 of 11 rows) is refused before any write.
    writes = len(served.emulator.writes())
    truncated = hr_file(tmp_path / "n5.csv", list(people.values())[:3])
    result = sync(run_cli, served, truncated, tmp_path / "r5.csv")
    assert result.exit_code == 3, result.output
    assert "--max-missing" in result.output
    assert "nothing was sent" in result.output
    assert len(served.emulator.writes()) == writes
    assert not (tmp_path / "r5.csv").exists()

    # Night 6: a file with a header only never removes anyone, even with --allow-empty.
    empty = hr_file(tmp_path / "n6.csv", [])
    result = sync(run_cli, served, empty, tmp_path / "r6.csv", "--allow-empty")
    assert result.exit_code == 3, result.output
    assert "no data rows" in result.output
    assert len(served.emulator.writes()) == writes
    assert state(served, "ann@corp.example") == ("admin", {"Finance", "Sales"})


def test_max_missing_counts_and_percentages(served: Served, run_cli: RunCli,
                                            tmp_path: Path) -> None:
    """--max-missing N and N% refuse a plan removing more (a dry run says it would be
    refused); a high enough one lets it run."""
    everyone = list(STAFF.values())
    assert sync(run_cli, served, hr_file(tmp_path / "all.csv", everyone),
                tmp_path / "r0.csv").exit_code == 0
    half = hr_file(tmp_path / "half.csv", everyone[:6])
    refused = sync(run_cli, served, half, tmp_path / "r1.csv", "--max-missing", "3")
    assert refused.exit_code == 3
    assert "4 of the 10 users in scope" in refused.output
    refused = sync(run_cli, served, half, tmp_path / "r2.csv", "--max-missing", "30%")
    assert refused.exit_code == 3
    assert "30% of 10 = 3" in refused.output
    assert all(state(served, p[0]) is not None and state(served, p[0]) != ("consumer", set())
               for p in everyone[6:] if p[3] != "Viewer" or p[4])
    capped = sync(run_cli, served, half, tmp_path / "r4.csv", "--max-missing", "40%",
                  "--max-changes", "3")
    assert capped.exit_code == 3
    assert "--max-changes" in capped.output
    rehearsed = sync(run_cli, served, half, tmp_path / "r5.csv", "--max-missing", "3",
                     "--dry-run")
    assert rehearsed.exit_code == 0, rehearsed.output
    assert "without --dry-run this run would be refused" in rehearsed.output
    assert "4 of the 10 users in scope" in rehearsed.output.replace("\n", " ")
    allowed = sync(run_cli, served, half, tmp_path / "r3.csv", "--max-missing", "40%")
    assert allowed.exit_code == 0, allowed.output
    assert sum(1 for _, a, s in outcome(tmp_path / "r3.csv").values()
               if (a, s) == ("deactivate", "deactivated")) == 4


def test_a_quiet_dry_run_still_says_the_real_run_would_be_refused(
        served: Served, run_cli: RunCli, tmp_path: Path) -> None:
    """sync --dry-run --quiet over --max-missing prints the guard's verdict before the users
    it would affect, as without --quiet; the counts and paths stay quiet."""
    everyone = list(STAFF.values())
    assert sync(run_cli, served, hr_file(tmp_path / "all.csv", everyone),
                tmp_path / "r0.csv").exit_code == 0
    rehearsed = sync(run_cli, served, hr_file(tmp_path / "half.csv", everyone[:6]),
                     tmp_path / "r1.csv", "--max-missing", "3", "--dry-run", "--quiet")
    assert rehearsed.exit_code == 0, rehearsed.output
    shown = rehearsed.output.splitlines()
    assert shown[0].startswith("without --dry-run this run would be refused: ")
    assert "4 of the 10 users in scope" in shown[0]
    assert shown[2] == "sync would affect 4 users (email, role, groups):"
    assert not any(line.startswith(("report:", "summary:")) for line in shown)


def test_without_scope_nothing_is_removed(served: Served, run_cli: RunCli,
                                          tmp_path: Path) -> None:
    """Without a scope, sync refuses to remove (exit 2, one line naming the options);
    --missing report runs and only lists the users not in the file."""
    source = hr_file(tmp_path / "hr.csv", list(STAFF.values())[:2])
    result = run_cli("sync", str(source), *served.connect(), "--yes")
    assert result.exit_code == 2
    assert "--scope-domain" in result.output
    assert "--scope-group" in result.output
    assert served.emulator.writes() == []
    stranger(run_cli, served, tmp_path)
    report = tmp_path / "listed.csv"
    result = run_cli("sync", str(source), *served.connect(), "--missing", "report",
                     "--report", str(report))
    assert result.exit_code == 0, result.output
    assert outcome(report)["pat@partner.example"] == ("", "report", "skipped")
    assert ADMIN not in outcome(report)
    dry = run_cli("sync", str(source), *served.connect(), "--missing", "report", "--dry-run",
                  "--report", str(tmp_path / "dry.csv"))
    assert dry.exit_code == 0, dry.output
    assert "not in the file (listed only): 1" in dry.output
    assert "pat@partner.example (role Viewer; Sales)" in dry.output
    assert state(served, "pat@partner.example") == ("consumer", {"Sales"})


def test_scope_by_group_leaves_other_users_alone(served: Served, run_cli: RunCli,
                                                 tmp_path: Path) -> None:
    """--scope-group Sales removes only Sales members missing from the file; a user missing
    from the file but outside Sales keeps its role and groups."""
    everyone = list(STAFF.values())
    seed = hr_file(tmp_path / "seed.csv", everyone)
    assert run_cli("import", str(seed), *served.connect(), "--report",
                   str(tmp_path / "seed.report.csv")).exit_code == 0
    # gus (Sales) and hal (Engineering) are not in the file.
    kept = [p for p in everyone if p[0] not in ("gus@corp.example", "hal@corp.example")]
    report = tmp_path / "r.csv"
    result = run_cli("sync", str(hr_file(tmp_path / "hr.csv", kept)), *served.connect(),
                     "--scope-group", "sales", "--yes", "--report", str(report),
                     "--max-missing", "1")
    assert result.exit_code == 0, result.output
    assert outcome(report)["gus@corp.example"] == ("", "deactivate", "deactivated")
    assert "hal@corp.example" not in outcome(report)
    assert state(served, "gus@corp.example") == ("consumer", set())
    assert state(served, "hal@corp.example") == ("consumer", {"Engineering"})
    unknown = run_cli("sync", str(tmp_path / "hr.csv"), *served.connect(), "--scope-group",
                      "Salse", "--yes")
    assert unknown.exit_code == 2
    assert "did you mean 'Sales'" in unknown.output


def test_protected_users_are_never_in_scope(served: Served, run_cli: RunCli,
                                            tmp_path: Path) -> None:
    """The super user and the account running sync are never removed, even when their
    domain is in scope and the file does not list them."""
    ops = write_csv(tmp_path / "ops.csv", ("Email", "Role", "Password"),
                    [["ops@example.com", "Admin", "Ops-Pass-123"],
                     ["old@example.com", "Viewer", ""]])
    assert run_cli("import", str(ops), *served.connect(), "--report",
                   str(tmp_path / "ops.report.csv")).exit_code == 0
    source = hr_file(tmp_path / "hr.csv", [("new@example.com", "N", "W", "Viewer", "")])
    report = tmp_path / "r.csv"
    result = run_cli("sync", str(source), "--url", served.url, "--username",
                     "ops@example.com", "--password", "Ops-Pass-123", "--scope-domain",
                     "EXAMPLE.com", "--missing", "delete", "--yes", "--report", str(report),
                     "--max-missing", "5")
    assert result.exit_code == 0, result.output
    assert outcome(report) == {"new@example.com": ("2", "create", "created"),
                               "old@example.com": ("", "delete", "deleted")}
    assert state(served, ADMIN) == ("super", set())
    assert state(served, "ops@example.com") == ("admin", set())
    assert state(served, "old@example.com") is None


def test_missing_delete_keeps_records_and_domains_match_exactly(
        served: Served, run_cli: RunCli, tmp_path: Path) -> None:
    """--missing delete deletes leavers with their records in the report; a subdomain or a
    look-alike domain is not in scope."""
    extra = write_csv(tmp_path / "x.csv", ("Email", "Role"),
                      [["sub@eu.corp.example", "Viewer"], ["fake@notcorp.example", "Viewer"]])
    assert run_cli("import", str(extra), *served.connect(), "--report",
                   str(tmp_path / "x.report.csv")).exit_code == 0
    everyone = list(STAFF.values())
    assert sync(run_cli, served, hr_file(tmp_path / "all.csv", everyone),
                tmp_path / "r0.csv").exit_code == 0
    report = tmp_path / "r1.csv"
    result = sync(run_cli, served, hr_file(tmp_path / "n.csv", everyone[1:]), report,
                  "--missing", "delete")
    assert result.exit_code == 0, result.output
    assert outcome(report)["ann@corp.example"] == ("", "delete", "deleted")
    assert json.loads(lines(report)["ann@corp.example"]["previous"])["role"] == "admin"
    assert state(served, "ann@corp.example") is None
    assert state(served, "sub@eu.corp.example") is not None
    assert state(served, "fake@notcorp.example") is not None
    journal = report.with_name("r1.undo.jsonl").read_text(encoding="utf-8")
    assert "ann@corp.example" in journal


def test_dry_run_lists_the_three_sets_and_sends_nothing(served: Served, run_cli: RunCli,
                                                        tmp_path: Path) -> None:
    """--dry-run names the users to create, update and remove on stderr, writes a planned
    report with the out-of-file lines, and sends no write."""
    everyone = list(STAFF.values())
    assert sync(run_cli, served, hr_file(tmp_path / "all.csv", everyone[:8]),
                tmp_path / "r0.csv").exit_code == 0
    writes = len(served.emulator.writes())
    hires = [(f"h{n:02d}@corp.example", "H", str(n), "Viewer", "Sales") for n in range(20)]
    changed = [*everyone[2:], ("new@corp.example", "N", "W", "Viewer", ""), *hires]
    changed[0] = ("cat@corp.example", "Cat", "Roe", "Viewer", "Engineering")
    report = tmp_path / "dry.csv"
    result = run_cli("sync", str(hr_file(tmp_path / "n.csv", changed)), *served.connect(),
                     "--scope-domain", "corp.example", "--dry-run", "--report", str(report),
                     "--max-missing", "2")
    assert result.exit_code == 0, result.output
    assert len(served.emulator.writes()) == writes
    output = result.output
    assert "to create: 23" in output
    assert "new@corp.example (role Viewer)" in output
    assert f"... and 3 more in {report}" in output
    assert "to update: 1" in output
    assert "cat@corp.example (role: Designer -> Viewer)" in output
    assert "sync would affect 2 users" in output
    assert "ann@corp.example  Admin  groups: Finance, Sales" in output
    assert "bob@corp.example  Viewer  groups: Sales" in output
    assert outcome(report)["bob@corp.example"] == ("", "deactivate", "planned")


def test_off_a_terminal_removing_needs_yes_but_a_quiet_night_does_not(
        served: Served, run_cli: RunCli, tmp_path: Path) -> None:
    """Without --yes off a terminal, sync runs when nobody is removed and refuses (exit 2,
    nothing sent) when the plan would deactivate someone."""
    everyone = list(STAFF.values())
    source = hr_file(tmp_path / "all.csv", everyone)
    args = ["sync", str(source), *served.connect(), "--scope-domain", "corp.example"]
    assert run_cli(*args, "--report", str(tmp_path / "r0.csv")).exit_code == 0
    writes = len(served.emulator.writes())
    fewer = hr_file(tmp_path / "fewer.csv", everyone[1:])
    result = run_cli("sync", str(fewer), *served.connect(), "--scope-domain", "corp.example",
                     "--report", str(tmp_path / "r1.csv"))
    assert result.exit_code == 2
    assert "--yes" in result.output
    assert len(served.emulator.writes()) == writes


def test_resume_finishes_the_deactivations_with_the_first_records(
        served: Served, run_cli: RunCli, tmp_path: Path) -> None:
    """A sync whose deactivations failed half-way (tokens not revoked) is finished by
    --resume: the users end deactivated, the report keeps their original role and groups,
    and reactivate gives them back."""
    everyone = list(STAFF.values())
    assert sync(run_cli, served, hr_file(tmp_path / "all.csv", everyone),
                tmp_path / "r0.csv").exit_code == 0
    # Each deactivation tries its token step twice within the run: two rows' worth of 503s.
    served.host.call(lambda: served.emulator.faults.script(
        "GET", "/api/v1/authentication/admin/logout", [503] * 4))
    source = hr_file(tmp_path / "n.csv", everyone[3:])
    report = tmp_path / "r1.csv"
    first = sync(run_cli, served, source, report, "--retries", "0", "--concurrency", "1",
                 "--max-missing", "3")
    assert first.exit_code == 1, first.output
    assert sorted(s for _, a, s in outcome(report).values() if a == "deactivate") == \
        ["deactivated", "failed", "failed"]
    again = run_cli("sync", str(source), *served.connect(), "--scope-domain", "corp.example",
                    "--yes", "--resume", str(report), "--max-missing", "3")
    assert again.exit_code == 0, again.output
    final = outcome(report)
    assert len(final) == len(everyone)
    assert [final[p[0]] for p in everyone[:3]] == [("", "deactivate", "deactivated")] * 3
    previous = {p[0]: json.loads(lines(report)[p[0]]["previous"]) for p in everyone[:3]}
    assert previous["ann@corp.example"]["role"] == "admin"
    assert previous["bob@corp.example"]["groups"] == ["Sales"]
    assert previous["cat@corp.example"]["groups"] == ["Engineering"]
    summary = json.loads(summary_path(report).read_text(encoding="utf-8"))
    assert summary["counts"]["deactivated"] == 3
    assert summary["counts"]["unchanged"] == len(everyone) - 3
    restored = run_cli("reactivate", str(report), *served.connect(), "--report",
                       str(tmp_path / "back.csv"))
    assert restored.exit_code == 0, restored.output
    assert state(served, "ann@corp.example") == ("admin", {"Finance", "Sales"})
    assert state(served, "bob@corp.example") == ("consumer", {"Sales"})
    assert state(served, "cat@corp.example") == ("contributor", {"Engineering"})


def test_bad_options_exit_2_with_one_line(served: Served, run_cli: RunCli,
                                          tmp_path: Path) -> None:
    """A malformed --scope-domain or --max-missing is one line and exit 2, nothing sent."""
    source = hr_file(tmp_path / "hr.csv", list(STAFF.values()))
    for extra, words in ((("--scope-domain", "not a domain"), "not an email domain"),
                         (("--scope-domain", "corp.example", "--max-missing", "lots"),
                          "--max-missing 'lots'")):
        result = run_cli("sync", str(source), "--url", served.url, "--token", TOKEN, *extra)
        assert result.exit_code == 2
        assert words in result.output
        assert "Traceback" not in result.output
    assert served.emulator.writes() == []


def test_resume_refuses_another_scope_and_repeats_the_scope_in_its_hint(
        served: Served, run_cli: RunCli, tmp_path: Path) -> None:
    """--resume of a sync with another scope or --missing exits 2 naming the options the
    run used; the resume hint's flags repeat them."""
    from bulkusers.runconfig import option_flags

    everyone = list(STAFF.values())
    assert sync(run_cli, served, hr_file(tmp_path / "all.csv", everyone),
                tmp_path / "r0.csv").exit_code == 0
    # Each deactivation tries its token step twice within the run: one row's worth of 503s.
    served.host.call(lambda: served.emulator.faults.script(
        "GET", "/api/v1/authentication/admin/logout", [503] * 2))
    source = hr_file(tmp_path / "n.csv", everyone[1:])
    report = tmp_path / "r1.csv"
    assert sync(run_cli, served, source, report, "--retries", "0").exit_code == 1
    for extra in (("--scope-domain", "other.example"), ("--scope-domain", "corp.example",
                                                         "--missing", "delete")):
        result = run_cli("sync", str(source), *served.connect(), "--yes", "--resume",
                         str(report), *extra)
        assert result.exit_code == 2, result.output
        assert "--scope-domain corp.example" in result.output
    summary = json.loads(summary_path(report).read_text(encoding="utf-8"))
    assert option_flags(summary["options"])[-2:] == ["--scope-domain", "corp.example"]


def test_a_user_on_an_invalid_or_repeated_row_is_not_removed(served: Served, run_cli: RunCli,
                                                             tmp_path: Path) -> None:
    """Rows skipped as invalid (an unknown group, a repeated email) still name users in the
    file: sync never removes them, and the exit code says rows need attention; --strict
    sends nothing at all, removals included."""
    everyone = list(STAFF.values())
    assert sync(run_cli, served, hr_file(tmp_path / "all.csv", everyone),
                tmp_path / "r0.csv").exit_code == 0
    rows = list(everyone)
    rows[0] = ("ann@corp.example", "Ann", "Lee", "Admin", "Financ")
    rows.append(("BOB@corp.example", "Bob", "Ray", "Viewer", "Sales"))
    report = tmp_path / "r1.csv"
    result = sync(run_cli, served, hr_file(tmp_path / "n.csv", rows), report)
    assert result.exit_code == 1, result.output
    assert all(line["row"] for line in read_report(report))
    assert state(served, "ann@corp.example") == ("admin", {"Finance", "Sales"})
    assert state(served, "bob@corp.example") == ("consumer", {"Sales"})
    fewer = hr_file(tmp_path / "fewer.csv", rows[:-3])  # ivy and jon leave
    writes = len(served.emulator.writes())
    strict = sync(run_cli, served, fewer, tmp_path / "strict.csv", "--strict")
    assert strict.exit_code == 2, strict.output
    assert len(served.emulator.writes()) == writes
    assert outcome(tmp_path / "strict.csv")["jon@corp.example"] == ("", "deactivate",
                                                                    "planned")


def drop_rowless_lines(report: Path) -> None:
    """Cut the out-of-file lines from a report, as a crash after the undo journal was
    written and before the report lines were would leave it."""
    text = report.read_text(encoding="utf-8-sig").splitlines(keepends=True)
    kept = [line for line in text if not line.startswith(",")]
    report.write_text("".join(kept), encoding="utf-8-sig")


@pytest.mark.parametrize("missing", ["deactivate", "delete"])
def test_resume_after_a_crash_uses_the_undo_journal(served: Served, run_cli: RunCli,
                                                    tmp_path: Path, missing: str) -> None:
    """After a crash that left the undo journal but no report lines for the out-of-file
    users, --resume reports each of them once, with the state from before the first run."""
    everyone = list(STAFF.values())
    assert sync(run_cli, served, hr_file(tmp_path / "all.csv", everyone),
                tmp_path / "r0.csv").exit_code == 0
    source = hr_file(tmp_path / "n.csv", everyone[2:])
    report = tmp_path / "r1.csv"
    assert sync(run_cli, served, source, report, "--missing", missing,
                "--max-missing", "2").exit_code == 0
    drop_rowless_lines(report)
    result = run_cli("sync", str(source), *served.connect(), "--scope-domain", "corp.example",
                     "--yes", "--resume", str(report), "--missing", missing,
                     "--max-missing", "2")
    assert result.exit_code == 0, result.output
    final = lines(report)
    assert len(final) == len(everyone)
    status = "deactivated" if missing == "deactivate" else "deleted"
    for email, role in (("ann@corp.example", "admin"), ("bob@corp.example", "consumer")):
        assert final[email]["row"] == ""
        assert final[email]["status"] == status
        assert json.loads(final[email]["previous"])["role"] == role
    assert json.loads(final["ann@corp.example"]["previous"])["groups"] == ["Finance", "Sales"]


def on_terminal(args: list[str], answer: str, cwd: Path) -> tuple[int, str]:
    """Run the CLI on a terminal and answer its prompt; (exit code, what it showed).
    Fails within seconds: a run that never prompts or never ends is killed."""
    return answer_prompt(args, cwd, answer.encode() + b"\n")


def test_on_a_terminal_sync_asks_before_deactivating(served: Served, run_cli: RunCli,
                                                     tmp_path: Path) -> None:
    """On a terminal, sync names the users it would deactivate and asks: 'n' sends nothing
    (exit 3), 'y' deactivates them."""
    everyone = list(STAFF.values())
    assert sync(run_cli, served, hr_file(tmp_path / "all.csv", everyone),
                tmp_path / "r0.csv").exit_code == 0
    source = hr_file(tmp_path / "n.csv", everyone[1:])
    args = ["sync", str(source), *served.connect(), "--scope-domain", "corp.example"]
    code, text = on_terminal(args, "n", tmp_path)
    assert code == 3, text
    assert "Deactivate 1 user?" in text
    assert "ann@corp.example" in text
    assert state(served, "ann@corp.example") == ("admin", {"Finance", "Sales"})
    code, text = on_terminal(args, "y", tmp_path)
    assert code == 0, text
    assert state(served, "ann@corp.example") == ("consumer", set())


def test_the_default_percentage_lets_one_leaver_go_from_a_small_scope(
        served: Served, run_cli: RunCli, tmp_path: Path) -> None:
    """10 % of a scope under ten users rounds down to nobody; the default still lets one
    leaver be deactivated, and refuses two."""
    few = list(STAFF.values())[:6]
    assert sync(run_cli, served, hr_file(tmp_path / "all.csv", few),
                tmp_path / "r0.csv").exit_code == 0
    two_gone = sync(run_cli, served, hr_file(tmp_path / "four.csv", few[:4]),
                    tmp_path / "r1.csv")
    assert two_gone.exit_code == 3
    one_gone = sync(run_cli, served, hr_file(tmp_path / "five.csv", few[:5]),
                    tmp_path / "r2.csv")
    assert one_gone.exit_code == 0, one_gone.output
    assert [(a, s) for _, a, s in outcome(tmp_path / "r2.csv").values()
            if a == "deactivate"] == [("deactivate", "deactivated")]


def test_a_dry_runs_list_names_users_as_the_server_stores_them(
        served: Served, run_cli: RunCli, tmp_path: Path) -> None:
    """A file that spells an existing user's email otherwise (capitals) in a column named
    "email", as the report's own column is: the dry run's "to update" list names the user
    as the server stores it, as the report does."""
    everyone = list(STAFF.values())
    assert sync(run_cli, served, hr_file(tmp_path / "all.csv", everyone),
                tmp_path / "r0.csv").exit_code == 0
    rows = [list(p) for p in everyone]
    rows[2] = ["CAT@Corp.Example", "Cat", "Roe", "Viewer", "Engineering"]  # was a Designer
    source = write_csv(tmp_path / "n.csv", ("email", *HEADER[1:]), rows)
    result = run_cli("sync", str(source), *served.connect(), "--scope-domain", "corp.example",
                     "--dry-run", "--report", str(tmp_path / "dry.csv"))
    assert result.exit_code == 0, result.output
    assert "cat@corp.example (role: Designer -> Viewer)" in result.output
    assert "CAT@Corp.Example" not in result.output
