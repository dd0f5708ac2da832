"""``--summary``: what a whole run's scores look like, in a few lines for stderr."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

HISTOGRAM_BINS = 10
BAR_WIDTH = 40


@dataclass(frozen=True)
class Summary:
    """Statistics of the scored photos; the quantiles are None when nothing was scored."""

    count: int
    failed: int
    mean: float | None
    minimum: float | None
    q1: float | None
    median: float | None
    q3: float | None
    maximum: float | None
    histogram: tuple[int, ...]
    sidecars_failed: int = 0


def quantile(ordered: Sequence[float], q: float) -> float:
    """Linear interpolation between closest ranks (numpy's default, R's type 7)."""
    if not ordered:
        raise ValueError("quantile of no values")
    position = q * (len(ordered) - 1)
    below = int(position)
    above = min(below + 1, len(ordered) - 1)
    return ordered[below] + (ordered[above] - ordered[below]) * (position - below)


def histogram(scores: Sequence[float], bins: int = HISTOGRAM_BINS) -> tuple[int, ...]:
    """Counts in ``bins`` equal bins over [0, 1]; 1.0 falls in the last one."""
    counts = [0] * bins
    for score in scores:
        counts[min(bins - 1, max(0, int(score * bins + 1e-9)))] += 1  # 0.3 in [0.3, 0.4)
    return tuple(counts)


def summarise(scores: Sequence[float], failed: int = 0, sidecars_failed: int = 0) -> Summary:
    ordered = sorted(scores)
    if not ordered:
        return Summary(0, failed, None, None, None, None, None, None, histogram(()),
                       sidecars_failed)
    return Summary(
        count=len(ordered), failed=failed, mean=sum(ordered) / len(ordered),
        minimum=ordered[0], q1=quantile(ordered, 0.25), median=quantile(ordered, 0.5),
        q3=quantile(ordered, 0.75), maximum=ordered[-1], histogram=histogram(ordered),
        sidecars_failed=sidecars_failed,
    )


def format_summary(summary: Summary, bar_width: int = BAR_WIDTH) -> list[str]:
    """Lines for a person: counts, mean and quartiles, one histogram bar per bin."""
    lines = [f"summary: {summary.count} scored, {summary.failed} failed"
             + (f", {plural(summary.sidecars_failed, 'XMP sidecar')} not written"
                if summary.sidecars_failed else "")]
    if summary.count == 0:
        return lines
    lines.append(
        f"  mean {summary.mean:.3f}  min {summary.minimum:.3f}  q1 {summary.q1:.3f}  "
        f"median {summary.median:.3f}  q3 {summary.q3:.3f}  max {summary.maximum:.3f}")
    peak = max(summary.histogram)
    bins = len(summary.histogram)
    for i, count in enumerate(summary.histogram):
        bar = "#" * (round(count / peak * bar_width) if peak else 0)
        if count and not bar:
            bar = "."  # a bin with a few photos still shows
        lines.append(f"  {i / bins:.1f}-{(i + 1) / bins:.1f} |{bar:<{bar_width}} {count}")
    return lines


def plural(count: int, noun: str, nouns: str | None = None) -> str:
    """``1 XMP sidecar``, ``2 XMP sidecars``."""
    return f"{count} {noun if count == 1 else nouns or noun + 's'}"


class Tally:
    """What went wrong in a run, for the closing line that explains a non-zero exit."""

    def __init__(self, done: Iterable[Any] = ()) -> None:
        done = list(done)
        self.written = len(done)
        self.failed = sum(row.error is not None for row in done)
        self.folders = 0
        self.patterns = 0

    def add(self, row: Any, problems: Mapping[str, str]) -> None:
        self.written += 1
        if row.error is None:
            return
        if row.path in problems and row.error.startswith("cannot read folder"):
            self.folders += 1
        elif row.path in problems:
            self.patterns += 1
        else:
            self.failed += 1

    def closing_line(self, sidecars: int = 0, left_out: int = 0) -> str:
        """One line naming every kind of failure with its count; empty when all went well."""
        files = self.written - self.folders - self.patterns
        parts = [
            f"{self.failed} of {plural(files, 'file')} could not be scored" if self.failed else "",
            f"{plural(self.folders, 'folder')} could not be read" if self.folders else "",
            f"{plural(self.patterns, 'pattern')} matched no image file" if self.patterns else "",
            f"{plural(sidecars, 'XMP sidecar')} could not be written" if sidecars else "",
            f"{plural(left_out, 'path')} with a line break left out of --format paths "
            "(use --null)" if left_out else "",
        ]
        return "; ".join(part for part in parts if part)
