"""Row stores: the journal keeps every row at once, commit is atomic, resume is safe.

Each store owns its partial file: locked while a run writes it, rebuilt (not
truncated) when a run resumes, kept when a run fails, and refused when it
holds another model's rows.
"""

from __future__ import annotations

import errno
import os
import stat
import subprocess
import sys

import pytest

from grmpiqa.errors import ConfigError, OutputError
from grmpiqa.identity import ModelIdentity
from grmpiqa.io.atomic import partial_path
from grmpiqa.io.rowfiles import read_text_rows
from grmpiqa.io.stores import TextStore, open_store, read_done
from grmpiqa.results import ScoreResult

COLUMNS = ["path", "score", "error", "model"]
MODEL = ModelIdentity("grmp-test", "fp32", "exact", ("a" * 64,), "b" * 64)
OTHER = ModelIdentity("grmp-test", "bf16", "exact", ("a" * 64,), "b" * 64)


def _row(i: int, model: ModelIdentity = MODEL) -> ScoreResult:
    if i % 5 == 4:
        return ScoreResult(f"p/{i:03d}.jpg", None, "cannot decode", model=model.key)
    return ScoreResult(f"p/{i:03d}.jpg", i / 100, model=model.key)


def _store(out, *, resume=False, model=MODEL, same_order=True, fmt="csv", columns=COLUMNS):
    return open_store(str(out), fmt, columns, columns, model=model, resume=resume,
                      same_order=same_order)


def _write(store, rows, *, present=False):
    for i in rows:
        store.journal(_row(i))
        if present:
            store.present(_row(i))


def _paths(path, fmt="csv"):
    return [r.path for r in read_text_rows(path, fmt)]


def test_torn_tails_are_dropped(tmp_path):
    path = tmp_path / "s.csv"
    path.write_bytes(b'path,score,error\na.jpg,0.500000,\n"b\nc.jpg",0.250000,\n"d.jpg",0.1')
    assert _paths(path) == ["a.jpg", "b\nc.jpg"]
    path.write_bytes(b'path,score,error\na.jpg,0.500000,\n"torn\n')
    assert _paths(path) == ["a.jpg"]
    jsonl = tmp_path / "s.jsonl"
    jsonl.write_bytes(b'{"path": "a.jpg", "score": 0.5, "error": null}\n{"path": "b.j')
    assert _paths(jsonl, "jsonl") == ["a.jpg"]
    tsv = tmp_path / "s.tsv"
    tsv.write_bytes(b"path\tscore\terror\nx\\ty.jpg\t0.5\t\nz.jpg\t\tcannot decode\nw.jp")
    rows = read_text_rows(tsv, "tsv")
    assert [(r.path, r.error) for r in rows] == [("x\ty.jpg", None), ("z.jpg", "cannot decode")]


def test_the_journal_holds_each_row_at_once_and_commit_is_atomic(tmp_path):
    out = tmp_path / "s.csv"
    out.write_text("previous\n")
    os.chmod(out, 0o640)
    store = _store(out)
    _write(store, range(3))
    assert out.read_text() == "previous\n"  # untouched until commit
    assert _paths(partial_path(out)) == ["p/000.jpg", "p/001.jpg", "p/002.jpg"]
    store.commit()
    assert _paths(out) == ["p/000.jpg", "p/001.jpg", "p/002.jpg"]
    assert not partial_path(out).exists() and stat.S_IMODE(out.stat().st_mode) == 0o640
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.csv"]


def test_new_files_get_the_umask_mode(tmp_path):
    old = os.umask(0o022)
    try:
        store = _store(tmp_path / "new.csv")
        store.commit()
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "new.csv").stat().st_mode) == 0o644


def test_a_failed_run_keeps_its_rows_and_the_old_file(tmp_path):
    out = tmp_path / "s.csv"
    out.write_text("previous\n")
    store = _store(out)
    _write(store, range(4))
    store.keep()
    assert out.read_text() == "previous\n"
    assert _paths(partial_path(out)) == [f"p/{i:03d}.jpg" for i in range(4)]
    empty = _store(tmp_path / "t.csv")
    empty.keep()  # nothing worth keeping: no partial file left behind
    assert not partial_path(tmp_path / "t.csv").exists()


def test_resume_keeps_the_carried_rows_through_every_crash(tmp_path):
    out = tmp_path / "s.jsonl"
    first = _store(out, fmt="jsonl")
    _write(first, range(3))
    first.keep()  # the first run crashed after 3 rows
    second = _store(out, fmt="jsonl", resume=True)
    assert [r.path for r in second.carried] == [f"p/{i:03d}.jpg" for i in range(3)]
    assert second.is_done("p/001.jpg") and not second.is_done("p/003.jpg")
    _write(second, range(3, 5))
    second.keep()  # and the resumed one crashed too: nothing it carried is lost
    third = _store(out, fmt="jsonl", resume=True)
    assert [r.path for r in third.carried] == [f"p/{i:03d}.jpg" for i in range(5)]
    assert read_done(str(out), "jsonl")("p/004.jpg")
    _write(third, range(5, 7))
    third.commit()
    assert _paths(out, "jsonl") == [f"p/{i:03d}.jpg" for i in range(7)]


