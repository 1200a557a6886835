"""The public Python API: run any write command, export users to a file or read them as
rows, and compare two exports, from Python (see ``bulkusers.__init__``).

A library call is a CLI run without the terminal: the same plan, guards, retries and
verification, but the caller's signal handlers are left alone, nothing is printed, no prompt
is shown, and a report is written only when asked for.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import inspect
import os
import threading
from collections.abc import AsyncGenerator, Callable, Iterable, Mapping
from pathlib import Path
from typing import Literal

from bulkusers.commands import Command, command_spec
from bulkusers.concurrency import DEFAULT_MAXIMUM
from bulkusers.config import (
    ApiFlavour,
    Connection,
    RetryPolicy,
    build_connection,
)
from bulkusers.diff import Change, compare, read_snapshot, write_changes
from bulkusers.diff import check_output as check_diff_output
from bulkusers.errors import ConfigError
from bulkusers.export import (
    ExportOptions,
    ExportResult,
    UserFilters,
    check_inactive_days,
    check_page_size,
    exporting,
    run_export,
    selected_records,
)
from bulkusers.exportfile import COLUMNS
from bulkusers.intake import PythonRow
from bulkusers.jobs import run_command
from bulkusers.models import RowResult
from bulkusers.pipeline import ObserverStopped
from bulkusers.readers import ReadOptions
from bulkusers.rules import PlanOptions
from bulkusers.runconfig import RunConfig, Safety
from bulkusers.summary import RunSummary
from bulkusers.sync import REPORT_ONLY, SyncOptions

#: Receives each row's result as soon as it is final (on the event loop's thread).
OnResult = Callable[[RowResult], None]


def connect(url: str, *, token: str | None = None, username: str | None = None,
            password: str | None = None, api: ApiFlavour = "v1",
            api_secret: str | None = None, ca_bundle: str | Path | None = None,
            insecure: bool = False) -> Connection:
    """Where Sisense is and how to sign in: an API token, or a username and password (v1
    login); ``api="legacy"`` with ``api_secret`` for the pre-6.5 x-api-key scheme.

    Raises ``ConfigError`` for a bad URL or missing credentials. Nothing is sent yet.
    """
    return build_connection(url=url, token=token, username=username, password=password,
                            api=api, api_secret=api_secret,
                            ca_bundle=Path(ca_bundle) if ca_bundle is not None else None,
                            insecure=insecure)


class _Results:
    """The observer that hands each finished row to the caller, on the event loop's thread
    (a dry run plans in a worker thread: its results are handed over, one at a time)."""

    def __init__(self, on_result: OnResult | None) -> None:
        self._on_result = on_result
        self._loop = asyncio.get_running_loop()
        self._thread = threading.get_ident()
        #: What ``on_result`` raised: the run stops (every row still reported as it truly
        #: ended) and ``run`` raises it to the caller.
        self.failure: BaseException | None = None

    def started(self, summary: RunSummary) -> None:
        """Nothing to show."""

    def row_done(self, result: RowResult, summary: RunSummary) -> None:
        """Pass the result on, on the loop's thread (this thread waits for it there)."""
        if self._on_result is None:
            return
        if threading.get_ident() == self._thread:
            self._tell(result)
            return
        told: concurrent.futures.Future[None] = concurrent.futures.Future()

        def tell() -> None:
            try:
                self._tell(result)
            except BaseException as exc:  # a KeyboardInterrupt too, or the thread waits forever
                told.set_exception(exc)
            else:
                told.set_result(None)

        self._loop.call_soon_threadsafe(tell)
        told.result()  # on_result's exception is this row's, as on the loop's thread

    def _tell(self, result: RowResult) -> None:
        assert self._on_result is not None
        try:
            returned: object = self._on_result(result)
            if inspect.isawaitable(returned):
                if inspect.iscoroutine(returned):
                    returned.close()  # never awaited: no "never awaited" warning either
                raise ConfigError("on_result returned an awaitable (an async callable?); "
                                  "give a plain function: what it returns is dropped")
        except Exception as exc:
            self.failure = exc
            raise
        except BaseException as exc:
            # A KeyboardInterrupt or SystemExit from the caller's code is theirs to receive,
            # once the run has stopped as after any other error (every row in the report);
            # let through, it would stop the event loop under a run that has rows in hand.
            self.failure = exc
            raise ObserverStopped(exc) from exc


