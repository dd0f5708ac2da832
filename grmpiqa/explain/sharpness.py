"""Sharpness where the photo is sharpest: a no-reference blur estimate per tile, the
sharpest textured tiles kept, so a portrait's soft background does not read as blur.

The per-tile estimate is the re-blur principle of Crete-Roffet et al. (2007): blur a
tile again with a 9-tap box and see how much of its pixel-to-pixel variation that
removes. A sharp tile loses most of it, an already blurred one little. Every second
row (column) is read for the horizontal (vertical) steps: the estimate is a ratio of
sums, and half the lines give it at half the cost.
"""

from __future__ import annotations

import numpy as np

TILES = 8  # tiles per side of the analysis image
RE_BLUR = 9  # box length of the re-blur
MIN_TEXTURE = 2.0  # mean |step| in 8-bit levels: flatter tiles say nothing about focus ...
FULL_SPAN = 150  # ... in a photo whose levels span this much (1st to 99th percentile); a
# dim or flat photo's steps shrink with its span, the re-blur ratio does not
LEAST_SPAN = 30  # a span under this counts as this (a near-uniform frame stays flat)
SHARPEST = 0.9  # the quantile of tile sharpness kept: the in-focus part, not one lucky tile


def _tile_sums(values: np.ndarray, tiles: int) -> np.ndarray:
    h, w = values.shape
    th, tw = h // tiles, w // tiles
    cut = values[:th * tiles, :tw * tiles]
    return cut.reshape(tiles, th, tiles, tw).sum(axis=(1, 3), dtype=np.int64)


def _along_rows(lines: np.ndarray, tiles: int) -> tuple[np.ndarray, np.ndarray]:
    """Per tile of ``lines`` (int16): the mean |step| along the rows, and the share of the
    steps the re-blur removes. A step of the box-blurred row is the pixel entering its
    window minus the one leaving it, over ``RE_BLUR``: one subtraction."""
    half = RE_BLUR // 2
    steps = np.abs(lines[:, half + 1:-half] - lines[:, half:-half - 1])
    blurred = np.abs(lines[:, RE_BLUR:] - lines[:, :-RE_BLUR])
    lost = np.maximum(RE_BLUR * steps - blurred, 0)
    total = _tile_sums(steps, tiles)
    area = (steps.shape[0] // tiles) * (steps.shape[1] // tiles)
    return total / max(area, 1), _tile_sums(lost, tiles) / (RE_BLUR * np.maximum(total, 1))


def tile_sharpness(grey: np.ndarray, tiles: int = TILES) -> tuple[np.ndarray, np.ndarray]:
    """(sharpness 0..1 per tile, mean |step| per tile) of an int16 luma image."""
    tiles = max(1, min(tiles, min(grey.shape) // 24))
    texture_across, sharp_across = _along_rows(grey[::2], tiles)
    texture_down, sharp_down = _along_rows(grey[:, ::2].T, tiles)
    return (np.minimum(sharp_across, sharp_down.T),
            0.5 * (texture_across + texture_down.T))


def min_texture(span: float) -> float:
    """The texture a tile needs to count, for a photo whose levels span ``span``: lower in
    a dim or low-contrast photo (a gain of 0.25 divides every step by 4), never higher."""
    return MIN_TEXTURE * min(1.0, max(span, LEAST_SPAN) / FULL_SPAN)


def sharpness(grey: np.ndarray, span: float = FULL_SPAN) -> float:
    """How sharp the sharpest part of the image is: 1 = crisp, 0 = no detail left.

    The re-blur removes most variation from a sharp tile (ratio near 1) and little
    from a blurred one; the worse of the two directions counts (motion blur is
    one-directional). Tiles without texture (:func:`min_texture` of the photo's
    level ``span``) are left out; a flat image reads 0.
    """
    if min(grey.shape) < 3 * RE_BLUR:
        return 0.0
    sharp, texture = tile_sharpness(grey)
    textured = sharp[texture >= min_texture(span)]
    if textured.size == 0:
        return 0.0
    return float(np.clip(np.quantile(textured, SHARPEST), 0.0, 1.0))
