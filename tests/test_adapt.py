import json

import pytest
import torch
from safetensors.torch import load_file
from typer.testing import CliRunner

import grmpiqa
from grmpiqa.cli.app import app
from grmpiqa.config import LabelScale
from grmpiqa.errors import ConfigError
from grmpiqa.io.images import open_image
from grmpiqa.training.finetune import FewShotTrainer
from grmpiqa.weights.formats import read_metadata, read_weights
from labelled import write_noise_labels

runner = CliRunner()
FAST = {"model": "grmp-tiny", "device": "cpu", "workers": 0}


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny models gain nothing from threads, and lose a lot on a busy shared machine."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _tensors_equal(a, b):
    ta, tb = load_file(str(a)), load_file(str(b))
    return ta.keys() == tb.keys() and all(torch.equal(ta[k], tb[k]) for k in ta)


@pytest.mark.slow
def test_adapt_learns_a_quality_signal_and_the_file_round_trips(use_tiny_manifest, tmp_path):
    csv = write_noise_labels(tmp_path / "photos", 60, seed=0)
    out = tmp_path / "mine.safetensors"
    # lr 0.1: at the tiny model's logit scale of 100 a larger step overshoots
    result = grmpiqa.adapt(csv, out, epochs=60, lr=0.1, seed=0, **FAST)
    summary = result.summary
    assert summary["val_images"] == 12 and summary["train_images"] == 48
    # Noise strength is learnable: validation SRCC ends far above where it started.
    assert summary["start_val_srcc"] < 0.3
    assert summary["val_srcc"] >= 0.7
    assert summary["val_srcc"] - summary["start_val_srcc"] >= 0.5

    cli = runner.invoke(app, ["score", str(tmp_path / "photos"), "-w", str(out), "-f", "jsonl",
                              "-j", "0", "-d", "cpu"])
    assert cli.exit_code == 0, cli.output
    rows = [json.loads(line) for line in cli.stdout.splitlines()]
    assert len(rows) == 60
    in_memory = result.model.score([open_image(r["path"]) for r in rows])
    assert max(abs(r["score"] - s) for r, s in zip(rows, in_memory, strict=True)) < 1e-5
    labels = [float(line.split(",")[1]) for line in csv.read_text().splitlines()[1:]]
    scale = LabelScale(min(labels), max(labels))
    for row in rows:  # the user's own scale comes back as score_label
        assert row["score_label"] == pytest.approx(scale.to_label(row["score"]), abs=1e-4)

    tensors, meta = read_weights(out)
    assert meta.label == scale and meta.backbone == result.model.backbone_spec
    assert meta.config == result.model.config and meta.preprocess == result.model.preprocess
    for key in ("labels", "val_srcc", "val_plcc", "lambda", "seed", "grmpiqa_version"):
        assert meta.training[key] == summary[key]
    # Only what differs from the backbone: the GRMP tensors and the trained blocks.
    clip_keys = {k for k in tensors if k.startswith("clip.")}
    assert clip_keys and all(".resblocks.2." in k or ".ln_" in k for k in clip_keys)
    assert set(tensors) - clip_keys == set(result.model.learned_state())
    assert grmpiqa.load_model(out, device="cpu").label == scale
    if summary["stopped"] == "epoch limit":  # the run could go on: its checkpoint is kept
        assert result.checkpoint == tmp_path / "mine.checkpoint.safetensors"
    else:  # the early schedule ended the run: nothing left to resume
        assert summary["stopped"].startswith("validation stopped improving")
        assert result.checkpoint is None
        assert not (tmp_path / "mine.checkpoint.safetensors").exists()


