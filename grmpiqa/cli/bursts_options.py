"""The --bursts and --report options shared by ``score`` and ``cull``.

Kept apart from the commands so that their loops stay short. No torch here.
"""

from __future__ import annotations

from typing import Annotated, Any

import typer

from grmpiqa.cli.common import say
from grmpiqa.config import BurstOptions
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


class ScoreReport:
    """The --report of ``score``: thumbnails stored as rows arrive, the page written at the
    end from the rows (with their bursts when ``held`` grouped them)."""

    def __init__(self, report: Any, held: HeldRows | None) -> None:
        self.report = report
        self.held = held
        self.rows: list[ScoreResult] = []

    @classmethod
    def open(cls, path: str | None, held: HeldRows | None) -> ScoreReport | None:
        if path is None:
            return None
        from grmpiqa.workflow.report import Report

        return cls(Report(path), held)

    def add(self, result: ScoreResult) -> ScoreResult:
        result = self.report.add(result)
        if self.held is None:
            self.rows.append(result)
        return result

    def write(self) -> int:
        """After the writer was closed (so that ``held`` has grouped its rows); 1 if the
        page could not be written (said on stderr), else 0."""
        from collections import Counter

        rows = self.held.rows if self.held is not None else self.rows
        grouped = self.held is not None
        sizes = Counter(getattr(row, "burst", None) for row in rows)
        entries = [self.report.entry(row, burst=getattr(row, "burst", None),
                                     marked=grouped and getattr(row, "burst_rank", 0) == 1
                                     and sizes[getattr(row, "burst", None)] > 1)
                   for row in rows]
        heading = "Bursts: the best frame of each is marked kept." if grouped else ""
        return write_page(self.report, entries, heading)

    def discard(self) -> None:
        self.report.discard()


def check_resume(resume: bool, bursts: bool, report: str | None) -> None:
    if resume and (bursts or report):
        raise typer.BadParameter("cannot be combined with --bursts or --report (they need "
                                 "every photo from this run)", param_hint="--resume")


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
