"""adapt --from-ratings: star ratings read from XMP sidecars and XMP inside the photos."""

import csv
import json
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

import grmpiqa
from grmpiqa.cli.app import app
from grmpiqa.training.labels import LabelsError, ratings_table, read_labels, require_usable
from grmpiqa.weights.formats import read_metadata
from grmpiqa.workflow.ratings import format_counts, read_ratings
from grmpiqa.workflow.xmp import XmpError, read_rating, read_sidecar, stars_for_label
from photos import write_dng
from xmp_photos import packet, save_with_xmp

runner = CliRunner()


@pytest.fixture(autouse=True)
def one_thread():
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def test_read_rating_in_both_forms_and_refuses_what_is_not_a_rating():
    assert read_rating(packet(4)) == 4
    assert read_rating(packet(2, "element")) == 2
    assert read_rating(packet(-1)) == -1 and read_rating(packet(0)) == 0
    assert read_rating(packet("5.0")) == 5  # some tools write a decimal
    assert read_rating(packet(None)) is None
    for bad, message in ((packet("abc"), "is not a number"), (packet(7), "not -1"),
                         (packet("2.5"), "not -1"), (b"<x:xmpmeta", "malformed XML"),
                         (b'<!DOCTYPE x [<!ENTITY a "b">]><x/>', "DOCTYPE")):
        with pytest.raises(XmpError, match=message):
            read_rating(bad)
    both = packet(3).replace(b"/></rdf:RDF>", b"><xmp:Rating>4</xmp:Rating>"
                             b"</rdf:Description></rdf:RDF>")
    with pytest.raises(XmpError, match="different ratings"):
        read_rating(both)


def test_stars_for_label_rounds_half_up_and_clamps():
    assert [stars_for_label(x) for x in (-0.4, 0.49, 1.49, 1.5, 2.5, 3.51, 4.5, 6.2)] == [
        1, 1, 1, 2, 3, 4, 5, 5]


def _mos_stars(livec: Path) -> dict[str, int]:
    """Stars 1..5 from the quintiles of LIVEC's MOS."""
    with (livec / "mos.csv").open() as handle:
        mos = {row["image"]: float(row["mos"]) for row in csv.DictReader(handle)}
    edges = np.quantile(list(mos.values()), [0.2, 0.4, 0.6, 0.8])
    return {name: 1 + int(np.searchsorted(edges, value, side="right"))
            for name, value in mos.items()}


