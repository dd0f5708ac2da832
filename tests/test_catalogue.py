"""The score catalogue: a photo is scored once per model, and later runs reuse it."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

import grmpiqa
from grmpiqa.catalogue.store import Catalogue, Entry, Remembered, stat_of
from grmpiqa.cli.app import app
from grmpiqa.scoring import engine
from grmpiqa.weights import loading
from photos import texture

REPO = Path(__file__).resolve().parents[1]


class Counts:
    def __init__(self) -> None:
        self.forward = self.loads = 0


@pytest.fixture
def counted(monkeypatch) -> Counts:
    """Counts the model's forward passes (images) and the models loaded."""
    counts = Counts()
    run, load = engine.BackoffPredictor._run, loading.load_model

    def counting_run(self, pixels):
        counts.forward += pixels.shape[0]
        return run(self, pixels)

    def counting_load(*args, **kwargs):
        counts.loads += 1
        return load(*args, **kwargs)

    monkeypatch.setattr(engine.BackoffPredictor, "_run", counting_run)
    monkeypatch.setattr(loading, "load_model", counting_load)
    return counts


def _shoot(root: Path, n: int = 4, ext: str = "jpg") -> list[str]:
    root.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(n):
        path = root / f"IMG_{i}.{ext}"
        Image.fromarray(texture(i, (64, 48))).save(path)
        paths.append(str(path))
    return paths


def _scores(paths, **kwargs) -> list[float | None]:
    return [r.score for r in grmpiqa.score_paths(paths, workers=0, expand=False, **kwargs)]


def _catalogue() -> Path:
    return Path(os.environ["GRMPIQA_CATALOGUE"])


def test_a_remembered_score_is_the_fresh_one_bit_for_bit(use_tiny_manifest, tmp_path, counted):
    paths = _shoot(tmp_path / "shoot")
    fresh = _scores(paths, catalogue=False)
    first = _scores(paths)
    assert counted.loads == 2 and counted.forward == 2 * len(paths)
    again = _scores(paths)
    assert counted.loads == 2 and counted.forward == 2 * len(paths)  # nothing loaded, nothing run
    assert again == first == fresh  # float equality: the same bits
    assert all(s is not None for s in again)


def test_features_come_back_for_bursts(use_tiny_manifest, tmp_path, counted):
    paths = _shoot(tmp_path / "shoot", 3)
    first = list(grmpiqa.score_paths(paths, workers=0, features=True))
    again = list(grmpiqa.score_paths(paths, workers=0, features=True))
    assert counted.forward == len(paths)
    for a, b in zip(first, again, strict=True):
        assert a.features.phash == b.features.phash and a.features.layout == b.features.layout
        assert np.array_equal(a.embedding, b.embedding) and b.embedding.dtype == np.float32


def test_another_model_precision_or_decoding_misses(use_tiny_manifest, tmp_path, counted):
    paths = _shoot(tmp_path / "shoot", 2)
    job = grmpiqa.ScoreJob(inputs=paths, output=str(tmp_path / "a.csv"),
                           model=grmpiqa.ModelOptions(workers=0))
    grmpiqa.score(job)
    assert counted.forward == 2
    for i, options in enumerate([grmpiqa.ModelOptions(workers=0, fast_decode=True),
                                 grmpiqa.ModelOptions(workers=0, precision="int8")]):
        grmpiqa.score(grmpiqa.ScoreJob(inputs=paths, output=str(tmp_path / f"b{i}.csv"),
                                       model=options))
        assert counted.forward == 2 * (i + 2)
    grmpiqa.score(grmpiqa.ScoreJob(inputs=paths, output=str(tmp_path / "c.csv"),
                                   model=grmpiqa.ModelOptions(workers=0)))
    assert counted.forward == 6 and counted.loads == 3


