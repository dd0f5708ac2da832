"""``score --explain``: flat explanation columns in every format, read back on resume."""

from __future__ import annotations

import json

import pytest
from PIL import Image, ImageFilter
from typer.testing import CliRunner

from grmpiqa.cli.app import app
from grmpiqa.results import EXPLAIN_COLUMNS

COLUMNS = ["path", "score", "error", *EXPLAIN_COLUMNS, "model"]


@pytest.fixture
def two_photos(tmp_path):
    sharp = Image.effect_noise((320, 240), 60).convert("RGB")
    sharp.save(tmp_path / "a.png")
    sharp.filter(ImageFilter.GaussianBlur(6)).save(tmp_path / "b.png")
    (tmp_path / "c.jpg").write_bytes(b"not a photo")
    return tmp_path


def test_jsonl_rows_are_flat_and_name_the_blur(use_tiny_manifest, two_photos):
    out = two_photos / "rows.jsonl"
    done = CliRunner().invoke(app, ["score", str(two_photos), "--explain", "-o", str(out),
                                    "-j", "0", "-q"])
    assert done.exit_code == 1, done.output  # the broken file
    rows = {r["path"].rsplit("/", 1)[1]: r for r in map(json.loads, out.read_text().splitlines())}
    assert list(rows["a.png"]) == COLUMNS
    assert all(not isinstance(v, (dict, list)) for r in rows.values() for v in r.values())
    assert "blur" in rows["b.png"]["why"].split(";") and "blur" not in rows["a.png"]["why"]
    assert rows["a.png"]["sharpness"] > rows["b.png"]["sharpness"]
    assert rows["c.jpg"]["why"] is None and rows["c.jpg"]["error"]


def test_csv_resume_keeps_the_explanations(use_tiny_manifest, two_photos):
    out = two_photos / "rows.csv"
    args = ["score", str(two_photos / "a.png"), str(two_photos / "b.png"), "--explain",
            "-o", str(out), "-j", "0", "-q"]
    assert CliRunner().invoke(app, args).exit_code == 0
    first = out.read_text()
    assert first.splitlines()[0].split(",") == COLUMNS
    assert CliRunner().invoke(app, [*args, "--resume"]).exit_code == 0
    assert out.read_text() == first


def test_parquet_columns_are_typed(use_tiny_manifest, two_photos):
    pq = pytest.importorskip("pyarrow.parquet")
    out = two_photos / "rows.parquet"
    args = ["score", str(two_photos / "a.png"), "--explain", "-o", str(out), "-j", "0", "-q"]
    assert CliRunner().invoke(app, args).exit_code == 0
    schema = pq.read_schema(out)
    assert schema.names == COLUMNS
    assert str(schema.field("sharpness").type) == "float" and \
        str(schema.field("why").type) == "string"