def _collection(livec: Path, root: Path) -> tuple[dict[str, int | None], dict[str, str]]:
    """Real LIVEC photos rated every way photo software does; returns the ratings expected
    (None: no label) and, for unreadable photos, a part of the error expected."""
    stars = _mos_stars(livec)
    names = sorted(stars)[:40]
    src = {i: livec / "images" / name for i, name in enumerate(names)}
    star = {i: stars[name] for i, name in enumerate(names)}
    shoot = root / "shoot"
    (shoot / "sub").mkdir(parents=True)
    expected: dict[str, int | None] = {}
    errors: dict[str, str] = {}

    def copy(i: int, name: str) -> Path:
        path = shoot / name
        shutil.copyfile(src[i], path)
        return path

    def rgb(i: int) -> Image.Image:
        return Image.open(src[i]).convert("RGB")

    for i in range(8):  # Lightroom: IMG.xmp beside IMG.JPG, attribute form, .xmp in any case
        photo = copy(i, f"lr{i}.JPG")
        ext = (".xmp", ".XMP", ".Xmp")[i % 3]
        photo.with_suffix(ext).write_bytes(packet(star[i]))
        expected[photo.name] = star[i]
    for i in range(8, 14):  # darktable / digiKam: IMG.JPG.xmp, element form
        photo = copy(i, f"dt{i}.jpg")
        Path(f"{photo}{'.xmp' if i % 2 else '.XMP'}").write_bytes(packet(star[i], "element"))
        expected[photo.name] = star[i]
    for i, ext in zip(range(14, 20), (".jpg", ".JPG", ".png", ".webp", ".tif", ".TIFF"),
                      strict=True):  # embedded XMP only
        photo = save_with_xmp(rgb(i), shoot / "sub" / f"emb{i}{ext}", packet(star[i]))
        expected[f"sub/{photo.name}"] = star[i]
    write_dng(shoot / "sub" / "raw20.dng", np.asarray(rgb(20))[:200, :200],
              xmp=packet(star[20], "element"))
    expected["sub/raw20.dng"] = star[20]
    # conflicts: the sidecar beats the embedded XMP; the file's own sidecar beats the shared
    save_with_xmp(rgb(21), shoot / "conflict21.jpg", packet(1))
    (shoot / "conflict21.xmp").write_bytes(packet(5))
    expected["conflict21.jpg"] = 5
    copy(22, "pair22.JPG")
    (shoot / "pair22.xmp").write_bytes(packet(4))
    (shoot / "pair22.JPG.xmp").write_bytes(packet(2, "element"))
    expected["pair22.JPG"] = 2
    save_with_xmp(rgb(23), shoot / "norating23.jpg", packet(3))  # sidecar without a rating
    (shoot / "norating23.xmp").write_bytes(packet(None))
    expected["norating23.jpg"] = 3
    for i in range(24, 30):  # enough of the remaining photos rated to train on
        photo = copy(i, f"lr{i}.JPG")
        photo.with_suffix(".xmp").write_bytes(packet(star[i]))
        expected[photo.name] = star[i]
    # left out: unrated (0), no XMP at all, rejected (-1)
    (copy(30, "zero30.JPG").with_suffix(".xmp")).write_bytes(packet(0))
    copy(31, "plain31.JPG")
    save_with_xmp(rgb(32), shoot / "rejected32.jpg", packet(-1))
    expected.update({"zero30.JPG": None, "plain31.JPG": None, "rejected32.jpg": None})
    # unreadable: a broken sidecar, broken embedded XMP, a rating that is not a star
    (copy(33, "broken33.JPG").with_suffix(".xmp")).write_bytes(b"<x:xmpmeta><rdf:RDF>")
    save_with_xmp(rgb(34), shoot / "badembed34.jpg", b"<x:xmpmeta xmlns:x='adobe:ns:meta/'>")
    (copy(35, "seven35.JPG").with_suffix(".xmp")).write_bytes(packet(7))
    errors.update({"broken33.JPG": "broken33.xmp: malformed XML",
                   "badembed34.jpg": "its embedded XMP: malformed XML",
                   "seven35.JPG": "seven35.xmp: xmp:Rating '7' is not -1"})
    (shoot / "notes.xmp").write_bytes(packet(5))  # a sidecar alone is no photo
    return expected, errors


def test_ratings_of_real_photos_every_convention_case_and_conflict(livec, tmp_path):
    expected, errors = _collection(livec, tmp_path)
    shoot = tmp_path / "shoot"
    ratings = read_ratings([str(shoot)])
    found = {str(Path(p.path).relative_to(shoot)): p for p in ratings.photos}
    assert set(found) == set(expected) | set(errors)
    for name, stars in expected.items():
        assert ratings.label(found[name]) == stars, name
    for name, part in errors.items():
        assert found[name].error is not None and part in found[name].error, found[name]
    assert found["conflict21.jpg"].source.endswith("conflict21.xmp")
    assert found["pair22.JPG"].source.endswith("pair22.JPG.xmp")
    assert found["sub/emb14.jpg"].source == "embedded"
    assert found["zero30.JPG"].rating == 0 and found["plain31.JPG"].rating is None
    counts = ratings.counts()
    assert counts["rejected"] == 1 and counts["unrated"] == 2 and counts["unreadable"] == 3
    assert sum(counts[s] for s in "12345") == 30
    line = format_counts(ratings)
    assert line.startswith("30 labels of 36 photos (1 star: ") and "a sidecar wins" in line

    lowest = read_ratings([str(shoot)], rejected_as_lowest=True)
    assert lowest.label(next(p for p in lowest.photos if "rejected32" in p.path)) == 0
    table = ratings_table(lowest)
    assert len(table.rows) == 31 and min(table.scores) == 0 and table.scale().stars
    with pytest.raises(LabelsError) as caught:
        require_usable(table)
    text = str(caught.value)
    assert text.startswith("XMP ratings in ") and "3 problems" in text
    assert "broken33.JPG: rating cannot be read: broken33.xmp: malformed XML" in text
    assert not any(line.strip().startswith("line ") for line in text.splitlines())


