"""WebDataset-style tar shards for the tests: samples of members written with tarfile."""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

from PIL import Image

from photos import texture


def jpeg_bytes(seed: int, size: tuple[int, int] = (48, 40), fmt: str = "JPEG") -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(texture(seed, size)).save(buffer, fmt)
    return buffer.getvalue()


def write_shard(path: Path, samples: list[tuple[str, dict[str, bytes]]]) -> Path:
    """``samples``: (key, {extension: bytes}); members are written in that order."""
    with tarfile.open(path, "w") as tar:
        for key, members in samples:
            for ext, data in members.items():
                info = tarfile.TarInfo(f"{key}.{ext}")
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
    return path


def good_samples(first: int, count: int, folder: str = "") -> list[tuple[str, dict[str, bytes]]]:
    """Samples as img2dataset writes them: an image, its caption and its metadata."""
    return [(f"{folder}{i:06d}", {"jpg": jpeg_bytes(i), "txt": f"caption {i}".encode(),
                                  "json": json.dumps({"key": i}).encode()})
            for i in range(first, first + count)]
