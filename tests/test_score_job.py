"""``grmpiqa.score(ScoreJob)`` does what ``grmpiqa score`` does: the same files, byte for byte."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

import grmpiqa
from grmpiqa.cli.app import app
from photos import write_photo_tree

pq = pytest.importorskip("pyarrow.parquet")


def _files(root: Path) -> dict[str, bytes]:
    """Every file under ``root`` (its own path written as ROOT), by relative name."""
    return {str(p.relative_to(root)): p.read_bytes().replace(str(root).encode(), b"ROOT")
            for p in sorted(root.rglob("*")) if p.is_file() and p.suffix != ".parquet"}


def _table(path: Path, root: Path) -> list[dict]:
    rows = pq.read_table(path).to_pylist()
    for row in rows:
        row["path"] = row["path"].replace(str(root), "ROOT")
    return rows


def test_the_library_job_writes_what_the_command_writes(use_tiny_manifest, tmp_path):
    write_photo_tree(tmp_path / "cli" / "shoot")
    shutil.copytree(tmp_path / "cli" / "shoot", tmp_path / "lib" / "shoot")
    (tmp_path / "cli" / "shoot" / "broken.jpg").write_bytes(b"not a photo")
    (tmp_path / "lib" / "shoot" / "broken.jpg").write_bytes(b"not a photo")

    cli, lib = tmp_path / "cli", tmp_path / "lib"
    done = CliRunner().invoke(app, [
        "score", str(cli / "shoot"), "--xmp", "--bursts", "--report", str(cli / "page.html"),
        "-o", str(cli / "scores.parquet"), "-j", "0", "-q"])
    assert done.exit_code == 1, done.output  # the broken photo

    run = grmpiqa.score(grmpiqa.ScoreJob(
        inputs=[str(lib / "shoot")], xmp=grmpiqa.XmpOptions(), bursts=grmpiqa.BurstOptions(),
        report=str(lib / "page.html"), output=str(lib / "scores.parquet"),
        model=grmpiqa.ModelOptions(workers=0)))

    assert _table(lib / "scores.parquet", lib) == _table(cli / "scores.parquet", cli)
    assert _files(lib) == _files(cli)  # sidecars, the page and its thumbnails
    photos = len(_table(lib / "scores.parquet", lib))
    assert photos > 5 and run.rows == photos and run.failed == 1 and run.scored == photos - 1
    assert run.sidecars == photos - 1 and run.sidecars_failed == 0
    assert run.output == str(lib / "scores.parquet") and run.report == str(lib / "page.html")
    assert not run.ok and run.model.startswith("grmp-tiny:fp32:exact:")
    columns = pq.read_schema(lib / "scores.parquet").names
    assert columns == ["path", "score", "error", "burst", "burst_rank", "model"]


def test_a_job_checks_its_options_before_anything_runs(use_tiny_manifest, tmp_path):
    from grmpiqa.errors import ConfigError

    with pytest.raises(ConfigError) as refused:
        grmpiqa.score(grmpiqa.ScoreJob(inputs=[str(tmp_path)], output=str(tmp_path / "a.jpg")))
    assert refused.value.param == "output" and "photo's extension" in str(refused.value)
    with pytest.raises(ConfigError, match="bursts or a report"):
        grmpiqa.ScoreJob(inputs=[str(tmp_path)], resume=True, bursts=grmpiqa.BurstOptions())
    with pytest.raises(TypeError):
        grmpiqa.ScoreJob(inputs=str(tmp_path))
