import os

import numpy as np
import pytest
import torch
from PIL import Image

from grmpiqa.config import PreprocessConfig
from grmpiqa.errors import ImageError
from grmpiqa.io.images import open_image, to_rgb
from grmpiqa.io.preprocess import load_pixels, squash_crop

CFG = PreprocessConfig(resize=36, crop=32)


def _gradient(size=(40, 30)):
    w, h = size
    x = np.linspace(0, 255, w, dtype=np.float64)[None, :].repeat(h, 0)
    y = np.linspace(0, 255, h, dtype=np.float64)[:, None].repeat(w, 1)
    return np.stack([x, y, 255 - x], axis=-1).astype(np.uint8)


@pytest.mark.parametrize("mode", ["RGB", "L", "1", "P", "CMYK", "YCbCr", "RGBA", "LA", "I", "F"])
def test_every_mode_becomes_rgb(mode):
    image = Image.fromarray(_gradient()).convert(mode)
    rgb = to_rgb(image)
    assert rgb.mode == "RGB" and rgb.size == image.size


def test_transparency_is_composited_over_white():
    image = Image.new("RGBA", (4, 4), (0, 0, 0, 0))
    assert to_rgb(image).getpixel((0, 0)) == (255, 255, 255)
    half = Image.new("LA", (4, 4), (0, 128))
    assert to_rgb(half).getpixel((0, 0)) == (127, 127, 127)
    palette = Image.new("P", (4, 4), 0)
    palette.putpalette([10, 20, 30] + [0] * 765)
    palette.info["transparency"] = 0
    assert to_rgb(palette).getpixel((0, 0)) == (255, 255, 255)


def test_16_bit_grey_is_scaled_not_clipped(tmp_path):
    array = np.full((8, 8), 65535, dtype=np.uint16)
    array[:, :4] = 32896  # half way
    path = tmp_path / "g16.png"
    Image.fromarray(array).save(path)
    rgb = open_image(str(path))
    assert rgb.getpixel((7, 0)) == (255, 255, 255)
    assert rgb.getpixel((0, 0)) == (128, 128, 128)


def test_exif_orientation_is_applied(tmp_path):
    array = np.zeros((20, 40, 3), dtype=np.uint8)
    array[:, :20] = 255  # left half white, landscape 40x20
    image = Image.fromarray(array)
    exif = image.getexif()
    exif[0x0112] = 6  # rotate 90 CW to display
    path = tmp_path / "rot.jpg"
    image.save(path, exif=exif, quality=95)
    upright = open_image(str(path))
    assert upright.size == (20, 40)
    top, bottom = upright.getpixel((10, 5)), upright.getpixel((10, 35))
    assert top[0] > 200 and bottom[0] < 50  # the white half is now on top


def test_gif_first_frame(tmp_path):
    frames = [Image.new("P", (16, 16), i) for i in (1, 2)]
    for i, frame in enumerate(frames):
        frame.putpalette([0, 0, 0, 255, 0, 0, 0, 255, 0] + [0] * 759)
        frames[i] = frame
    path = tmp_path / "anim.gif"
    frames[0].save(path, save_all=True, append_images=frames[1:])
    assert open_image(str(path)).getpixel((0, 0)) == (255, 0, 0)


def test_preprocessing_squashes_then_centre_crops():
    array = np.zeros((72, 144, 3), dtype=np.uint8)
    array[:, :72] = 255
    out = squash_crop(Image.fromarray(array), CFG)
    assert out.shape == (3, 32, 32) and out.dtype == torch.uint8
    assert out[0, 16, 0] == 255 and out[0, 16, 31] == 0  # left half white after the squash


def test_draft_decoding_of_a_big_jpeg_stays_close(tmp_path):
    big = Image.fromarray(_gradient((1600, 1200))).resize((1600, 1200))
    path = tmp_path / "big.jpg"
    big.save(path, quality=92)
    drafted = load_pixels(str(path), CFG, draft=True).float()
    full = load_pixels(str(path), CFG, draft=False).float()
    assert (drafted - full).abs().mean() < 2.0


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda p: p.write_bytes(b""), "empty file"),
        (lambda p: p.write_text("hello, not an image"), "not an image"),
        (lambda p: p.mkdir(), "is a directory"),
        (lambda p: os.symlink(p.parent / "nowhere.jpg", p), "broken symbolic link"),
        (lambda p: os.mkfifo(p), "not a regular file"),
    ],
)
def test_bad_files_raise_clear_errors(tmp_path, make, message):
    path = tmp_path / "x.jpg"
    make(path)
    with pytest.raises(ImageError, match=message):
        open_image(str(path))


def test_truncated_jpeg(tmp_path):
    path = tmp_path / "t.jpg"
    Image.fromarray(_gradient((200, 200))).save(path, quality=90)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ImageError, match="cannot decode"):
        open_image(str(path))


def test_decompression_bomb_is_refused(tmp_path):
    path = tmp_path / "bomb.png"
    Image.new("L", (3000, 3000)).save(path)
    with pytest.raises(ImageError, match="over the limit"):
        open_image(str(path), max_pixels=1_000_000)
    assert open_image(str(path), max_pixels=10_000_000).size == (3000, 3000)


def test_symlink_loop(tmp_path):
    a, b = tmp_path / "a.jpg", tmp_path / "b.jpg"
    os.symlink(b, a)
    os.symlink(a, b)
    with pytest.raises(ImageError, match="loop"):
        open_image(str(a))