def test_adapt_from_ratings_refuses_unreadable_ratings_then_learns_and_rates_in_stars(
        livec, use_tiny_manifest, tmp_path):
    _, errors = _collection(livec, tmp_path)
    shoot = tmp_path / "shoot"
    out = tmp_path / "mine.safetensors"
    args = ["adapt", "--from-ratings", str(shoot), "-o", str(out), "-j", "0", "-d", "cpu",
            "--epochs", "2", "--eval-every", "1"]
    refused = runner.invoke(app, args)
    assert refused.exit_code == 2, refused.output
    err = refused.stderr
    assert err.index("30 labels of 36 photos") < err.index("3 problems (fix them and run again)")
    for name in errors:
        assert f"{name}: rating cannot be read" in err
    assert "Traceback" not in refused.output and not out.exists()

    for name in errors:
        (shoot / name).unlink()
    done = runner.invoke(app, [*args, "--rejected-as-lowest"])
    assert done.exit_code == 0, done.output
    assert "31 labels of 33 photos" in done.stderr
    assert "rejected: 1 (used as 0 stars)" in done.stderr
    meta = read_metadata(out)
    assert meta.label.stars and (meta.label.low, meta.label.high) == (0.0, 5.0)
    assert meta.training["label_file"].startswith("XMP ratings in ")

    # score --xmp with these weights: the stars it predicts on the user's scale
    target = tmp_path / "target"
    shutil.copytree(shoot / "sub", target)
    scored = runner.invoke(app, ["score", str(target), "-w", str(out), "--xmp", "-f", "jsonl",
                                 "-j", "0", "-d", "cpu"])
    assert scored.exit_code == 0, scored.output
    assert "these weights learned star ratings (0..5)" in scored.stderr
    rows = [json.loads(line) for line in scored.stdout.splitlines()]
    for row in rows:
        written = read_sidecar(str(Path(row["path"]).with_suffix(".xmp")))
        assert written == stars_for_label(row["score_label"]), row
    fixed = runner.invoke(app, ["score", str(target), "-w", str(out), "--xmp", "-f", "jsonl",
                                "-j", "0", "-d", "cpu", "--rating-thresholds", "0.1,0.2,0.3,0.4"])
    assert fixed.exit_code == 0 and "learned star ratings" not in fixed.stderr
    for row in map(json.loads, fixed.stdout.splitlines()):
        expected_stars = 1 + sum(row["score"] >= t for t in (0.1, 0.2, 0.3, 0.4))
        assert read_sidecar(str(Path(row["path"]).with_suffix(".xmp"))) == expected_stars


def test_too_few_or_equal_ratings_are_refused_before_training(use_tiny_manifest, tmp_path):
    from labelled import write_noise_labels

    write_noise_labels(tmp_path / "photos", 9)
    photos = sorted((tmp_path / "photos").glob("*.png"))
    for photo in photos[:7]:
        photo.with_suffix(".xmp").write_bytes(packet(3))
    out = str(tmp_path / "m.safetensors")
    few = runner.invoke(app, ["adapt", "--from-ratings", str(tmp_path / "photos"), "-o", out,
                              "-j", "0"])
    assert few.exit_code == 2
    assert "7 labels of 9 photos (1 star: 0, 2 stars: 0, 3 stars: 7" in few.stderr
    assert "only 7 usable rated photos; adapt needs at least 8" in few.stderr
    for photo in photos[7:]:
        photo.with_suffix(".xmp").write_bytes(packet(3))
    equal = runner.invoke(app, ["adapt", "--from-ratings", str(tmp_path / "photos"), "-o", out,
                                "-j", "0"])
    assert equal.exit_code == 2 and "all 9 ratings are equal (3)" in equal.stderr
    assert not Path(out).exists()
    two = runner.invoke(app, ["adapt", str(photos[0]), str(photos[1]), "-o", out])
    assert two.exit_code == 2 and "give one labels CSV" in two.stderr
    alone = runner.invoke(app, ["adapt", "x.csv", "--rejected-as-lowest", "-o", out])
    assert alone.exit_code == 2 and "only with --from-ratings" in alone.stderr
    mixed = runner.invoke(app, ["adapt", "--from-ratings", "x.CSV", "-o", out])
    assert mixed.exit_code == 2 and "is a labels file" in mixed.stderr
    column = runner.invoke(app, ["adapt", "--from-ratings", ".", "--root", ".", "-o", out])
    assert column.exit_code == 2 and "is for a labels CSV" in column.stderr


