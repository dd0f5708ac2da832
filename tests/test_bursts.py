"""Burst grouping: the signals, the bounded grouping, and the acceptance set from LIVEC."""

import csv
import io
import os

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from bursts_set import adjusted_rand_index, exif_for, make_shoot
from grmpiqa.cli.app import app
from grmpiqa.io.signals import hamming, hash_and_layout, parse_exif_time, read_capture
from grmpiqa.results import Capture, PhotoFeatures, ScoreResult
from grmpiqa.workflow.bursts import (
    BurstOptions,
    assign,
    content_pairs,
    group_bursts,
    layout_correlation,
    time_pairs,
)

runner = CliRunner()


def _scene(seed, size=128):
    """Smooth random blobs: a photo-like picture whose hash depends on its layout."""
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (6, 6, 3), dtype=np.uint8)
    return Image.fromarray(small).resize((size, size), Image.Resampling.BICUBIC)


def test_hash_ignores_exposure_and_noise_but_not_content():
    base = _scene(1)
    darker = Image.fromarray((np.asarray(base) * 0.8).astype(np.uint8))
    noisy = np.asarray(base).astype(float) + np.random.default_rng(0).normal(0, 4, (128, 128, 3))
    noisy = Image.fromarray(np.clip(noisy, 0, 255).astype(np.uint8))
    h, layout = hash_and_layout(base)
    assert len(layout) == 16 * 16 * 3
    assert hamming(h, hash_and_layout(darker)[0]) <= 4
    assert hamming(h, hash_and_layout(noisy)[0]) <= 4
    assert min(hamming(h, hash_and_layout(_scene(s))[0]) for s in range(2, 12)) > 10


def test_layout_correlation_tolerates_a_one_cell_shift_and_exposure():
    a = np.random.default_rng(0).uniform(0, 255, (1, 16, 16, 3))
    shifted = np.roll(a, 1, axis=2) * 0.7 + 20
    other = np.random.default_rng(1).uniform(0, 255, (1, 16, 16, 3))
    assert layout_correlation(a, shifted)[0] > 0.85
    assert layout_correlation(a, other)[0] < 0.5


def test_exif_time_with_fraction_and_offset():
    assert parse_exif_time("2024:05:01 10:00:00", "25") == pytest.approx(1714557600.25)
    assert parse_exif_time("2024:05:01 12:00:00", "5", "+02:00") == pytest.approx(1714557600.5)
    assert parse_exif_time("0000:00:00 00:00:00") is None
    assert parse_exif_time("garbage") is None


def test_capture_is_read_from_the_header(tmp_path):
    from datetime import datetime

    path = tmp_path / "a.jpg"
    _scene(0).save(path, exif=exif_for(datetime(2024, 5, 1, 10, 0, 0, 120000),
                                       ("Canon", "EOS R6", "42")))
    assert read_capture(str(path)) == Capture(pytest.approx(1714557600.12), "Canon EOS R6 42")
    exif = exif_for(datetime(2024, 5, 1, 12, 0, 0), ("Sony", "A7", ""))
    exif.get_ifd(0x8769)[0x9010] = "+02:00"  # OffsetTime when OffsetTimeOriginal is absent
    _scene(0).save(tmp_path / "zoned.jpg", exif=exif)
    assert read_capture(str(tmp_path / "zoned.jpg")) == Capture(1714557600.0, "Sony A7")
    _scene(0).save(tmp_path / "plain.jpg")
    assert read_capture(str(tmp_path / "plain.jpg")) is None
    (tmp_path / "bad.jpg").write_bytes(b"\xff\xd8 not really")
    assert read_capture(str(tmp_path / "bad.jpg")) is None


def _result(name, score, image, capture=None, embedding=None):
    h, layout = hash_and_layout(image)
    return ScoreResult(name, score, features=PhotoFeatures(h, layout, embedding, capture))


def test_time_pairs_stay_within_one_camera_and_the_gap():
    pairs = time_pairs([0.0, 0.3, 0.6, 10.0, 0.1, None], ["a", "a", "a", "a", "b", ""],
                       gap=2.0, window=4)
    assert sorted(map(tuple, pairs.tolist())) == [(0, 1), (0, 2), (1, 2)]


