"""HEIC/HEIF (extra ``heif``) and camera RAW (extra ``raw``), with files the tests make."""

import io
import json
import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from grmpiqa.cli.app import app
from grmpiqa.errors import ImageError
from grmpiqa.io.images import looks_like_heif, open_image
from grmpiqa.io.inputs import DEFAULT_EXTENSIONS
from photos import write_dng

runner = CliRunner()
RED, BLUE = (250, 30, 30), (30, 30, 250)


def _halves(width=96, height=64):
    """Left half red, right half blue."""
    array = np.zeros((height, width, 3), np.uint8)
    array[:, : width // 2] = RED
    array[:, width // 2:] = BLUE
    return array


def _close(pixel, colour, tolerance=40):
    return all(abs(a - b) <= tolerance for a, b in zip(pixel, colour, strict=True))


def _heic(path, array):
    import pillow_heif

    pillow_heif.from_bytes(mode="RGB", size=(array.shape[1], array.shape[0]),
                           data=array.tobytes()).save(str(path), quality=95)
    return path


def test_extras_are_in_the_default_extensions():
    assert {"heic", "heif", "cr2", "nef", "arw", "dng"} <= set(DEFAULT_EXTENSIONS)


def test_heic_opens_and_is_found_by_content(tmp_path):
    heic = _heic(tmp_path / "phone.heic", _halves())
    image = open_image(str(heic))
    assert image.size == (96, 64)
    assert _close(image.getpixel((5, 30)), RED) and _close(image.getpixel((90, 30)), BLUE)
    disguised = tmp_path / "exported.jpg"  # phones export HEIC under .jpg names
    disguised.write_bytes(heic.read_bytes())
    assert looks_like_heif(disguised.read_bytes()[:64])
    assert open_image(str(disguised)).size == (96, 64)
    assert not looks_like_heif(b"\xff\xd8\xff\xe0" + bytes(60))


def test_dng_without_preview_is_demosaiced_at_half_size(tmp_path):
    dng = write_dng(tmp_path / "plain.dng", _halves())
    image = open_image(str(dng))
    assert image.size == (48, 32) and image.mode == "RGB"
    assert _close(image.getpixel((4, 16)), (255, 0, 60), 70)
    assert _close(image.getpixel((44, 16)), (0, 60, 255), 70)


def test_dng_preview_is_used_when_big_enough_and_turned_upright(tmp_path):
    big = np.asarray(Image.fromarray(_halves()).resize((600, 400)))
    dng = write_dng(tmp_path / "preview.dng", _halves(), preview=big, orientation=6)
    image = open_image(str(dng), draft_size=300)
    assert image.size == (400, 600)  # the preview, rotated 90 degrees clockwise
    assert _close(image.getpixel((200, 10)), RED) and _close(image.getpixel((200, 590)), BLUE)
    small = open_image(str(dng), draft_size=500)  # preview too small: demosaic (also upright)
    assert small.size == (32, 48)


def test_dng_jpeg_preview(tmp_path):
    big = Image.fromarray(_halves()).resize((960, 640))
    jpeg = io.BytesIO()
    big.save(jpeg, "JPEG", quality=92)
    dng = write_dng(tmp_path / "jpeg.dng", _halves(), preview=jpeg.getvalue(), orientation=3)
    image = open_image(str(dng), draft_size=200)
    assert min(image.size) >= 200 and image.size[0] > image.size[1]
    assert _close(image.getpixel((5, 5)), BLUE)  # turned 180 degrees


def test_raw_errors_are_clear(tmp_path):
    junk = tmp_path / "junk.nef"
    junk.write_bytes(b"II*\0" + bytes(200))
    with pytest.raises(ImageError, match="not a camera RAW file"):
        open_image(str(junk))
    dng = write_dng(tmp_path / "big.dng", _halves())
    with pytest.raises(ImageError, match="over the limit"):
        open_image(str(dng), max_pixels=1000)
    odd = tmp_path / os.fsdecode(b"caf\xe9 raw.dng")  # not UTF-8: LibRaw gets a file object
    odd.write_bytes(dng.read_bytes())
    assert open_image(str(odd)).size == (48, 32)


def test_score_a_folder_with_heic_and_raw(use_tiny_manifest, tmp_path):
    _heic(tmp_path / "a.heic", _halves())
    write_dng(tmp_path / "b.dng", _halves())
    Image.fromarray(_halves()).save(tmp_path / "c.jpg")
    result = runner.invoke(app, ["score", str(tmp_path), "-f", "jsonl", "-j", "0"])
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert [os.path.basename(r["path"]) for r in rows] == ["a.heic", "b.dng", "c.jpg"]
    assert all(r["error"] is None for r in rows)



@pytest.mark.slow
def test_raw_in_a_decoding_worker_warns_nothing(use_tiny_manifest, tmp_path):
    """Issue 24 item 8: rawpy warns about the fork start method in every forked process
    that opens a RAW file; the decoding workers of a run with RAW files start from a fork
    server instead, so -q leaves stderr empty, and the rows are those of one process."""
    write_dng(tmp_path / "b.dng", _halves())
    Image.fromarray(_halves()).save(tmp_path / "c.jpg")
    runs = {}
    for workers in ("1", "0"):
        out = subprocess.run([sys.executable, "-m", "grmpiqa", "score", str(tmp_path), "-q",
                              "-j", workers, "--no-cache", "-f", "jsonl"],
                             capture_output=True, text=True, timeout=300, cwd=tmp_path)
        assert out.returncode == 0, out.stderr
        runs[workers] = [json.loads(line) for line in out.stdout.splitlines()]
        assert out.stderr == "", out.stderr
    assert [os.path.basename(r["path"]) for r in runs["1"]] == ["b.dng", "c.jpg"]
    assert runs["1"] == runs["0"]


MISSING = """
import sys
sys.modules[{module!r}] = None  # as if the extra were not installed
from collections import Counter
from grmpiqa.errors import ImageError
from grmpiqa.io.images import open_image
from grmpiqa.io.inputs import DEFAULT_EXTENSIONS, expand_inputs
print({ext!r} in DEFAULT_EXTENSIONS)
skipped = Counter()
print(expand_inputs([sys.argv[2]], skipped=skipped), dict(skipped))
try:
    open_image(sys.argv[1])
except ImageError as exc:
    print(exc)
"""


@pytest.mark.parametrize(("module", "extra", "name", "kind"), [
    ("pillow_heif", "heif", "x.heic", "HEIC/HEIF"), ("rawpy", "raw", "x.dng", "camera RAW")])
def test_without_the_extra_the_error_names_it(tmp_path, module, extra, name, kind):
    photo = tmp_path / name
    if extra == "heif":
        _heic(photo, _halves())
    else:
        write_dng(photo, _halves())
    code = MISSING.format(module=module, ext=name.rpartition(".")[2])
    out = subprocess.run([sys.executable, "-c", code, str(photo), str(tmp_path)],
                         capture_output=True, text=True, timeout=120)
    lines = out.stdout.splitlines()
    assert out.returncode == 0, out.stderr
    assert lines[0] == "False"  # not picked up in folders
    assert lines[1] == f"[] {{'{extra}': 1}}"  # but counted, so the command can say so
    assert lines[2] == f"{kind} files need the optional extra: pip install 'grmpiqa[{extra}]'"


def test_ci_installs_exactly_what_the_readme_says():
    """The user's install comes first; CI runs the Development section's commands."""
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    readme = root.joinpath("README.md").read_text()
    ci = root.joinpath(".ci", "run").read_text().splitlines()
    install, development = readme.split("## Install and run")[1].split("\n## ")[0], \
        readme.split("## Development")[1]

    def commands(section: str) -> list[str]:
        return [line.split("#")[0].strip() for line in section.splitlines()
                if line.startswith(("pip install", "pytest", "grmpiqa"))]

    assert commands(install) == ["pip install .", "grmpiqa score ./photos"]
    dev = commands(development)
    assert dev[:2] == ['pip install -e ".[dev,heif,raw,parquet,ray]"', "pytest"]
    assert [line for line in ci if line.startswith(("pip install", "pytest"))] == dev[:2]
