"""suggest: a diverse choice of photos to rate, written as a labels CSV and a rating page."""

import csv
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

import grmpiqa
from grmpiqa.cli.app import app
from grmpiqa.training.labels import LabelsError, read_labels, require_usable
from grmpiqa.workflow.diversity import (
    coverage,
    farthest_point_order,
    random_coverage,
    suggestion_space,
)

runner = CliRunner()


@pytest.fixture(autouse=True)
def one_thread():
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def test_farthest_point_order_covers_every_cluster_first_and_is_seeded():
    centres = np.array([[0, 0], [10, 0], [0, 10], [10, 10], [5, 20]], dtype=float)
    sizes = [1, 6, 2, 9, 3]
    rng = np.random.default_rng(0)
    points = np.concatenate([c + rng.normal(0, 0.1, (s, 2)) for c, s in zip(centres, sizes,
                                                                            strict=True)])
    cluster = np.repeat(np.arange(5), sizes)
    for seed in range(6):
        order = farthest_point_order(points, 8, seed)
        assert sorted(cluster[order[:5]]) == [0, 1, 2, 3, 4]
        assert len(set(order)) == 8 and order == farthest_point_order(points, 8, seed)
    assert farthest_point_order(points, 0) == [] and len(farthest_point_order(points, 99)) == 21
    same = np.zeros((4, 2))
    assert sorted(farthest_point_order(same, 4)) == [0, 1, 2, 3]  # ties: never a repeat


def test_coverage_and_the_score_coordinate():
    points = np.array([[0.0], [1.0], [3.0]])
    assert coverage(points, [0]) == pytest.approx((0 + 1 + 3) / 3)
    assert coverage(points, [0, 2]) == pytest.approx(1 / 3)
    assert random_coverage(points, 3) == 0.0
    embeddings = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0]])
    space = suggestion_space(embeddings, [0.2, 0.6, 1.0], score_weight=2.0)
    typical = np.sqrt(2)  # two of the three pairs are orthogonal unit vectors
    assert space[:, 2] == pytest.approx([0.0, typical, 2 * typical])
    assert suggestion_space(embeddings, [0.5] * 3)[:, 2] == pytest.approx([0, 0, 0])
    assert suggestion_space(embeddings, [0.2, 0.6, 1.0], 0.0)[:, 2] == pytest.approx([0, 0, 0])


def _burst_collection(root: Path, sizes: list[int], seed: int = 0) -> dict[str, int]:
    """Scenes of near-identical frames (a burst: the same scene, new sensor noise each
    frame); returns {file name: scene}. Each scene is a smooth random colour layout."""
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True)
    scenes = {}
    for scene, size in enumerate(sizes):
        layout = Image.fromarray(rng.integers(0, 256, (4, 5, 3), dtype=np.uint8))
        base = np.asarray(layout.resize((48, 40), Image.BICUBIC), dtype=np.float64)
        for frame in range(size):
            pixels = np.clip(base + rng.normal(0, 2, base.shape), 0, 255).astype(np.uint8)
            name = f"s{scene:02d}_f{frame}.png"
            Image.fromarray(pixels).save(root / name)
            scenes[name] = scene
    return scenes


def test_suggest_covers_the_collection_better_than_chance(use_tiny_manifest, tmp_path, capsys):
    sizes = [2, 7, 3, 9, 4, 6, 2, 8, 5, 3, 7, 4]
    scenes = _burst_collection(tmp_path / "shoot", sizes)
    common = {"model": "grmp-tiny", "device": "cpu", "workers": 0}
    every = grmpiqa.suggest([str(tmp_path / "shoot")], n=len(sizes) + 6, **common)
    picked = [scenes[os.path.basename(r.path)] for r in every.chosen]
    assert sorted(picked[:len(sizes)]) == list(range(len(sizes)))  # every scene before seconds
    assert every.scored == sum(sizes) and not every.failed
    chosen = grmpiqa.suggest([str(tmp_path / "shoot")], n=len(sizes), **common)
    assert [r.path for r in chosen.chosen] == [r.path for r in every.chosen[:len(sizes)]]
    # the mean distance to the nearest chosen photo: within a burst, against a random choice
    assert chosen.coverage < 0.5 * chosen.random_coverage
    with capsys.disabled():
        print(f"\nsuggest coverage on {sum(sizes)} photos in {len(sizes)} bursts, n={len(sizes)}:"
              f" {chosen.coverage:.4f} vs random {chosen.random_coverage:.4f}")
    other = grmpiqa.suggest([str(tmp_path / "shoot")], n=len(sizes), seed=3, **common)
    assert sorted(scenes[os.path.basename(r.path)] for r in other.chosen) == \
        list(range(len(sizes)))
    assert [r.path for r in other.chosen] != [r.path for r in chosen.chosen]
    assert all(len(r.embedding) == 32 for r in chosen.chosen)


