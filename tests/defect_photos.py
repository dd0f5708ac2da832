"""Made photos with one known defect each: a sharp scene, blurred, and noisy."""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw, ImageFilter


def scene(seed: int, size: tuple[int, int] = (480, 360)) -> Image.Image:
    """Overlapping rectangles from near black to near white: sharp edges, no noise."""
    rng = np.random.default_rng(seed)
    image = Image.new("RGB", size, (120, 120, 120))
    draw = ImageDraw.Draw(image)
    for _ in range(400):
        x, y = int(rng.integers(0, size[0])), int(rng.integers(0, size[1]))
        w, h = (int(v) for v in rng.integers(6, 60, 2))
        level = int(rng.integers(10, 245))  # a grey with a tint: luma spans the range
        fill = tuple(int(np.clip(level + t, 0, 255)) for t in rng.integers(-20, 21, 3))
        draw.rectangle([x, y, x + w, y + h], fill=fill)
    return image


def noisy(image: Image.Image, sigma: float, seed: int) -> Image.Image:
    rng = np.random.default_rng(seed)
    values = np.asarray(image, dtype=np.float64) + rng.normal(0.0, sigma, (*image.size[::-1], 1))
    return Image.fromarray(np.clip(np.rint(values), 0, 255).astype(np.uint8))


def write_defects(folder) -> dict[str, str]:
    """sharp.png, blurred.png, noisy.png; each name -> the defect it should show."""
    folder.mkdir(parents=True, exist_ok=True)
    base = scene(1)
    made = {"sharp": (base, ""), "blurred": (base.filter(ImageFilter.GaussianBlur(4)), "blur"),
            "noisy": (noisy(base, 15.0, 2), "noise")}
    for name, (image, _) in made.items():
        image.save(folder / f"{name}.png")
    return {f"{name}.png": defect for name, (_, defect) in made.items()}
