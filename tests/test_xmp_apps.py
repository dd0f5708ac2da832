"""Ratings, rejects and labels where each photo application reads them."""

import json
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from grmpiqa.errors import ConfigError, XmpError
from grmpiqa.io.embedded_xmp import embedded_xmp
from grmpiqa.workflow.ratings import rating_of, read_ratings
from grmpiqa.workflow.xmp import read_label, read_rating, read_sidecar, write_rating
from grmpiqa.workflow.xmp_marks import SidecarRater, XmpMarker
from grmpiqa.workflow.xmp_targets import APPS, places_for
from photos import write_dng
from xmp_photos import jpeg_photo, packet, save_with_xmp

EXIFTOOL = shutil.which("exiftool")
INSIDE = "(inside)"
#: where each application reads the rating of each kind of photo ("IMG" is the stem)
WHERE = {
    "IMG.jpg": {None: "IMG.xmp", "lightroom": INSIDE, "bridge": INSIDE,
                "capture-one": "IMG.xmp", "darktable": "IMG.jpg.xmp", "digikam": INSIDE},
    "IMG.dng": {None: "IMG.xmp", "lightroom": INSIDE, "bridge": INSIDE,
                "capture-one": "IMG.xmp", "darktable": "IMG.dng.xmp", "digikam": INSIDE},
    "IMG.NEF": {None: "IMG.xmp", "lightroom": "IMG.xmp", "bridge": "IMG.xmp",
                "capture-one": "IMG.xmp", "darktable": "IMG.NEF.xmp",
                "digikam": "IMG.NEF.xmp"},
    "IMG.heic": {None: "IMG.xmp", "lightroom": "IMG.xmp", "bridge": "IMG.xmp",
                 "capture-one": "IMG.xmp", "darktable": "IMG.heic.xmp",
                 "digikam": "IMG.heic.xmp"},
    "IMG.png": {None: "IMG.xmp", "lightroom": None, "bridge": None,
                "capture-one": "IMG.xmp", "darktable": "IMG.png.xmp", "digikam": None},
}


def _photo(folder: Path, name: str) -> Path:
    """A real JPEG or DNG; the other kinds are only named (their sidecars are written,
    the files never opened)."""
    folder.mkdir(parents=True, exist_ok=True)
    rgb = np.random.default_rng(len(name)).integers(0, 256, (32, 48, 3), dtype=np.uint8)
    if name.endswith(".jpg"):
        return jpeg_photo(folder / name)
    if name.endswith(".dng"):
        return write_dng(folder / name, rgb)
    (folder / name).write_bytes(b"not opened")
    return folder / name


@pytest.mark.parametrize("name", sorted(WHERE))
def test_each_application_reads_a_rating_where_it_is_written(tmp_path, name):
    for app, where in WHERE[name].items():
        if where is None:
            with pytest.raises(XmpError, match=f"{app} reads the rating inside PNG files"):
                places_for(str(tmp_path / name), app)
            continue
        place = places_for(str(tmp_path / name), app)[0]
        expected = str(tmp_path / name) if where == INSIDE else str(tmp_path / where)
        assert (place.path, place.inside, place.create) == (expected, where == INSIDE, True)


def _written_where_the_app_reads(folder: Path, app: str | None) -> dict[str, Path]:
    """Rate a JPEG, a DNG and a RAW (4, 3, 2 stars) for ``app``; the file that then holds
    each rating, checked to be the only thing that changed."""
    found = {}
    for name, stars in (("IMG.jpg", 4), ("IMG.dng", 3), ("IMG.NEF", 2)):
        shoot = folder / name.replace(".", "_")
        photo = _photo(shoot, name)
        before = photo.read_bytes()
        mark = XmpMarker(app).mark(str(photo), rating=stars)
        where = WHERE[name][app]
        target = photo if where == INSIDE else shoot / where
        assert mark.ok and mark.places == (str(target),), mark
        assert sorted(os.listdir(shoot)) == sorted({name, target.name})
        if where != INSIDE:
            assert photo.read_bytes() == before  # a sidecar application: photo untouched
        found[name] = target
    return found


