"""Synthetic distortions modelled on KADID-10k's 25 types, for meta-prompt pre-training.

Every distortion maps a batch of RGB images (float, N x 3 x H x W, values in
0..1) to a distorted batch at one of five severity levels, 1 (mild) to 5
(strong). Three rules make them usable as pre-training tasks:

- quality falls with the level: every random draw (noise fields, directions,
  which cells are hit) is independent of the level, so for one seed a higher
  level is the same corruption made stronger (tests check that PSNR against
  the original falls with the level, for every type);
- deterministic given a seed (a ``torch.Generator`` or an int);
- vectorised over the batch with torch, except the codecs (JPEG, JPEG 2000 or
  WebP) and palette quantisation, which go through Pillow image by image.

The level parameters are tuned for photos squashed to about 244 pixels (the
model's input), not for KADID's 512 x 384 originals.
"""

from __future__ import annotations

import io
import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, features

LEVELS = 5

_RGB_TO_YCC = torch.tensor([[0.299, 0.587, 0.114],
                            [-0.168736, -0.331264, 0.5],
                            [0.5, -0.418688, -0.081312]])
_YCC_TO_RGB = torch.linalg.inv(_RGB_TO_YCC)


def _to_ycc(x: torch.Tensor) -> torch.Tensor:
    """RGB -> (Y, Cb, Cr) with chroma centred on 0 (BT.601, full range)."""
    return torch.einsum("ij,njhw->nihw", _RGB_TO_YCC.to(x.dtype), x)


def _to_rgb(ycc: torch.Tensor) -> torch.Tensor:
    return torch.einsum("ij,njhw->nihw", _YCC_TO_RGB.to(ycc.dtype), ycc)


def _luma(x: torch.Tensor) -> torch.Tensor:
    return _to_ycc(x)[:, :1]


# ---------------------------------------------------------------- filters
def _filter(x: torch.Tensor, kernels: torch.Tensor) -> torch.Tensor:
    """Convolve every channel of every image with a (k, k) kernel, or image i with kernels[i].

    Reflect padding keeps borders from darkening. One grouped convolution for
    the whole batch, even when each image has its own kernel.
    """
    n, c, h, w = x.shape
    if kernels.ndim == 2:
        kernels = kernels.expand(n, -1, -1)
    k = kernels.shape[-1]
    pad = k // 2
    mode = "reflect" if pad < min(h, w) else "replicate"
    padded = F.pad(x.reshape(1, n * c, h, w), (pad, pad, pad, pad), mode=mode)
    weight = kernels.repeat_interleave(c, dim=0).unsqueeze(1).to(x.dtype)
    return F.conv2d(padded, weight, groups=n * c).reshape(n, c, h, w)


def _gaussian_1d(sigma: float) -> torch.Tensor:
    radius = max(1, math.ceil(3.0 * sigma))
    t = torch.arange(-radius, radius + 1, dtype=torch.float32)
    g = torch.exp(-0.5 * (t / sigma) ** 2)
    return g / g.sum()


