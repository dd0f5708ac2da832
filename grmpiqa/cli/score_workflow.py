"""The photo-workflow options of ``grmpiqa score``: which rows, in what order, ratings, summary.

Kept out of ``score.py`` so that its scoring loop stays short: the command
wraps its row writer with :meth:`ScoreWorkflow.wrap`, shows every result to
:meth:`ScoreWorkflow.observe` and calls :meth:`ScoreWorkflow.finish` after the
last row. Without these options nothing is held back: rows stream as before.
No torch here (``--help`` stays fast).
"""

from __future__ import annotations

import sys
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Annotated, Any

import typer

from grmpiqa.cli.common import say
from grmpiqa.workflow.selection import SORT_KEYS, SelectingWriter, Selection
from grmpiqa.workflow.summary import format_summary, plural, summarise
from grmpiqa.workflow.xmp import DEFAULT_THRESHOLDS, SidecarRater, XmpError, parse_thresholds

if TYPE_CHECKING:  # pragma: no cover
    from grmpiqa.results import ScoreResult

DEFAULT_RATING_THRESHOLDS = ",".join(f"{t:g}" for t in DEFAULT_THRESHOLDS)
_KINDS = {"heif": "HEIC/HEIF", "raw": "camera RAW"}

SortOption = Annotated[str | None, typer.Option(
    "--sort", metavar="KEY", show_default=False,
    help="Print rows sorted by KEY: score (worst first), -score (best first) or path; "
         "failed files last. Rows then wait for the last photo.")]
TopOption = Annotated[int | None, typer.Option(
    "--top", metavar="N", min=1, show_default=False,
    help="Only the first N scored rows after sorting; without --sort, the N best (-score).")]
MinScoreOption = Annotated[float | None, typer.Option(
    "--min-score", metavar="X", show_default=False,
    help="Only rows with score >= X (failed files are left out).")]
MaxScoreOption = Annotated[float | None, typer.Option(
    "--max-score", metavar="X", show_default=False,
    help="Only rows with score <= X (failed files are left out).")]
XmpOption = Annotated[bool, typer.Option(
    "--xmp", help="Write each scored photo's star rating (xmp:Rating 1-5) into its XMP sidecar "
                  "(IMG_1.jpg -> IMG_1.xmp), keeping all the sidecar already holds.")]
RatingThresholdsOption = Annotated[str | None, typer.Option(
    "--rating-thresholds", metavar="T2,T3,T4,T5", show_default=DEFAULT_RATING_THRESHOLDS,
    help="Scores at which 2, 3, 4 and 5 stars begin (below T2: 1 star). Weights adapted to "
         "star ratings write their own stars (rounded score_label) unless this is given.")]
SummaryOption = Annotated[bool, typer.Option(
    "--summary", help="After the rows, print on stderr: count, mean, quartiles, a histogram "
                      "and the number of failures.")]


@dataclass
class ScoreWorkflow:
    selection: Selection
    rater: SidecarRater | None = None
    summary: bool = False
    fixed_thresholds: bool = False
    scores: list[float] = field(default_factory=list)
    failed: int = 0
    problems: int = 0
    writer: Any = None

    @classmethod
    def from_options(cls, *, sort: str | None, top: int | None, min_score: float | None,
                     max_score: float | None, xmp: bool, rating_thresholds: str | None,
                     summary: bool) -> ScoreWorkflow:
        """Check the options; a bad one is a usage error (exit 2) naming it."""
        if sort is not None and sort not in SORT_KEYS:
            raise typer.BadParameter(f"use one of {', '.join(SORT_KEYS)}", param_hint="--sort")
        for name, value in (("--min-score", min_score), ("--max-score", max_score)):
            if value is not None and not 0.0 <= value <= 1.0:
                raise typer.BadParameter("scores are between 0 and 1", param_hint=name)
        try:
            selection = Selection(sort=sort, top=top, min_score=min_score, max_score=max_score)
        except ValueError as exc:
            raise typer.BadParameter(str(exc), param_hint="--min-score/--max-score") from None
        rater = None
        if xmp:
            try:
                thresholds = parse_thresholds(rating_thresholds or DEFAULT_RATING_THRESHOLDS)
            except ValueError as exc:
                raise typer.BadParameter(str(exc), param_hint="--rating-thresholds") from None
            rater = SidecarRater(thresholds)
        return cls(selection=selection, rater=rater, summary=summary,
                   fixed_thresholds=rating_thresholds is not None)

    def use_label_scale(self, label: Any, quiet: bool = False) -> None:
        """Weights that learned star ratings write their own stars, unless thresholds
        were given."""
        if self.rater is None or self.fixed_thresholds or not getattr(label, "stars", False):
            return
        self.rater.on_label_scale = True
        if not quiet:
            say(f"--xmp: these weights learned star ratings ({label.low:g}..{label.high:g}): "
                "each photo gets its predicted stars (score_label rounded, 1..5)")

    def wrap(self, writer: Any, *, quiet: bool = False) -> SelectingWriter:
        """Filter and order the rows; ``quiet`` also silences --format paths' per-file warning."""
        if quiet and hasattr(writer, "warn"):
            writer.warn = lambda message: None
        self.writer = SelectingWriter(writer, self.selection)
        return self.writer

    def observe(self, result: ScoreResult, message: Callable[[str], None],
                rate: bool = True) -> None:
        """After a row was written: collect it for the summary, write its sidecar (unless
        ``rate`` is False: a row kept by --resume had its sidecar written back then)."""
        if result.score is None:
            self.failed += 1
            return
        self.scores.append(result.score)
        if self.rater is not None and rate:
            try:
                self.rater.rate(result.path, result.score, result.score_label)
            except XmpError as exc:
                self.problems += 1
                from grmpiqa.io.output import display_path

                message(f"{display_path(result.path)}: sidecar not written: {exc}")

    @property
    def left_out(self) -> int:
        """Paths --format paths left out (a line break in the name, without --null)."""
        return getattr(getattr(self.writer, "inner", None), "left_out", 0)

    def finish(self) -> None:
        """Print the summary (the caller's closing line reports sidecars and paths left out)."""
        if self.summary:
            first, *rest = format_summary(summarise(self.scores, self.failed, self.problems))
            say(first)
            print("\n".join(rest), file=sys.stderr, flush=True)


def warn_skipped(skipped: Counter[str]) -> None:
    """Folders held photos that need an extra that is not installed: say which, once."""
    for extra, count in sorted(skipped.items()):
        say(f"warning: skipped {plural(count, _KINDS[extra] + ' file')}: "
            f"pip install 'grmpiqa[{extra}]' to score them")
