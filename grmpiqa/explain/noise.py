"""Noise: its standard deviation in 8-bit levels, from the flattest parts of the image.

Immerkaer's estimator (1996): the 3x3 mask (1 -2 1)^T (1 -2 1) cancels any local
plane, so on a flat patch what is left is noise, with E|r| = 6 sigma sqrt(2/pi). It
is evaluated per block and a low quantile of the blocks kept: edges and texture
raise a block's estimate, never lower it, so the flattest blocks read the noise.
Blocks near black or white are left out (clipping flattens noise away).
"""

from __future__ import annotations

import math

import numpy as np

BLOCK = 16  # pixels a side per estimate
FLATTEST = 0.1  # the quantile of block estimates kept
_SCALE = math.sqrt(math.pi / 2.0) / 6.0
_DARKEST, _BRIGHTEST = 8, 247  # block means outside this range are clipped or near it


def residual(grey: np.ndarray) -> np.ndarray:
    """|(1 -2 1)^T (1 -2 1) * grey| over the interior of an int16 image (two passes)."""
    rows = grey[:, :-2] - 2 * grey[:, 1:-1] + grey[:, 2:]
    return np.abs(rows[:-2] - 2 * rows[1:-1] + rows[2:])


def _block_means(values: np.ndarray, block: int) -> np.ndarray:
    h, w = values.shape[0] // block, values.shape[1] // block
    cut = values[:h * block, :w * block].reshape(h, block, w, block)
    return cut.sum(axis=(1, 3), dtype=np.int64) / float(block * block)


def noise_sigma(grey: np.ndarray) -> float:
    """Estimated noise standard deviation (8-bit levels) of an int16 luma image."""
    if min(grey.shape) < BLOCK + 2:
        return 0.0
    sigma = _block_means(residual(grey), BLOCK) * _SCALE
    level = _block_means(grey[1:-1, 1:-1], BLOCK)
    usable = sigma[(level > _DARKEST) & (level < _BRIGHTEST)]
    if usable.size == 0:
        return 0.0
    return float(np.quantile(usable, FLATTEST))
