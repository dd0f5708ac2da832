"""OpenCV's ``cv2.resize(..., interpolation=cv2.INTER_CUBIC)`` on uint8 RGB, in numpy.

The authors squash every photo with that call, so their weights expect its
pixels: bicubic with a = -0.75, half-pixel centres, replicated borders and no
antialiasing (each output pixel reads 4 source pixels per axis, however much
the image shrinks). OpenCV (checked against 4.10 and 5.0) computes it in one
of two ways, and both are reproduced here:

- an image whose sides are both at least 4 pixels: tap positions in float64,
  weights in float32, both passes in float32, rounded half up;
- a smaller side: 11-bit fixed-point weights from float32 tap positions,
  integer sums, one rounding at the end.

Only the source rows and columns the taps touch are gathered, so a 12 MP
photo costs a few milliseconds. See docs/method.md ("Preprocessing").
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

_A = np.float32(-0.75)
FIXED_BITS = 11  # OpenCV's INTER_RESIZE_COEF_BITS
SMALL_SIDE = 4  # below this, OpenCV takes its fixed-point path


def cubic_weights(fraction: np.ndarray) -> np.ndarray:
    """(n, 4) float32 weights of the taps at -1, 0, 1, 2 for fractional offsets in [0, 1)."""
    x = fraction.astype(np.float32)
    one, two, three = np.float32(1), np.float32(2), np.float32(3)
    w0 = ((_A * (x + one) - np.float32(5) * _A) * (x + one) + np.float32(8) * _A) * (x + one) \
        - np.float32(4) * _A
    w1 = ((_A + two) * x - (_A + three)) * x * x + one
    y = one - x
    w2 = ((_A + two) * y - (_A + three)) * y * y + one
    w3 = one - w0 - w1 - w2
    return np.stack([w0, w1, w2, w3], axis=1)


def cubic_taps(source: int, target: int, *, fixed_point: bool = False
               ) -> tuple[np.ndarray, np.ndarray]:
    """Source indices (target, 4), clamped to the image, and their float32 weights."""
    scale = 1.0 / (target / source)
    centre = (np.arange(target, dtype=np.float64) + 0.5) * scale - 0.5
    if fixed_point:
        centre32 = centre.astype(np.float32)
        start = np.floor(centre32).astype(np.int64)
        fraction = centre32 - start.astype(np.float32)
    else:
        start = np.floor(centre).astype(np.int64)
        fraction = centre - start
    index = np.clip(start[:, None] + np.arange(-1, 3)[None, :], 0, source - 1)
    return index, cubic_weights(fraction)


def resize_cubic(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """uint8 (H, W, C) -> uint8 (height, width, C), as ``cv2.resize`` with INTER_CUBIC."""
    if image.dtype != np.uint8 or image.ndim != 3:
        raise ValueError(f"expected a uint8 (H, W, C) array, got {image.dtype} {image.shape}")
    return resize_cubic_rows(lambda rows: image[rows], image.shape[0], image.shape[1],
                             height, width)


def resize_cubic_rows(take_rows: Callable[[np.ndarray], np.ndarray], src_h: int, src_w: int,
                      height: int, width: int) -> np.ndarray:
    """:func:`resize_cubic` of an image that gives only the rows its taps read:
    ``take_rows(rows)`` returns those source rows, uint8 (len(rows), src_w, C), so a
    caller holding the image elsewhere (a Pillow image) copies a third of a 12 MP photo
    instead of all of it."""
    if src_h < 1 or src_w < 1 or height < 1 or width < 1:
        raise ValueError(f"cannot resize {src_w}x{src_h} to {width}x{height}")
    fixed = min(src_h, src_w) < SMALL_SIDE
    rows, wy = cubic_taps(src_h, height, fixed_point=fixed)
    cols, wx = cubic_taps(src_w, width, fixed_point=fixed)
    needed, row_slot = np.unique(rows, return_inverse=True)
    row_slot = row_slot.reshape(rows.shape)
    source = take_rows(needed)
    gathered = source[:, cols.ravel()].reshape(len(needed), width, 4, source.shape[2])
    if fixed:
        scale = np.float32(1 << FIXED_BITS)
        ix = np.rint(wx * scale).astype(np.int64)
        iy = np.rint(wy * scale).astype(np.int64)
        across = np.einsum("rwkc,wk->rwc", gathered.astype(np.int64), ix)
        total = np.einsum("hkwc,hk->hwc", across[row_slot], iy)
        out = (total + (1 << (2 * FIXED_BITS - 1))) >> (2 * FIXED_BITS)
    else:
        across = np.einsum("rwkc,wk->rwc", gathered.astype(np.float32), wx)
        total = np.einsum("hkwc,hk->hwc", across[row_slot], wy)
        out = np.floor(total + np.float32(0.5))
    return np.clip(out, 0, 255).astype(np.uint8)
