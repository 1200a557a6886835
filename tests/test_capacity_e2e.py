"""End to end: adaptive concurrency against servers that queue, cap or pause, over HTTP."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Literal

import pytest
from click.testing import Result

import bulkusers
from bulkusers.emulator import EmulatorSettings
from tests.conftest import TOKEN, Served, read_report, serve, summary_of, write_csv
from tests.terminal import emulator_command

RunCli = Callable[..., Result]


def users_file(folder: Path, count: int) -> Path:
    """A CSV of ``count`` new viewers."""
    rows = [[f"u{i:04d}@acme.example", "viewer"] for i in range(count)]
    return write_csv(folder / "hr.csv", ("Email", "Role"), rows)


@pytest.fixture
def queueing() -> Iterator[Served]:
    """An emulator serving 4 requests at once (20 ms each) and queueing the rest."""
    yield from serve(EmulatorSettings(token=TOKEN, latency_ms=20, capacity=4))


def test_auto_concurrency_by_default_rises_above_its_start_and_reports_the_limit(
        queueing: Served, run_cli: RunCli, tmp_path: Path) -> None:
    """By default the limit adapts: it starts low, rises while the queueing server keeps up,
    every row is created, and the JSON summary holds the limit over time."""
    report = tmp_path / "r.csv"
    result = run_cli("import", str(users_file(tmp_path, 200)), *queueing.connect(),
                     "--batch-size", "1", "--report", str(report))
    assert result.exit_code == 0, result.output
    assert {line["status"] for line in read_report(report)} == {"created"}
    concurrency = summary_of(report)["concurrency"]
    assert isinstance(concurrency, dict)
    assert (concurrency["mode"], concurrency["maximum"]) == ("auto", 64)
    changes = concurrency["changes"]
    assert isinstance(changes, list)
    assert changes[0] == [0.0, 2, "start"]
    assert concurrency["peak"] == max(change[1] for change in changes) >= 4
    assert summary_of(report)["options"]["concurrency"] == "auto"


def test_max_concurrency_bounds_what_auto_ever_sends(
        served: Served, run_cli: RunCli, tmp_path: Path) -> None:
    """--max-concurrency 3: the server never sees more than 3 requests at once."""
    served.host.call(lambda: setattr(served.emulator.faults, "latency_ms", 10))
    report = tmp_path / "r.csv"
    result = run_cli("import", str(users_file(tmp_path, 120)), *served.connect(),
                     "--batch-size", "1", "--max-concurrency", "3", "--report", str(report))
    assert result.exit_code == 0, result.output
    assert served.emulator.faults.peak_inflight <= 3
    assert len(read_report(report)) == 120


def test_a_fixed_concurrency_is_kept(served: Served, run_cli: RunCli, tmp_path: Path) -> None:
    """--concurrency 5 fixes the limit: the summary says so and the server sees at most 5."""
    served.host.call(lambda: setattr(served.emulator.faults, "latency_ms", 10))
    report = tmp_path / "r.csv"
    result = run_cli("import", str(users_file(tmp_path, 100)), *served.connect(),
                     "--batch-size", "1", "--concurrency", "5", "--report", str(report))
    assert result.exit_code == 0, result.output
    concurrency = summary_of(report)["concurrency"]
    assert isinstance(concurrency, dict)
    assert (concurrency["mode"], concurrency["final"]) == ("fixed", 5)
    assert served.emulator.faults.peak_inflight <= 5


@pytest.mark.parametrize("concurrency", ["auto", "16"])
def test_a_flaky_gateway_is_retried_without_lowering_the_limit(
        served: Served, run_cli: RunCli, tmp_path: Path, concurrency: str) -> None:
    """A gateway answering 503 to one request in twenty at random: every row is created, the
    refusals are counted as the odd failure, and none lowers the limit."""
    def flaky() -> None:
        served.emulator.faults.error_rate, served.emulator.faults.latency_ms = 0.05, 5
    served.host.call(flaky)
    report = tmp_path / "r.csv"
    result = run_cli("import", str(users_file(tmp_path, 300)), *served.connect(),
                     "--batch-size", "1", "--concurrency", concurrency,
                     "--report", str(report))
    assert result.exit_code == 0, result.output
    assert {line["status"] for line in read_report(report)} == {"created"}
    limit = summary_of(report)["concurrency"]
    assert isinstance(limit, dict)
    assert limit["gateway_errors_not_overload"] >= 5
    assert not [change for change in limit["changes"] if change[2] == "HTTP 503"]


@pytest.mark.parametrize("concurrency", ["auto", 32])
def test_a_gateway_failing_three_tenths_at_random_does_not_sink_the_limit(
        concurrency: int | Literal["auto"], tmp_path: Path) -> None:
    """A gateway answering 503 to 30 % of the requests at random, at steady latency (the
    emulator in a process of its own, as a real server): a trial finds the share refused at
    random, the limit does not sink, and every row is created (before, the limit sank to one
    or two and such a run took minutes)."""
    rows = [{"email": f"r{i:04d}@acme.example", "role": "viewer"} for i in range(600)]
    retry = bulkusers.RetryPolicy(attempts=12, initial_wait_s=0.05, max_wait_s=0.4)
    with emulator_command("--token", TOKEN, "--latency-ms", "100", "--error-rate", "0.3",
                          cwd=tmp_path) as url:
        run = bulkusers.run("import", bulkusers.connect(url, token=TOKEN), rows=rows,
                            retry=retry, concurrency=concurrency, batch_size=1)
        summary = asyncio.run(asyncio.wait_for(run, timeout=60))
    assert summary.counts == {"created": 600}
    limit = summary.concurrency
    assert "trying the limit again" in [change[2] for change in limit["changes"]]
    assert 0.2 < limit["gateway_refused_at_random"] < 0.4, limit["changes"]
    assert limit["final"] >= 16, limit["changes"]
    assert limit["gateway_errors_not_overload"] > 150


def test_a_503_asking_to_wait_lowers_the_limit_however_rare(
        served: Served, run_cli: RunCli, tmp_path: Path) -> None:
    """A 503 with Retry-After is the server asking for fewer requests, not a gateway's odd
    failure: the run pauses and the limit comes down, so the crowd does not return at once
    after the pause, even when such refusals are far under a fifth of the answers."""
    def ask_to_wait() -> None:
        served.emulator.faults.latency_ms = 5
        served.emulator.faults.script("POST", "/api/v1/users", [503], retry_after=0.2)
    served.host.call(ask_to_wait)
    report = tmp_path / "r.csv"
    result = run_cli("import", str(users_file(tmp_path, 60)), *served.connect(),
                     "--batch-size", "1", "--concurrency", "16", "--report", str(report))
    assert result.exit_code == 0, result.output
    assert {line["status"] for line in read_report(report)} == {"created"}
    limit = summary_of(report)["concurrency"]
    assert isinstance(limit, dict)
    assert limit["retry_after_pauses"] == 1
    assert limit["gateway_errors_not_overload"] == 0
    assert [change[1] for change in limit["changes"] if change[2] == "HTTP 503"] == [12]


@pytest.mark.parametrize("refused", [1, 3])
def test_rows_waiting_to_be_retried_let_the_next_rows_go_out_meanwhile(
        served: Served, run_cli: RunCli, tmp_path: Path, refused: int) -> None:
    """--concurrency 1, the first creates refused once each by a gateway's odd 503: while
    those rows wait out their backoff, the next two rows are created (one row more is taken
    for each row waiting, up to four times the maximum: with three waiting, more than the
    limit again)."""
    served.host.call(lambda: served.emulator.faults.script("POST", "/api/v1/users",
                                                           [503] * refused))
    report = tmp_path / "r.csv"
    result = run_cli("import", str(users_file(tmp_path, refused + 2)), *served.connect(),
                     "--batch-size", "1", "--concurrency", "1", "--report", str(report))
    assert result.exit_code == 0, result.output
    lines = read_report(report)
    assert [line["status"] for line in lines] == ["created"] * (refused + 2)
    assert [line["email"] for line in lines][:2] == [
        f"u{refused:04d}@acme.example", f"u{refused + 1:04d}@acme.example"]


def test_a_retry_after_pauses_the_run_once_not_each_refused_request(
        served: Served, run_cli: RunCli, tmp_path: Path) -> None:
    """Eight requests sent at once to a server allowing 2 in flight: the refused ones share
    one Retry-After pause, the run settles under the cap, and every row is created."""
    def cap() -> None:
        faults = served.emulator.faults
        faults.max_inflight, faults.retry_after_s, faults.latency_ms = 2, 0.2, 20

    served.host.call(cap)
    report = tmp_path / "r.csv"
    result = run_cli("import", str(users_file(tmp_path, 60)), *served.connect(),
                     "--batch-size", "1", "--concurrency", "8", "--retries", "10",
                     "--report", str(report))
    assert result.exit_code == 0, result.output
    assert {line["status"] for line in read_report(report)} == {"created"}
    refused = sum(1 for r in served.emulator.requests if r.status == 429)
    concurrency = summary_of(report)["concurrency"]
    assert isinstance(concurrency, dict)
    pauses = concurrency["retry_after_pauses"]
    assert isinstance(pauses, int)
    assert 1 <= pauses < refused
    assert concurrency["final"] <= 2


def test_a_full_queue_and_gateway_timeouts_are_met_by_backing_off(
        run_cli: RunCli, tmp_path: Path) -> None:
    """A server serving 2 at once with room for 2 queued (503 beyond): a fixed concurrency
    of 16 backs off on the 503s and every row is still created."""
    for served in serve(EmulatorSettings(token=TOKEN, latency_ms=20, capacity=2,
                                         queue_limit=2)):
        report = tmp_path / "r.csv"
        result = run_cli("import", str(users_file(tmp_path, 80)), *served.connect(),
                         "--batch-size", "1", "--concurrency", "16", "--retries", "10",
                         "--report", str(report))
        assert result.exit_code == 0, result.output
        assert {line["status"] for line in read_report(report)} == {"created"}
        assert any(r.status == 503 for r in served.emulator.requests)
        concurrency = summary_of(report)["concurrency"]
        assert isinstance(concurrency, dict)
        assert any(change[2] == "HTTP 503" for change in concurrency["changes"])


def test_debug_shows_the_limit_changing(queueing: Served, run_cli: RunCli,
                                        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """--debug output includes each change of the concurrency limit."""
    with caplog.at_level(logging.DEBUG, logger="bulkusers.concurrency"):
        result = run_cli("import", str(users_file(tmp_path, 60)), *queueing.connect(),
                         "--batch-size", "1", "--report", str(tmp_path / "r.csv"))
    assert result.exit_code == 0, result.output
    assert any(r.getMessage().startswith("concurrency limit 2 -> ") for r in caplog.records)


@pytest.mark.parametrize(("option", "value", "message"), [
    ("--concurrency", "many", "neither 'auto' nor a number from 1 to 512"),
    ("--concurrency", "0", "neither 'auto' nor a number from 1 to 512"),
    ("--concurrency", "513", "neither 'auto' nor a number from 1 to 512"),
    ("--max-concurrency", "513", "--max-concurrency"),
])
def test_bad_concurrency_options_are_usage_errors(
        served: Served, run_cli: RunCli, tmp_path: Path, option: str, value: str,
        message: str) -> None:
    """A concurrency that is not auto or 1 to 512 is refused (exit 2), nothing sent."""
    result = run_cli("import", str(users_file(tmp_path, 3)), *served.connect(), option, value)
    assert result.exit_code == 2
    assert message in result.output
    assert served.emulator.requests == []


def test_a_fixed_concurrency_above_a_set_cap_is_refused_naming_both_origins(
        served: Served, run_cli: RunCli, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """--concurrency above a --max-concurrency given by flag, variable or profile: one line
    naming both values and origins, exit 2, nothing sent; above the default cap, or equal to
    the cap set, it runs."""
    config = tmp_path / "c.toml"
    config.write_text("[profiles.p]\nconcurrency = 8\nmax_concurrency = 4\n", encoding="utf-8")
    source = str(users_file(tmp_path, 3))
    cases = [
        (("--concurrency", "32", "--max-concurrency", "8"),
         "--concurrency 32 (from flag --concurrency) is above --max-concurrency 8 (from flag "
         "--max-concurrency)"),
        (("--config", str(config), "--profile", "p"),
         "--concurrency 8 (from profile p) is above --max-concurrency 4 (from profile p)"),
        (("--config", str(config), "--profile", "p", "--concurrency", "6"),
         "--concurrency 6 (from flag --concurrency) is above --max-concurrency 4 (from "
         "profile p)"),
    ]
    for command, *scope in (("import",), ("sync", "--scope-domain", "acme.example")):
        for options, said in cases:
            result = run_cli(command, source, *served.connect(), "--dry-run", *scope, *options)
            assert result.exit_code == 2, result.output
            assert result.output.splitlines() == [
                f"bulkusers: error: {said}, the most requests in flight allowed; lower the "
                "first or raise the second; nothing was sent"]
    monkeypatch.setenv("BULKUSERS_MAX_CONCURRENCY", "2")
    result = run_cli("delete", source, *served.connect(), "--dry-run", "--concurrency", "3")
    assert result.exit_code == 2, result.output
    assert "(from env BULKUSERS_MAX_CONCURRENCY)" in result.output
    assert served.emulator.requests == []
    monkeypatch.delenv("BULKUSERS_MAX_CONCURRENCY")
    result = run_cli("import", source, *served.connect(), "--dry-run", "--concurrency", "100")
    assert result.exit_code == 0, result.output
    at_the_cap = run_cli("import", source, *served.connect(), "--dry-run", "--concurrency", "8",
                         "--max-concurrency", "8")
    assert at_the_cap.exit_code == 0, at_the_cap.output  # at the cap is within it
