import csv
import io
import subprocess
import sys

import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from grmpiqa.cli.app import app
from grmpiqa.cli.common import Terminated
from grmpiqa.pretraining.distortions import DISTORTIONS
from grmpiqa.pretraining.meta import MetaTrainer
from grmpiqa.weights.formats import read_metadata
from pretrain_photos import photo_like, write_photos

runner = CliRunner()
FAST = ["--epochs", "2", "-b", "8", "--meta-lr", "1", "--inner-lr", "1e-2", "--seed", "1",
        "--distortions", "gaussian_blur,jpeg,white_noise"]


def test_pretrain_writes_weights_that_score_accepts(use_tiny_manifest, tmp_path):
    photos = tmp_path / "photos"
    write_photos(photos, 6, size=48)
    (photos / "broken.jpg").write_bytes(b"not a jpeg")
    out = tmp_path / "out" / "meta.safetensors"
    result = runner.invoke(app, ["pretrain", str(photos), "--out", str(out), *FAST])
    assert result.exit_code == 0, result.output
    assert result.stdout == ""  # stdout carries data only
    assert "broken.jpg" in result.stderr and "skipped" in result.stderr
    assert "wrote epoch" in result.stderr
    meta = read_metadata(out)
    training = meta.training
    assert training["stage"] == "meta-prompt pre-training"
    assert training["tasks"] == ["gaussian_blur", "jpeg", "white_noise"]
    assert training["photos"] == 6 and training["heldout_groups"] == 1
    assert training["epochs_completed"] == 2 and training["best_epoch"] in (1, 2)
    assert training["settings"]["meta_lr"] == 1.0 and not training["interrupted"]
    assert meta.label is None and meta.preprocess.mean[0] == pytest.approx(0.48145466)
    assert not list(out.parent.glob(".*.tmp"))
    scored = runner.invoke(app, ["score", str(photos), "-w", str(out), "-f", "csv"])
    assert scored.exit_code == 1, scored.output  # broken.jpg
    rows = list(csv.DictReader(io.StringIO(scored.stdout)))
    assert len(rows) == 7 and sum(1 for r in rows if r["score"]) == 6


def _kadid_like(root):
    """Three references x two distortion types x three levels, KADID-10k's column names."""
    images = root / "images"
    images.mkdir(parents=True)
    lines = ["dist_img,ref_img,dmos,var,noise"]
    for ref in range(4):
        base = torch.from_numpy(photo_like(ref, 48)).permute(2, 0, 1)[None].float() / 255
        for t, name in enumerate(("gaussian_blur", "jpeg")):
            for level in (1, 3, 5):
                out = DISTORTIONS[name](base, level, seed=ref)[0]
                file = f"I{ref:02d}_{t:02d}_{level:02d}.png"
                array = (out.permute(1, 2, 0) * 255).round().byte().numpy()
                Image.fromarray(array).save(images / file)
                lines.append(f"{file},I{ref:02d}.png,{5 - level * 0.7:.2f},0.1,{t + 1:02d}")
    (root / "labels.csv").write_text("\n".join(lines) + "\n")
    return images, root / "labels.csv"


def test_pretrain_on_a_labelled_set(use_tiny_manifest, tmp_path):
    images, labels = _kadid_like(tmp_path)
    out = tmp_path / "meta.safetensors"
    result = runner.invoke(app, ["pretrain", str(images), "--labels", str(labels), "-o",
                                 str(out), "--epochs", "1", "-b", "4", "--holdout", "1"])
    assert result.exit_code == 0, result.output
    training = read_metadata(out).training
    assert training["data"] == "labelled set" and training["tasks"] == ["01", "02"]
    assert training["groups"] == 4 and training["heldout_groups"] == 1


@pytest.mark.parametrize("signal, code", [(KeyboardInterrupt, 130), (Terminated, 143)])
def test_ctrl_c_keeps_the_last_complete_epoch(use_tiny_manifest, tmp_path, monkeypatch, signal,
                                              code):
    write_photos(tmp_path / "photos", 4, size=40)
    original = MetaTrainer.run_epoch

    def interrupted_at_2(self, epoch, progress=None):
        if epoch == 2:
            raise signal
        return original(self, epoch, progress)

    monkeypatch.setattr(MetaTrainer, "run_epoch", interrupted_at_2)
    out = tmp_path / "meta.safetensors"
    result = runner.invoke(app, ["pretrain", str(tmp_path / "photos"), "-o", str(out),
                                 *FAST[:2], "--epochs", "3", "--inner-steps", "1",
                                 "--distortions", "darken"])
    assert result.exit_code == code, result.output
    training = read_metadata(out).training
    assert training["interrupted"] and training["epochs_completed"] == 1
    assert training["best_epoch"] == 1

    monkeypatch.setattr(MetaTrainer, "run_epoch", lambda *a, **k: (_ for _ in ()).throw(
        KeyboardInterrupt()))
    out2 = tmp_path / "never.safetensors"
    result = runner.invoke(app, ["pretrain", str(tmp_path / "photos"), "-o", str(out2)])
    assert result.exit_code == 130 and "nothing written" in result.stderr
    assert not out2.exists()


@pytest.mark.parametrize("args, message", [
    (["missing-folder"], "not a folder"),
    (["{photos}", "--distortions", "jpeg,vaseline"], "unknown vaseline"),
    (["{few}"], "need at least 3"),
    (["{photos}", "--task-column", "x"], "need --labels"),
    (["{photos}", "--labels", "{photos}/nope.csv"], "no such file"),
    (["{photos}", "--inner-lr", "0"], "learning rates must be positive"),
    (["{photos}", "-m", "zeroshot-tiny"], "needs a 'grmp' model"),
])
def test_usage_errors_are_one_line_and_exit_2(use_tiny_manifest, tmp_path, args, message):
    write_photos(tmp_path / "photos", 3, size=40)
    write_photos(tmp_path / "few", 2, size=40)
    args = [a.format(photos=tmp_path / "photos", few=tmp_path / "few") for a in args]
    result = runner.invoke(app, ["pretrain", *args, "-o", str(tmp_path / "x.safetensors")])
    assert result.exit_code == 2, result.output
    assert message in result.stderr and "Traceback" not in result.output
    assert not (tmp_path / "x.safetensors").exists()


def test_pretrain_help_imports_neither_torch_nor_numpy():
    code = ("import sys\nfrom grmpiqa.cli.app import main\n"
            "try:\n    main(['pretrain', '--help'])\nexcept SystemExit:\n    pass\n"
            "print('IMPORTED', [m for m in ('torch', 'open_clip', 'numpy') if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120)
    assert "IMPORTED []" in out.stdout, out.stderr
    assert "--inner-steps" in out.stdout
