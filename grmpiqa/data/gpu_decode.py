"""JPEG decoding on the GPU (nvJPEG through torchvision), batched, with CPU fallback.

With many fast GPUs the CPU cannot decode JPEGs as fast as the model scores
them. Decoding processes then only read a JPEG's bytes and its EXIF
orientation (a header parse); the main process decodes the batch with
``torchvision.io.decode_jpeg(list, device="cuda")``, turns each image upright,
squashes it with the exact kernel (:mod:`grmpiqa.data.resize_torch`) and
crops the centre. Anything else (PNG, HEIC, RAW, CMYK JPEGs, files nvJPEG
refuses) is decoded on the CPU as usual, so each file still gets one row.
"""

from __future__ import annotations

import io
import logging
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from PIL import Image

from grmpiqa.config import PreprocessConfig
from grmpiqa.data.resize_torch import resize_cubic
from grmpiqa.errors import ConfigError

log = logging.getLogger("grmpiqa")
GPU_DECODE_CHOICES = ("auto", "on", "off")
_JPEG_MAGIC = b"\xff\xd8\xff"
_NVJPEG_MODES = ("RGB", "L")  # CMYK / YCCK JPEGs go to Pillow, which converts them properly


@dataclass(frozen=True)
class EncodedJpeg:
    """A JPEG left for the GPU: its bytes (uint8, 1-D) and EXIF orientation (1..8)."""

    data: torch.Tensor
    orientation: int
    name: str


def probe_jpeg(data: bytes, max_pixels: int) -> int | None:
    """The EXIF orientation of a JPEG nvJPEG can take, or None to decode it on the CPU.

    Only headers are parsed (Pillow opens lazily). A file Pillow cannot parse
    goes to the CPU path, which reports the problem in its row.
    """
    if not data.startswith(_JPEG_MAGIC):
        return None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with Image.open(io.BytesIO(data)) as image:
                width, height = image.size
                if image.format != "JPEG" or image.mode not in _NVJPEG_MODES \
                        or not 0 < width * height <= max_pixels:
                    return None
                orientation = image.getexif().get(0x0112, 1)
    except Exception:
        return None
    return orientation if isinstance(orientation, int) and 1 <= orientation <= 8 else 1


def orient(image: torch.Tensor, orientation: int) -> torch.Tensor:
    """(C, H, W) as stored -> upright, for EXIF orientations 1..8 (as ``exif_transpose``)."""
    if orientation == 2:
        return image.flip(-1)
    if orientation == 3:
        return image.flip(-2, -1)
    if orientation == 4:
        return image.flip(-2)
    if orientation == 5:
        return image.transpose(-2, -1)
    if orientation == 6:
        return image.rot90(-1, dims=(-2, -1))
    if orientation == 7:
        return image.transpose(-2, -1).flip(-2, -1)
    if orientation == 8:
        return image.rot90(1, dims=(-2, -1))
    return image


def squash_crop_tensor(image: torch.Tensor, cfg: PreprocessConfig) -> torch.Tensor:
    """uint8 (..., 3, H, W) upright -> (..., 3, crop, crop): whole image squashed, centre crop."""
    squashed = resize_cubic(image, cfg.resize, cfg.resize)
    offset = (cfg.resize - cfg.crop) // 2
    return squashed[..., offset:offset + cfg.crop, offset:offset + cfg.crop]


def exact_kernel(cfg: PreprocessConfig) -> bool:
    """The GPU path has only the authors' squash (OpenCV bicubic, no antialiasing)."""
    return cfg.interpolation == "bicubic" and not getattr(cfg, "antialias", False)


def nvjpeg_available() -> bool:
    try:
        from torchvision.io import decode_jpeg  # noqa: F401
    except ImportError:
        return False
    return torch.cuda.is_available()


def resolve_gpu_decode(choice: str, device: torch.device, cfg: PreprocessConfig) -> bool:
    """``auto``: on for CUDA devices with torchvision and the exact squash; ``on`` insists."""
    if choice not in GPU_DECODE_CHOICES:
        raise ConfigError(f"{choice!r}: use one of {', '.join(GPU_DECODE_CHOICES)}",
                          param="gpu_decode")
    usable = device.type == "cuda" and nvjpeg_available()
    if choice == "on" and not usable:
        raise ConfigError("on needs a CUDA device and torchvision's nvJPEG", param="gpu_decode")
    if choice == "on" and not exact_kernel(cfg):
        raise ConfigError("on: this model's preprocessing is not the exact OpenCV bicubic "
                          "squash the GPU path implements", param="gpu_decode")
    return choice != "off" and usable and exact_kernel(cfg)