def gaussian_blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur with reflect padding (two 1-D passes)."""
    g = _gaussian_1d(sigma).to(x.dtype)
    n, c, h, w = x.shape
    pad = g.numel() // 2
    mode = "reflect" if pad < min(h, w) else "replicate"
    flat = x.reshape(n * c, 1, h, w)
    flat = F.conv2d(F.pad(flat, (pad, pad, 0, 0), mode=mode), g.view(1, 1, 1, -1))
    flat = F.conv2d(F.pad(flat, (0, 0, pad, pad), mode=mode), g.view(1, 1, -1, 1))
    return flat.reshape(n, c, h, w)


def _disc_kernel(radius: float) -> torch.Tensor:
    size = 2 * math.ceil(radius) + 1
    t = torch.arange(size, dtype=torch.float32) - size // 2
    dist = torch.sqrt(t.view(-1, 1) ** 2 + t.view(1, -1) ** 2)
    k = (radius + 0.5 - dist).clamp(0.0, 1.0)  # antialiased disc edge
    return k / k.sum()


def _line_kernels(length: float, angles: torch.Tensor) -> torch.Tensor:
    """One antialiased line kernel of ``length`` pixels per angle: (N, k, k)."""
    size = 2 * math.ceil(length / 2) + 1
    t = torch.arange(size, dtype=torch.float32) - size // 2
    yy, xx = t.view(1, -1, 1), t.view(1, 1, -1)
    cos, sin = angles.cos().view(-1, 1, 1), angles.sin().view(-1, 1, 1)
    across = (xx * sin - yy * cos).abs()
    along = (xx * cos + yy * sin).abs()
    k = (1.0 - across).clamp(min=0.0) * (length / 2 + 0.5 - along).clamp(0.0, 1.0)
    return k / k.sum(dim=(1, 2), keepdim=True)


def _gather(x: torch.Tensor, dy: torch.Tensor, dx: torch.Tensor,
            mode: str = "nearest") -> torch.Tensor:
    """out[n, :, y, x] = x[n, :, y + dy, x + dx], sampled ``nearest`` or ``bilinear``, with
    positions outside the image clamped to its border. ``dy``, ``dx`` broadcast to (N, H, W).
    """
    n, _, h, w = x.shape
    ys = torch.arange(h, dtype=x.dtype).view(1, h, 1) + dy
    xs = torch.arange(w, dtype=x.dtype).view(1, 1, w) + dx
    grid = torch.stack([(xs * 2 / max(w - 1, 1) - 1).expand(n, h, w),
                        (ys * 2 / max(h - 1, 1) - 1).expand(n, h, w)], dim=-1)
    return F.grid_sample(x, grid.to(x.dtype), mode=mode, padding_mode="border",
                         align_corners=True)


def _cells(h: int, w: int) -> tuple[int, int, int]:
    """Cell size and grid for the patch-based distortions: about 15 cells across."""
    size = max(4, min(h, w) // 15)
    return size, math.ceil(h / size), math.ceil(w / size)


def _to_pixels(cell_map: torch.Tensor, size: int, h: int, w: int) -> torch.Tensor:
    """(N, gh, gw, ...) per-cell values -> (N, H, W, ...) per pixel."""
    out = cell_map.repeat_interleave(size, dim=1).repeat_interleave(size, dim=2)
    return out[:, :h, :w]


def _chosen_cells(n: int, gh: int, gw: int, fraction: float,
                  generator: torch.Generator) -> torch.Tensor:
    """(N, gh, gw) mask of the ``fraction`` of cells with the lowest random rank.

    The ranks do not depend on ``fraction``, so a higher level hits a superset
    of the cells a lower one hits; at least one cell is always hit.
    """
    ranks = torch.rand(n, gh * gw, generator=generator).argsort(dim=1).argsort(dim=1)
    count = max(1, round(fraction * gh * gw))
    return (ranks < count).view(n, gh, gw)


# ---------------------------------------------------------------- Pillow codecs
def _per_image(x: torch.Tensor, convert: Callable[[Image.Image], Image.Image]) -> torch.Tensor:
    arrays = (x.clamp(0, 1) * 255.0).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()
    out = []
    for array in arrays:
        image = convert(Image.fromarray(np.ascontiguousarray(array), "RGB")).convert("RGB")
        out.append(torch.from_numpy(np.asarray(image).copy()))
    return torch.stack(out).permute(0, 3, 1, 2).to(x.dtype) / 255.0


def _encode(image: Image.Image, fmt: str, **options: object) -> Image.Image:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    decoded = Image.open(io.BytesIO(buffer.getvalue()))
    decoded.load()
    return decoded


def has_jpeg2000() -> bool:
    return bool(features.check("jpg_2000"))


# ---------------------------------------------------------------- the distortions
# Each takes (images, level parameter, generator) and may return values outside 0..1.
def _gaussian_blur(x, sigma, g):
    return gaussian_blur(x, sigma)


def _lens_blur(x, radius, g):
    return _filter(x, _disc_kernel(radius))


def _motion_blur(x, length, g):
    angles = torch.rand(x.shape[0], generator=g) * math.pi
    return _filter(x, _line_kernels(length, angles))


def _colour_diffusion(x, sigma, g):
    ycc = _to_ycc(x)
    return _to_rgb(torch.cat([ycc[:, :1], gaussian_blur(ycc[:, 1:], sigma)], dim=1))


def _colour_shift(x, distance, g):
    n = x.shape[0]
    angle = torch.rand(n, generator=g) * 2 * math.pi
    channel = torch.randint(0, 3, (n,), generator=g)
    dy = (angle.sin() * distance).view(n, 1, 1)
    dx = (angle.cos() * distance).view(n, 1, 1)
    shifted = _gather(x, dy, dx, mode="bilinear")  # sub-pixel: no ties between levels
    mask = F.one_hot(channel, 3).to(x.dtype).view(n, 3, 1, 1)
    return x * (1 - mask) + shifted * mask


def _colour_quantisation(x, colours, g):
    return _per_image(x, lambda im: im.quantize(int(colours), method=Image.Quantize.MEDIANCUT,
                                                dither=Image.Dither.NONE))


def _saturation(x, factor, g):
    ycc = _to_ycc(x)
    return _to_rgb(torch.cat([ycc[:, :1], ycc[:, 1:] * factor], dim=1))


def _jpeg(x, quality, g):
    return _per_image(x, lambda im: _encode(im, "JPEG", quality=int(quality)))


def _jpeg2000(x, psnr, g):
    """The encoder's rate control aims at a PSNR, so the levels hold on small images too
    (a compression-ratio target stops biting once the file is all header)."""
    return _per_image(x, lambda im: _encode(im, "JPEG2000", quality_mode="dB",
                                            quality_layers=[float(psnr)]))


def _webp(x, quality, g):
    return _per_image(x, lambda im: _encode(im, "WEBP", quality=int(quality)))


def _white_noise(x, sigma, g):
    return x + torch.randn(x.shape, generator=g, dtype=x.dtype) * sigma


def _colour_noise(x, sigma, g):
    noise = torch.randn(x.shape, generator=g, dtype=x.dtype) * sigma
    noise[:, :1] *= 0.5  # mostly in the chroma channels, like KADID's "white noise in colour"
    return _to_rgb(_to_ycc(x) + noise)


def _impulse_noise(x, probability, g):
    n, _, h, w = x.shape
    u = torch.rand(n, 1, h, w, generator=g)
    salt = u < probability / 2
    pepper = (u >= 0.5) & (u < 0.5 + probability / 2)  # both nested in the level
    return torch.where(salt, 1.0, torch.where(pepper, 0.0, x))


def _multiplicative_noise(x, sigma, g):
    return x * (1.0 + torch.randn(x.shape, generator=g, dtype=x.dtype) * sigma)


def _denoised(x, sigma, g):
    """Noise, then a 3x3 median and a Gaussian: the smeared look of denoiser output."""
    noisy = x + torch.randn(x.shape, generator=g, dtype=x.dtype) * sigma
    n, c, h, w = noisy.shape
    patches = F.unfold(F.pad(noisy, (1, 1, 1, 1), mode="reflect"), 3).view(n, c, 9, h, w)
    return gaussian_blur(patches.median(dim=2).values, 0.4 + 8.0 * sigma)


def _brighten(x, gamma, g):
    return x.clamp(0, 1) ** (1.0 / gamma)


def _darken(x, gamma, g):
    return x.clamp(0, 1) ** gamma


def _mean_shift(x, shift, g):
    sign = torch.where(torch.rand(x.shape[0], generator=g) < 0.5, -1.0, 1.0)
    return x + sign.view(-1, 1, 1, 1).to(x.dtype) * shift


def _jitter(x, distance, g):
    n, _, h, w = x.shape
    dy = (torch.rand(n, h, w, generator=g) * 2 - 1) * distance
    dx = (torch.rand(n, h, w, generator=g) * 2 - 1) * distance
    return _gather(x, dy, dx)


def _non_eccentric_patches(x, fraction, g):
    """Some cells show a neighbouring part of the photo, shifted by half to one cell."""
    n, _, h, w = x.shape
    size, gh, gw = _cells(h, w)
    chosen = _chosen_cells(n, gh, gw, fraction, g)
    magnitude = size * (0.5 + 0.5 * torch.rand(n, gh, gw, generator=g))
    angle = torch.rand(n, gh, gw, generator=g) * 2 * math.pi
    dy = torch.where(chosen, angle.sin() * magnitude, 0.0)
    dx = torch.where(chosen, angle.cos() * magnitude, 0.0)
    return _gather(x, _to_pixels(dy, size, h, w), _to_pixels(dx, size, h, w))


def _pixelate(x, factor, g):
    h, w = x.shape[-2:]
    small = F.interpolate(x, size=(max(1, round(h / factor)), max(1, round(w / factor))),
                          mode="area")
    return F.interpolate(small, size=(h, w), mode="nearest")


def _quantisation(x, steps, g):
    """Uniform levels per channel; 17, 9, 5, 3, 2 levels nest (each grid holds the next), so no
    pixel's error can shrink from one level to the next."""
    q = float(steps) - 1.0
    return torch.round(x.clamp(0, 1) * q) / q