def test_skip_rated_fills_the_gaps_around_rated_photos(use_tiny_manifest, tmp_path):
    from xmp_photos import packet

    sizes = [3, 2, 4, 3, 2, 3, 4, 2]
    scenes = _burst_collection(tmp_path / "shoot", sizes)
    for scene, stars in ((1, "4"), (4, "-1"), (6, "2")):  # one frame of three scenes rated
        (tmp_path / "shoot" / f"s{scene:02d}_f1.xmp").write_bytes(packet(stars))
    (tmp_path / "shoot" / "s00_f0.xmp").write_bytes(packet(0))  # unrated: still a candidate
    result = grmpiqa.suggest([str(tmp_path / "shoot")], n=5, skip_rated=True, model="grmp-tiny",
                             device="cpu", workers=0)
    assert result.already_rated == 3
    assert sorted(scenes[os.path.basename(r.path)] for r in result.chosen) == [0, 2, 3, 5, 7]
    assert result.coverage < result.random_coverage
    everything = grmpiqa.suggest([str(tmp_path / "shoot")], n=99, skip_rated=True,
                                 model="grmp-tiny", device="cpu", workers=0)
    assert len(everything.chosen) == sum(sizes) - 3


def test_suggest_cli_writes_a_labels_csv_that_adapt_reads_once_filled(use_tiny_manifest,
                                                                        tmp_path):
    _burst_collection(tmp_path / "shoot", [3, 3, 3, 3, 3, 3, 3, 3, 3, 3])
    (tmp_path / "shoot" / "broken.jpg").write_bytes(b"not a photo")
    out = tmp_path / "to_rate.csv"
    args = ["suggest", str(tmp_path / "shoot"), "-n", "9", "-o", str(out), "-j", "0",
            "-d", "cpu"]
    result = runner.invoke(app, args)
    assert result.exit_code == 1, result.output  # one photo could not be scored
    assert "broken.jpg" in result.stderr and "chose 9 of 30 photos" in result.stderr
    assert "picked at random" in result.stderr or "as at random" in result.stderr
    assert result.stdout == ""
    assert f"next: fill the rating column of {out} with 1-5 stars" in result.stderr
    rows = list(csv.DictReader(out.open()))
    assert [list(r) for r in rows[:1]] == [["path", "rating", "model_score"]]
    assert len(rows) == 9 and all(r["rating"] == "" and os.path.isabs(r["path"]) for r in rows)
    again = runner.invoke(app, [*args[:4], *args[6:]])
    assert again.exit_code == 1, again.output
    assert again.stdout == out.read_text()  # deterministic; stdout without -o

    unfilled = runner.invoke(app, ["adapt", str(out), "-o", str(tmp_path / "m.safetensors")])
    assert unfilled.exit_code == 2
    assert "the 'rating' column is empty on every row: fill it in" in unfilled.stderr
    with out.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["path", "rating", "model_score"])
        for i, row in enumerate(rows):
            writer.writerow([row["path"], 1 + i % 5, row["model_score"]])
    table = require_usable(read_labels(out))
    assert table.score_column == "rating" and table.scale().stars and len(table.rows) == 9


def test_suggest_refuses_an_empty_collection_and_unwritable_outputs(tmp_path):
    (tmp_path / "empty").mkdir()
    result = runner.invoke(app, ["suggest", str(tmp_path / "empty")])
    assert result.exit_code == 2 and "no image files found" in result.stderr
    for option in ("-o", "--html"):
        for target, message in ((tmp_path / "nowhere" / "x", "cannot write in"),
                                (tmp_path / "empty", "is a folder")):
            bad = runner.invoke(app, ["suggest", str(tmp_path), option, str(target)])
            text = " ".join(bad.stderr.replace("\u2502", " ").split())  # rich's box
            assert bad.exit_code == 2 and message in text and option in text, bad.output


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                  "--no-first-run", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--hide-scrollbars"]