def test_bad_labels_stop_before_training_and_write_nothing(use_tiny_manifest, tmp_path):
    csv = write_noise_labels(tmp_path / "photos", 10)
    (tmp_path / "photos" / "p003.png").write_bytes(b"\x89PNG not really")
    with csv.open("a") as handle:
        handle.write("p001.png,4\ngone.png,3\np_extra.png,\n")
    out = tmp_path / "out" / "mine.safetensors"
    result = runner.invoke(app, ["adapt", str(csv), "-o", str(out), "-j", "0"])
    assert result.exit_code == 2
    err = result.stderr
    assert "5 problems (fix them and run again)" in err
    assert "line 5: image 'p003.png' cannot be used: not an image Pillow can read" in err
    assert "line 12: image 'p001.png' is listed twice (also on line 3)" in err
    assert "line 13: image 'gone.png' is missing" in err and "line 14: no score" in err
    assert "only 9 usable rows; adapt needs at least 8" not in err
    assert "Traceback" not in result.output
    assert not (tmp_path / "out").exists()
    bad = runner.invoke(app, ["adapt", str(csv), "-o", str(tmp_path / "mine.pt")])
    assert bad.exit_code == 2 and "*.safetensors" in bad.stderr


def test_too_few_usable_rows_is_a_problem_too(use_tiny_manifest, tmp_path):
    csv = write_noise_labels(tmp_path / "photos", 8)
    (tmp_path / "photos" / "p000.png").write_bytes(b"")
    result = runner.invoke(app, ["adapt", str(csv), "-o", str(tmp_path / "m.safetensors")])
    assert result.exit_code == 2
    assert "line 2: image 'p000.png' cannot be used: empty file" in result.stderr
    assert "only 7 usable rows; adapt needs at least 8" in result.stderr


def test_same_seed_same_weights_and_resume_repeats_the_run(use_tiny_manifest, tmp_path):
    csv = write_noise_labels(tmp_path / "photos", 30)
    common = {**FAST, "epochs": 6, "eval_every": 2, "lr": 0.5}
    grmpiqa.adapt(csv, tmp_path / "a.safetensors", **common)
    grmpiqa.adapt(csv, tmp_path / "b.safetensors", **common)
    assert _tensors_equal(tmp_path / "a.safetensors", tmp_path / "b.safetensors")
    grmpiqa.adapt(csv, tmp_path / "c.safetensors", **{**common, "seed": 1})
    assert not _tensors_equal(tmp_path / "a.safetensors", tmp_path / "c.safetensors")

    def stop_at_4(record):
        if record.epoch == 4:
            raise KeyboardInterrupt

    first = grmpiqa.adapt(csv, tmp_path / "d.safetensors", on_evaluation=stop_at_4, **common)
    assert first.interrupted and first.summary["epochs"] == 4
    assert (tmp_path / "d.safetensors").exists()  # the best weights so far
    assert first.checkpoint == tmp_path / "d.checkpoint.safetensors"
    resumed = grmpiqa.adapt(csv, tmp_path / "d.safetensors", resume=True, **common)
    assert resumed.summary["epochs"] == 6 and [r.epoch for r in resumed.history] == [0, 2, 4, 6]
    assert _tensors_equal(tmp_path / "a.safetensors", tmp_path / "d.safetensors")
    with pytest.raises(ConfigError, match="belongs to another run"):
        grmpiqa.adapt(csv, tmp_path / "d.safetensors", resume=True, **{**common, "lr": 0.1})
    with pytest.raises(ConfigError, match="no checkpoint"):
        grmpiqa.adapt(csv, tmp_path / "e.safetensors", resume=True, **common)


def test_ctrl_c_keeps_the_best_weights_and_exits_130(use_tiny_manifest, tmp_path, monkeypatch):
    csv = write_noise_labels(tmp_path / "photos", 20)
    real = FewShotTrainer.train_epoch
    calls = []

    def interrupted_epoch(self):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real(self)

    monkeypatch.setattr(FewShotTrainer, "train_epoch", interrupted_epoch)
    out = tmp_path / "mine.safetensors"
    result = runner.invoke(app, ["adapt", str(csv), "-o", str(out), "--eval-every", "2",
                                 "--epochs", "10", "-j", "0", "-d", "cpu"])
    assert result.exit_code == 130
    assert "interrupted: best weights so far written to" in result.stderr
    assert read_metadata(out).training["stopped"] == "interrupted"
    assert (tmp_path / "mine.checkpoint.safetensors").exists()


