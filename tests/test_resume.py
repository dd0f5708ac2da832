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

from grmpiqa.io.atomic import partial_path
from photos import write_photo_tree


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
    assert result.exit_code == 2 and "--resume needs an output file in csv" in result.stderr


# A run that dies of an exception, or of a full disk, keeps what it scored: the injected
# fault runs the real command in a subprocess with one library function wrapped.
_INJECT = """
import errno, sys
from grmpiqa.jobs import rows
added = 0
real = rows.RowPipeline.add
def add(self, result):
    global added
    real(self, result)
    added += 1
    if added == {after}:
        {fault}
rows.RowPipeline.add = add
from grmpiqa.cli.app import main
main(sys.argv[1:])
"""


def _score_with_fault(args, env, after, fault):
    code = _INJECT.format(after=after, fault=fault)
    return subprocess.run([sys.executable, "-c", code, "score", *args], env=env,
                          capture_output=True, text=True, timeout=300)


@pytest.mark.slow
def test_an_exception_after_some_rows_keeps_them_for_resume(tiny_hub, shoot, reference,
                                                            tmp_path):
    env = _env(tiny_hub)
    out = tmp_path / "scores.csv"
    crashed = _score_with_fault([str(shoot), "-o", str(out), "-j", "0"], env, 4,
                                "raise RuntimeError('injected')")
    assert crashed.returncode == 3 and "injected" in crashed.stderr
    assert not out.exists() and len(_rows(partial_path(out))) == 4
    # resumed, and crashing again after two more: the carried rows survive the second crash
    again = _score_with_fault([str(shoot), "-o", str(out), "-j", "0", "--resume"], env, 2,
                              "raise RuntimeError('injected')")
    assert again.returncode == 3 and len(_rows(partial_path(out))) == 6
    finished = _score([str(shoot), "-o", str(out), "-j", "0", "--resume"], env)
    assert finished.returncode == 0, finished.stderr
    rows = _rows(out)
    assert [r["path"] for r in rows] == [r["path"] for r in reference]  # each once, in order
    for a, b in zip(rows, reference, strict=True):
        assert abs(float(a["score"]) - float(b["score"])) < 1e-5
    assert not partial_path(out).exists()


@pytest.mark.slow
def test_a_full_disk_is_one_plain_line_and_loses_nothing(tiny_hub, shoot, tmp_path):
    env = _env(tiny_hub)
    out = tmp_path / "scores.csv"
    out.write_text("path,score,error,model\nold.jpg,0.5,,x\n")
    full = _score_with_fault([str(shoot), "-o", str(out), "-j", "0"], env, 3,
                             "raise OSError(errno.ENOSPC, 'No space left on device', "
                             "str(self.store.part))")
    assert full.returncode == 4, full.stderr
    lines = [line for line in full.stderr.splitlines() if "error" in line]
    assert lines == [f"grmpiqa: error: {partial_path(out)}: No space left on device"]
    assert "Traceback" not in full.stderr and "internal error" not in full.stderr
    assert out.read_text().endswith("old.jpg,0.5,,x\n")  # the earlier output is intact
    assert len(_rows(partial_path(out))) == 3


def _tmpfs(tmp_path):
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root")
    disk = tmp_path / "disk"
    disk.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=24k", "tmpfs", str(disk)],
                             capture_output=True, text=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip()}")
    return disk


@pytest.mark.slow
def test_output_on_a_really_full_file_system(tiny_hub, shoot, tmp_path):
    disk = _tmpfs(tmp_path)
    try:
        out = disk / "scores.csv"
        out.write_text("path,score,error,model\nold.jpg,0.5,,x\n")
        subprocess.run(["dd", "if=/dev/zero", f"of={disk / 'filler'}", "bs=1k", "count=64"],
                       capture_output=True)
        run = _score([str(shoot), "-o", str(out), "-j", "0"], _env(tiny_hub))
        assert run.returncode == 2, run.stderr  # refused before the model loads
        assert "No space left on device" in run.stderr and str(out) in run.stderr
        assert "Traceback" not in run.stderr and "internal error" not in run.stderr
        assert out.read_text().endswith("old.jpg,0.5,,x\n")
    finally:
        subprocess.run(["umount", str(disk)], check=False)


@pytest.mark.slow
def test_resume_with_another_model_or_precision_is_refused(tiny_hub, shoot, tmp_path):
    env = _env(tiny_hub)
    out = tmp_path / "scores.csv"
    assert _score([str(shoot), "-o", str(out), "-j", "0"], env).returncode == 0
    before = out.read_bytes()
    for args, differs in ((["-m", "zeroshot-tiny"], "model grmp-tiny, this run zeroshot-tiny"),
                          (["--precision", "int8"], "precision fp32, this run int8"),
                          (["--fast-decode"], "decoding exact, this run fast")):
        refused = _score([str(shoot), "-o", str(out), "--resume", *args], env)
        assert refused.returncode == 2, refused.stderr
        assert "--resume" in refused.stderr and differs in refused.stderr
    assert out.read_bytes() == before and not partial_path(out).exists()


@pytest.mark.slow
def test_a_second_writer_of_the_same_output_is_refused(tiny_hub, shoot, tmp_path):
    env = _env(tiny_hub)
    out = tmp_path / "scores.csv"
    go_on = tmp_path / "go-on"
    # the first run waits after its second row until told to go on, holding the output
    wait = (f"import os, time\n        while not os.path.exists({str(go_on)!r}): "
            "time.sleep(0.05)")
    first = subprocess.Popen([sys.executable, "-c", _INJECT.format(after=2, fault=wait),
                              "score", str(shoot), "-o", str(out), "-j", "0"], env=env,
                             stderr=subprocess.PIPE, text=True)
    part = partial_path(out)
    deadline = time.monotonic() + 120
    while not (part.exists() and part.read_bytes().count(b"\n") >= 3):  # header + 2 rows
        assert time.monotonic() < deadline and first.poll() is None, "the first run stalled"
        time.sleep(0.05)
    second = _score([str(shoot), "-o", str(out), "-j", "0"], env)
    assert second.returncode == 2, second.stderr
    assert "being written by another grmpiqa run" in second.stderr
    go_on.touch()
    _, stderr = first.communicate(timeout=300)
    assert first.returncode == 0, stderr
    assert len(_rows(out)) == 12
