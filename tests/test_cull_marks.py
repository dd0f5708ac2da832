"""score --xmp-for and cull --mark end to end: ratings and rejects where each application
reads them, read back by exiftool and by adapt --from-ratings."""

import csv
import io
import json
import os
import shutil
import subprocess
import typing
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

import grmpiqa
from grmpiqa.cli.app import app
from grmpiqa.cli.options import PhotoApp
from grmpiqa.io.embedded_xmp import embedded_xmp
from grmpiqa.io.images import open_image
from grmpiqa.io.output import unescape_name
from grmpiqa.io.xmp_embed import MAX_JPEG_PACKET
from grmpiqa.workflow.xmp import read_label, read_rating
from grmpiqa.workflow.xmp_targets import APPS
from photos import texture, write_dng
from xmp_photos import jpeg_photo, packet, xmp_span

runner = CliRunner()
EXIFTOOL = shutil.which("exiftool")
needs_exiftool = pytest.mark.skipif(EXIFTOOL is None, reason="exiftool is not installed "
                                    "(Debian: apt-get install libimage-exiftool-perl)")
CPU = ["-j", "0", "-d", "cpu"]
#: the file that holds the rating of IMG_1.jpg and IMG_2.dng for each application
HOLDER = {None: ("IMG_1.xmp", "IMG_2.xmp"), "lightroom": ("IMG_1.jpg", "IMG_2.dng"),
          "bridge": ("IMG_1.jpg", "IMG_2.dng"), "digikam": ("IMG_1.jpg", "IMG_2.dng"),
          "capture-one": ("IMG_1.xmp", "IMG_2.xmp"),
          "darktable": ("IMG_1.jpg.xmp", "IMG_2.dng.xmp")}


def _exiftool(*paths: Path) -> dict[str, dict]:
    out = subprocess.run([EXIFTOOL, "-j", "-XMP:Rating", "-XMP:Label", *map(str, paths)],
                         capture_output=True, text=True, timeout=120)
    return {Path(f["SourceFile"]).name: f for f in json.loads(out.stdout)}


def _rows(result) -> list[dict]:
    rows = csv.DictReader(io.StringIO(result.stdout_bytes.decode("utf-8"), newline=""))
    return [{**r, "source": unescape_name(r["source"]),
             "destination": unescape_name(r["destination"])} for r in rows]


def _outside_packet(data: bytes) -> bytes:
    """A JPEG's bytes without its XMP segment."""
    start, end = xmp_span(data)
    return data[:start] + data[end:]


def _pixels(path: Path) -> np.ndarray:
    return np.asarray(open_image(str(path)))


def test_the_cli_offers_the_library_s_applications():
    assert typing.get_args(PhotoApp) == APPS


@needs_exiftool
def test_score_xmp_for_each_app_writes_where_exiftool_reads_it(use_tiny_manifest, tmp_path):
    for app_name, (jpeg_holder, dng_holder) in HOLDER.items():
        shoot = tmp_path / str(app_name)
        shoot.mkdir()
        jpeg = jpeg_photo(shoot / "IMG_1.jpg")
        dng = write_dng(shoot / "IMG_2.dng", texture(2, (64, 48)))
        before = {p.name: (p.read_bytes(), _pixels(p)) for p in (jpeg, dng)}
        flags = ["--xmp"] if app_name is None else ["--xmp-for", app_name]
        done = runner.invoke(app, ["score", str(shoot), *flags, "-f", "jsonl", *CPU,
                                   "--rating-thresholds", "0.01,0.02,0.03,0.04"])
        assert done.exit_code == 0, done.output
        assert sorted(os.listdir(shoot)) == sorted({"IMG_1.jpg", "IMG_2.dng", jpeg_holder,
                                                    dng_holder})
        stars = {Path(r["path"]).name: 1 + sum(r["score"] >= t for t in (.01, .02, .03, .04))
                 for r in map(json.loads, done.stdout.splitlines())}
        found = _exiftool(shoot / jpeg_holder, shoot / dng_holder)
        assert [found[jpeg_holder]["Rating"], found[dng_holder]["Rating"]] == [
            stars["IMG_1.jpg"], stars["IMG_2.dng"]], (app_name, found)
        for photo in (jpeg, dng):
            data, pixels = before[photo.name]
            assert np.array_equal(_pixels(photo), pixels)
            if photo.name not in (jpeg_holder, dng_holder):
                assert photo.read_bytes() == data  # a sidecar application: photo untouched
        if app_name == "lightroom":
            assert _outside_packet(jpeg.read_bytes()) == before["IMG_1.jpg"][0]


def _shoot(root: Path, count: int = 10) -> list[Path]:
    root.mkdir(parents=True)
    return [jpeg_photo(root / f"IMG_{i:02d}.jpg", seed=i, size=(64, 48)) for i in range(count)]


