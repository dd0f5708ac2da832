"""Which score rows to print, and in what order: --min-score, --max-score, --sort, --top.

Filtering streams; only sorting (and --top, which implies it) has to wait for
the last row. A row without a score (a file that failed) never passes a score
filter, sorts after every scored row, and never counts towards --top.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from grmpiqa.results import ScoreResult

if TYPE_CHECKING:  # pragma: no cover
    from grmpiqa.io.output import RowWriter

SORT_KEYS = ("score", "-score", "path")


class _Row(Protocol):
    path: str
    score: float | None


@dataclass(frozen=True)
class Selection:
    """``top`` without ``sort`` means the best ones: ``-score``."""

    sort: str | None = None
    top: int | None = None
    min_score: float | None = None
    max_score: float | None = None

    def __post_init__(self) -> None:
        if self.sort is not None and self.sort not in SORT_KEYS:
            raise ValueError(f"sort by one of {', '.join(SORT_KEYS)}, not {self.sort!r}")
        if self.top is not None and self.top < 1:
            raise ValueError("top must be at least 1")
        if (self.min_score is not None and self.max_score is not None
                and self.min_score > self.max_score):
            raise ValueError(f"min score {self.min_score} is above max score {self.max_score}")

    @property
    def order(self) -> str | None:
        return self.sort or ("-score" if self.top is not None else None)

    @property
    def filters(self) -> bool:
        return self.min_score is not None or self.max_score is not None

    @property
    def buffers(self) -> bool:
        return self.order is not None


def passes(row: _Row, selection: Selection) -> bool:
    """Inclusive bounds: ``--max-score 0.3`` keeps a photo scored exactly 0.3."""
    if not selection.filters:
        return True
    if row.score is None:
        return False
    low, high = selection.min_score, selection.max_score
    return (low is None or row.score >= low) and (high is None or row.score <= high)


def ordered(rows: Sequence[_Row], order: str) -> list[_Row]:
    """Stable: rows with equal keys keep their input order, failures go last."""
    if order == "path":
        return sorted(rows, key=lambda r: r.path)
    scored = [r for r in rows if r.score is not None]
    failed = [r for r in rows if r.score is None]
    scored.sort(key=lambda r: r.score or 0.0, reverse=order == "-score")
    return scored + failed


def select(rows: Iterable[_Row], selection: Selection) -> list[_Row]:
    """The rows to print, filtered, in order, cut to ``top`` scored rows."""
    kept = [r for r in rows if passes(r, selection)]
    if selection.order is not None:
        kept = ordered(kept, selection.order)
    if selection.top is not None:
        kept = [r for r in kept if r.score is not None][:selection.top]
    return kept


class SelectingWriter:
    """Wraps a row writer: filtered rows stream through, sorted ones wait for ``close``."""

    def __init__(self, inner: RowWriter, selection: Selection) -> None:
        self.inner = inner
        self.selection = selection
        self.held: list[ScoreResult] = []
        self.printed = 0

    def write(self, result: ScoreResult) -> None:
        if not passes(result, self.selection):
            return
        if self.selection.buffers:
            self.held.append(result)
        else:
            self.inner.write(result)
            self.printed += 1

    def close(self) -> None:
        """Write what was held (also after an interrupt: the rows so far, sorted)."""
        rows, self.held = select(self.held, self.selection), []
        for row in rows:
            self.inner.write(row)
        self.printed += len(rows)
        self.inner.close()