async def run(command: Command, connection: Connection, *,
              file: str | Path | None = None,
              rows: Iterable[PythonRow] | None = None,
              on_result: OnResult | None = None,
              report: str | Path | None = None,
              plan: PlanOptions | None = None,
              safety: Safety | None = None,
              sync: SyncOptions | None = None,
              read: ReadOptions | None = None,
              retry: RetryPolicy | None = None,
              concurrency: int | Literal["auto"] = "auto",
              max_concurrency: int | None = None,
              batch_size: int = 50) -> RunSummary:
    """Run one write command (``"import"``, ``"update"``, ``"deactivate"``, ``"reactivate"``,
    ``"delete"`` or ``"sync"``) and return its summary.

    The rows come from ``file`` (CSV, TSV or XLSX; reactivate: a deactivate report) or from
    ``rows``, any iterable of mappings whose keys are column names (``"email"``, ``"role"``,
    ``"groups"``, ``"First Name"``...: the same names and aliases as a file's header), such as
    a DataFrame's ``to_dict("records")`` or a database cursor's rows. ``on_result`` receives
    each row's :class:`RowResult` as soon as it is final. A CSV report (and its JSON summary)
    is written to ``report`` only when given. Destructive commands are not confirmed: guard
    them with ``safety`` (``dry_run``, ``strict``, ``max_changes``).

    Raises a ``BulkUsersError`` (``InputError``, ``ConfigError``, ``GuardTripped``,
    ``ServerUnavailable``...) when the run cannot start; rows that fail are results, not
    exceptions. Cancelling the task stops the run; rows not sent are ``not_attempted`` and
    the summary (in the report's JSON too) says it was interrupted. When ``on_result``
    raises, the run stops the same way (the row it was told of keeps its true outcome) and
    ``run`` raises that exception once the report and summary are complete.
    """
    _check_arguments(command, connection, on_result, rows, plan, safety, sync, report)
    if (max_concurrency is not None and isinstance(concurrency, int)
            and concurrency > max_concurrency):
        raise ConfigError(f"concurrency={concurrency} is above max_concurrency="
                          f"{max_concurrency}; lower it, raise the maximum, or leave the "
                          "maximum out (it bounds concurrency='auto')")
    config = RunConfig(command=command, connection=connection,
                       input_path=Path(file) if file is not None else None,
                       retry=retry or RetryPolicy(), read=read or ReadOptions(),
                       plan=plan or PlanOptions(), safety=safety or Safety(), sync=sync,
                       write_report=report is not None,
                       report_path=Path(report) if report is not None else None,
                       concurrency=concurrency,
                       max_concurrency=(DEFAULT_MAXIMUM if max_concurrency is None
                                        else max_concurrency),
                       batch_size=batch_size, allow_empty=True, handle_sigint=False)
    results = _Results(on_result)
    summary = await run_command(config, results, records=rows)
    if results.failure is not None:
        # The caller's own error, once the run has stopped and its report and summary say
        # how every row ended.
        raise results.failure
    return summary


