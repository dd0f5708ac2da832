"""adapt's schedules, its time estimate, and Ctrl-C before and after the first checkpoint."""

import os
import signal
import subprocess
import sys
import time

import pytest
import torch
from typer.testing import CliRunner

import grmpiqa
from grmpiqa.cli.app import app
from grmpiqa.cli.training_table import duration, estimate_line
from grmpiqa.training.schedule import AdaptOptions, TrainingState, schedule_ended
from labelled import write_noise_labels

runner = CliRunner()
FAST = {"model": "grmp-tiny", "device": "cpu", "workers": 0}


@pytest.fixture(autouse=True)
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def test_early_schedule_stops_after_patience_evaluations_without_gain():
    options = AdaptOptions(stop_patience=3)
    assert options.schedule == "early" and options.interval == 1
    state = TrainingState(lr=options.lr)
    assert state.after_evaluation(0.2, options)
    assert state.after_evaluation(0.5, options)
    assert not state.after_evaluation(0.5 + 1e-5, options)  # below the noise floor
    assert state.fewest_epochs_left(options) == 2
    assert not state.after_evaluation(0.4, options) and not state.stopped
    assert not state.after_evaluation(0.4, options)
    assert state.stopped.startswith("validation stopped improving")
    assert schedule_ended(state.stopped) and state.lr == options.lr  # no decay on the way
    assert state.fewest_epochs_left(options) == 0


def test_authors_schedule_decays_six_evaluations_apart_and_needs_210_epochs():
    options = AdaptOptions(schedule="authors")
    assert options.interval == 5
    state = TrainingState(lr=options.lr)
    assert state.after_evaluation(0.1, options)
    assert state.fewest_epochs_left(options) == 7 * 6 * 5  # 0.3^7 is the first below 5e-4
    evaluations = 0
    while not state.stopped:
        state.epoch += options.interval
        state.after_evaluation(0.0, options)
        evaluations += 1
        if evaluations == 6:
            assert state.lr == pytest.approx(1e-3 * 0.3)
    assert evaluations == 42 and state.epoch == 210 and state.lr < 5e-7
    assert schedule_ended(state.stopped) and state.stopped.startswith("learning rate")


def test_schedule_option_and_its_validation(use_tiny_manifest, tmp_path):
    csv = write_noise_labels(tmp_path / "photos", 30)
    authors = grmpiqa.adapt(csv, tmp_path / "a.safetensors", epochs=10, schedule="authors",
                            lr=0.5, **FAST)
    assert [r.epoch for r in authors.history] == [0, 5, 10]
    assert authors.summary["schedule"] == "authors"
    assert authors.summary["stopped"] == "epoch limit"
    early = grmpiqa.adapt(csv, tmp_path / "e.safetensors", epochs=200, lr=1e-6,
                          stop_patience=3, **FAST)
    # Evaluations one epoch apart; the run stops three evaluations after its best one.
    epochs = [r.epoch for r in early.history]
    assert epochs == list(range(len(epochs))) and len(epochs) < 200
    assert epochs[-1] - early.summary["best_epoch"] == 3
    assert early.summary["stopped"].startswith("validation stopped improving")
    assert early.checkpoint is None  # the schedule ended: nothing to resume
    result = runner.invoke(app, ["adapt", str(csv), "-o", str(tmp_path / "x.safetensors"),
                                 "--schedule", "fast", "-j", "0", "-d", "cpu"])
    assert result.exit_code == 2 and "schedule must be one of early, authors" in result.stderr


