"""Generated stand-in for the LIVE Challenge photos, for a clone without ../shared/data/livec.

The same layout as the real set: ``images/NNN.JPG`` and ``mos.csv`` (image,mos,std).
Each photo is a photo-like scene (pretrain_photos.photo_like: smooth shading, objects
with edges, fine texture) of 320 x 320 (LIVEC's are 500 x 500; smaller is quicker to
make), with more contrast, light falling off towards the bottom and its own exposure,
then degraded by a known amount of blur, sensor noise and JPEG compression; its MOS falls
as that amount grows.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageFilter

from pretrain_photos import photo_like


def write_livec_stand_in(root: Path, count: int = 40, size: int = 320, seed: int = 0) -> Path:
    """Write ``count`` photos and their MOS under ``root``; returns ``root``."""
    rng = np.random.default_rng(seed)
    (root / "images").mkdir(parents=True, exist_ok=True)
    lines = ["image,mos,std"]
    for i in range(count):
        damage = float(rng.random())  # 0: pristine .. 1: badly degraded
        scene = photo_like(seed * 1000 + i, size).astype(np.float64)
        # light falls off towards the ground, and exposures differ: shadows, as in photos
        light = rng.uniform(0.7, 1.15) * np.linspace(1.3, 0.45, size)[:, None, None]
        scene = (scene - 128.0) * 1.25 + 128.0 * light
        scene += rng.normal(0.0, 1.0 + 24.0 * damage, scene.shape)
        image = Image.fromarray(np.clip(scene, 0, 255).astype(np.uint8))
        image = image.filter(ImageFilter.GaussianBlur(0.3 + 2.5 * damage))
        name = f"{100 + i}.JPG"
        image.save(root / "images" / name, "JPEG", quality=int(95 - 60 * damage))
        lines.append(f"{name},{85 - 70 * damage + rng.normal(0, 3):.4f},{15 + 8 * damage:.4f}")
    (root / "mos.csv").write_text("\n".join(lines) + "\n")
    return root