def test_resume_merges_the_file_and_its_journal_once(tmp_path):
    out = tmp_path / "s.csv"
    done = _store(out)
    _write(done, range(2))
    done.commit()
    again = _store(out, resume=True)
    _write(again, [2])
    again.keep()
    merged = _store(out, resume=True)
    assert [r.path for r in merged.carried] == ["p/000.jpg", "p/001.jpg", "p/002.jpg"]


def test_rows_of_another_model_are_refused_saying_what_differs(tmp_path):
    out = tmp_path / "s.csv"
    store = _store(out)
    _write(store, range(2))
    store.commit()
    with pytest.raises(ConfigError, match="precision fp32, this run bf16") as refused:
        _store(out, resume=True, model=OTHER)
    assert refused.value.param == "resume" and "--" not in str(refused.value)
    assert _paths(out) == ["p/000.jpg", "p/001.jpg"]  # refused before anything changed
    out.write_text("path,score,error\nold.jpg,0.5,\n")  # written before rows named a model
    legacy = _store(out, resume=True)
    assert [r.path for r in legacy.carried] == ["old.jpg"]
    assert legacy.notes and "name no model" in legacy.notes[0]


def test_a_second_writer_is_refused_while_the_first_runs(tmp_path):
    out = tmp_path / "s.csv"
    first = _store(out)
    _write(first, range(2))
    code = (f"import sys; sys.path.insert(0, {os.getcwd()!r})\n"
            "from grmpiqa.io.stores import open_store\n"
            "from grmpiqa.errors import ConfigError\n"
            f"try:\n    open_store({str(out)!r}, 'csv', ['path'], ['path'])\n"
            "except ConfigError as exc:\n    print('REFUSED', exc)\n")
    other = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                           timeout=60)
    assert "REFUSED" in other.stdout and "another grmpiqa run" in other.stdout, other.stderr
    assert _paths(partial_path(out)) == ["p/000.jpg", "p/001.jpg"]  # the first run's rows
    first.commit()
    _store(out).commit()  # once the first is done, the next may write


def test_presented_rows_may_differ_from_the_journal(tmp_path):
    out = tmp_path / "s.csv"
    store = _store(out, same_order=False)
    for i in (3, 1, 2):
        store.journal(_row(i))
    store.present(_row(1))  # a filter kept one row, shown at the end
    assert _paths(partial_path(out)) == ["p/003.jpg", "p/001.jpg", "p/002.jpg"]
    store.commit()
    assert _paths(out) == ["p/001.jpg"] and not partial_path(out).exists()


def test_stdout_and_plain_files(tmp_path):
    import io

    buffer = io.BytesIO()
    stream = open_store(None, "csv", COLUMNS, COLUMNS, stream=buffer)
    stream.journal(_row(0))
    stream.present(_row(1))
    stream.commit()
    assert buffer.getvalue().decode().splitlines()[1].startswith("p/001.jpg,")
    with pytest.raises(ConfigError, match="needs an output file"):
        open_store(None, "csv", COLUMNS, COLUMNS, stream=buffer, resume=True)
    listing = open_store(str(tmp_path / "list.txt"), "paths", COLUMNS, COLUMNS)
    listing.present(_row(1))
    listing.commit()
    assert (tmp_path / "list.txt").read_bytes() == b"p/001.jpg\n"


def _full_disk(tmp_path):
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root")
    disk = tmp_path / "disk"
    disk.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(disk)],
                             capture_output=True, text=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip()}")
    return disk


def test_a_full_disk_is_a_plain_error_that_keeps_every_written_row(tmp_path):
    disk = _full_disk(tmp_path)
    try:
        out = disk / "s.csv"
        out.write_text("previous\n")
        store = _store(out)
        with pytest.raises(OutputError, match=r"s\.csv\.part \(No space left on device\)") as full:
            for i in range(100_000):
                store.journal(ScoreResult(f"p/{'x' * 200}{i:06d}.jpg", 0.5, model=MODEL.key))
        store.keep()
        assert full.value.kept > 0 and full.value.partial == str(partial_path(out))
        assert out.read_text() == "previous\n"
        kept = _paths(partial_path(out))
        assert len(kept) in (full.value.kept, full.value.kept - 1)  # the torn row is dropped
    finally:
        subprocess.run(["umount", str(disk)], check=False)


def test_an_injected_io_error_names_the_file(tmp_path, monkeypatch):
    out = tmp_path / "s.csv"
    store = _store(out)
    _write(store, range(2))

    def broken(*args, **kwargs):
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(store.file, "write", broken)
    with pytest.raises(OutputError, match=r"cannot write .*s\.csv\.part \(Input/output error\)"):
        store.journal(_row(2))
    store.keep()
    assert _paths(partial_path(out)) == ["p/000.jpg", "p/001.jpg"]


def test_text_store_refuses_formats_it_cannot_read_back(tmp_path):
    with pytest.raises(ValueError):
        TextStore(tmp_path / "x.txt", "paths", COLUMNS, COLUMNS)