def test_the_estimate_line_and_the_eta(use_tiny_manifest, tmp_path):
    assert duration(42) == "42 s" and duration(600) == "10 min" and duration(4 * 3600) == "4.0 h"
    line = estimate_line({"epoch": 1, "seconds_per_epoch": 12.0, "fewest_left": 10,
                          "most_left": 1999})
    assert line == ("epoch 1 took 12.0 s here: at least 10 more epochs (about 2 min) before "
                    "the schedule can stop, at most 1999 (about 6.7 h); the estimate is "
                    "updated on the bar")
    csv = write_noise_labels(tmp_path / "photos", 30)
    result = runner.invoke(app, ["adapt", str(csv), "-o", str(tmp_path / "m.safetensors"),
                                 "--epochs", "4", "-j", "0", "-d", "cpu"])
    assert result.exit_code == 0, result.output
    lines = result.stderr.splitlines()
    estimates = [i for i, text in enumerate(lines) if " took " in text]
    assert len(estimates) == 1  # one line, after the first epoch
    assert lines[estimates[0]].startswith("grmpiqa: epoch 1 took ")
    assert "at least 3 more epochs" in lines[estimates[0]]
    assert any("ETA >= " in text for text in lines[estimates[0]:])  # later rows carry the ETA


INTERRUPTIBLE = """
import sys, time
from grmpiqa.training.finetune import FewShotTrainer
real = FewShotTrainer.train_epoch
def train_epoch(self):
    if self.state.epoch == {stop_at}:
        print("READY", file=sys.stderr, flush=True)
        time.sleep(120)
    return real(self)
FewShotTrainer.train_epoch = train_epoch
from grmpiqa.cli.app import main
main(sys.argv[1:])
"""


def _interrupt(csv, out, env, stop_at):
    """Run adapt in a subprocess, SIGINT it during epoch ``stop_at + 1``."""
    proc = subprocess.Popen(
        [sys.executable, "-c", INTERRUPTIBLE.format(stop_at=stop_at), "adapt", str(csv),
         "-o", str(out), "-j", "0", "-d", "cpu", "--epochs", "6"],
        env=env, stderr=subprocess.PIPE, text=True)
    seen = []
    deadline = time.monotonic() + 240
    for line in proc.stderr:
        seen.append(line)
        if line.startswith("READY") or time.monotonic() > deadline:
            break
    else:
        proc.kill()
        pytest.fail("adapt never reached the epoch:\n" + "".join(seen))
    proc.send_signal(signal.SIGINT)
    rest = proc.stderr.read()
    proc.wait(timeout=120)
    return proc.returncode, "".join(seen) + rest


def _adapt(args, env):
    return subprocess.run([sys.executable, "-m", "grmpiqa", "adapt", *args], env=env,
                          capture_output=True, text=True, timeout=300)


@pytest.mark.slow
def test_ctrl_c_before_and_after_the_first_checkpoint_then_resume(tiny_hub, tmp_path):
    env = {**os.environ, "GRMPIQA_MANIFEST": str(tiny_hub.manifest_path)}
    csv = write_noise_labels(tmp_path / "photos", 30)

    before = tmp_path / "before.safetensors"
    code, stderr = _interrupt(csv, before, env, stop_at=0)
    assert code == 130, stderr
    assert "nothing to resume" in stderr and "--resume" not in stderr
    assert before.exists() and not (tmp_path / "before.checkpoint.safetensors").exists()
    again = _adapt([str(csv), "-o", str(before), "--resume", "-j", "0", "-d", "cpu"], env)
    assert again.returncode == 2 and "no checkpoint" in again.stderr  # as the message said

    after = tmp_path / "after.safetensors"
    code, stderr = _interrupt(csv, after, env, stop_at=2)
    assert code == 130, stderr
    assert "continue with --resume" in stderr
    assert (tmp_path / "after.checkpoint.safetensors").exists()
    resumed = _adapt([str(csv), "-o", str(after), "--resume", "-j", "0", "-d", "cpu",
                      "--epochs", "6"], env)
    assert resumed.returncode == 0, resumed.stderr
    assert "resuming after epoch 1" in resumed.stderr
    whole = _adapt([str(csv), "-o", str(tmp_path / "whole.safetensors"), "-j", "0", "-d",
                    "cpu", "--epochs", "6"], env)
    assert whole.returncode == 0, whole.stderr
    from safetensors.torch import load_file

    a, b = load_file(str(after)), load_file(str(tmp_path / "whole.safetensors"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