def test_from_ratings_checkpoints_and_resumes_like_a_csv(use_tiny_manifest, tmp_path):
    from labelled import write_noise_labels

    write_noise_labels(tmp_path / "photos", 12)
    for i, photo in enumerate(sorted((tmp_path / "photos").glob("*.png"))):
        photo.with_suffix(".xmp").write_bytes(packet(1 + i % 5))
    common = {"model": "grmp-tiny", "device": "cpu", "workers": 0, "epochs": 4,
              "eval_every": 2, "lr": 0.5}
    out = tmp_path / "mine.safetensors"

    def stop_at_2(record):
        if record.epoch == 2:
            raise KeyboardInterrupt

    first = grmpiqa.adapt(grmpiqa.read_ratings([str(tmp_path / "photos")]), out,
                          on_evaluation=stop_at_2, **common)
    assert first.interrupted and first.checkpoint is not None
    resumed = grmpiqa.adapt(grmpiqa.read_ratings([str(tmp_path / "photos")]), out,
                            resume=True, **common)
    assert resumed.summary["epochs"] == 4 and [r.epoch for r in resumed.history] == [0, 2, 4]


@pytest.mark.slow
def test_adapt_learns_through_from_ratings_as_through_a_csv(use_tiny_manifest, tmp_path):
    """The learning test of adapt, with the labels as star sidecars: the same label rows
    reach the same training, so both routes learn the same."""
    from labelled import write_noise_labels

    csv_path = write_noise_labels(tmp_path / "photos", 60, seed=0)
    scores = [float(line.split(",")[1]) for line in csv_path.read_text().splitlines()[1:]]
    edges = np.quantile(scores, [0.2, 0.4, 0.6, 0.8])
    stars = [1 + int(np.searchsorted(edges, s, side="right")) for s in scores]
    star_csv = tmp_path / "photos" / "stars.csv"
    star_csv.write_text("image,rating\n" + "".join(
        f"p{i:03d}.png,{s}\n" for i, s in enumerate(stars)))
    for i, s in enumerate(stars):
        (tmp_path / "photos" / f"p{i:03d}.xmp").write_bytes(packet(s))
    common = {"model": "grmp-tiny", "device": "cpu", "workers": 0, "epochs": 60, "lr": 1.0,
              "seed": 0}
    ratings = grmpiqa.read_ratings([str(tmp_path / "photos")])
    via_ratings = grmpiqa.adapt(ratings, tmp_path / "r.safetensors", **common).summary
    via_csv = grmpiqa.adapt(star_csv, tmp_path / "c.safetensors", **common).summary
    assert via_ratings["val_images"] == 12 and via_ratings["train_images"] == 48
    assert via_ratings["start_val_srcc"] < 0.3
    assert via_ratings["val_srcc"] >= 0.7
    assert via_ratings["val_srcc"] - via_ratings["start_val_srcc"] >= 0.5
    for key in ("start_val_srcc", "val_srcc", "val_plcc", "best_epoch", "epochs"):
        assert via_ratings[key] == pytest.approx(via_csv[key], abs=1e-6), key
    assert read_metadata(tmp_path / "r.safetensors").label.stars
    assert read_metadata(tmp_path / "c.safetensors").label.stars  # whole numbers 0..5


def test_heic_ratings_inside_the_file_need_the_extra(tmp_path, monkeypatch):
    pytest.importorskip("pillow_heif")
    from grmpiqa.io import images

    photo = save_with_xmp(Image.new("RGB", (64, 48), (20, 90, 160)), tmp_path / "IMG_9.HEIC",
                          packet(4))
    assert read_ratings([str(tmp_path)]).photos[0].rating == 4
    monkeypatch.setattr(images, "_heif_enabled", False)
    monkeypatch.setitem(sys.modules, "pillow_heif", None)
    missing = read_ratings([str(photo)]).photos[0]
    assert missing.rating is None and "pip install 'grmpiqa[heif]'" in missing.error
    photo.with_suffix(".xmp").write_bytes(packet(2))  # a sidecar needs no extra
    assert read_ratings([str(photo)]).photos[0].rating == 2


def test_an_unfilled_suggestion_csv_says_what_to_do(tmp_path):
    (tmp_path / "a.jpg").write_bytes(b"x")
    path = tmp_path / "to_rate.csv"
    path.write_text(f"path,rating,model_score\n{tmp_path / 'a.jpg'},,0.5\n")
    table = read_labels(path)
    with pytest.raises(LabelsError, match="the 'rating' column is empty on every row"):
        require_usable(table)