def test_grouping_by_time_and_by_content():
    timed = [_result(f"t{i}", 0.5 + i / 10, _scene(1), Capture(100 + i * 0.2, "cam"))
             for i in range(3)]
    lone = _result("lone", 0.9, _scene(2), Capture(100.1, "cam"))  # same moment, other scene
    copies = [_result(f"c{i}", 0.3 + i / 10, _scene(3)) for i in range(2)]
    other = _result("other", 0.4, _scene(4))
    failed = ScoreResult("broken.jpg", None, "cannot decode")
    results = [*timed, lone, copies[0], failed, other, copies[1]]
    places = assign(results)
    assert places[5] is None
    ids = [p[0] if p else None for p in places]
    assert ids[0] == ids[1] == ids[2] != ids[3]
    assert ids[4] == ids[7] not in (ids[0], ids[6])
    assert [places[i][1] for i in (0, 1, 2)] == [3, 2, 1]  # best score ranks 1
    assert ids == [1, 1, 1, 3, 2, None, 4, 2]  # bursts of several first, then singles


def test_candidate_pairs_are_bounded():
    rng = np.random.default_rng(0)
    n = 2000
    hashes = rng.integers(0, 2**63, n, dtype=np.uint64)
    embeddings = rng.standard_normal((n, 16)).astype(np.float32)
    options = BurstOptions()
    pairs = content_pairs(hashes, embeddings, options)
    assert len(pairs) <= (1 + 2 * options.orderings) * options.window * n
    assert (pairs[:, 0] < pairs[:, 1]).all()


def test_adjusted_rand_index_helper():
    assert adjusted_rand_index([1, 1, 2, 2], [5, 5, 7, 7]) == 1.0
    assert adjusted_rand_index([1, 1, 2, 2], [1, 2, 1, 2]) < 0.0


# ---------------------------------------------------------------- acceptance (LIVEC)

@pytest.fixture(scope="module")
def shoots(tmp_path_factory, livec):
    sources = sorted((livec / "images").glob("*.JPG"))
    root = tmp_path_factory.mktemp("shoots")
    return {exif: make_shoot(root / ("exif" if exif else "plain"), sources, bursts=6,
                             singles=12, exif=exif, seed=11) for exif in (True, False)}


@pytest.mark.parametrize("exif", [True, False])
def test_generated_bursts_are_found(shoots, tiny_model, exif):
    shots = shoots[exif]
    bursts = group_bursts([str(s.path) for s in shots], tiny_model, workers=0)
    found = {frame.path: burst.id for burst in bursts for frame in burst.frames}
    ari = adjusted_rand_index([s.truth for s in shots], [found[str(s.path)] for s in shots])
    assert ari >= 0.9, ari
    for burst in bursts:
        assert [f.burst_rank for f in burst.frames] == list(range(1, len(burst) + 1))
        assert [f.score for f in burst.frames] == sorted((f.score for f in burst.frames),
                                                          reverse=True)


def test_cull_bursts_keeps_exactly_the_best_frame(shoots, tiny_model, use_tiny_manifest,
                                                  tmp_path):
    from grmpiqa.scoring.engine import score_paths

    shots = shoots[True]
    folder = shots[0].path.parent
    scores = {r.path: r.score for r in score_paths([str(folder)], tiny_model, workers=0)}
    out = runner.invoke(app, ["cull", str(folder), "--bursts", "--copy-to",
                              str(tmp_path / "rejects"), "-j", "0", "-q"])
    assert out.exit_code == 0, out.output
    rows = list(csv.DictReader(io.StringIO(out.stdout)))
    assert rows and all(r["reason"].startswith("burst ") for r in rows)
    culled = {r["source"] for r in rows}
    truth: dict[int, list[str]] = {}
    for shot in shots:
        truth.setdefault(shot.truth, []).append(str(shot.path))
    for members in truth.values():
        kept = [p for p in members if p not in culled]
        assert kept == [max(members, key=scores.__getitem__)]
    assert sorted(os.listdir(tmp_path / "rejects")) == sorted(
        os.path.basename(p) for p in culled) + [n for n in os.listdir(tmp_path / "rejects")
                                                if n.startswith("grmpiqa-cull-")]