def test_a_score_is_never_served_for_another_key(tmp_path):
    path = _shoot(tmp_path / "shoot", 1)[0]
    catalogue = Catalogue(tmp_path / "c.sqlite", pytest.fail)
    entry = Entry(path, stat_of(path), b"x" * 16)
    catalogue.remember("m:fp32:exact:aaaaaaaaaaaa", [Remembered(entry, 0.25, None)])
    assert catalogue.contents({path: entry.stat}) == {path: entry.content}
    assert catalogue.scores({path: entry.content}, "m:fp32:exact:aaaaaaaaaaaa",
                            features=False)[path].score == 0.25
    for other in ("m:fp32:exact:bbbbbbbbbbbb", "m:bf16:exact:aaaaaaaaaaaa"):
        assert catalogue.scores({path: entry.content}, other, features=False) == {}
    # asked for features, a row stored without them is no hit
    assert catalogue.scores({path: entry.content}, "m:fp32:exact:aaaaaaaaaaaa",
                            features=True) == {}


def test_edited_in_place_with_mtime_restored_misses_and_moved_hits(use_tiny_manifest, tmp_path,
                                                                   counted):
    paths = _shoot(tmp_path / "shoot", 2, ext="bmp")
    _scores(paths)
    assert counted.forward == 2
    edited = Path(paths[0])
    before = edited.stat()
    data = bytearray(edited.read_bytes())
    data[-1] ^= 0xFF  # one pixel byte: same size, still a photo
    edited.write_bytes(bytes(data))
    os.utime(edited, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert (edited.stat().st_size, edited.stat().st_mtime_ns) == (before.st_size,
                                                                  before.st_mtime_ns)
    _scores(paths)
    assert counted.forward == 3  # the edited one only
    (tmp_path / "moved").mkdir()
    moved = str(tmp_path / "moved" / "renamed.bmp")
    os.rename(paths[1], moved)
    _scores([moved])
    assert counted.forward == 3 and counted.loads == 2


def test_cull_after_score_runs_no_forward_pass(use_tiny_manifest, tmp_path, counted):
    _shoot(tmp_path / "shoot", 4)
    grmpiqa.score(grmpiqa.ScoreJob(inputs=[str(tmp_path / "shoot")],
                                   output=str(tmp_path / "s.csv"),
                                   model=grmpiqa.ModelOptions(workers=0)))
    assert counted.forward == 4 and counted.loads == 1
    for dry_run in (True, False):
        run = grmpiqa.cull(str(tmp_path / "shoot"), str(tmp_path / "out"), below=2.0,
                           mode="move", dry_run=dry_run, workers=0)
        actions = list(run)
        assert len([a for a in actions if a.action == "move" and not a.error]) == 4
    assert counted.forward == 4 and counted.loads == 1
    assert len(list((tmp_path / "out").glob("*.jpg"))) == 4
    # the moved photos are still known
    _scores(sorted(str(p) for p in (tmp_path / "out").glob("*.jpg")))
    assert counted.forward == 4 and counted.loads == 1


@pytest.mark.parametrize("damage", ["garbage", "truncated"])
def test_a_damaged_catalogue_is_set_aside_with_a_warning(use_tiny_manifest, tmp_path, damage,
                                                         counted):
    paths = _shoot(tmp_path / "shoot", 3)
    where = _catalogue()
    if damage == "garbage":
        where.parent.mkdir(parents=True, exist_ok=True)
        where.write_bytes(b"this is not a database" * 300)
    else:
        _scores(paths)
        db = sqlite3.connect(where)
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        db.close()
        where.write_bytes(where.read_bytes()[: where.stat().st_size // 2])
    warnings: list[str] = []

    class Listener:
        def advance(self, n=1): pass
        def message(self, text): pass
        def warn(self, text): warnings.append(text)

    run = grmpiqa.score(grmpiqa.ScoreJob(inputs=paths, output=str(tmp_path / "s.csv"),
                                         model=grmpiqa.ModelOptions(workers=0)), Listener())
    assert run.scored == 3 and run.ok
    assert len(warnings) == 1 and "damaged" in warnings[0] and "moved aside" in warnings[0]
    assert list(where.parent.glob(f"{where.name}.damaged-*"))
    before = counted.forward
    _scores(paths)  # the new catalogue remembered this run
    assert counted.forward == before


def test_a_read_only_cache_folder_scores_with_one_warning(use_tiny_manifest, tmp_path,
                                                         monkeypatch):
    paths = _shoot(tmp_path / "shoot", 2)
    folder = tmp_path / "ro"
    folder.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=1m", "tmpfs", str(folder)],
                      capture_output=True).returncode != 0:
        pytest.skip("needs root to mount a read-only tmpfs")
    try:
        monkeypatch.setenv("GRMPIQA_CATALOGUE", str(folder / "catalogue.sqlite"))
        done = CliRunner().invoke(app, ["score", *paths, "-j", "0", "-q", "--format", "csv"])
    finally:
        subprocess.run(["umount", str(folder)], check=True)
    assert done.exit_code == 0, done.output
    assert done.stdout.count(".jpg") == 2
    assert done.stderr.count("scores are not remembered this run") == 1


def test_no_cache_touches_no_catalogue(use_tiny_manifest, tmp_path):
    paths = _shoot(tmp_path / "shoot", 2)
    done = CliRunner().invoke(app, ["score", *paths, "-j", "0", "-q", "--no-cache",
                                    "--format", "csv"])
    assert done.exit_code == 0, done.output
    assert done.stdout.count(".jpg") == 2
    assert not _catalogue().exists()


def test_cache_command_shows_prunes_and_clears(use_tiny_manifest, tmp_path):
    paths = _shoot(tmp_path / "shoot", 3)
    _scores(paths)
    shown = CliRunner().invoke(app, ["cache", "--json"])
    assert shown.exit_code == 0, shown.output
    import json

    summary = json.loads(shown.stdout)
    assert summary["files"] == 3 and [m["photos"] for m in summary["models"]] == [3]
    os.remove(paths[0])
    pruned = CliRunner().invoke(app, ["cache", "prune"])
    assert pruned.exit_code == 0, pruned.output
    assert "forgot 1 files no longer on disk, 1 scores and 0 models" in pruned.stderr
    assert json.loads(CliRunner().invoke(app, ["cache", "--json"]).stdout)["files"] == 2
    cleared = CliRunner().invoke(app, ["cache", "clear"])
    assert cleared.exit_code == 0 and "forgot 2 scores" in cleared.stderr
    assert json.loads(CliRunner().invoke(app, ["cache", "--json"]).stdout)["models"] == []


@pytest.mark.slow
def test_four_concurrent_shard_writers_all_land_their_rows(use_tiny_manifest, tmp_path):
    paths = _shoot(tmp_path / "shoot", 8)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    jobs = [subprocess.Popen([sys.executable, "-m", "grmpiqa", "score", str(tmp_path / "shoot"),
                              "--shard", f"{k}/4", "-o", str(tmp_path / f"s{k}.csv"), "-j", "0",
                              "-q", "-b", "1"], env=env, stderr=subprocess.PIPE, text=True)
            for k in range(4)]
    errors = [job.communicate(timeout=300)[1] for job in jobs]
    assert [job.returncode for job in jobs] == [0, 0, 0, 0], errors
    assert not any(errors), errors
    db = sqlite3.connect(_catalogue())
    assert db.execute("SELECT count(*) FROM scores").fetchone()[0] == len(paths)
    assert db.execute("SELECT count(*) FROM files").fetchone()[0] == len(paths)


def test_explanations_are_remembered_beside_the_score(use_tiny_manifest, tmp_path, counted):
    paths = _shoot(tmp_path / "shoot", 3)
    plain = _scores(paths)
    assert counted.forward == 3
    first = list(grmpiqa.score_paths(paths, workers=0, expand=False, explain=True))
    assert counted.forward == 6  # a stored score without its explanation is measured again
    again = list(grmpiqa.score_paths(paths, workers=0, expand=False, explain=True))
    assert counted.forward == 6 and counted.loads == 2
    assert [r.score for r in again] == [r.score for r in first] == plain
    assert [r.explanation for r in again] == [r.explanation for r in first]
    assert all(r.explanation is not None for r in again)
    rows = sqlite3.connect(_catalogue()).execute("SELECT COUNT(*) FROM explanations").fetchone()
    assert rows == (3,)


def _adapted_weights(model, path: Path, shift: float) -> str:
    """``model``'s learned tensors, the prompt shifted by ``shift``, saved as grmpiqa weights."""
    from grmpiqa.weights.formats import WeightsMetadata, save_weights

    tensors = {k: v.clone() for k, v in model.learned_state().items()}
    name = next(k for k in tensors if tensors[k].is_floating_point())
    tensors[name] += shift
    save_weights(path, tensors, WeightsMetadata(model.backbone_spec, model.config,
                                                model.preprocess, source="test"))
    return str(path)


def test_a_changed_weights_file_misses(use_tiny_manifest, tiny_model, tmp_path, counted):
    paths = _shoot(tmp_path / "shoot", 2)
    weights = _adapted_weights(tiny_model, tmp_path / "mine.safetensors", 0.0)
    _scores(paths, model=weights)
    _scores(paths, model=weights)
    assert counted.forward == 2
    _adapted_weights(tiny_model, tmp_path / "mine.safetensors", 0.5)  # retrained in place
    _scores(paths, model=weights)
    assert counted.forward == 4


def test_a_full_disk_scores_with_one_warning(use_tiny_manifest, tmp_path, monkeypatch):
    paths = _shoot(tmp_path / "shoot", 40)
    folder = tmp_path / "full"
    folder.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(folder)],
                      capture_output=True).returncode != 0:
        pytest.skip("needs root to mount a small tmpfs")
    try:
        (folder / "filler").write_bytes(bytes(40_000))
        monkeypatch.setenv("GRMPIQA_CATALOGUE", str(folder / "catalogue.sqlite"))
        done = CliRunner().invoke(app, ["score", *paths, "-j", "0", "-q", "--format", "csv"])
    finally:
        subprocess.run(["umount", str(folder)], check=True)
    assert done.exit_code == 0, done.output
    assert done.stdout.count(".jpg") == len(paths)
    assert done.stderr.count("scores are not remembered this run") == 1, done.stderr


