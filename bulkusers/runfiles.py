"""Stage 6 of a run: the files it keeps. Where the report goes (new, or the resumed one
appended to); the report, its first summary (written before any request, so that a killed
run can be resumed), the deactivation records and the undo journal opened before the first
write and closed after the last; the final summary beside the report."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from bulkusers.errors import ReportUnwritable
from bulkusers.journal import Journal, journal_path
from bulkusers.ledger import STATE_DIR_VARIABLE, Deactivation, Ledger
from bulkusers.models import Header
from bulkusers.report import compact_report, default_report_path, summary_path
from bulkusers.reportwriter import ReportWriter
from bulkusers.resume import Earlier
from bulkusers.runconfig import RunConfig
from bulkusers.summary import RunSummary


def report_target(config: RunConfig, earlier: Earlier | None,
                  dry_run: bool) -> tuple[Path | None, str]:
    """Where the report goes (None: no report), and whether it is new or appended to."""
    if earlier and not dry_run:
        return earlier.report, "append"
    if not config.write_report:
        return None, "new"
    if earlier:
        # A dry run (or a --strict refusal) of a resume writes its plan to a new report:
        # appending to the one being resumed would mark it a dry run, and unresumable.
        return default_report_path(config.input_name, config.command,
                                   config.report_dir), "new"
    return config.report_path or default_report_path(config.input_name, config.command,
                                                     config.report_dir), "new"


@dataclass(slots=True)
class RunFiles:
    """What a run keeps on disk: the report, the undo journal, the deactivation records."""

    writer: ReportWriter | None
    journal: Journal | None
    ledger: Ledger | None

    def close(self, *, compact: bool) -> None:
        """Close everything; ``compact`` a resumed report (one line per row)."""
        if self.writer is not None:
            self.writer.close()
            if compact:
                compact_report(self.writer.path)
        if self.journal is not None:
            self.journal.close()
        if self.ledger is not None:
            self.ledger.close()


def open_run_files(report_path: Path | None, mode: str, header: Header,
                   summary: RunSummary, url: str,
                   deactivations: Mapping[str, Deactivation] | None, *,
                   journaled: bool, held: bool) -> RunFiles:
    """Open the report (its summary written at once, so a killed run can resume), the
    deactivation records and the undo journal; nothing has been sent yet."""
    writer = None
    if report_path is not None:
        try:
            writer = ReportWriter(report_path, header, mode=mode, held=held)
        except OSError as exc:
            raise ReportUnwritable(f"cannot write the report {report_path} "
                                   f"({exc.strerror or exc}); nothing was sent") from None
        try:
            summary.write_json(summary_path(report_path))
        except OSError as exc:
            writer.close()
            raise ReportUnwritable(f"cannot write {summary_path(report_path)} "
                                   f"({exc.strerror or exc}); nothing was sent") from None
    ledger = Ledger(url, deactivations) if deactivations is not None else None
    if ledger is not None:
        try:
            ledger.open()
        except OSError as exc:
            if writer is not None:
                writer.close()
            raise ReportUnwritable(
                f"cannot keep the deactivation records in {ledger.path.parent} "
                f"({exc.strerror or exc}); set {STATE_DIR_VARIABLE} to a writable folder; "
                "nothing was sent") from None
    journal = (Journal(journal_path(report_path), fresh=mode != "append", ledger=ledger)
               if journaled and report_path is not None else None)
    return RunFiles(writer, journal, ledger)


def write_final_summary(summary: RunSummary, report_path: Path | None) -> None:
    """Close the run's summary and write it beside the report (when there is one)."""
    summary.finish()
    if report_path is not None:
        try:
            summary.write_json(summary_path(report_path))
        except OSError as exc:
            # The rows are done and reported; only the machine summary is missing: exit 3.
            summary.aborted = summary.aborted or (
                f"cannot write {summary_path(report_path)} ({exc.strerror or exc})")
            summary.finish()
