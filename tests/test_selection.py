import io
from dataclasses import dataclass

import pytest

from grmpiqa.io.output import make_writer
from grmpiqa.workflow.selection import SelectingWriter, Selection, ordered, passes, select
from grmpiqa.workflow.summary import format_summary, histogram, quantile, summarise


@dataclass(frozen=True)
class Row:
    path: str
    score: float | None
    error: str | None = None


ROWS = [Row("c.jpg", 0.5), Row("a.jpg", 0.9), Row("bad.jpg", None, "broken"),
        Row("b.jpg", 0.1), Row("d.jpg", 0.5), Row("e.jpg", 0.3)]


def _paths(rows):
    return [r.path for r in rows]


def test_bounds_are_inclusive_and_failures_never_pass_a_filter():
    at_most = Selection(max_score=0.3)
    assert [passes(r, at_most) for r in ROWS] == [False, False, False, True, False, True]
    assert all(passes(r, Selection()) for r in ROWS)  # no filter: failures stay
    between = Selection(min_score=0.3, max_score=0.5)
    assert _paths(r for r in ROWS if passes(r, between)) == ["c.jpg", "d.jpg", "e.jpg"]


def test_orders_are_stable_and_put_failures_last():
    assert _paths(ordered(ROWS, "score")) == ["b.jpg", "e.jpg", "c.jpg", "d.jpg", "a.jpg",
                                             "bad.jpg"]
    assert _paths(ordered(ROWS, "-score")) == ["a.jpg", "c.jpg", "d.jpg", "e.jpg", "b.jpg",
                                              "bad.jpg"]
    assert _paths(ordered(ROWS, "path")) == ["a.jpg", "b.jpg", "bad.jpg", "c.jpg", "d.jpg",
                                            "e.jpg"]


def test_top_defaults_to_the_best_and_counts_only_scored_rows():
    assert _paths(select(ROWS, Selection(top=2))) == ["a.jpg", "c.jpg"]
    assert _paths(select(ROWS, Selection(sort="score", top=2))) == ["b.jpg", "e.jpg"]
    assert _paths(select(ROWS, Selection(sort="score", top=99))) == [
        "b.jpg", "e.jpg", "c.jpg", "d.jpg", "a.jpg"]
    assert _paths(select(ROWS, Selection(sort="path", top=3, min_score=0.3))) == [
        "a.jpg", "c.jpg", "d.jpg"]


@pytest.mark.parametrize("kwargs", [dict(sort="size"), dict(top=0),
                                    dict(min_score=0.6, max_score=0.4)])
def test_bad_selections_are_refused(kwargs):
    with pytest.raises(ValueError):
        Selection(**kwargs)


class Recorder:
    def __init__(self):
        self.rows, self.closed = [], False

    def write(self, row):
        self.rows.append(row)

    def close(self):
        self.closed = True


def test_unsorted_rows_stream_and_sorted_rows_wait_for_close():
    inner = Recorder()
    writer = SelectingWriter(inner, Selection(max_score=0.5))
    writer.write(ROWS[0])
    assert _paths(inner.rows) == ["c.jpg"]  # written at once
    writer.write(ROWS[1])
    writer.close()
    assert _paths(inner.rows) == ["c.jpg"] and inner.closed and writer.printed == 1

    inner = Recorder()
    writer = SelectingWriter(inner, Selection(sort="-score"))
    for row in ROWS:
        writer.write(row)
    assert inner.rows == []
    writer.close()
    assert _paths(inner.rows) == _paths(ordered(ROWS, "-score")) and writer.printed == 6


def test_paths_writer_with_selection_prints_only_scored_names():
    buffer = io.BytesIO()
    writer = SelectingWriter(make_writer("paths", buffer, ["path"], null=True),
                             Selection(sort="score"))
    for row in ROWS:
        writer.write(row)
    writer.close()
    assert buffer.getvalue() == b"b.jpg\0e.jpg\0c.jpg\0d.jpg\0a.jpg\0"


def test_quantiles_match_linear_interpolation_by_hand():
    values = [1.0, 2.0, 4.0, 8.0]
    # positions q*(n-1): 0.75 -> 1 + 0.75*1; 1.5 -> 2 + 0.5*2; 2.25 -> 4 + 0.25*4
    assert quantile(values, 0.25) == pytest.approx(1.75)
    assert quantile(values, 0.5) == pytest.approx(3.0)
    assert quantile(values, 0.75) == pytest.approx(5.0)
    assert quantile([0.4], 0.75) == 0.4
    with pytest.raises(ValueError):
        quantile([], 0.5)


def test_histogram_bins_include_their_lower_edge_and_one():
    counts = histogram([0.0, 0.05, 0.1, 0.3, 0.99, 1.0])
    assert counts == (2, 1, 0, 1, 0, 0, 0, 0, 0, 2)
    assert histogram([0.25, 0.75], bins=2) == (1, 1)


def test_summary_numbers_and_lines():
    summary = summarise([0.2, 0.4, 0.6, 0.8], failed=1)
    assert (summary.count, summary.failed) == (4, 1)
    assert summary.mean == pytest.approx(0.5) and summary.median == pytest.approx(0.5)
    assert summary.q1 == pytest.approx(0.35) and summary.q3 == pytest.approx(0.65)
    lines = format_summary(summary, bar_width=10)
    assert lines[0] == "summary: 4 scored, 1 failed"
    assert "mean 0.500" in lines[1] and "q1 0.350" in lines[1] and "max 0.800" in lines[1]
    assert len(lines) == 2 + 10
    assert lines[4] == "  0.2-0.3 |########## 1" and lines[3] == "  0.1-0.2 |           0"
    empty = summarise([], failed=3)
    assert format_summary(empty) == ["summary: 0 scored, 3 failed"] and empty.mean is None
