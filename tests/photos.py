"""Generate a folder of photos in every format and colour mode the scorer accepts."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

FORMATS = {"jpg": "JPEG", "jpeg": "JPEG", "png": "PNG", "webp": "WEBP", "bmp": "BMP",
           "tif": "TIFF", "tiff": "TIFF", "gif": "GIF"}


def texture(seed: int, size: tuple[int, int] = (48, 40)) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)


def write_photo_tree(root: Path) -> list[Path]:
    """Nested folders with every extension and many modes; returns the image paths, sorted."""
    made = []
    plan = [
        ("a/rgb.jpg", "RGB"), ("a/grey.jpeg", "L"), ("a/b/cmyk.jpg", "CMYK"),
        ("a/b/rgba.png", "RGBA"), ("a/b/la.png", "LA"), ("a/b/palette.png", "P"),
        ("a/b/c/g16.png", "I;16"), ("a/b/c/photo.webp", "RGB"), ("bitmap.bmp", "RGB"),
        ("scan.tif", "RGB"), ("scan2.tiff", "L"), ("anim.gif", "P"), ("Upper.JPG", "RGB"),
    ]
    for i, (name, mode) in enumerate(plan):
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        image = Image.fromarray(texture(i))
        if mode == "I;16":
            image = Image.fromarray(np.asarray(image.convert("L")).astype(np.uint16) * 257)
        else:
            image = image.convert(mode)
        ext = path.suffix.lower().lstrip(".")
        image.save(path, FORMATS[ext])
        made.append(path)
    (root / "notes.txt").write_text("not a photo")
    (root / ".hidden.jpg").write_bytes(b"hidden")
    (root / ".cache").mkdir()
    Image.fromarray(texture(99)).save(root / ".cache" / "thumb.jpg")
    return sorted(made)
