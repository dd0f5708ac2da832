"""The images the measures look at: the photo at about 1 MP (focus, noise, exposure) and a
window of it at full resolution (JPEG blocks, which any resampling smears)."""

from __future__ import annotations

from typing import Any

import numpy as np
from PIL import Image

# Focus is judged where a photo is viewed whole: at ~1 MP a blur of 1 px is still seen,
# while the model's 224 px squash of a 12 MP photo hides a blur of up to ~15 px.
ANALYSIS_SIDE = 1024
BLOCK_WINDOW = 512  # native pixels a side read for JPEG blocking (64 blocks across)


def as_image(image: Any) -> Image.Image:
    """A PIL image from a PIL image or a uint8 array (H, W) or (H, W, 3|4)."""
    if isinstance(image, Image.Image):
        return image
    array = np.asarray(image)
    if array.dtype != np.uint8:
        raise TypeError(f"expected a uint8 array, got {array.dtype}")
    if array.ndim == 2:
        return Image.fromarray(array, "L")
    if array.ndim == 3 and array.shape[2] in (3, 4):
        return Image.fromarray(np.ascontiguousarray(array[..., :3]), "RGB")
    raise ValueError(f"expected an image shaped (H, W) or (H, W, 3), got {array.shape}")


def grey(image: Image.Image) -> Image.Image:
    """8-bit luma (ITU-R 601, as JPEG stores it)."""
    if image.mode == "L":
        return image
    return (image if image.mode == "RGB" else image.convert("RGB")).convert("L")


def analysis_grey(image: Image.Image, side: int = ANALYSIS_SIDE) -> Image.Image:
    """Luma with the long side at most ``side``: a whole-factor box reduction (exact
    averages, fast), then luma. Reducing first: on a 12 MP photo Pillow 13's luma of
    every pixel cost 28 ms of CPU, the reduction of three channels and the luma of what
    is left 12 ms."""
    factor = -(-max(image.size) // side)
    if factor > 1:
        if image.mode not in ("L", "RGB"):
            image = image.convert("RGB")
        image = image.reduce(factor)
    return grey(image)


def levels(image: Image.Image) -> np.ndarray:
    """int16 pixel values of a grey image: differences of uint8 need the sign and room."""
    return np.asarray(image).astype(np.int16)


def native_window(image: Image.Image, side: int = BLOCK_WINDOW) -> np.ndarray:
    """int16 luma of the central ``side`` x ``side`` window at full resolution."""
    width, height = image.size
    left, top = max(0, (width - side) // 2), max(0, (height - side) // 2)
    window = image.crop((left, top, min(width, left + side), min(height, top + side)))
    return levels(grey(window))