def test_cull_mark_rejects_in_place_and_adapt_reads_the_marks_back(use_tiny_manifest,
                                                                    tmp_path):
    shoot = tmp_path / "shoot"
    photos = _shoot(shoot)
    rated = runner.invoke(app, ["score", str(shoot), "--xmp-for", "lightroom", "-f", "jsonl",
                                *CPU])
    assert rated.exit_code == 0, rated.output
    scores = {Path(r["path"]).name: r["score"] for r in map(json.loads,
                                                            rated.stdout.splitlines())}
    ranked = sorted(scores.values())
    # the three worst are rejected: the threshold half-way to the fourth, so that the
    # rows' six decimals cannot put the fourth on either side
    below = (ranked[2] + ranked[3]) / 2
    worst = sorted(name for name, s in scores.items() if s < below)
    before = {p.name: p.read_bytes() for p in photos}
    args = ["cull", str(shoot), "--mark", "--xmp-for", "lightroom", "--below", repr(below),
            *CPU]

    plan = runner.invoke(app, [*args, "--dry-run"])
    assert plan.exit_code == 0, plan.output
    assert {p.name: p.read_bytes() for p in photos} == before
    assert sorted(os.listdir(shoot)) == sorted(before)  # nothing written, no log
    assert "would mark 3 of 10 photos rejected" in plan.stderr
    assert "dry run, nothing was changed" in plan.stderr

    done = runner.invoke(app, args)
    assert done.exit_code == 0, done.output
    assert done.stdout_bytes == plan.stdout_bytes  # the plan is what happened
    rows = _rows(done)
    assert [(r["action"], Path(r["source"]).name, r["destination"], r["error"])
            for r in rows] == [("reject", n, str(shoot / n), "") for n in worst]
    assert all(r["reason"] == f"below {below:g}" for r in rows)
    assert "marked 3 of 10 photos rejected (xmp:Rating -1; 3 files written)" in done.stderr
    assert sorted(os.listdir(shoot)) == sorted(before)  # nothing moved, no sidecar
    for photo in photos:
        expected = -1 if photo.name in worst else None
        if expected is not None:
            assert read_rating(embedded_xmp(str(photo))) == -1
            assert _outside_packet(photo.read_bytes()) == _outside_packet(before[photo.name])
        else:
            assert photo.read_bytes() == before[photo.name]

    out = tmp_path / "mine.safetensors"
    adapted = runner.invoke(app, ["adapt", "--from-ratings", str(shoot), "--rejected-as-lowest",
                                  "-o", str(out), "--epochs", "1", *CPU])
    assert adapted.exit_code == 0, adapted.output
    assert "10 labels of 10 photos" in adapted.stderr
    assert "rejected: 3 (used as 0 stars)" in adapted.stderr and out.is_file()


def test_cull_mark_gives_error_rows_and_leaves_bad_files_untouched(use_tiny_manifest,
                                                                    tmp_path):
    shoot = tmp_path / "shoot"
    shoot.mkdir()
    good = jpeg_photo(shoot / "good.jpg", size=(64, 48))
    locked = jpeg_photo(shoot / "locked.jpg", seed=1, size=(64, 48))
    locked.chmod(0o444)
    # a standard packet at the limit already: rating -1 cannot fit
    filler = b"<!--" + b"c" * (MAX_JPEG_PACKET - len(packet(1)) - 7) + b"-->"
    huge = jpeg_photo(shoot / "huge.jpg", seed=2, size=(64, 48),
                      xmp=packet(1).replace(b"<rdf:RDF", filler + b"<rdf:RDF"))
    cut = jpeg_photo(shoot / "cut.jpg", seed=3, size=(256, 256))
    cut.write_bytes(cut.read_bytes()[:-3000])
    before = {p.name: p.read_bytes() for p in (locked, huge, cut)}

    done = runner.invoke(app, ["cull", str(shoot), "--mark", "--xmp-for", "digikam",
                               "--below", "1", *CPU])
    assert done.exit_code == 1, done.output
    rows = {Path(r["source"]).name: r for r in _rows(done)}
    assert rows["good.jpg"]["action"] == "reject" and not rows["good.jpg"]["error"]
    assert read_rating(embedded_xmp(str(good))) == -1
    assert "locked.jpg: is read-only" in rows["locked.jpg"]["error"]
    assert "over the 65,502 a JPEG's standard XMP can hold" in rows["huge.jpg"]["error"]
    assert "left unchanged" in rows["huge.jpg"]["error"]
    assert rows["cut.jpg"]["action"] in ("skip", "reject") and rows["cut.jpg"]["error"]
    assert "truncated" in rows["cut.jpg"]["error"].lower()
    for name, data in before.items():
        assert (shoot / name).read_bytes() == data, name
    assert sorted(os.listdir(shoot)) == ["cut.jpg", "good.jpg", "huge.jpg", "locked.jpg"]
    assert "3 problems, see the error rows" in done.stderr
    assert "Traceback" not in done.output


