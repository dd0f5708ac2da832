import csv
import io
import json
import os

import pytest

from grmpiqa.io.output import display_path, make_writer, name_bytes, unescape_name
from grmpiqa.results import ScoreResult

NASTY = ["plain.jpg", "with space.jpg", "comma,name.jpg", 'quote"d.jpg', "new\nline.jpg",
         "tab\tname.jpg", "café.jpg", os.fsdecode(b"bad\xff.jpg"), "back\\slash.jpg"]


def _results():
    return [ScoreResult(p, 0.5 + i / 100, None) for i, p in enumerate(NASTY)] + [
        ScoreResult("broken.jpg", None, "cannot decode (OSError: truncated)")]


def _render(fmt, columns=("path", "score", "error")):
    buffer = io.BytesIO()
    writer = make_writer(fmt, buffer, columns)
    for r in _results():
        writer.write(r)
    writer.close()
    return buffer.getvalue()


def test_csv_parses_back_with_any_file_name():
    text = _render("csv").decode("utf-8")  # strict: valid UTF-8 for every reader
    rows = list(csv.DictReader(io.StringIO(text, newline="")))
    assert [unescape_name(r["path"]) for r in rows] == [*NASTY, "broken.jpg"]
    assert rows[7]["path"] == "bad\\xff.jpg" and rows[8]["path"] == "back\\\\slash.jpg"
    assert name_bytes(rows[7]["path"]) == b"bad\xff.jpg"
    assert rows[0]["score"] == "0.500000" and rows[0]["error"] == ""
    assert rows[-1]["score"] == "" and rows[-1]["error"].startswith("cannot decode")


def test_jsonl_parses_back_and_is_valid_utf8():
    data = _render("jsonl")
    data.decode("utf-8")  # strict: undecodable names are escaped, not raw
    rows = [json.loads(line) for line in data.splitlines()]
    assert [unescape_name(r["path"]) for r in rows] == [*NASTY, "broken.jpg"]
    assert rows[0]["score"] == 0.5 and rows[0]["error"] is None
    assert rows[-1]["score"] is None
    assert rows[7]["path"] == "bad\\xff.jpg" and name_bytes(rows[7]["path"]) == b"bad\xff.jpg"


def test_tsv_one_line_per_row_and_unescapes():
    lines = _render("tsv").split(b"\n")
    assert lines[0] == b"path\tscore\terror"
    assert len([x for x in lines if x]) == len(NASTY) + 2

    paths = [unescape_name(line.decode("utf-8").split("\t")[0]) for line in lines[1:] if line]
    assert paths == [*NASTY, "broken.jpg"]


def test_table_is_one_line_per_row():
    lines = _render("table").decode("utf-8").splitlines()
    assert len(lines) == len(NASTY) + 2
    assert "error: cannot decode" in lines[-1]


def test_display_path_is_single_line():
    assert display_path("a\nb\tc") == "a\\nb\\tc"
    assert display_path(os.fsdecode(b"x\xff")) == "x\\xff"


@pytest.mark.parametrize("fmt", ["csv", "tsv", "jsonl", "table"])
def test_label_column(fmt):
    buffer = io.BytesIO()
    writer = make_writer(fmt, buffer, ["path", "score", "error", "score_label"])
    writer.write(ScoreResult("a.jpg", 0.25, None, 3.0))
    writer.close()
    assert b"3" in buffer.getvalue()