@pytest.mark.parametrize("app", [None, *APPS])
def test_ratings_read_back_by_our_reader_where_each_app_reads_them(tmp_path, app):
    written = _written_where_the_app_reads(tmp_path, app)
    for (name, target), stars in zip(written.items(), (4, 3, 2), strict=True):
        packet = embedded_xmp(str(target)) if target.name == name else target.read_bytes()
        assert read_rating(packet) == stars
        assert rating_of(str(target.parent / name)).rating == stars  # read_ratings finds it


@pytest.mark.skipif(EXIFTOOL is None, reason="exiftool is not installed "
                    "(Debian: apt-get install libimage-exiftool-perl)")
@pytest.mark.parametrize("app", APPS)
def test_exiftool_reads_the_rating_where_each_app_reads_it(tmp_path, app):
    written = _written_where_the_app_reads(tmp_path, app)
    out = subprocess.run([EXIFTOOL, "-j", "-XMP:Rating", *map(str, written.values())],
                         capture_output=True, text=True, timeout=120)
    assert [f.get("Rating") for f in json.loads(out.stdout)] == [4, 3, 2], out.stdout


def test_older_sidecars_of_the_photo_are_updated_but_a_raw_partners_is_not(tmp_path):
    alone = _photo(tmp_path / "alone", "IMG_1.jpg")
    for stale in ("IMG_1.xmp", "IMG_1.jpg.xmp"):
        write_rating(str(alone.parent / stale), 2)
    mark = XmpMarker("lightroom").mark(str(alone), rating=5)
    assert mark.places == (str(alone), str(alone.parent / "IMG_1.jpg.xmp"),
                           str(alone.parent / "IMG_1.xmp"))
    assert {read_sidecar(str(alone.parent / s)) for s in ("IMG_1.xmp", "IMG_1.jpg.xmp")} == {5}
    pair = _photo(tmp_path / "pair", "IMG_2.jpg")
    _photo(tmp_path / "pair", "IMG_2.NEF")
    write_rating(str(pair.parent / "IMG_2.xmp"), 3)  # the RAW's
    assert XmpMarker("digikam").mark(str(pair), rating=5).places == (str(pair),)
    assert read_sidecar(str(pair.parent / "IMG_2.xmp")) == 3


@pytest.mark.parametrize("app", [None, *APPS])
def test_rejects_and_labels_read_back_as_the_lowest_label(tmp_path, app):
    jpeg = _photo(tmp_path, "IMG_1.jpg")
    raw = _photo(tmp_path, "IMG_2.NEF")
    marker = XmpMarker(app)
    assert marker.reject(str(jpeg)).ok and marker.reject(str(raw)).ok
    kept = marker.label(str(jpeg), "Green")
    assert kept.ok and kept.rating is None and kept.label == "Green"
    where = kept.places[0]
    packet = embedded_xmp(where) if where == str(jpeg) else Path(where).read_bytes()
    assert read_label(packet) == "Green" and read_rating(packet) == -1  # the reject kept
    ratings = read_ratings([str(tmp_path)], rejected_as_lowest=True, extensions=["jpg", "nef"])
    assert [(Path(p.path).name, p.rating, ratings.label(p)) for p in ratings.photos] == [
        ("IMG_1.jpg", -1, 0), ("IMG_2.NEF", -1, 0)]


def test_dry_run_reports_the_places_and_writes_nothing(tmp_path):
    jpeg = _photo(tmp_path, "IMG_1.jpg")
    before = jpeg.read_bytes()
    inside = XmpMarker("lightroom", dry_run=True).reject(str(jpeg))
    assert (inside.places, inside.rating, inside.dry_run, inside.inside) == (
        (str(jpeg),), -1, True, True)
    beside = XmpMarker("darktable", dry_run=True).label(str(jpeg))
    assert beside.places == (str(tmp_path / "IMG_1.jpg.xmp"),) and beside.label == "Green"
    assert jpeg.read_bytes() == before and os.listdir(tmp_path) == ["IMG_1.jpg"]
    jpeg.write_bytes(before[:-200])
    cut = XmpMarker("lightroom", dry_run=True).reject(str(jpeg))
    assert cut.places == () and "truncated JPEG" in cut.error


