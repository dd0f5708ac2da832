"""From a photo to the model's input: squash to ``resize``, take the centre ``crop``.

Files, PIL images and tensors all go through :func:`squash_array`, so scoring,
``adapt`` and ``pretrain`` see the same pixels. With ``antialias=False`` (the
authors' pipeline) that is OpenCV's INTER_CUBIC squash of the full-resolution
image (:mod:`grmpiqa.io.resize`). Workers return uint8 tensors (a quarter of the
bytes of float32); the model normalises on its own device with the constants
its weights were trained with.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from PIL import Image

from grmpiqa.config import PreprocessConfig
from grmpiqa.errors import ImageError
from grmpiqa.io.images import DEFAULT_MAX_PIXELS, open_image, to_rgb
from grmpiqa.io.resize import resize_cubic, resize_cubic_rows

_RESAMPLE = {"bicubic": Image.Resampling.BICUBIC, "bilinear": Image.Resampling.BILINEAR}


def draft_size(cfg: PreprocessConfig) -> int:
    """``--fast-decode``: JPEGs decoded at a reduced scale, no less than twice the squash."""
    return 2 * cfg.resize


def squash_array(array: np.ndarray, cfg: PreprocessConfig) -> np.ndarray:
    """uint8 RGB (H, W, 3) -> uint8 (resize, resize, 3), aspect ratio not kept."""
    if not cfg.antialias:
        return resize_cubic(array, cfg.resize, cfg.resize)
    image = Image.fromarray(array, "RGB")
    resized = image.resize((cfg.resize, cfg.resize), _RESAMPLE[cfg.interpolation])
    return np.asarray(resized, dtype=np.uint8)


def pillow_rows(image: Image.Image) -> Callable[[np.ndarray], np.ndarray]:
    """The sorted ``rows`` of an RGB Pillow image as uint8 (len(rows), W, 3), copying only
    those rows (a run of consecutive rows at a time) out of Pillow's memory."""
    width = image.width

    def take(rows: np.ndarray) -> np.ndarray:
        if 2 * len(rows) > image.height:  # a small squash reads most rows: one copy of all
            return np.asarray(image)[rows]
        breaks = np.flatnonzero(np.diff(rows) != 1) + 1
        bands = [np.asarray(image.crop((0, int(run[0]), width, int(run[-1]) + 1)))
                 for run in np.split(rows, breaks)]
        return bands[0] if len(bands) == 1 else np.concatenate(bands)

    return take


def squash_crop(image: Image.Image | np.ndarray, cfg: PreprocessConfig) -> torch.Tensor:
    """RGB image (PIL or uint8 HWC array) -> uint8 tensor (3, crop, crop): squash, centre crop."""
    if isinstance(image, Image.Image) and image.mode == "RGB" and not cfg.antialias:
        squashed = resize_cubic_rows(pillow_rows(image), image.height, image.width,
                                     cfg.resize, cfg.resize)
    else:
        squashed = squash_array(np.asarray(image, dtype=np.uint8), cfg)
    offset = (cfg.resize - cfg.crop) // 2
    cropped = squashed[offset:offset + cfg.crop, offset:offset + cfg.crop]
    return torch.from_numpy(np.ascontiguousarray(cropped)).permute(2, 0, 1).contiguous()


def _checked_squash(image: Image.Image, cfg: PreprocessConfig) -> torch.Tensor:
    try:
        return squash_crop(image, cfg)
    except (ValueError, OSError, MemoryError) as exc:
        raise ImageError(f"cannot resize ({type(exc).__name__}: {exc})") from None


def load_pixels(path: str, cfg: PreprocessConfig, *, draft: bool = False,
                max_pixels: int = DEFAULT_MAX_PIXELS,
                inspect: Callable[[Image.Image], None] | None = None) -> torch.Tensor:
    """Decode and preprocess one file; raises :class:`ImageError` with the reason.

    ``draft=True`` is ``--fast-decode``: big JPEGs decode at 1/2, 1/4 or 1/8
    scale, which is faster but not the authors' pixels (docs/method.md).
    ``inspect`` sees the decoded, upright RGB image before it is squashed (burst
    signals and report thumbnails are taken from it: no second decode).
    """
    image = open_image(path, draft_size=draft_size(cfg) if draft else None,
                       max_pixels=max_pixels)
    if inspect is not None:
        inspect(image)
    return _checked_squash(image, cfg)


def load_encoded_pixels(data: bytes, name: str, cfg: PreprocessConfig, *, draft: bool = False,
                        max_pixels: int = DEFAULT_MAX_PIXELS,
                        inspect: Callable[[Image.Image], None] | None = None) -> torch.Tensor:
    """:func:`load_pixels` for a photo in memory (a tar member); ``name`` gives its type."""
    from grmpiqa.io.encoded import open_encoded

    image = open_encoded(data, name, draft_size=draft_size(cfg) if draft else None,
                         max_pixels=max_pixels)
    if inspect is not None:
        inspect(image)
    return _checked_squash(image, cfg)


def _tensor_input(tensor: torch.Tensor, cfg: PreprocessConfig) -> torch.Tensor:
    if tensor.ndim == 3:
        tensor = tensor.unsqueeze(0)
    if tensor.ndim != 4 or tensor.shape[1] != 3:
        raise ValueError(f"expected RGB tensors shaped (3, H, W) or (N, 3, H, W), "
                         f"got {tuple(tensor.shape)}")
    if tuple(tensor.shape[-2:]) == (cfg.crop, cfg.crop):
        return tensor  # already the model's input size: taken as preprocessed
    if tensor.dtype != torch.uint8:  # float 0..1: the uint8 image it stands for, as files are
        tensor = (tensor.detach().float().clamp(0.0, 1.0) * 255.0).round_().to(torch.uint8)
    arrays = tensor.detach().cpu().permute(0, 2, 3, 1).numpy()
    return torch.stack([squash_crop(array, cfg) for array in arrays])


def to_model_input(images: Any, cfg: PreprocessConfig) -> torch.Tensor:
    """PIL images or RGB tensors of any size -> one (N, 3, crop, crop) batch.

    Tensors are whole images (uint8 0..255 or float 0..1, floats rounded to
    uint8 first), squashed and cropped like files; a tensor that already has
    the crop size is used as it is.
    """
    if isinstance(images, (Image.Image, torch.Tensor)):
        images = [images]
    batch = []
    for item in images:
        if isinstance(item, Image.Image):
            batch.append(squash_crop(to_rgb(item), cfg).unsqueeze(0).float() / 255.0)
        elif isinstance(item, torch.Tensor):
            out = _tensor_input(item, cfg)
            batch.append(out.float() / 255.0 if out.dtype == torch.uint8 else out.float())
        else:
            raise TypeError(f"cannot score a {type(item).__name__}; give PIL images or tensors")
    if not batch:
        return torch.empty(0, 3, cfg.crop, cfg.crop)
    return torch.cat(batch)