def _colour_blocks(x, fraction, g):
    n, c, h, w = x.shape
    size, gh, gw = _cells(h, w)
    chosen = _chosen_cells(n, gh, gw, fraction, g)
    colours = torch.rand(n, gh, gw, c, generator=g, dtype=x.dtype)
    mask = _to_pixels(chosen, size, h, w).unsqueeze(1)
    return torch.where(mask, _to_pixels(colours, size, h, w).permute(0, 3, 1, 2), x)


def _sharpen(x, amount, g):
    return x + amount * (x - gaussian_blur(x, 1.0))


def _contrast(x, factor, g):
    mean = _luma(x).mean(dim=(1, 2, 3), keepdim=True)
    return mean + (x - mean) * factor


@dataclass(frozen=True)
class Distortion:
    """One distortion type; ``levels`` holds its parameter at levels 1..5, mild to strong."""

    name: str
    family: str
    levels: tuple[float, ...]
    function: Callable[[torch.Tensor, float, torch.Generator], torch.Tensor]

    def __call__(self, images: torch.Tensor, level: int,
                 seed: int | torch.Generator = 0) -> torch.Tensor:
        """Distort float RGB images (N, 3, H, W) in 0..1; level 0 returns them unchanged."""
        if not 0 <= level <= LEVELS:
            raise ValueError(f"level must be 0..{LEVELS}, got {level}")
        if images.ndim != 4 or images.shape[1] != 3 or not images.is_floating_point():
            raise ValueError("expected float RGB images shaped (N, 3, H, W) with values in 0..1")
        if level == 0:
            return images.clone()
        generator = seed if isinstance(seed, torch.Generator) else _generator(seed)
        out = self.function(images.cpu(), self.levels[level - 1], generator)
        return out.clamp_(0.0, 1.0).to(images.device)