def test_prompts_mode_without_validation_dmos_and_init(use_tiny_manifest, tmp_path):
    csv = write_noise_labels(tmp_path / "photos", 12, lower_is_better=True)
    out = tmp_path / "prompts.safetensors"
    result = runner.invoke(app, ["adapt", str(csv), "-o", str(out), "--trainable", "prompts",
                                 "--lambda", "0", "--epochs", "2", "--lower-is-better", "-j",
                                 "0", "-d", "cpu", "--lr", "0.1"])
    assert result.exit_code == 0, result.output
    # issue 24 item 11: said plainly, no parentheses inside parentheses
    (start,) = [line for line in result.stderr.splitlines() if "adapting" in line]
    assert "on 12 labels, all for training (too few to hold some back for validation), " \
        "batch" in start, start
    tensors, meta = read_weights(out)
    assert meta.label is not None and not meta.label.higher_is_better
    assert meta.training["selection"].startswith("training loss")
    assert meta.training["val_srcc"] is None and meta.training["trainable"] == "prompts"
    start = grmpiqa.load_model("grmp-tiny", device="cpu").state_dict()
    for key in (k for k in tensors if k.startswith("clip.")):  # the backbone did not move
        assert torch.equal(tensors[key], start[key])
    assert not torch.equal(tensors["text_context.ctx"], start["text_context.ctx"])

    again = tmp_path / "again.safetensors"
    result = runner.invoke(app, ["adapt", str(csv), "-o", str(again), "--init", str(out),
                                 "--epochs", "1", "--lower-is-better", "-j", "0", "-d", "cpu"])
    assert result.exit_code == 0, result.output
    assert read_metadata(again).training["start"].startswith(str(out))


def test_a_zero_shot_model_cannot_be_adapted(use_tiny_manifest, tmp_path):
    csv = write_noise_labels(tmp_path / "photos", 8)
    result = runner.invoke(app, ["adapt", str(csv), "-o", str(tmp_path / "z.safetensors"),
                                 "-m", "zeroshot-tiny", "-j", "0"])
    assert result.exit_code == 2 and "only a GRMP model" in result.stderr


def test_the_public_adapt_stays_a_function_after_its_module_is_imported():
    import grmpiqa.training.adaptation

    assert callable(grmpiqa.adapt) and grmpiqa.adapt.__module__ == "grmpiqa.training.adaptation"


def test_restoring_the_best_weights_also_restores_the_scores(tiny_hub, tmp_path):
    """The model caches its class text features in eval mode; restoring must not keep
    the features of the last epoch when the best one was earlier."""
    from grmpiqa.training.adaptation import pristine_reference
    from grmpiqa.training.finetune import AdaptOptions
    from grmpiqa.weights.loading import load_model
    from grmpiqa.weights.manifest import parse_manifest

    manifest = parse_manifest(tiny_hub.manifest, str(tiny_hub.manifest_path))
    model = load_model("grmp-tiny", device="cpu", manifest=manifest)
    pixels = torch.randint(0, 256, (12, 3, 36, 36), dtype=torch.uint8)
    _, teacher = pristine_reference(model, "full", True, tiny_hub.hf_cache)
    trainer = FewShotTrainer(model, pixels, [i / 11 for i in range(12)], list(range(12)), [],
                             AdaptOptions(lr=5.0), teacher=teacher)
    everything = torch.arange(12)
    before = trainer.predict(everything)
    trainer.optimizer = torch.optim.SGD(trainer.params, lr=5.0)
    trainer.train_epoch()
    moved = trainer.predict(everything)
    assert abs(moved - before).max() > 1e-3
    trainer.restore_best()  # nothing was better: the starting weights
    assert abs(trainer.predict(everything) - before).max() < 1e-6