def test_cull_bursts_and_below_both_apply_in_a_dry_run(shoots, use_tiny_manifest, tmp_path):
    folder = shoots[True][0].path.parent
    out = runner.invoke(app, ["cull", str(folder), "--bursts", "--below", "1", "--dry-run",
                              "--move-to", str(tmp_path / "r"), "-j", "0"])
    assert out.exit_code == 0, out.output
    rows = list(csv.DictReader(io.StringIO(out.stdout)))
    assert len(rows) == len(shoots[True])  # everything is below 1
    assert any(r["reason"] == "below 1" for r in rows)
    assert any(r["reason"].startswith("below 1; burst ") for r in rows)
    assert not (tmp_path / "r").exists()


def test_score_bursts_columns_and_usage_errors(shoots, use_tiny_manifest, tmp_path):
    folder = shoots[True][0].path.parent
    out = runner.invoke(app, ["score", str(folder), "--bursts", "-j", "0", "-q"])
    assert out.exit_code == 0, out.output
    rows = list(csv.DictReader(io.StringIO(out.stdout)))
    assert list(rows[0]) == ["path", "score", "error", "burst", "burst_rank", "model"]
    shots = shoots[True]
    assert len({r["burst"] for r in rows if r["burst"]}) == len({s.truth for s in shots
                                                                 if s.burst})
    # a single photo has no burst (issue 24 item 11)
    assert sum(1 for r in rows if not r["burst"]) == sum(1 for s in shots if not s.burst)
    table = runner.invoke(app, ["score", str(folder), "--bursts", "-f", "table", "-j", "0",
                                "-q"])
    assert table.exit_code == 0, table.output
    assert table.stdout.splitlines()[0].split() == ["score", "burst", "rank", "path"]
    bad = runner.invoke(app, ["score", str(folder), "--bursts", "--resume", "-o",
                              str(tmp_path / "x.csv")])
    assert bad.exit_code == 2
    none = runner.invoke(app, ["cull", str(folder), "--move-to", str(tmp_path / "r")])
    assert none.exit_code == 2


def test_features_come_from_the_same_pass_and_leave_scores_alone(tiny_model, tmp_path):
    from grmpiqa.scoring.engine import score_paths

    paths = []
    for seed in range(5):
        path = tmp_path / f"{seed}.jpg"
        _scene(seed, 200).save(path)
        paths.append(str(path))
    plain = list(score_paths(paths, tiny_model, workers=0))
    rich = list(score_paths(paths, tiny_model, workers=0, features=True, thumbnails=64))
    assert [r.score for r in rich] == pytest.approx([r.score for r in plain], abs=1e-6)
    assert all(r.features is None for r in plain)
    for result in rich:
        assert np.linalg.norm(result.features.embedding) == pytest.approx(1.0, abs=1e-5)
        thumb = Image.open(io.BytesIO(result.features.thumbnail))
        assert max(thumb.size) == 64 and result.features.capture is None
    assert tiny_model.text_encodings >= 1


def test_empty_and_single_inputs():
    assert assign([]) == []
    assert assign([_result("one", 0.5, _scene(0))]) == [(1, 1)]
    assert assign([ScoreResult("x", None, "broken")]) == [None]
    with pytest.raises(ValueError, match="no burst features"):
        assign([ScoreResult("x", 0.5)])


def test_cull_bursts_moves_sidecars_with_their_frame(shoots, use_tiny_manifest, tmp_path):
    import shutil

    shots = [s for s in shoots[True] if s.burst]
    folder = tmp_path / "shoot"
    folder.mkdir()
    for shot in shots:
        shutil.copy(shot.path, folder / shot.path.name)
    for shot in shots:
        (folder / shot.path.with_suffix(".xmp").name).write_text("<x/>")
    out = runner.invoke(app, ["cull", str(folder), "--bursts", "--move-to",
                              str(tmp_path / "r"), "-j", "0", "-q"])
    assert out.exit_code == 0, out.output
    moved = sorted(p.name for p in (tmp_path / "r").iterdir() if p.suffix == ".jpg")
    assert moved and len(moved) == len(shots) - len({s.truth for s in shots})
    for name in moved:
        assert (tmp_path / "r" / name.replace(".jpg", ".xmp")).is_file()
    left = sorted(p.name for p in folder.iterdir())
    assert len(left) == 2 * len({s.truth for s in shots})  # each best frame and its sidecar
