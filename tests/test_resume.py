"""Interruptions: SIGINT/SIGTERM save what was scored; --resume after any stop, even SIGKILL,
ends with every image exactly once."""

import csv
import io
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from PIL import Image

from grmpiqa.io.resume import done_rows, partial_path, read_rows
from photos import write_photo_tree


def test_torn_tails_are_dropped(tmp_path):
    path = tmp_path / "s.csv"
    path.write_bytes(b'path,score,error\na.jpg,0.500000,\n"b\nc.jpg",0.250000,\n"d.jpg",0.1')
    assert [r.path for r in read_rows(path, "csv")] == ["a.jpg", "b\nc.jpg"]
    path.write_bytes(b'path,score,error\na.jpg,0.500000,\n"torn\n')
    assert [r.path for r in read_rows(path, "csv")] == ["a.jpg"]
    jsonl = tmp_path / "s.jsonl"
    jsonl.write_bytes(b'{"path": "a.jpg", "score": 0.5, "error": null}\n{"path": "b.j')
    assert [r.path for r in read_rows(jsonl, "jsonl")] == ["a.jpg"]
    tsv = tmp_path / "s.tsv"
    tsv.write_bytes(b"path\tscore\terror\nx\\ty.jpg\t0.5\t\nz.jpg\t\tcannot decode\nw.jp")
    rows = read_rows(tsv, "tsv")
    assert [(r.path, r.error) for r in rows] == [("x\ty.jpg", None), ("z.jpg", "cannot decode")]


def test_done_rows_merge_file_and_part_once(tmp_path):
    out = tmp_path / "s.jsonl"
    out.write_text('{"path": "a.jpg", "score": 0.5, "error": null}\n')
    partial_path(out).write_text('{"path": "a.jpg", "score": 0.5, "error": null}\n'
                                 '{"path": "b.jpg", "score": null, "error": "no such file"}\n')
    assert [r.path for r in done_rows(out, "jsonl")] == ["a.jpg", "b.jpg"]


def _slow_png(path):
    ramp = np.linspace(0, 255, 4000, dtype=np.float32)
    Image.fromarray(np.stack([np.outer(ramp, np.ones(4000))] * 3, -1).astype(np.uint8)).save(
        path, compress_level=1)


@pytest.fixture(scope="module")
def shoot(tmp_path_factory):
    """Small photos with slow ones between them, so that a run can be caught mid-way."""
    root = tmp_path_factory.mktemp("shoot")
    made = write_photo_tree(root / "src")
    _slow_png(root / "slow.png")
    photos = root / "photos"
    photos.mkdir()
    for i in range(12):
        source = root / "slow.png" if i % 4 == 3 else made[i % len(made)]
        (photos / f"{i:02d}{source.suffix}").write_bytes(source.read_bytes())
    return photos


def _env(tiny_hub):
    env = {**os.environ, "GRMPIQA_MANIFEST": str(tiny_hub.manifest_path)}
    env.pop("PYTHONUNBUFFERED", None)
    return env


def _score(args, env):
    return subprocess.run([sys.executable, "-m", "grmpiqa", "score", *args], env=env,
                          capture_output=True, text=True, timeout=300)


def _rows(path):
    return list(csv.DictReader(io.StringIO(path.read_text(), newline="")))


def _start_and_stop(shoot, out, env, how):
    proc = subprocess.Popen([sys.executable, "-m", "grmpiqa", "score", str(shoot), "-o",
                             str(out), "-b", "1", "-j", "0"], env=env, stderr=subprocess.PIPE)
    part = partial_path(out)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if part.exists() and part.read_bytes().count(b"\n") >= 4:  # header + 3 rows
            break
        time.sleep(0.05)
    else:
        proc.kill()
        pytest.fail("the run never got going")
    proc.send_signal(how)
    _, stderr = proc.communicate(timeout=120)
    return proc.returncode, stderr.decode()


@pytest.fixture(scope="module")
def reference(tiny_hub, shoot, tmp_path_factory):
    out = tmp_path_factory.mktemp("reference") / "reference.csv"
    assert _score([str(shoot), "-o", str(out), "-j", "0"], _env(tiny_hub)).returncode == 0
    return _rows(out)


@pytest.mark.parametrize(("how", "code"), [(signal.SIGKILL, -9), (signal.SIGTERM, 143),
                                           (signal.SIGINT, 130)])
@pytest.mark.slow
def test_a_stopped_run_resumes_to_every_image_exactly_once(tiny_hub, shoot, reference,
                                                            tmp_path, how, code):
    env = _env(tiny_hub)
    out = tmp_path / "scores.csv"
    returncode, stderr = _start_and_stop(shoot, out, env, how)
    assert returncode == code, stderr
    if how == signal.SIGKILL:
        assert not out.exists() and partial_path(out).exists()
    else:  # the rows scored before the signal are saved in FILE itself
        saved = _rows(out)
        assert 3 <= len(saved) < 12 and "--resume" in stderr
        assert not partial_path(out).exists()
    resumed = _score([str(shoot), "-o", str(out), "--resume", "-j", "0"], env)
    assert resumed.returncode == 0, resumed.stderr
    rows = _rows(out)
    expected = reference
    assert [r["path"] for r in rows] == [r["path"] for r in expected]  # each once, in order
    for a, b in zip(rows, expected, strict=True):
        assert abs(float(a["score"]) - float(b["score"])) < 1e-5
    assert not partial_path(out).exists()


@pytest.mark.slow
def test_resume_with_nothing_missing_and_jsonl(tiny_hub, shoot, tmp_path):
    env = _env(tiny_hub)
    out = tmp_path / "scores.jsonl"
    assert _score([str(shoot), "-o", str(out), "-j", "0"], env).returncode == 0
    before = out.read_text()
    again = _score([str(shoot), "-o", str(out), "--resume"], env)
    assert again.returncode == 0 and out.read_text() == before
    assert len([json.loads(line) for line in before.splitlines()]) == 12


def test_resume_needs_an_output_file(use_tiny_manifest, tmp_path):
    from typer.testing import CliRunner

    from grmpiqa.cli.app import app

    result = CliRunner().invoke(app, ["score", str(tmp_path), "--resume"])
    assert result.exit_code == 2 and "--output" in result.output
    result = CliRunner().invoke(app, ["score", str(tmp_path), "--resume", "-o",
                                      str(tmp_path / "x.txt"), "-f", "table"])
    assert result.exit_code == 2 and "--resume needs --format" in result.stderr