def _burst(root: Path) -> None:
    """Two frames of one scene (another JPEG quality) and an unrelated photo."""
    root.mkdir(parents=True)
    scene = texture(7, (96, 64))
    for name, quality in (("IMG_1.jpg", 95), ("IMG_2.jpg", 80)):
        Image.fromarray(scene).save(root / name, quality=quality)
    Image.fromarray(texture(8, (96, 64))).save(root / "IMG_3.jpg", quality=90)


def test_cull_mark_bursts_rejects_the_others_and_labels_the_kept_frame(use_tiny_manifest,
                                                                        tiny_model, tmp_path):
    shoot = tmp_path / "shoot"
    _burst(shoot)
    log = tmp_path / "marks.csv"
    done = runner.invoke(app, ["cull", str(shoot), "--mark", "--bursts", "--xmp-for",
                               "darktable", "--label-kept", "Green", "--log", str(log), *CPU])
    assert done.exit_code == 0, done.output
    rows = _rows(done)
    actions = sorted((r["action"], Path(r["source"]).name, Path(r["destination"]).name)
                     for r in rows)
    assert [a[0] for a in actions] == ["label", "reject"], rows
    (_, kept, kept_xmp), (_, gone, gone_xmp) = actions
    assert {kept, gone} == {"IMG_1.jpg", "IMG_2.jpg"}
    assert (kept_xmp, gone_xmp) == (kept + ".xmp", gone + ".xmp")
    assert sorted(os.listdir(shoot)) == sorted(["IMG_1.jpg", "IMG_2.jpg", "IMG_3.jpg",
                                                kept_xmp, gone_xmp])
    kept_packet, gone_packet = ((shoot / n).read_bytes() for n in (kept_xmp, gone_xmp))
    assert (read_label(kept_packet), read_rating(kept_packet)) == ("Green", None)
    assert (read_label(gone_packet), read_rating(gone_packet)) == (None, -1)
    assert log.read_bytes() == done.stdout_bytes
    assert "1 kept frame labelled Green" in done.stderr
    if EXIFTOOL:
        found = _exiftool(shoot / kept_xmp, shoot / gone_xmp)
        assert found[kept_xmp].get("Label") == "Green" and found[gone_xmp]["Rating"] == -1

    # the same from Python, as a dry run: the rows say where, nothing is written
    again = tmp_path / "again"
    _burst(again)
    run = grmpiqa.cull(str(again), mode="mark", app="lightroom", label_kept="Green",
                       bursts=grmpiqa.BurstOptions(), model=tiny_model, dry_run=True,
                       workers=0)
    planned = sorted((a.action, os.path.basename(a.destination)) for a in run)
    assert [a for a, _ in planned] == ["label", "reject"]
    assert {d for _, d in planned} == {"IMG_1.jpg", "IMG_2.jpg"}  # inside the JPEGs
    assert sorted(os.listdir(again)) == ["IMG_1.jpg", "IMG_2.jpg", "IMG_3.jpg"]
    assert all(embedded_xmp(str(again / n)) is None for n in os.listdir(again))


@pytest.mark.parametrize(("args", "message"), [
    (["--mark", "--move-to", "x"], "--mark: moves nothing"),
    (["--below", "0.5", "--xmp-for", "lightroom", "--move-to", "x"],
     "--xmp-for: only means something with --mark"),
    (["--mark", "--label-kept", "Green", "--below", "0.5"], "add --bursts"),
    (["--below", "0.5"], "give exactly one of --move-to, --copy-to, --link-to (or --mark)"),
    (["--mark", "--below", "0.5", "--xmp-for", "picasa"], "picasa"),
])
def test_cull_mark_usage_errors(tmp_path, args, message):
    result = runner.invoke(app, ["cull", str(tmp_path), *args])
    assert result.exit_code == 2, result.output
    assert message in " ".join(result.stderr.split())


def test_library_refuses_what_the_command_refuses(tmp_path):
    with pytest.raises(ValueError, match="moves nothing"):
        grmpiqa.cull(str(tmp_path), str(tmp_path / "x"), mode="mark", below=0.5)
    with pytest.raises(grmpiqa.errors.ConfigError, match="it needs bursts"):
        grmpiqa.cull(str(tmp_path), mode="mark", below=0.5, label_kept="Green")
    with pytest.raises(grmpiqa.errors.ConfigError, match="only means something"):
        grmpiqa.cull(str(tmp_path), str(tmp_path.parent / "x"), mode="move", below=0.5,
                     app="darktable")
    with pytest.raises(grmpiqa.errors.ConfigError, match="unknown photo application"):
        grmpiqa.XmpOptions(app="picasa")
