"""The Parquet writer: typed columns, complete parts, atomic commit, resume across generations."""

import os
import sys

import pytest
from typer.testing import CliRunner

from grmpiqa.cli.app import app
from grmpiqa.io.atomic import partial_path as parts_folder
from grmpiqa.io.parquet import ParquetStore, read_rows, text_path
from grmpiqa.results import ScoreResult

pq = pytest.importorskip("pyarrow.parquet")


def _result(i):
    if i % 5 == 4:
        return ScoreResult(f"p/{i:04d}.jpg", None, "cannot decode")
    return ScoreResult(f"p/{i:04d}.jpg", i / 1000, None)


def done_rows(out):
    return {r.path: r for r in read_rows(out)}.values()


def _write(out, rows, *, resume=False, commit=True, part_rows=4):
    writer = ParquetStore(out, ["path", "score", "error"], resume=resume,
                          rows_per_part=part_rows)
    for i in rows:
        if not writer.is_done(_result(i).path):
            writer.journal(_result(i))
    if commit:
        writer.commit()
    else:  # like kill -9: parts flushed so far stay, the lock goes with the process
        writer._unlock()
    return writer


def test_columns_are_typed_and_nulls_are_nulls(tmp_path):
    out = tmp_path / "s.parquet"
    _write(out, range(10))
    table = pq.read_table(out)
    assert [str(t) for t in table.schema.types] == ["string", "float", "string"]
    rows = table.to_pylist()
    assert [r["path"] for r in rows] == [f"p/{i:04d}.jpg" for i in range(10)]
    assert rows[4] == {"path": "p/0004.jpg", "score": None, "error": "cannot decode"}
    assert rows[3]["error"] is None and rows[3]["score"] == pytest.approx(0.003)
    assert not parts_folder(out).exists()


def test_row_groups_of_the_final_file(tmp_path, monkeypatch):
    monkeypatch.setattr("grmpiqa.io.parquet.ROWS_PER_GROUP", 8)
    out = tmp_path / "s.parquet"
    _write(out, range(30), part_rows=3)
    meta = pq.ParquetFile(out).metadata
    assert meta.num_rows == 30
    assert [meta.row_group(i).num_rows for i in range(meta.num_row_groups)] == [8, 8, 8, 6]


def test_a_killed_run_leaves_complete_parts_and_resume_reads_them(tmp_path):
    out = tmp_path / "s.parquet"
    _write(out, range(10), commit=False)  # never committed: like kill -9 after 2 parts
    (parts_folder(out) / "g0001-000002.parquet.tmp").write_bytes(b"torn")
    assert [r.path for r in done_rows(out)] == [f"p/{i:04d}.jpg" for i in range(8)]
    # the resumed run rewrites the kept rows as generation 2, and is killed as well
    second = _write(out, [*range(8), 8, 9, 10], resume=True, commit=False)
    assert second.generation == 2 and len(second.carried) == 8
    names = sorted(p.name for p in parts_folder(out).glob("*.parquet"))
    assert names[:2] == ["g0001-000000.parquet", "g0001-000001.parquet"]
    assert len(done_rows(out)) == 8  # generation 2 flushed the 8 carried rows, all known
    third = _write(out, range(12), resume=True)
    assert third.generation == 3
    rows = pq.read_table(out).to_pylist()
    assert [r["path"] for r in rows] == [f"p/{i:04d}.jpg" for i in range(12)]
    assert not parts_folder(out).exists()


def test_a_fresh_run_starts_over_and_keeps_the_old_file_until_commit(tmp_path):
    out = tmp_path / "s.parquet"
    _write(out, range(3))
    os.chmod(out, 0o640)
    writer = ParquetStore(out, ["path", "score", "error"], rows_per_part=4)
    for i in range(100, 110):
        writer.journal(_result(i))
    assert pq.read_table(out).num_rows == 3  # untouched until the new run commits
    writer.commit()
    assert pq.read_table(out).num_rows == 10 and (os.stat(out).st_mode & 0o777) == 0o640


def test_a_failed_run_keeps_every_complete_part(tmp_path):
    out = tmp_path / "s.parquet"
    _write(out, range(8), commit=False)
    writer = ParquetStore(out, ["path", "score", "error"], resume=True, rows_per_part=4)
    writer.journal(_result(8))
    writer.keep()  # an exception: nothing scored so far may be lost
    assert [r.path for r in done_rows(out)] == [f"p/{i:04d}.jpg" for i in range(9)]
    assert not out.exists()


def test_an_empty_run_writes_a_valid_empty_file(tmp_path):
    out = tmp_path / "s.parquet"
    _write(out, [])
    assert pq.read_table(out).num_rows == 0


def test_names_that_are_not_utf8_are_stored_escaped(tmp_path):
    name = os.fsdecode(b"caf\xe9.jpg")
    out = tmp_path / "s.parquet"
    writer = ParquetStore(out, ["path", "score", "error"])
    writer.journal(ScoreResult(name, 0.5, None))
    writer.commit()
    assert [r.path for r in read_rows(out)] == ["caf\\xe9.jpg"] == [text_path(name)]


def test_resume_refuses_a_file_that_is_not_parquet(tmp_path):
    out = tmp_path / "s.parquet"
    out.write_text("path,score\n")
    from grmpiqa.errors import InputError

    with pytest.raises(InputError, match=r"cannot read .* as Parquet"):
        ParquetStore(out, ["path", "score", "error"], resume=True)


def test_parquet_without_pyarrow_is_a_usage_error(use_tiny_manifest, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "pyarrow", None)
    monkeypatch.setitem(sys.modules, "pyarrow.parquet", None)
    result = CliRunner().invoke(app, ["score", str(tmp_path), "-o", str(tmp_path / "s.parquet")])
    assert result.exit_code == 2 and "grmpiqa[parquet]" in result.output
