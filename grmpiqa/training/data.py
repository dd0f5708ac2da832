"""Labelled images in memory for training: decoded once, augmented every epoch.

Each photo is decoded once and squashed to ``resize`` x ``resize`` (uint8,
about 180 kB at 244 px); training takes a random ``crop`` with a random
horizontal flip (docs/method.md, "Preprocessing"), evaluation the centre crop, exactly
what ``grmpiqa score`` sees.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence

import numpy as np
import torch

from grmpiqa.config import PreprocessConfig
from grmpiqa.data.loader import iter_batches
from grmpiqa.io.images import DEFAULT_MAX_PIXELS
from grmpiqa.training.labels import LabelRow, Problem

MIN_VALIDATION = 5  # fewer validation images than this cannot rank anything reliably


def decode_rows(rows: Sequence[LabelRow], cfg: PreprocessConfig, *, workers: int = 1,
                max_pixels: int = DEFAULT_MAX_PIXELS,
                progress: Callable[[int], None] | None = None
                ) -> tuple[torch.Tensor, list[Problem]]:
    """uint8 (N, 3, resize, resize) squashed photos, and a problem per row that failed
    (its slot stays zero; the caller refuses to train when there is any)."""
    squash = dataclasses.replace(cfg, crop=cfg.resize)
    pixels = torch.zeros(len(rows), 3, cfg.resize, cfg.resize, dtype=torch.uint8)
    problems: list[Problem] = []
    paths = [row.path for row in rows]
    for batch in iter_batches(paths, squash, batch_size=16, workers=workers,
                              max_pixels=max_pixels):
        good = [i for i in batch.indices if i not in batch.errors]
        if batch.pixels is not None:
            pixels[good] = batch.pixels
        for index, error in sorted(batch.errors.items()):
            problems.append(Problem(f"image {rows[index].image!r} cannot be used: {error}",
                                    rows[index].line))
        if progress is not None:
            progress(len(batch.indices))
    return pixels, problems


def random_crops(pixels: torch.Tensor, crop: int, generator: torch.Generator, *,
                 include_last: bool = True) -> torch.Tensor:
    """Random ``crop`` squares, each flipped horizontally with p = 1/2, dtype kept.

    Offsets are drawn from ``[0, size - crop]``; ``include_last=False`` draws from
    ``[0, size - crop)`` instead (at least one offset), which is what adaptation has
    always used, so its seeded runs stay reproducible.
    """
    n, _, height, width = pixels.shape
    extra = 1 if include_last else 0
    span_y, span_x = max(1, height - crop + extra), max(1, width - crop + extra)
    ys = torch.randint(0, span_y, (n,), generator=generator).tolist()
    xs = torch.randint(0, span_x, (n,), generator=generator).tolist()
    flips = (torch.rand(n, generator=generator) < 0.5).tolist()
    out = []
    for image, y, x, flip in zip(pixels, ys, xs, flips, strict=True):
        patch = image[:, y:y + crop, x:x + crop]
        out.append(patch.flip(-1) if flip else patch)
    return torch.stack(out)


def centre_crops(pixels: torch.Tensor, crop: int) -> torch.Tensor:
    """The evaluation view: the centre crop, as ``grmpiqa score`` takes it (uint8)."""
    oy = (pixels.shape[-2] - crop) // 2
    ox = (pixels.shape[-1] - crop) // 2
    return pixels[..., oy:oy + crop, ox:ox + crop]


def split_validation(targets: Sequence[float], fraction: float, seed: int, *,
                     min_validation: int = MIN_VALIDATION) -> tuple[list[int], list[int]]:
    """(train, validation) indices; the validation part spans the whole label range.

    The labels are sorted and cut into ``round(n * fraction)`` strata of
    neighbouring scores; one random image of each stratum validates. With
    fewer than ``min_validation`` validation images there is no split at all
    (returns every index for training and an empty validation list).
    """
    n = len(targets)
    n_val = round(n * fraction)
    if n_val < min_validation or n - n_val < 1:
        return list(range(n)), []
    rng = np.random.default_rng(seed)
    order = np.argsort(np.asarray(targets, dtype=np.float64), kind="stable")
    val = sorted(int(rng.choice(stratum)) for stratum in np.array_split(order, n_val))
    chosen = set(val)
    return [i for i in range(n) if i not in chosen], val
