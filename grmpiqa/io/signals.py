"""Cheap per-photo signals for burst grouping and the report, taken in the decoding worker.

Everything here works on the image the worker has already decoded for the
model (no second decode) or on the file's EXIF header (no pixels decoded).
No torch: the grouping and the report use these without the model.
"""

from __future__ import annotations

import io
import warnings
from datetime import datetime, timedelta, timezone

import numpy as np
from PIL import Image

from grmpiqa.results import Capture

HASH_SIDE = 32  # the DCT runs on a 32x32 grey image ...
HASH_KEEP = 8  # ... and keeps its 8x8 lowest frequencies: 64 bits
LAYOUT_SIDE = 16
THUMBNAIL_QUALITY = 72

# EXIF tags (CIPA DC-008)
_EXIF_IFD = 0x8769
_MAKE, _MODEL = 0x010F, 0x0110
_DATETIME_ORIGINAL, _DATETIME_DIGITIZED = 0x9003, 0x9004
_SUBSEC_ORIGINAL, _OFFSET, _OFFSET_ORIGINAL = 0x9291, 0x9010, 0x9011
_BODY_SERIAL = 0xA431


def _dct_matrix(n: int) -> np.ndarray:
    k = np.arange(n)[:, None]
    x = np.arange(n)[None, :]
    matrix = np.cos(np.pi * (2 * x + 1) * k / (2 * n)) * np.sqrt(2.0 / n)
    matrix[0] /= np.sqrt(2.0)
    return matrix


_DCT = _dct_matrix(HASH_SIDE)


def phash_of_grey(grey: np.ndarray) -> int:
    """64-bit perceptual hash of a (32, 32) grey array: the signs of its 8x8 lowest DCT
    coefficients against their median. The DC term is left out of the median, so a global
    exposure change barely moves the hash."""
    coefficients = _DCT @ grey.astype(np.float64) @ _DCT.T
    low = coefficients[:HASH_KEEP, :HASH_KEEP].ravel()
    median = np.median(low[1:])
    bits = np.packbits(low > median)
    return int.from_bytes(bits.tobytes(), "big")


def hash_and_layout(image: Image.Image) -> tuple[int, bytes]:
    """The perceptual hash and the 16x16 RGB layout of a decoded image, from one 32x32
    box reduction."""
    rgb = image if image.mode == "RGB" else image.convert("RGB")
    small = rgb.resize((HASH_SIDE, HASH_SIDE), Image.Resampling.BOX, reducing_gap=2.0)
    layout = small.reduce(HASH_SIDE // LAYOUT_SIDE)
    return phash_of_grey(np.asarray(small.convert("L"))), layout.tobytes()


def hamming(a: int, b: int) -> int:
    return (a ^ b).bit_count()


def reduced(image: Image.Image, side: int) -> Image.Image:
    """The image shrunk by a whole factor (a fast box average) while its short side stays
    at least ``side``: everything the signals need, from a fraction of the pixels."""
    factor = min(image.size) // max(side, 1)
    return image.reduce(factor) if factor > 1 else image


def thumbnail_jpeg(image: Image.Image, size: int) -> bytes:
    """A JPEG of at most ``size`` pixels a side, aspect kept, from the decoded image."""
    scale = min(1.0, size / max(image.size))
    target = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
    small = image.resize(target, Image.Resampling.BILINEAR, reducing_gap=2.0)
    buffer = io.BytesIO()
    small.save(buffer, "JPEG", quality=THUMBNAIL_QUALITY, optimize=False)
    return buffer.getvalue()


def _text(value: object) -> str:
    if isinstance(value, bytes):
        value = value.decode("ascii", "replace")
    return str(value).strip().strip("\0").strip() if value is not None else ""


def parse_exif_time(stamp: str, subsec: str = "", offset: str = "") -> float | None:
    """Seconds since the epoch for ``YYYY:MM:DD HH:MM:SS`` (+ fraction, + ``+HH:MM``).

    Without an offset the clock is taken as UTC: times of one camera still
    compare correctly, which is all grouping needs.
    """
    try:
        moment = datetime.strptime(stamp.strip()[:19], "%Y:%m:%d %H:%M:%S")
    except ValueError:
        return None
    zone = timezone.utc
    if len(offset) >= 6 and offset[0] in "+-" and offset[3] == ":":
        try:
            delta = timedelta(hours=int(offset[1:3]), minutes=int(offset[4:6]))
            zone = timezone(delta if offset[0] == "+" else -delta)
        except ValueError:
            zone = timezone.utc
    seconds = moment.replace(tzinfo=zone).timestamp()
    digits = "".join(ch for ch in subsec if ch.isdigit())
    if digits:
        seconds += int(digits) / 10 ** len(digits)
    return seconds


def read_capture(path: str) -> Capture | None:
    """Capture time and camera from the file's EXIF, reading the header only.

    ``None`` when the file has no usable ``DateTimeOriginal`` (or
    ``DateTimeDigitized``); any EXIF problem means "no EXIF", never an error.
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with Image.open(path) as image:
                exif = image.getexif()
                details = exif.get_ifd(_EXIF_IFD)
    except Exception:
        return None
    stamp = _text(details.get(_DATETIME_ORIGINAL) or details.get(_DATETIME_DIGITIZED))
    seconds = parse_exif_time(stamp, _text(details.get(_SUBSEC_ORIGINAL)),
                              _text(details.get(_OFFSET_ORIGINAL) or details.get(_OFFSET))
                              ) if stamp else None
    if seconds is None:
        return None
    camera = " ".join(part for part in (_text(exif.get(_MAKE)), _text(exif.get(_MODEL)),
                                        _text(details.get(_BODY_SERIAL))) if part)
    return Capture(seconds, camera)