def _check_arguments(command: Command, connection: object, on_result: object, rows: object,
                     plan: object, safety: object, sync: object, report: object) -> None:
    """ConfigError, before anything is read or sent, for arguments of the wrong kind (a
    caller without a type checker gets one line, not an AttributeError deep in the run)."""
    _check_connection(connection)
    for name, value, kind in (("plan", plan, PlanOptions), ("safety", safety, Safety),
                              ("sync", sync, SyncOptions)):
        _check_kind(name, value, kind)
    if sync is not None and command != "sync":
        raise ConfigError(f"sync= is for the sync command, not {command}")
    if isinstance(rows, str | bytes | Mapping):
        raise ConfigError(f"rows is one {type(rows).__name__}; give an iterable of mappings "
                          "(a list of dicts), one a row")
    if on_result is not None and (inspect.iscoroutinefunction(on_result) or
                                  inspect.iscoroutinefunction(
                                      getattr(on_result, "__call__", None))):  # noqa: B004
        # It would be called and its coroutine dropped unawaited: no result would reach it.
        raise ConfigError("on_result is an async function; give a plain function (it is "
                          "called on the event loop's thread, where it may schedule work)")
    resume = safety.resume if isinstance(safety, Safety) else None
    if resume is not None and isinstance(report, str | Path) and Path(report) != resume:
        raise ConfigError(f"Safety(resume={str(resume)!r}) appends to the report it continues; "
                          f"leave report= out (it names {str(report)!r})")
    dry_run = isinstance(safety, Safety) and safety.dry_run
    removes = command_spec(command).destructive or (
        command == "sync" and (sync if isinstance(sync, SyncOptions) else REPORT_ONLY).removes)
    if report is None and not dry_run and removes:
        # The undo journal is kept beside the report; without one, no removal could be undone.
        raise ConfigError(f"{command} keeps its undo journal beside its report: give report= "
                          "a new file's path (reactivate reads it back), or preview with "
                          "safety=bulkusers.Safety(dry_run=True)")


#: One exported user: the export's columns (``email``, ``userName``, ``firstName``,
#: ``lastName``, ``role``, ``roleDisplayName``, ``groups``, ``language``, ``active``,
#: ``created``, ``lastLogin``, ``lastUpdated``, ``id``), text but for ``active``.
ExportedUser = dict[str, str | bool | None]


async def export_users(connection: Connection, output: str | Path, *,
                       role: str | None = None, group: str | None = None,
                       inactive_days: int | None = None, page_size: int = 500,
                       retry: RetryPolicy | None = None) -> ExportResult:
    """Export users to ``output`` (``.csv`` or ``.xlsx``), as ``bulkusers export`` does:
    role and group names resolved, the file put in place only once every page was read (an
    earlier file of that name is replaced then, never half-written). ``role``, ``group`` and
    ``inactive_days`` keep only those users. Returns where it went and how many were written
    and read; raises ``ConfigError`` (a bad filter or file name) or ``ServerUnavailable``,
    and then no file is written. No JSON summary is written: the result is the summary."""
    _check_file_name("output", output)
    _check_export_arguments(connection, role, group, inactive_days, page_size, retry)
    target = Path(output)
    if str(target) == "-":
        raise ConfigError("export_users(): output '-' is the CLI's standard output; give a "
                          "file name, or read the users with bulkusers.users()")
    options = ExportOptions(target, role=role, group=group, inactive_days=inactive_days,
                            page_size=page_size)
    return await run_export(connection, retry or RetryPolicy(), options)


async def users(connection: Connection, *, role: str | None = None, group: str | None = None,
                inactive_days: int | None = None, page_size: int = 500,
                retry: RetryPolicy | None = None) -> AsyncGenerator[ExportedUser, None]:
    """Every user (``role``, ``group`` and ``inactive_days`` keep only those), as a dict of
    the export's columns, read a page at a time as the caller iterates: for a DataFrame,
    ``pandas.DataFrame([u async for u in bulkusers.users(sisense)])``. Stopping early: wrap
    it in ``contextlib.aclosing`` so the connection closes at once. Raises ``ConfigError``
    (an unknown role or group) or ``ServerUnavailable``."""
    _check_export_arguments(connection, role, group, inactive_days, page_size, retry)
    filters = UserFilters(role, group, inactive_days)
    check_page_size(page_size)
    lost = "the users were not all read"
    # Closed with users() (contextlib.aclosing): the read ends before the connection does.
    async with (exporting(connection, retry or RetryPolicy(), lost) as api,
                contextlib.aclosing(selected_records(api, filters, page_size)) as records):
        async for record in records:
            yield dict(zip(COLUMNS, record, strict=True))


