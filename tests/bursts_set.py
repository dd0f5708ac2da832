"""A generated shoot of bursts among single photos, made from LIVEC photos (the real ones,
or the generated stand-in where they are absent: the ``livec`` fixture).

Each burst is 3 to 6 frames of one photo: a small shift and crop, an
exposure change, sensor noise and a JPEG re-encode per frame, with EXIF
capture times a fraction of a second apart. Single photos are other LIVEC
photos taken minutes apart. ``exif=False`` writes the same shoot without any
EXIF and with the file names shuffled, so only the content can group it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
from PIL import Image

START = datetime(2024, 5, 1, 10, 0, 0)


@dataclass(frozen=True)
class Shot:
    path: Path
    truth: int  # the true group: frames of one burst share it, a single has its own
    burst: bool


def jitter(image: Image.Image, rng: np.random.Generator) -> Image.Image:
    """One burst frame: the camera moved a little, the exposure changed, new noise."""
    width, height = image.size
    scale = rng.uniform(0.9, 0.97)
    w, h = int(width * scale), int(height * scale)
    left = int(rng.integers(0, width - w + 1))
    top = int(rng.integers(0, height - h + 1))
    frame = image.crop((left, top, left + w, top + h)).resize((width, height),
                                                                Image.Resampling.BICUBIC)
    pixels = np.asarray(frame, dtype=np.float32) * rng.uniform(0.8, 1.2)
    pixels += rng.normal(0.0, rng.uniform(1.0, 6.0), pixels.shape)
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))


def exif_for(moment: datetime, camera: tuple[str, str, str]) -> Image.Exif:
    exif = Image.Exif()
    exif[0x010F], exif[0x0110] = camera[0], camera[1]
    details = exif.get_ifd(0x8769)
    details[0x9003] = moment.strftime("%Y:%m:%d %H:%M:%S")
    details[0x9291] = f"{moment.microsecond // 10000:02d}"
    details[0xA431] = camera[2]
    return exif


def make_shoot(out: Path, sources: list[Path], *, bursts: int = 8, singles: int = 16,
               exif: bool = True, seed: int = 0) -> list[Shot]:
    """Write the shoot into ``out``; returns the shots in capture order."""
    rng = np.random.default_rng(seed)
    picked = [sources[i] for i in rng.permutation(len(sources))[:bursts + singles]]
    kinds = [True] * bursts + [False] * singles
    order = rng.permutation(len(kinds))
    camera = ("Canon", "EOS R6", "0123456789")
    moment = START
    planned: list[tuple[Image.Image, datetime, int, bool]] = []
    for group, slot in enumerate(order):
        source = Image.open(picked[slot]).convert("RGB")
        moment += timedelta(seconds=float(rng.uniform(60, 600)))
        if not kinds[slot]:
            planned.append((source, moment, group, False))
            continue
        frame_time = moment
        for _ in range(int(rng.integers(3, 7))):
            planned.append((jitter(source, rng), frame_time, group, True))
            frame_time += timedelta(seconds=float(rng.uniform(0.08, 0.5)))
    numbers = rng.permutation(len(planned)) if not exif else np.arange(len(planned))
    out.mkdir(parents=True, exist_ok=True)
    shots = []
    for (image, when, group, is_burst), number in zip(planned, numbers, strict=True):
        path = out / f"IMG_{1000 + int(number)}.jpg"
        options = {"quality": int(rng.integers(70, 96))}
        if exif:
            options["exif"] = exif_for(when, camera)
        image.save(path, "JPEG", **options)
        shots.append(Shot(path, group, is_burst))
    return shots


def adjusted_rand_index(truth: list[int], found: list[int]) -> float:
    """ARI (Hubert and Arabie) from the contingency table of two labelings."""
    def pairs(counts: np.ndarray) -> float:
        return float((counts * (counts - 1) / 2).sum())

    t_ids = {label: i for i, label in enumerate(sorted(set(truth)))}
    f_ids = {label: i for i, label in enumerate(sorted(set(found)))}
    table = np.zeros((len(t_ids), len(f_ids)))
    for t, f in zip(truth, found, strict=True):
        table[t_ids[t], f_ids[f]] += 1
    n = len(truth)
    both = pairs(table)
    rows, cols = pairs(table.sum(axis=1)), pairs(table.sum(axis=0))
    expected = rows * cols / (n * (n - 1) / 2)
    best = (rows + cols) / 2
    return 1.0 if best == expected else (both - expected) / (best - expected)
