"""The defect measures on made images: each monotone in its distortion's strength."""

from __future__ import annotations

import io
from itertools import pairwise

import numpy as np
import pytest
from PIL import Image, ImageFilter

import grmpiqa
from grmpiqa.explain.analysis import levels
from grmpiqa.explain.blocking import blockiness
from grmpiqa.explain.exposure import clipped_parts, exposure_ev, level_at, shadow_share
from grmpiqa.explain.image import defects, explain_image
from grmpiqa.explain.noise import noise_sigma
from grmpiqa.explain.sharpness import FULL_SPAN, MIN_TEXTURE, min_texture, sharpness


def _edges(size: int = 384, cell: int = 7) -> Image.Image:
    """Sharp checks in five greys: edges in both directions everywhere, the median pixel
    near middle grey; 7 px cells put edges at every phase of the 8 px JPEG grid alike."""
    rng = np.random.default_rng(0)
    cells = rng.choice(np.array([30, 70, 110, 150, 190], np.uint8),
                       (-(-size // cell), -(-size // cell)))
    return Image.fromarray(np.kron(cells, np.ones((cell, cell), np.uint8))[:size, :size], "L")


def _flat(level: int, sigma: float, size: int = 256, seed: int = 1) -> np.ndarray:
    rng = np.random.default_rng(seed)
    array = level + rng.normal(0.0, sigma, (size, size))
    return np.clip(array, 0, 255).round().astype(np.int16)


def _jpeg(image: Image.Image, quality: int) -> Image.Image:
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=quality)
    return Image.open(io.BytesIO(buffer.getvalue())).convert("L")


def test_sharpness_falls_with_the_blur_sigma() -> None:
    image = _edges()
    values = [sharpness(levels(image.filter(ImageFilter.GaussianBlur(s)) if s else image))
              for s in (0, 0.7, 1.5, 3.0, 6.0)]
    assert values[0] > 0.8
    assert all(a > b for a, b in pairwise(values)), values
    assert values[-1] < 0.3


def test_a_sharp_part_keeps_the_photo_sharp() -> None:
    """A soft background (three quarters of the frame) does not make the photo read blurred."""
    image = _edges()
    soft = np.asarray(image.filter(ImageFilter.GaussianBlur(4))).copy()
    soft[:192, :192] = np.asarray(image)[:192, :192]  # the subject, in focus
    assert sharpness(levels(Image.fromarray(soft))) > 0.8
    assert sharpness(levels(image.filter(ImageFilter.GaussianBlur(4)))) < 0.4


def test_noise_reads_the_sigma_and_rises_with_it() -> None:
    values = [noise_sigma(_flat(120, s)) for s in (0, 2, 5, 10, 20)]
    assert values[0] == 0.0
    assert all(a < b for a, b in pairwise(values)), values
    for sigma, value in zip((5, 10, 20), values[2:], strict=True):
        assert value == pytest.approx(sigma, rel=0.15)


def test_noise_ignores_edges_and_a_plane() -> None:
    ramp = np.add.outer(np.arange(256), np.arange(256)) // 4 + 40
    assert noise_sigma(ramp.astype(np.int16)) < 0.5
    assert noise_sigma(levels(_edges(cell=48))) < 0.5  # flat between the edges


def test_exposure_in_stops_follows_the_gain() -> None:
    rng = np.random.default_rng(2)
    linear = rng.uniform(0.04, 0.32, (128, 128))  # median about middle grey

    def histogram(gain: float) -> list[int]:
        value = np.clip(linear * gain, 0, 1)
        srgb = np.where(value <= 0.0031308, 12.92 * value, 1.055 * value ** (1 / 2.4) - 0.055)
        return np.bincount((srgb * 255).round().astype(int).ravel(), minlength=256).tolist()

    stops = [exposure_ev(histogram(g)) for g in (0.125, 0.25, 0.5, 1, 2)]
    assert all(a < b for a, b in pairwise(stops)), stops
    assert stops[3] == pytest.approx(0.0, abs=0.3)
    assert stops[1] == pytest.approx(-2.0, abs=0.3)
    assert stops[4] == pytest.approx(1.0, abs=0.3)


def test_clipped_counts_both_ends() -> None:
    histogram = [0] * 256
    histogram[0], histogram[128], histogram[255] = 10, 80, 10
    assert clipped_parts(histogram) == (0.1, 0.1)


def _gamma_histogram(gamma: float) -> list[int]:
    """Levels 0..255 evenly, through x ** gamma (the project's darken / brighten)."""
    values = (np.linspace(0.0, 1.0, 4096) ** gamma * 255).round().astype(int)
    return np.bincount(values, minlength=256).tolist()


def test_shadows_pile_up_as_a_photo_darkens() -> None:
    shares = [shadow_share(_gamma_histogram(g)) for g in (1.0, 1.25, 1.5, 1.8, 2.2, 2.8)]
    assert all(a < b for a, b in pairwise(shares)), shares
    assert shares[0] == pytest.approx(9 / 256, abs=0.002)  # levels 0..8 of an even ramp
    assert shares[4] == pytest.approx((8.5 / 255) ** (1 / 2.2), abs=0.01)


def test_the_darkest_level_lifts_as_a_photo_brightens() -> None:
    lows = [level_at(_gamma_histogram(1 / g), 0.01) for g in (1.0, 1.25, 1.5, 1.8, 2.2, 2.8)]
    assert all(a < b for a, b in pairwise(lows)), lows
    assert lows[0] == pytest.approx(2.55, abs=1) and lows[4] == pytest.approx(
        255 * 0.01 ** (1 / 2.2), abs=2)
    assert level_at(_gamma_histogram(1.0), 0.99) == pytest.approx(252, abs=1)


def test_the_texture_a_tile_needs_follows_the_photos_span() -> None:
    assert min_texture(255) == min_texture(FULL_SPAN) == MIN_TEXTURE  # never raised
    spans = [min_texture(s) for s in (FULL_SPAN, 100, 60, 30, 5)]
    assert all(a > b for a, b in pairwise(spans[:4])) and spans[3] == spans[4]


def test_a_dim_photo_keeps_its_sharpness() -> None:
    """A gain of 0.2 shrinks every step five times: still sharp, not blur (sparse edges, so
    the steps fall under the texture a full-span photo's tile needs)."""
    image = np.asarray(_edges(cell=15), np.float32)
    dim = Image.fromarray((image * 0.2).round().astype(np.uint8))
    histogram = dim.histogram()
    span = level_at(histogram, 0.99) - level_at(histogram, 0.01)
    assert sharpness(levels(dim)) == 0.0  # at the full span's texture nothing counts
    assert sharpness(levels(dim), span=span) > 0.8
    assert explain_image(dim).defects == ("underexposed",)


def test_defects_name_gamma_darkening_and_brightening() -> None:
    """A normal-looking median with crushed shadows, or with lifted blacks."""
    plain = {"sharp": 0.9, "noise": 0.5, "white": 0.0, "compression": 0.2}
    assert defects(exposure=-1.5, **plain) == ""
    assert defects(exposure=-1.5, shadows=0.2, **plain) == "underexposed"
    assert defects(exposure=-0.5, shadows=0.2, **plain) == ""  # a silhouette, lit well
    assert defects(exposure=-0.5, darkest=10, **plain) == ""
    assert defects(exposure=-0.5, darkest=60, **plain) == "overexposed"
    assert defects(exposure=-2.0, darkest=60, **plain) == ""  # dim and hazy is not over


def test_blocking_rises_as_jpeg_quality_falls() -> None:
    smooth = Image.fromarray(np.add.outer(np.arange(384), np.arange(384)).astype(np.uint8)
                             ).filter(ImageFilter.GaussianBlur(2))
    photo = Image.blend(smooth, _edges().filter(ImageFilter.GaussianBlur(3)), 0.3)
    values = [blockiness(levels(_jpeg(photo, q))) for q in (95, 50, 20, 10, 5)]
    assert all(a < b for a, b in pairwise(values)), values
    assert blockiness(levels(photo)) < 0.3
    shifted = levels(_jpeg(photo, 10))[3:, 5:]  # the grid's phase is not assumed
    assert blockiness(shifted) == pytest.approx(values[3], rel=0.3)


def test_explain_image_names_the_defects() -> None:
    rng = np.random.default_rng(3)
    base = Image.merge("RGB", [_edges().filter(ImageFilter.GaussianBlur(0.6))] * 3)
    clean = explain_image(base)
    assert clean.why == ""
    assert "blur" in explain_image(base.filter(ImageFilter.GaussianBlur(5))).defects
    noisy = np.asarray(base, np.float32) + rng.normal(0, 12, (384, 384, 3))
    assert explain_image(np.clip(noisy, 0, 255).astype(np.uint8)).defects == ("noise",)
    dark = (np.asarray(base, np.float32) * 0.15).astype(np.uint8)
    assert "underexposed" in explain_image(dark).defects
    bright = np.clip(np.asarray(base, np.float32) * 3.0, 0, 255).astype(np.uint8)
    assert "overexposed" in explain_image(bright).defects
    assert "compression" in explain_image(_jpeg(base, 5)).defects


def test_public_and_torch_free() -> None:
    assert grmpiqa.explain_image is explain_image
    explanation = grmpiqa.explain_image(np.full((64, 64), 128, np.uint8))
    assert isinstance(explanation, grmpiqa.Explanation)
    assert explanation.sharpness == 0.0 and explanation.noise == 0.0
    with pytest.raises(TypeError):
        explain_image(np.zeros((8, 8), np.float32))
