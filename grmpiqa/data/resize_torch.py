"""OpenCV's ``cv2.resize(..., interpolation=cv2.INTER_CUBIC)`` on uint8 tensors, on any device.

:func:`grmpiqa.io.resize.resize_cubic` (numpy, the CPU path) in torch, for
images decoded on the GPU: the same taps and weights (taken from that module),
the horizontal pass first, then the vertical one; sides of at least 4 pixels
in float32 with the taps summed in OpenCV's order and rounded half up, a
smaller side in 11-bit fixed point. Only the source rows the taps touch are
read, so a 12 MP photo costs little.
"""

from __future__ import annotations

import functools

import numpy as np
import torch

from grmpiqa.io.resize import FIXED_BITS, SMALL_SIDE, cubic_taps


def _pass(values: torch.Tensor, dim: int, index: torch.Tensor, weights: torch.Tensor
          ) -> torch.Tensor:
    """Sum over the 4 taps in order (tap 0 first), as OpenCV adds them. Each tap is
    converted to the weights' type after it is selected, so a 12 MP photo is never held
    in float32 whole."""
    shape = [1] * values.ndim
    shape[dim] = weights.shape[0]

    def tap(k: int) -> torch.Tensor:
        return values.index_select(dim, index[:, k]).to(weights.dtype) \
            * weights[:, k].reshape(shape)

    total = tap(0)
    for k in range(1, 4):
        total = total + tap(k)
    return total


@functools.lru_cache(maxsize=64)
def _plan(src_h: int, src_w: int, height: int, width: int, device: torch.device
          ) -> tuple[bool, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Taps for one size change, on ``device``: photos of one size share them (no copies)."""
    fixed = min(src_h, src_w) < SMALL_SIDE
    rows, wy = cubic_taps(src_h, height, fixed_point=fixed)
    cols, wx = cubic_taps(src_w, width, fixed_point=fixed)
    needed, slot = np.unique(rows, return_inverse=True)
    if fixed:
        scale = np.float32(1 << FIXED_BITS)
        wx, wy = np.rint(wx * scale).astype(np.int64), np.rint(wy * scale).astype(np.int64)

    def on_device(array: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(array)).to(device)

    return (fixed, on_device(needed), on_device(slot.reshape(rows.shape)), on_device(cols),
            on_device(wx), on_device(wy))


def resize_cubic(images: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """uint8 (..., C, H, W) -> uint8 (..., C, height, width), as ``cv2.resize`` INTER_CUBIC."""
    if images.dtype != torch.uint8 or images.ndim < 3:
        raise ValueError(f"expected uint8 (..., C, H, W), got {images.dtype} "
                         f"{tuple(images.shape)}")
    src_h, src_w = images.shape[-2:]
    if min(src_h, src_w, height, width) < 1:
        raise ValueError(f"cannot resize {src_w}x{src_h} to {width}x{height}")
    fixed, needed, slot, cols, wx, wy = _plan(int(src_h), int(src_w), height, width,
                                              images.device)
    gathered = images.index_select(-2, needed)
    total = _pass(_pass(gathered, -1, cols, wx), -2, slot, wy)  # int64 or float32 sums
    if fixed:
        total = (total + (1 << (2 * FIXED_BITS - 1))) >> (2 * FIXED_BITS)
        return total.clamp_(0, 255).to(torch.uint8)
    return torch.floor(total + 0.5).clamp_(0, 255).to(torch.uint8)