def _decode_all(jpegs: Sequence[EncodedJpeg], device: torch.device
                ) -> list[torch.Tensor | None]:
    """One batched nvJPEG call; if it fails, one call per image so one bad file costs one."""
    from torchvision.io import ImageReadMode, decode_jpeg

    datas = [j.data for j in jpegs]
    with warnings.catch_warnings():
        # torchvision 0.29 announces a move to torchcodec; decode_jpeg still works
        warnings.simplefilter("ignore", DeprecationWarning)
        try:
            return list(decode_jpeg(datas, mode=ImageReadMode.RGB, device=device))
        except (RuntimeError, ValueError):
            pass
        out: list[torch.Tensor | None] = []
        for data in datas:
            try:
                out.append(decode_jpeg(data, mode=ImageReadMode.RGB, device=device))
            except (RuntimeError, ValueError):
                out.append(None)
    return out


class GpuDecoder:
    """Finishes batches whose JPEGs were left encoded; ``cpu_fallback(jpeg)`` decodes one
    on the CPU (returning a uint8 (3, crop, crop) tensor, or raising ImageError)."""

    def __init__(self, cfg: PreprocessConfig, device: torch.device,
                 cpu_fallback: Callable[[EncodedJpeg], torch.Tensor],
                 decode: Callable[..., list[torch.Tensor | None]] = _decode_all) -> None:
        self.cfg = cfg
        self.device = device
        self.cpu_fallback = cpu_fallback
        self.decode = decode
        self.fallbacks = 0

    def finish(self, jpegs: Sequence[EncodedJpeg]) -> list[torch.Tensor | str]:
        """Per JPEG: its (3, crop, crop) uint8 tensor on the device, or an error message."""
        if not jpegs:
            return []
        decoded = self.decode(jpegs, self.device)
        out: list[torch.Tensor | str | None] = [None] * len(jpegs)
        by_shape: dict[tuple[int, ...], list[tuple[int, torch.Tensor]]] = {}
        for i, (jpeg, image) in enumerate(zip(jpegs, decoded, strict=True)):
            if image is not None:
                upright = orient(image, jpeg.orientation)
                by_shape.setdefault(tuple(upright.shape), []).append((i, upright))
                continue
            self.fallbacks += 1
            log.debug("%s: nvJPEG refused it; decoding on the CPU", jpeg.name)
            try:
                out[i] = self.cpu_fallback(jpeg).to(self.device)
            except Exception as exc:
                out[i] = str(exc)
        for group in by_shape.values():  # one resize per image size, not per image
            squashed = squash_crop_tensor(torch.stack([image for _, image in group]), self.cfg)
            for (i, _), pixels in zip(group, squashed, strict=True):
                out[i] = pixels
        return [item if item is not None else "not decoded" for item in out]

    def assemble(self, batch: Any) -> tuple[torch.Tensor | None, list[int], dict[int, str]]:
        """A batch's model input in index order: CPU-decoded images and the JPEGs decoded
        here. Returns (pixels, the indices they hold, errors by index)."""
        errors = dict(batch.errors)
        cpu_indices = [i for i in batch.indices if i not in errors and i not in batch.encoded]
        ready: dict[int, torch.Tensor] = {}
        if batch.pixels is not None:
            ready.update(zip(cpu_indices, batch.pixels.to(self.device, non_blocking=True),
                             strict=True))
        jpeg_indices = list(batch.encoded)
        finished = self.finish([batch.encoded[i] for i in jpeg_indices])
        for index, result in zip(jpeg_indices, finished, strict=True):
            if isinstance(result, str):
                errors[index] = result
            else:
                ready[index] = result
        good = [i for i in batch.indices if i in ready]
        pixels = torch.stack([ready[i] for i in good]) if good else None
        return pixels, good, errors
