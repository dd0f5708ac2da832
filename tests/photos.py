"""Generate a folder of photos in every format and colour mode the scorer accepts."""

from __future__ import annotations

import io
import struct
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


def _tiff_value(kind: int, values) -> tuple[bytes, int]:
    if kind == 2:  # ASCII
        return values.encode() + b"\0", len(values) + 1
    if kind in (5, 10):  # (S)RATIONAL pairs
        code = "<II" if kind == 5 else "<ii"
        return b"".join(struct.pack(code, n, d) for n, d in values), len(values)
    if kind == 7:  # UNDEFINED bytes
        return bytes(values), len(values)
    code = {1: "B", 3: "H", 4: "I"}[kind]
    return struct.pack("<" + code * len(values), *values), len(values)


def _tiff_ifd(offset: int, entries) -> bytes:
    """One little-endian IFD at ``offset``, its out-of-line values right after it."""
    entries = sorted(entries, key=lambda e: e[0])
    size = 2 + 12 * len(entries) + 4
    head, extra = struct.pack("<H", len(entries)), b""
    for tag, kind, values in entries:
        data, count = _tiff_value(kind, values)
        if len(data) <= 4:
            field = data.ljust(4, b"\0")
        else:
            field = struct.pack("<I", offset + size + len(extra))
            extra += data + b"\0" * (len(data) % 2)
        head += struct.pack("<HHI", tag, kind, count) + field
    return head + struct.pack("<I", 0) + extra


def write_dng(path: Path, rgb: np.ndarray, *, preview: bytes | np.ndarray | None = None,
              orientation: int = 1, xmp: bytes | None = None) -> Path:
    """A minimal but valid DNG 1.4: 16-bit RGGB mosaic of ``rgb`` (even sides), identity
    colour matrix, optional preview (RGB array, or JPEG bytes) in IFD0 with the raw as SubIFD,
    optional XMP packet (tag 700) in IFD0."""
    h, w, _ = rgb.shape
    linear = (rgb.astype(np.float64) / 255.0) ** 2.2 * 4095
    mosaic = np.empty((h, w), np.uint16)
    mosaic[0::2, 0::2] = linear[0::2, 0::2, 0]
    mosaic[0::2, 1::2] = linear[0::2, 1::2, 1]
    mosaic[1::2, 0::2] = linear[1::2, 0::2, 1]
    mosaic[1::2, 1::2] = linear[1::2, 1::2, 2]
    out = bytearray(b"II*\0\0\0\0\0")
    raw_at = len(out)
    out += mosaic.astype("<u2").tobytes()
    raw_ifd = [(254, 4, [0]), (256, 4, [w]), (257, 4, [h]), (258, 3, [16]), (259, 3, [1]),
               (262, 3, [32803]), (273, 4, [raw_at]), (277, 3, [1]), (278, 4, [h]),
               (279, 4, [2 * w * h]), (284, 3, [1]), (33421, 3, [2, 2]),
               (33422, 1, [0, 1, 1, 2]), (50717, 4, [4095])]
    camera = [(271, 2, "grmpiqa"), (272, 2, "test camera"), (274, 3, [orientation]),
              (50706, 1, [1, 4, 0, 0]), (50708, 2, "grmpiqa test camera"),
              (50721, 10, [(1, 1), (0, 1), (0, 1), (0, 1), (1, 1), (0, 1), (0, 1), (0, 1),
                           (1, 1)]),
              (50728, 5, [(1, 1), (1, 1), (1, 1)]), (50778, 3, [21])]
    if xmp is not None:
        camera.append((700, 7, list(xmp)))
    if preview is None:
        first = len(out)
        out += _tiff_ifd(first, raw_ifd + camera)
    else:
        raw_ifd_at = len(out)
        out += _tiff_ifd(raw_ifd_at, raw_ifd)
        if isinstance(preview, bytes):  # JPEG-compressed preview
            data, (pw, ph), layout = preview, Image.open(io.BytesIO(preview)).size, \
                [(258, 3, [8, 8, 8]), (259, 3, [7]), (262, 3, [6]), (277, 3, [3])]
        else:
            ph, pw, _ = preview.shape
            data = np.ascontiguousarray(preview, dtype=np.uint8).tobytes()
            layout = [(258, 3, [8, 8, 8]), (259, 3, [1]), (262, 3, [2]), (277, 3, [3])]
        data_at = len(out)
        out += data + b"\0" * (len(data) % 2)
        first = len(out)
        out += _tiff_ifd(first, [(254, 4, [1]), (256, 4, [pw]), (257, 4, [ph]),
                                 (273, 4, [data_at]), (278, 4, [ph]), (279, 4, [len(data)]),
                                 (284, 3, [1]), (330, 4, [raw_ifd_at]), *layout, *camera])
    out[4:8] = struct.pack("<I", first)
    path.write_bytes(bytes(out))
    return path