@pytest.mark.slow
def test_a_killed_run_leaves_whole_rows(use_tiny_manifest, tmp_path):
    import signal
    import time

    paths = _shoot(tmp_path / "shoot", 200)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    job = subprocess.Popen([sys.executable, "-m", "grmpiqa", "score", str(tmp_path / "shoot"),
                            "-o", str(tmp_path / "s.csv"), "-j", "0", "-q", "-b", "1"],
                           env=env, stderr=subprocess.PIPE)
    db_path = _catalogue()
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:  # until a first transaction landed
        if db_path.exists() and sqlite3.connect(db_path).execute(
                "SELECT count(*) FROM sqlite_master WHERE name='scores'").fetchone()[0] and \
                sqlite3.connect(db_path).execute("SELECT count(*) FROM scores").fetchone()[0]:
            break
        time.sleep(0.05)
    job.send_signal(signal.SIGKILL)
    job.wait(timeout=60)
    db = sqlite3.connect(db_path)
    assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    stored = db.execute("SELECT count(*) FROM scores").fetchone()[0]
    assert 0 < stored < len(paths)
    assert db.execute("SELECT count(*) FROM scores s WHERE NOT EXISTS (SELECT 1 FROM files f "
                      "WHERE f.content = s.content)").fetchone() == (0,)
    db.close()
    again = _scores(paths)  # the rows left are scored, the stored ones served
    # the killed run scored one photo per batch: float sums differ in the last bits
    assert again == pytest.approx(_scores(paths, catalogue=False), abs=1e-5)