def _generator(seed: int) -> torch.Generator:
    g = torch.Generator()
    g.manual_seed(int(seed) % (2**63))
    return g


def _registry() -> dict[str, Distortion]:
    codec = (("jpeg2000", _jpeg2000, (36, 32, 28.5, 25.5, 22.5)) if has_jpeg2000()
             else ("webp", _webp, (50, 20, 8, 3, 0)))
    table = [
        ("gaussian_blur", "blur", _gaussian_blur, (0.7, 1.1, 1.6, 2.3, 3.2)),
        ("lens_blur", "blur", _lens_blur, (1.0, 1.7, 2.5, 3.5, 5.0)),
        ("motion_blur", "blur", _motion_blur, (3, 5, 8, 12, 17)),
        ("colour_diffusion", "colour", _colour_diffusion, (1.0, 2.0, 3.5, 5.5, 8.0)),
        ("colour_shift", "colour", _colour_shift, (1, 2, 3, 5, 8)),
        ("colour_quantisation", "colour", _colour_quantisation, (64, 32, 16, 8, 4)),
        ("saturation_down", "colour", _saturation, (0.65, 0.45, 0.3, 0.15, 0.0)),
        ("saturation_up", "colour", _saturation, (1.5, 2.0, 2.7, 3.6, 5.0)),
        (codec[0], "compression", codec[1], codec[2]),
        ("jpeg", "compression", _jpeg, (43, 20, 10, 5, 2)),
        ("white_noise", "noise", _white_noise, (0.02, 0.04, 0.065, 0.1, 0.15)),
        ("colour_noise", "noise", _colour_noise, (0.03, 0.05, 0.08, 0.12, 0.17)),
        ("impulse_noise", "noise", _impulse_noise, (0.01, 0.03, 0.06, 0.1, 0.16)),
        ("multiplicative_noise", "noise", _multiplicative_noise, (0.06, 0.12, 0.2, 0.3, 0.45)),
        ("denoised", "noise", _denoised, (0.03, 0.05, 0.08, 0.12, 0.17)),
        ("brighten", "brightness", _brighten, (1.25, 1.5, 1.8, 2.2, 2.8)),
        ("darken", "brightness", _darken, (1.25, 1.5, 1.8, 2.2, 2.8)),
        ("mean_shift", "brightness", _mean_shift, (0.06, 0.12, 0.18, 0.25, 0.33)),
        ("jitter", "spatial", _jitter, (1.0, 2.0, 3.0, 4.5, 6.0)),
        ("non_eccentric_patches", "spatial", _non_eccentric_patches,
         (0.03, 0.07, 0.13, 0.22, 0.35)),
        ("pixelate", "spatial", _pixelate, (2, 3, 4, 6, 9)),
        ("quantisation", "spatial", _quantisation, (17, 9, 5, 3, 2)),
        ("colour_blocks", "spatial", _colour_blocks, (0.01, 0.03, 0.06, 0.1, 0.16)),
        ("sharpen", "sharpness", _sharpen, (0.8, 1.5, 2.5, 4.0, 6.0)),
        ("contrast_down", "contrast", _contrast, (0.72, 0.55, 0.42, 0.31, 0.22)),
    ]
    return {name: Distortion(name, family, tuple(float(v) for v in levels), fn)
            for name, family, fn, levels in table}


DISTORTIONS: dict[str, Distortion] = _registry()


def get_distortion(name: str) -> Distortion:
    try:
        return DISTORTIONS[name]
    except KeyError:
        raise KeyError(f"unknown distortion {name!r}; known: {', '.join(DISTORTIONS)}") from None
