"""Small synthetic 'photos' for the pre-training tests: smooth shading, objects with edges,
fine texture, values away from 0 and 1 (like a well-exposed photo)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image


def photo_like(seed: int, size: int = 64) -> np.ndarray:
    """uint8 (size, size, 3)."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:size, 0:size] / size
    image = np.empty((size, size, 3))
    for c in range(3):
        fx, fy, phase = rng.uniform(0.3, 1.5), rng.uniform(0.3, 1.5), rng.uniform(0, 6.3)
        image[..., c] = 0.5 + 0.2 * np.sin(2 * np.pi * (fx * x + fy * y) + phase)
    for _ in range(7):
        cx, cy = rng.uniform(0, 1, 2)
        rx, ry = rng.uniform(0.06, 0.25, 2)
        mask = ((x - cx) / rx) ** 2 + ((y - cy) / ry) ** 2 < 1
        image[mask] = rng.uniform(0.15, 0.85, 3)
    image += rng.normal(0, 0.03, image.shape)
    return (np.clip(image, 0.05, 0.95) * 255).round().astype(np.uint8)


def write_photos(folder: Path, count: int, size: int = 64, seed: int = 0) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(count):
        path = folder / f"photo{i:02d}.png"
        Image.fromarray(photo_like(seed + i, size)).save(path)
        paths.append(path)
    return paths
