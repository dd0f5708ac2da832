"""The --bursts and --report options shared by ``score`` and ``cull``.

Kept apart from the commands so that their loops stay short. No torch here.
"""

from __future__ import annotations

from collections import Counter
from typing import Annotated, Any

import typer

from grmpiqa.cli.common import say
from grmpiqa.config import REPORT_THUMBNAIL, BurstOptions
from grmpiqa.results import ScoreResult

BurstsOption = Annotated[bool, typer.Option(
    "--bursts", help="Group bursts and near-duplicates (EXIF capture time, perceptual hash, "
    "layout and the model's embedding from the same pass). score adds the columns burst and "
    "burst_rank (1 = best of its group); rows then wait for the last photo.")]
SimilarityOption = Annotated[float, typer.Option(
    "--similarity", metavar="S", min=0.0, max=1.0,
    help="With --bursts: how alike in layout (correlation 0..1) two photos must be to group "
         "them; lower groups more.")]
TimeGapOption = Annotated[float, typer.Option(
    "--time-gap", metavar="SECONDS", min=0.0,
    help="With --bursts: frames of one camera at most this far apart (EXIF time) are one "
         "burst unless their content clearly differs.")]
ReportOption = Annotated[str | None, typer.Option(
    "--report", metavar="FILE.html", show_default=False,
    help="Also write an HTML page of thumbnails sorted by score (bursts together, a "
         "histogram, failed files), with its thumbnails in FILE_files/; works offline.")]


def burst_options(similarity: float, time_gap: float) -> BurstOptions:
    return BurstOptions(similarity=similarity, time_gap=time_gap)


class HeldRows:
    """Wraps a row writer: rows wait until :meth:`close`, which groups them into bursts
    and then writes them, in input order, with the burst columns."""

    def __init__(self, inner: Any, options: BurstOptions) -> None:
        self.inner = inner
        self.options = options
        self.held: list[ScoreResult] = []
        self.rows: list[ScoreResult] = []

    def write(self, result: ScoreResult) -> None:
        self.held.append(result)

    def close(self) -> None:
        from grmpiqa.workflow.bursts import with_burst_columns

        self.rows, self.held = with_burst_columns(self.held, self.options), []
        for row in self.rows:
            self.inner.write(row)
        self.inner.close()


class ScoreGrouping:
    """--bursts and --report of ``score``: which signals to ask for, the burst columns,
    the held rows, and the page written from them at the end."""

    def __init__(self, bursts: bool, options: BurstOptions, report: str | None) -> None:
        self.bursts, self.options, self.report_path = bursts, options, report
        check_report(report)
        self.features = bursts or report is not None
        self.thumbnails = REPORT_THUMBNAIL if report else 0
        self.held: HeldRows | None = None
        self.report: Any = None
        self.rows: list[ScoreResult] = []

    def columns(self, columns: list[str]) -> list[str]:
        return [*columns, "burst", "burst_rank"] if self.bursts else columns

    def wrap(self, writer: Any) -> Any:
        """Hold the rows for grouping (with --bursts); start the report's folder."""
        if self.bursts:
            writer = self.held = HeldRows(writer, self.options)
        if self.report_path is not None:
            from grmpiqa.workflow.report import Report

            self.report = Report(self.report_path)
        return writer

    def add(self, result: ScoreResult) -> ScoreResult:
        """Store the result's thumbnail; the row goes on without its bytes."""
        if self.report is None:
            return result
        result = self.report.add(result)
        if self.held is None:
            self.rows.append(result)
        return result

    def write_page(self) -> int:
        """After the writer was closed (so that ``held`` has grouped its rows); 1 if the
        page could not be written (said on stderr), else 0."""
        if self.report is None:
            return 0
        rows = self.held.rows if self.held is not None else self.rows
        sizes = Counter(getattr(row, "burst", None) for row in rows)
        entries = [self.report.entry(row, burst=getattr(row, "burst", None),
                                     marked=self.bursts and getattr(row, "burst_rank", 0) == 1
                                     and sizes[getattr(row, "burst", None)] > 1)
                   for row in rows]
        heading = "Bursts: the best frame of each is marked kept." if self.bursts else ""
        return write_page(self.report, entries, heading)

    def discard(self) -> None:
        if self.report is not None:
            self.report.discard()


def check_resume(resume: bool, bursts: bool, report: str | None) -> None:
    if resume and (bursts or report):
        raise typer.BadParameter("cannot be combined with --bursts or --report (they need "
                                 "every photo from this run)", param_hint="--resume")


def check_report(path: str | None) -> None:
    if path is not None:
        from grmpiqa.workflow.report import check_report_path

        check_report_path(path)


def open_report(path: str | None) -> Any:
    if path is None:
        return None
    from grmpiqa.workflow.report import Report

    return Report(path, "grmpiqa cull report")


def write_page(report: Any, entries: list[Any], heading: str) -> int:
    try:
        report.write(entries, heading=heading)
    except OSError as exc:
        report.discard()
        say(f"error: cannot write the report {report.path} ({exc.strerror or exc})")
        return 1
    return 0


def write_cull_report(report: Any, run: Any, *, dry_run: bool) -> int:
    """The cull's page: each photo with what became of it; kept frames of bursts marked.
    1 if it could not be written (said on stderr), else 0."""
    if report is None:
        return 0
    sizes: dict[int | None, int] = {}
    for decision in run.decisions:
        sizes[decision.burst] = sizes.get(decision.burst, 0) + 1
    verb = "would go" if dry_run else "culled"
    entries = [report.entry(d.result, burst=d.burst,
                            note=f"{verb}: {d.reason}" if d.reason else "",
                            marked=not d.reason and d.burst is not None and sizes[d.burst] > 1)
               for d in run.decisions]
    heading = ("Dry run: nothing was moved. " if dry_run else "") + (
        f"{run.culled} of {len(run.groups)} photos culled; notes say why.")
    return write_page(report, entries, heading)