def test_problems_are_per_photo_and_say_what_and_where(tmp_path):
    png = tmp_path / "IMG_1.png"
    png.write_bytes(b"not opened")
    mark = XmpMarker("lightroom").reject(str(png))
    assert not mark.ok and mark.places == () and mark.error.startswith(
        "not written: lightroom reads the rating inside PNG files")
    broken = _photo(tmp_path, "IMG_2.jpg")
    broken.write_bytes(broken.read_bytes()[:-100])
    rater = SidecarRater(app="digikam")
    with pytest.raises(XmpError, match=r"IMG_2\.jpg: truncated JPEG .*; left unchanged"):
        rater.rate(str(broken), 0.5)
    good = _photo(tmp_path, "IMG_3.jpg")
    assert rater.rate(str(good), 0.5) == [str(good)]  # the run goes on
    with pytest.raises(ConfigError, match="unknown photo application 'picasa'"):
        XmpMarker("picasa")
    with pytest.raises(ValueError, match="not -1"):
        XmpMarker().mark(str(good), rating=7)


@pytest.mark.parametrize("order", [("IMG_1.JPG", "IMG_1.NEF"), ("IMG_1.NEF", "IMG_1.JPG")])
def test_raw_rating_wins_the_shared_sidecar_and_an_embedded_jpeg_keeps_its_own(tmp_path,
                                                                              order):
    jpeg_photo(tmp_path / "IMG_1.JPG")
    (tmp_path / "IMG_1.NEF").write_bytes(b"not opened")
    scores = {"IMG_1.JPG": 0.95, "IMG_1.NEF": 0.1}
    shared, inside = SidecarRater(app="capture-one"), SidecarRater(app="lightroom")
    for name in order:
        shared.rate(str(tmp_path / name), scores[name])
    assert read_sidecar(str(tmp_path / "IMG_1.xmp")) == 1
    for name in order:
        inside.rate(str(tmp_path / name), scores[name])
    assert read_sidecar(str(tmp_path / "IMG_1.xmp")) == 1
    assert read_rating(embedded_xmp(str(tmp_path / "IMG_1.JPG"))) == 5


def test_ratings_read_where_one_application_keeps_them(tmp_path):
    """An older --xmp run left IMG_1.xmp; the photographer then rated in Lightroom."""
    jpeg = jpeg_photo(tmp_path / "IMG_1.jpg", xmp=packet(5))
    write_rating(str(tmp_path / "IMG_1.xmp"), 3)
    save_with_xmp(Image.new("RGB", (8, 8)), tmp_path / "IMG_2.png", packet(4))
    (tmp_path / "IMG_3.NEF").write_bytes(b"not opened")
    write_rating(str(tmp_path / "IMG_3.NEF.xmp"), 2)

    def found(app):
        ratings = read_ratings([str(tmp_path)], extensions=["jpg", "png", "nef"], app=app)
        return [(p.rating, p.source and Path(p.source).name) for p in ratings.photos]

    assert found(None) == [(3, "IMG_1.xmp"), (4, "embedded"), (2, "IMG_3.NEF.xmp")]
    assert found("lightroom") == [(5, "embedded"), (4, "embedded"), (None, None)]
    assert found("darktable") == [(None, None), (None, None), (2, "IMG_3.NEF.xmp")]
    assert found("capture-one") == [(3, "IMG_1.xmp"), (None, None), (None, None)]
    assert rating_of(str(jpeg), app="digikam").rating == 5
    with pytest.raises(ConfigError):
        read_ratings([str(tmp_path)], app="aperture")