def _check_export_arguments(connection: object, role: object, group: object,
                            inactive_days: object, page_size: object, retry: object) -> None:
    """ConfigError, before anything is sent, for an export argument of the wrong kind (a
    caller without a type checker gets one line, not a TypeError deep in the export)."""
    _check_connection(connection)
    for name, value in (("role", role), ("group", group)):
        if value is not None and not isinstance(value, str):
            raise ConfigError(f"{name} is a {type(value).__name__}; give its name as a str")
    _check_whole_number("inactive_days", inactive_days)
    _check_whole_number("page_size", page_size, required=True)
    _check_kind("retry", retry, RetryPolicy)


def _check_connection(connection: object) -> None:
    """ConfigError unless ``connection`` is one ``connect()`` made."""
    if not isinstance(connection, Connection):
        raise ConfigError(f"connection is a {type(connection).__name__}; make one with "
                          "bulkusers.connect(url, token=...)")


def _check_kind(name: str, value: object, kind: type) -> None:
    """ConfigError when the optional argument ``name`` is given and is not a ``kind``."""
    if value is not None and not isinstance(value, kind):
        raise ConfigError(f"{name} is a {type(value).__name__}; give a "
                          f"bulkusers.{kind.__name__}(...)")


def _check_whole_number(name: str, value: object, *, required: bool = False) -> None:
    """ConfigError when the argument ``name`` (optional unless ``required``) is given and
    is not an int (a bool is no number of days)."""
    if (value is not None or required) and (isinstance(value, bool)
                                            or not isinstance(value, int)):
        raise ConfigError(f"{name} is a {type(value).__name__}; give a whole number")


def _check_file_name(name: str, value: object) -> None:
    """ConfigError for a file name that is neither a str nor a path (bytes included)."""
    if not isinstance(value, str | os.PathLike) or isinstance(os.fspath(value), bytes):
        raise ConfigError(f"{name} is a {type(value).__name__}; give a file name (str or "
                          "Path) ending in .csv or .xlsx")


def diff_exports(old: str | Path, new: str | Path, *, output: str | Path | None = None,
                 inactive_days: int | None = None,
                 read: ReadOptions | None = None) -> list[Change]:
    """What changed between two exports (CSV or XLSX, as ``export_users`` or ``bulkusers
    export`` wrote them), as ``bulkusers diff`` finds it: users matched by email (ASCII case
    ignored), one ``Change`` per change (``change`` is ``added``, ``removed``, ``role``,
    ``groups`` or, with ``inactive_days``, ``inactive``: past that many days without signing
    in at NEW's time but not at OLD's, each file judged at its modification time), ordered
    by kind then email. ``output`` (``.csv`` or ``.xlsx``) also gets them as the CLI writes
    them, without its JSON summary. Nothing is sent to any server. Raises ``InputError``
    (an export that cannot be read, or repeats an email) or ``ConfigError``."""
    _check_file_name("old", old)
    _check_file_name("new", new)
    if output is not None:
        _check_file_name("output", output)
    _check_whole_number("inactive_days", inactive_days)
    if inactive_days is not None:
        check_inactive_days(inactive_days)
    _check_kind("read", read, ReadOptions)
    before, after = Path(old), Path(new)
    target = Path(output) if output is not None else None
    if target is not None:
        check_diff_output(target, before, after, option="output")
    changes = compare(read_snapshot(before, read), read_snapshot(after, read), inactive_days)
    if target is not None:
        write_changes(changes, target)
    return changes

