"""Executors against a scripted server: a create whose answer was lost is counted once."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from bulkusers.api import V1Api
from bulkusers.client import SisenseClient
from bulkusers.config import RetryPolicy, build_connection
from bulkusers.directory import Directory, Role, User
from bulkusers.execution import Executor
from bulkusers.models import Row, RowResult, Status
from bulkusers.tasks import CreateBatch, CreateTask, DeleteTask
from tests.scripted import Answer, Script, server

__all__ = ["server"]
USERS = "/api/v1/users"
EXISTS = {"error": {"code": 2004, "message": "User already exists", "status": 400,
                    "httpMessage": "Bad Request"}}


async def no_sleep(seconds: float) -> None:
    """Skip backoff waits."""


def task(number: int, email: str) -> CreateTask:
    """A create task for a viewer."""
    return CreateTask(row=Row(number, (email,)), email=email,
                      payload={"email": email, "roleId": "r1", "groups": []},
                      changes="role consumer")


def client_for(url: str) -> SisenseClient:
    """A token client that does not sleep between retries."""
    connection = build_connection(url=url, token="t", username=None, password=None)
    return SisenseClient(connection, RetryPolicy(attempts=3), sleep=no_sleep)


def directory() -> Directory:
    """A directory with one role and no users."""
    return Directory([Role("r1", "consumer", "Viewer")], [])


async def test_lost_answer_then_already_exists_is_created_once(
        server: tuple[Script, str]) -> None:
    """A create whose connection dropped, retried into 'already exists', is verified on the
    server and reported created (not failed, not duplicated)."""
    script, url = server
    script.on("POST", USERS, Answer(drop=True), Answer(400, EXISTS))
    script.on("GET", USERS, Answer(200, [{"_id": "u1", "email": "ann@x.example"}]))
    results: list[RowResult] = []
    async with client_for(url) as client:
        await Executor(V1Api(client), directory()).create(task(2, "ann@x.example"),
                                                           results.append)
    (result,) = results
    assert (result.status, result.user_id) == (Status.CREATED, "u1")
    assert "confirmed on the server" in result.changes
    assert script.count("POST", USERS) == 2


async def test_already_exists_without_a_retry_is_not_claimed_as_ours(
        server: tuple[Script, str]) -> None:
    """A first-attempt 'already exists' means someone else created the user: skipped."""
    script, url = server
    script.on("POST", USERS, Answer(400, EXISTS))
    script.on("GET", USERS, Answer(200, [{"_id": "u1", "email": "ann@x.example"}]))
    results: list[RowResult] = []
    async with client_for(url) as client:
        await Executor(V1Api(client), directory()).create(task(2, "ann@x.example"),
                                                           results.append)
    (result,) = results
    assert result.status is Status.SKIPPED
    assert "already exists" in result.changes


async def test_bulk_whose_answer_was_lost_is_resolved_row_by_row(
        server: tuple[Script, str]) -> None:
    """A bulk create that timed out and then met 'already exists' confirms each user once."""
    script, url = server
    script.on("POST", f"{USERS}/bulk", Answer(drop=True), Answer(400, EXISTS))
    script.on("POST", USERS, Answer(400, EXISTS))
    script.on("GET", USERS, Answer(200, [{"_id": "u1", "email": "ann@x.example"}]),
              Answer(200, [{"_id": "u2", "email": "bob@x.example"}]))
    results: list[RowResult] = []
    batch = CreateBatch((task(2, "ann@x.example"), task(3, "bob@x.example")))
    async with client_for(url) as client:
        await Executor(V1Api(client), directory()).create_batch(batch, results.append)
    assert [(r.row.number, r.status, r.user_id) for r in results] == [
        (2, Status.CREATED, "u1"), (3, Status.CREATED, "u2")]


async def test_lost_delete_answer_then_404_is_our_deletion(server: tuple[Script, str]) -> None:
    """A delete whose answer was lost, retried into 404, is reported deleted (not skipped)."""
    script, url = server
    script.on("DELETE", f"{USERS}/u1", Answer(drop=True), Answer(404, {"error": {
        "code": 2001, "message": "User not found", "status": 404, "httpMessage": "Not Found"}}))
    results: list[RowResult] = []
    user = User(id="u1", email="ann@x.example", user_name="ann", first_name="", last_name="",
                role_id="r1", group_ids=())
    task = DeleteTask(row=Row(2, ("ann@x.example",)), email="ann@x.example", user=user,
                      previous='{"role": "consumer"}')
    async with client_for(url) as client:
        await Executor(V1Api(client), directory()).delete(task, results.append)
    (result,) = results
    assert result.status is Status.DELETED
    assert "no longer had the user" in result.changes
    assert result.previous == '{"role": "consumer"}'


async def test_a_bulk_answer_s_rows_are_emitted_inside_one_together_block(
        server: tuple[Script, str]) -> None:
    """The rows one bulk create answered are emitted inside a single ``together`` block (their
    report lines go out in one write); a row the answer lacks is looked up after the block,
    so no request waits inside it."""
    script, url = server
    script.on("POST", f"{USERS}/bulk", Answer(201, [{"_id": "u1", "email": "ann@x.example"},
                                                   {"_id": "u2", "email": "bob@x.example"}]))
    script.on("GET", USERS, Answer(200, [{"_id": "u3", "email": "cy@x.example"}]))
    blocks: list[list[int]] = []
    inside: list[int] | None = None
    emitted: list[tuple[int, bool]] = []

    @contextlib.contextmanager
    def together() -> Iterator[None]:
        nonlocal inside
        inside = []
        try:
            yield
        finally:
            blocks.append(inside)
            inside = None

    def emit(result: RowResult) -> None:
        emitted.append((result.row.number, inside is not None))
        if inside is not None:
            inside.append(result.row.number)

    batch = CreateBatch((task(2, "ann@x.example"), task(3, "bob@x.example"),
                         task(4, "cy@x.example")))
    async with client_for(url) as client:
        await Executor(V1Api(client), directory(), together=together).create_batch(batch, emit)
    assert blocks == [[2, 3]]
    assert emitted == [(2, True), (3, True), (4, False)]
