"""XMP packets embedded in photo files, read from the file's header: no pixel is decoded.

JPEG (APP1), PNG (iTXt), WebP and HEIC/HEIF (extra ``heif``) through Pillow;
TIFF and the TIFF-based RAW formats (DNG, NEF, CR2, ARW, PEF ...) from tag 700
of the first image directory, read here because Pillow cannot open most RAWs.
Other RAW containers (CR3, RAF, ORF, RW2 ...) keep their ratings in sidecars.
"""

from __future__ import annotations

import struct
from typing import BinaryIO

from grmpiqa.errors import ImageError
from grmpiqa.io.images import check_regular_file, enable_heif_for, open_lazily
from grmpiqa.io.inputs import RAW_EXTENSIONS

TIFF_MAGIC = {b"II*\0": "<", b"MM\0*": ">"}
XMP_TAG = 700
MAX_XMP_BYTES = 16 * 1024 * 1024


def _read(handle: BinaryIO, offset: int, size: int) -> bytes:
    handle.seek(offset)
    data = handle.read(size)
    if len(data) != size:
        raise ImageError("truncated TIFF directory")
    return data


def tiff_xmp(handle: BinaryIO) -> bytes | None:
    """Tag 700 (XMLPacket) of a TIFF's first directory, or None; seeks, never reads it all."""
    order = TIFF_MAGIC.get(_read(handle, 0, 4))
    if order is None:
        return None
    (first,) = struct.unpack(order + "I", _read(handle, 4, 4))
    (count,) = struct.unpack(order + "H", _read(handle, first, 2))
    entries = _read(handle, first + 2, 12 * count)
    for i in range(count):
        tag, kind, length, value = struct.unpack_from(order + "HHI4s", entries, 12 * i)
        if tag != XMP_TAG:
            continue
        if kind not in (1, 2, 7) or length > MAX_XMP_BYTES:
            raise ImageError(f"TIFF tag 700 (XMP) has type {kind} and {length} bytes")
        if length <= 4:
            return value[:length]
        (offset,) = struct.unpack(order + "I", value)
        return _read(handle, offset, length)
    return None


def embedded_xmp(path: str) -> bytes | None:
    """The XMP packet inside ``path``, or None when it holds none. Raises ImageError."""
    check_regular_file(path)
    try:
        with open(path, "rb") as handle:
            if handle.read(4) in TIFF_MAGIC:
                return tiff_xmp(handle)
    except OSError as exc:
        raise ImageError(f"cannot read ({exc.strerror or exc})") from None
    if path.rpartition(".")[2].lower() in RAW_EXTENSIONS:
        return None
    enable_heif_for(path)
    with open_lazily(path) as image:
        packet = image.info.get("xmp")
    if isinstance(packet, str):
        packet = packet.encode("utf-8")
    return packet or None
