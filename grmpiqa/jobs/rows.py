"""The rows of one scoring job on their way out: each is kept, rated, counted and shown.

Every new row goes to the store's journal the moment it is scored, then its
XMP rating is written; the rows the output shows stream straight on, or wait
for the last photo when they are sorted, cut to the top ones or grouped into
bursts. Rows kept from an earlier run are counted and shown again, but
neither kept nor rated twice.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

from grmpiqa.config import BurstOptions
from grmpiqa.errors import XmpError
from grmpiqa.io.journal import RowStore
from grmpiqa.progress import Reporting
from grmpiqa.results import ScoreResult, ScoreRun
from grmpiqa.workflow.selection import Selection, passes, select
from grmpiqa.workflow.summary import Tally, summarise
from grmpiqa.workflow.xmp_marks import SidecarRater

if TYPE_CHECKING:  # pragma: no cover
    from grmpiqa.workflow.report import Report


class RowPipeline:
    """One run's rows: :meth:`carry` the earlier run's, :meth:`add` each new one, then
    :meth:`finish` (also after an interrupt, with the rows so far)."""

    def __init__(self, store: RowStore, report_to: Reporting, *, model_key: str,
                 problems: dict[str, str], selection: Selection,
                 bursts: BurstOptions | None = None, rater: SidecarRater | None = None,
                 report: Report | None = None) -> None:
        self.store, self.report_to, self.model_key = store, report_to, model_key
        self.problems, self.selection, self.bursts = problems, selection, bursts
        self.rater, self.report = rater, report
        self.held: list[ScoreResult] | None = [] if bursts or selection.buffers else None
        self.page_rows: list[ScoreResult] = []
        self.tally = Tally()
        self.scores: list[float] = []
        self.added = self.shown = self.sidecars = self.sidecars_failed = 0

    def carry(self, row: ScoreResult) -> None:
        """A row kept from the earlier run: already in the journal, its sidecar written."""
        self._count(row)
        self._show(row)

    def add(self, result: ScoreResult) -> None:
        row = replace(result, model=self.model_key)
        if self.report is not None:
            row = self.report.add(row)
            self.page_rows.append(row)
        self.store.journal(row)
        self.added += 1
        if row.error is not None:
            self.report_to.failed(row.path, row.error)
        elif self.rater is not None:
            self._rate(row)
        self._count(row)
        self._show(row)

    def _rate(self, row: ScoreResult) -> None:
        try:
            self.sidecars += len(self.rater.rate(row.path, row.score, row.score_label))
        except XmpError as exc:
            self.sidecars_failed += 1
            what = "sidecar not written" if self.rater.marker.app is None else "XMP"
            self.report_to.failed(row.path, f"{what}: {exc}")

    def _count(self, row: ScoreResult) -> None:
        self.tally.add(row, self.problems)
        if row.score is not None:
            self.scores.append(row.score)

    def _show(self, row: ScoreResult) -> None:
        if self.held is not None:
            self.held.append(row)
        elif passes(row, self.selection):
            self.store.present(row)
            self.shown += 1

    def finish(self) -> list[ScoreResult]:
        """Show what waited (grouped into bursts, then sorted and cut); the rows the page
        shows, with their burst columns."""
        if self.held is None:
            return self.page_rows
        rows, self.held = self.held, None
        if self.bursts is not None:
            from grmpiqa.workflow.bursts import with_burst_columns

            rows = with_burst_columns(rows, self.bursts)
            grouped = {row.path: row for row in rows}
            self.page_rows = [grouped.get(row.path, row) for row in self.page_rows]
        for row in select(rows, self.selection):
            self.store.present(row)
            self.shown += 1
        return self.page_rows

    def run(self, *, output: str | None, carried: int, summary: bool,
            report: str | None = None, report_error: str | None = None,
            interrupted: bool = False, left_out: int = 0) -> ScoreRun:
        """The counts of this run so far."""
        tally = self.tally
        return ScoreRun(
            rows=tally.written, scored=len(self.scores), failed=tally.failed,
            unreadable_folders=tally.folders, unmatched_patterns=tally.patterns,
            carried=carried, shown=self.shown, left_out=left_out, sidecars=self.sidecars,
            sidecars_failed=self.sidecars_failed, output=output, report=report,
            report_error=report_error, interrupted=interrupted, model=self.model_key,
            summary=summarise(self.scores, tally.failed, self.sidecars_failed)
            if summary else None)
