"""A corpus of everything a real disk holds, generated (no binaries committed).

``write_corpus(root)`` returns {file name: expected outcome}, where the
outcome is "score" or a substring of the expected error message.
"""

from __future__ import annotations

import io
import os
import struct
from pathlib import Path

import numpy as np
from PIL import Image


def _photo(seed: int = 0, size: tuple[int, int] = (64, 48)) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8))


def _jpeg_bytes(image: Image.Image, **kw) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=90, **kw)
    return buffer.getvalue()


def _png_with_bad_crc() -> bytes:
    buffer = io.BytesIO()
    _photo(3).save(buffer, "PNG")
    data = bytearray(buffer.getvalue())
    ihdr_crc = 8 + 4 + 4 + 13  # signature, length, type, IHDR data
    data[ihdr_crc:ihdr_crc + 4] = b"\0\0\0\0"
    return bytes(data)


def _jpeg_with_corrupt_exif() -> bytes:
    data = _jpeg_bytes(_photo(4))
    payload = b"Exif\0\0" + b"II*\0" + struct.pack("<I", 8) + b"\xff" * 40
    segment = b"\xff\xe1" + struct.pack(">H", len(payload) + 2) + payload
    return data[:2] + segment + data[2:]


def _png_bytes(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


def write_corpus(root: Path) -> dict[str, str]:
    root.mkdir(parents=True, exist_ok=True)
    expected: dict[str, str] = {}

    def put(name: str, data: bytes, outcome: str) -> None:
        (root / name).write_bytes(data)
        expected[name] = outcome

    good = _jpeg_bytes(_photo(1))
    put("good-1.jpg", good, "score")
    put("zero-bytes.jpg", b"", "empty file")
    put("truncated.jpg", _jpeg_bytes(_photo(2, (400, 300)))[:3000], "cannot decode")
    put("trailing-garbage.jpg", good + os.urandom(500), "score")
    put("bad-crc.png", _png_with_bad_crc(), "")  # refused by Pillow: any clear error
    put("text.jpg", b"this is a shopping list, not a photo\n", "not an image")
    (root / "folder.jpg").mkdir()
    os.symlink(root / "does-not-exist.jpg", root / "broken-link.jpg")
    expected["broken-link.jpg"] = "broken symbolic link"
    os.symlink(root / "loop-b.jpg", root / "loop-a.jpg")
    os.symlink(root / "loop-a.jpg", root / "loop-b.jpg")
    expected["loop-a.jpg"] = "symbolic link loop"
    expected["loop-b.jpg"] = "symbolic link loop"
    os.mkfifo(root / "fifo.jpg")
    expected["fifo.jpg"] = "not a regular file"
    bomb = Image.new("L", (6000, 5000))
    put("bomb.png", _png_bytes(bomb), "over the limit")
    put("one-pixel.png", _png_bytes(Image.new("RGB", (1, 1), (10, 200, 30))), "score")
    put("panorama.jpg", _jpeg_bytes(_photo(5, (30000, 20))), "score")
    grey16 = (np.asarray(_photo(6).convert("L")).astype(np.uint16) * 257)
    put("grey16.png", _png_bytes(Image.fromarray(grey16)), "score")
    put("cmyk.jpg", _jpeg_bytes(_photo(7).convert("CMYK")), "score")
    palette = _photo(8).convert("P")
    palette.info["transparency"] = 0
    buffer = io.BytesIO()
    palette.save(buffer, "PNG", transparency=0)
    put("palette-transparent.png", buffer.getvalue(), "score")
    put("la.png", _png_bytes(_photo(9).convert("LA")), "score")
    frames = [_photo(10 + i).convert("P") for i in range(3)]
    buffer = io.BytesIO()
    frames[0].save(buffer, "GIF", save_all=True, append_images=frames[1:], duration=100)
    put("animated.gif", buffer.getvalue(), "score")
    put("corrupt-exif.jpg", _jpeg_with_corrupt_exif(), "score")
    for name in ("café ünïcode 写真.jpg", "with space.jpg", "comma,name.jpg",
                 'quote"d\'.jpg', "new\nline.jpg", "tab\tname.jpg"):
        put(name, good, "score")
    raw = os.fsdecode(b"latin1-\xe9t\xe9.jpg")
    (root / raw).write_bytes(good)
    expected[raw] = "score"
    put("good-2.png", _png_bytes(_photo(11)), "score")
    return expected
