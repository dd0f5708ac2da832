"""Generated photos whose quality is a learnable signal: the noise strength, known exactly."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image


def noisy_photo(rng: np.random.Generator, noise: float, size: tuple[int, int] = (48, 40)
                ) -> np.ndarray:
    """A smooth colour pattern plus Gaussian noise of standard deviation ``80 * noise``."""
    width, height = size
    yy, xx = np.mgrid[0:height, 0:width]
    wave = np.sin(xx / (3 + rng.random() * 4) + rng.random() * 6)[..., None]
    base = 128 + 60 * wave * np.array([1.0, 0.6, 0.3]) + 40 * np.cos(yy / 5)[..., None]
    return np.clip(base + rng.normal(0, 80 * noise, base.shape), 0, 255).astype(np.uint8)


def write_noise_labels(folder: Path, n: int, *, seed: int = 0, name: str = "labels.csv",
                       lower_is_better: bool = False) -> Path:
    """``n`` PNGs and a CSV ``image,score``: score 10 (clean) .. 0 (noisiest), or the
    noise strength itself (a DMOS-like scale) with ``lower_is_better``."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    lines = ["image,score"]
    for i in range(n):
        noise = float(rng.random())
        Image.fromarray(noisy_photo(rng, noise)).save(folder / f"p{i:03d}.png")
        score = noise * 10 if lower_is_better else 10 - 10 * noise
        lines.append(f"p{i:03d}.png,{score:.4f}")
    path = folder / name
    path.write_text("\n".join(lines) + "\n")
    return path