def _chromium(args: list[str]) -> subprocess.CompletedProcess:
    with tempfile.TemporaryDirectory() as profile:
        return subprocess.run([CHROMIUM, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *args],
                              capture_output=True, text=True, timeout=120)


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed")
def test_the_rating_page_rates_with_keys_and_clicks_and_downloads_the_csv(
        use_tiny_manifest, tmp_path):
    """Headless Chromium loads the page with ``#autotest=...``: the page's own script
    presses the keys and clicks the stars, runs the download and puts the CSV it made
    in the DOM, which ``--dump-dom`` prints."""
    _burst_collection(tmp_path / "shoot", [2, 2, 2, 2, 2])
    page = tmp_path / "rate.html"
    out = tmp_path / "to_rate.csv"
    result = runner.invoke(app, ["suggest", str(tmp_path / "shoot"), "-n", "5", "-o", str(out),
                                 "--html", str(page), "-j", "0", "-d", "cpu"])
    assert result.exit_code == 0, result.output
    assert "download rate.csv (it lands in the browser's download folder), then: " \
        "grmpiqa adapt rate.csv" in result.stderr
    assert "model 0." not in page.read_text()  # the model's score would bias the rating
    text = page.read_text()
    assert "http://" not in text.replace("http://www.w3.org", "") and "https://" not in text
    assert text.count("data:image/jpeg;base64,") == 5
    # 3 then 5 by keys (each moves on), back one with the arrow, clear it with 0, rate it 2,
    # then a click of 4 stars on the last photo
    steps = "k3,k5,kArrowLeft,k0,k2,c4:4"
    dom = _chromium(["--virtual-time-budget=5000", "--dump-dom",
                     f"{page.as_uri()}#autotest={steps}"])
    assert dom.returncode == 0, dom.stderr
    start = dom.stdout.index('<pre id="autotest-output"')
    block = dom.stdout[start:dom.stdout.index("</pre>", start)]
    assert 'data-download="rate.csv"' in block and 'data-href="blob:"' in block
    produced = block[block.index(">") + 1:].strip().splitlines()
    paths = [row["path"] for row in csv.DictReader(out.open())]
    assert produced[0] == "path,rating,model_score"
    assert [line.split(",")[:2] for line in produced[1:]] == [
        [paths[0], "3"], [paths[1], "2"], [paths[4], "4"]]

    filled = tmp_path / "ratings.csv"
    filled.write_text("\n".join(produced) + "\n")
    table = require_usable(read_labels(filled), min_rows=3)
    assert table.scores == [3.0, 2.0, 4.0] and table.scale().stars

    shot = tmp_path / "rate.png"
    taken = _chromium(["--window-size=1200,900", f"--screenshot={shot}",
                       f"{page.as_uri()}#autotest=k3,k5,k1"])
    assert taken.returncode == 0 and shot.stat().st_size > 10_000
    keep = os.environ.get("GRMPIQA_KEEP_SCREENSHOT")
    if keep:
        shutil.copyfile(shot, keep)


def test_an_unfilled_csv_with_partly_filled_rows_lists_them(tmp_path):
    (tmp_path / "a.jpg").write_bytes(b"x")
    (tmp_path / "b.jpg").write_bytes(b"x")
    path = tmp_path / "to_rate.csv"
    path.write_text("path,rating,model_score\na.jpg,4,0.5\nb.jpg,,0.4\n")
    with pytest.raises(LabelsError, match="line 3: no score"):
        require_usable(read_labels(path), min_rows=1)


def test_the_rating_page_survives_hostile_file_names(tmp_path):
    import json
    import re

    from grmpiqa.results import ScoreResult
    from grmpiqa.workflow.rating_page import rating_page

    folder = tmp_path / "x<"
    folder.mkdir()
    photo = folder / "script><!--\"&'.png"
    Image.new("RGB", (30, 20), (200, 10, 10)).save(photo)
    page = rating_page([ScoreResult(str(photo), 0.25)])
    assert "</script><!--" not in page.split('<script type="application/json"')[1].split(
        "</script>")[0]
    data = re.search(r'<script type="application/json" id="photos">(.*?)</script>', page,
                     re.S).group(1)
    assert json.loads(data) == [{"path": str(photo), "score": "0.2500"}]
    assert 'alt="script&gt;&lt;!--&quot;&amp;&#x27;.png"' in page
    assert page.count("data:image/jpeg;base64,") == 1
