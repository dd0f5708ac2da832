"""XMP packets embedded in photo files, read from the file's header: no pixel is decoded.

JPEG (the APP1 segment that starts ``http://ns.adobe.com/xap/1.0/``) and TIFF
and the TIFF-based RAW formats (DNG, NEF, CR2, ARW, PEF ...: tag 700 of the
first image directory) are parsed here, for reading and for
:mod:`grmpiqa.io.xmp_embed`, which writes them; PNG (iTXt), WebP and
HEIC/HEIF (extra ``heif``) are read through Pillow. Other RAW containers (CR3,
RAF, ORF, RW2 ...) keep their ratings in sidecars.
"""

from __future__ import annotations

import contextlib
import mmap
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from typing import BinaryIO

from grmpiqa.errors import ImageError
from grmpiqa.io.images import check_regular_file, enable_heif_for, open_lazily
from grmpiqa.io.inputs import RAW_EXTENSIONS

TIFF_MAGIC = {b"II*\0": "<", b"MM\0*": ">"}
XMP_TAG = 700
XMP_TIFF_KINDS = (1, 2, 7)  # BYTE, ASCII, UNDEFINED: one byte a character
MAX_XMP_BYTES = 16 * 1024 * 1024
JPEG_MAGIC = b"\xff\xd8\xff"
JPEG_XMP_HEADER = b"http://ns.adobe.com/xap/1.0/\x00"
APP0, APP1, SOS, EOI = 0xE0, 0xE1, 0xDA, 0xD9
_NO_LENGTH = {0x01, *range(0xD0, 0xD8)}  # TEM and RST0-7 carry no length field

Bytes = bytes | mmap.mmap


@dataclass(frozen=True)
class JpegSegment:
    """A marker segment of a JPEG header: ``data[start:end]`` is 0xFF, the marker, the
    two length bytes and the payload."""

    marker: int
    start: int
    end: int

    def payload(self, data: Bytes) -> bytes:
        return data[self.start + 4:self.end]

    def is_xmp(self, data: Bytes) -> bool:
        """The standard XMP packet (extended XMP has another signature)."""
        return self.marker == APP1 and data[self.start + 4:self.start + 33] == JPEG_XMP_HEADER


def _marker_at(data: Bytes, pos: int) -> tuple[int, int]:
    """(marker, offset of its 0xFF) at ``pos``, past any 0xFF fill bytes."""
    if pos >= len(data):
        raise ImageError("truncated JPEG header")
    if data[pos] != 0xFF:
        raise ImageError(f"corrupt JPEG header (no marker at byte {pos})")
    while pos + 1 < len(data) and data[pos + 1] == 0xFF:
        pos += 1
    if pos + 1 >= len(data):
        raise ImageError("truncated JPEG header")
    return data[pos + 1], pos


def _segment_end(data: Bytes, at: int) -> int:
    if at + 4 > len(data):
        raise ImageError("truncated JPEG header")
    end = at + 2 + int.from_bytes(data[at + 2:at + 4], "big")
    if end < at + 4 or end > len(data):
        raise ImageError("truncated JPEG header")
    return end


def jpeg_segments(data: Bytes) -> tuple[list[JpegSegment], int]:
    """The segments before the first scan, and the offset of its SOS marker.
    Raises ImageError when the header is not a JPEG's or is cut short."""
    if data[:3] != JPEG_MAGIC:
        raise ImageError("not a JPEG file (no start-of-image marker)")
    segments, pos = [], 2
    while True:
        marker, at = _marker_at(data, pos)
        if marker == SOS:
            return segments, at
        if marker == EOI:
            raise ImageError("JPEG without image data (end marker before any scan)")
        if marker == 0:
            raise ImageError(f"corrupt JPEG header (no marker at byte {at})")
        if marker in _NO_LENGTH:
            pos = at + 2
            continue
        end = _segment_end(data, at)
        segments.append(JpegSegment(marker, at, end))
        pos = end


def jpeg_image_end(data: Bytes, sos: int) -> int:
    """The offset just past the first image's end marker (EOI), found by walking the
    scans from ``sos``; ImageError when the file ends before it (a truncated JPEG)."""
    pos = _segment_end(data, sos)
    while True:
        found = data.find(b"\xff", pos)
        if found < 0 or found + 1 >= len(data):
            raise ImageError("truncated JPEG (the file ends inside the image data)")
        following = data[found + 1]
        if following == 0xFF:
            pos = found + 1
        elif following == 0 or 0xD0 <= following <= 0xD7:  # stuffed byte, restart marker
            pos = found + 2
        elif following == EOI:
            return found + 2
        elif following in _NO_LENGTH:
            pos = found + 2
        else:  # DHT, SOS, DQT ... between the scans of a progressive JPEG
            pos = _segment_end(data, found)


def jpeg_xmp_segment(data: Bytes, segments: list[JpegSegment]) -> JpegSegment | None:
    """The standard XMP segment; ImageError when there are several (which one counts is
    not defined)."""
    found = [s for s in segments if s.is_xmp(data)]
    if len(found) > 1:
        raise ImageError(f"JPEG holds {len(found)} XMP packets where one is allowed")
    return found[0] if found else None


def jpeg_xmp(data: Bytes) -> bytes | None:
    """The standard XMP packet of a JPEG, or None."""
    segment = jpeg_xmp_segment(data, jpeg_segments(data)[0])
    return segment.payload(data)[len(JPEG_XMP_HEADER):] if segment else None


@dataclass(frozen=True)
class TiffEntry:
    """One 12-byte entry of a TIFF directory; ``at`` is its offset in the file and
    ``field`` its last four bytes (the value itself, or where it is)."""

    tag: int
    kind: int
    count: int
    field: bytes
    at: int

    def offset(self, order: str) -> int:
        return struct.unpack(order + "I", self.field)[0]


@dataclass(frozen=True)
class TiffDirectory:
    """The first image directory (IFD0) of a TIFF: byte order, where it is, its entries
    and the four bytes that point to the next directory."""

    order: str
    offset: int
    entries: tuple[TiffEntry, ...]
    next_ifd: bytes

    def xmp_entry(self) -> TiffEntry | None:
        found = [e for e in self.entries if e.tag == XMP_TAG]
        if len(found) > 1:
            raise ImageError(f"TIFF directory holds {len(found)} XMP tags (700)")
        if found and (found[0].kind not in XMP_TIFF_KINDS or found[0].count > MAX_XMP_BYTES):
            raise ImageError(f"TIFF tag 700 (XMP) has type {found[0].kind} and "
                             f"{found[0].count} bytes")
        return found[0] if found else None


def _read(handle: BinaryIO, offset: int, size: int) -> bytes:
    handle.seek(offset)
    data = handle.read(size)
    if len(data) != size:
        raise ImageError("truncated TIFF directory")
    return data


def tiff_directory(handle: BinaryIO) -> TiffDirectory | None:
    """IFD0 of a TIFF, None when the file is no (classic) TIFF; seeks, never reads it all."""
    order = TIFF_MAGIC.get(_read(handle, 0, 4))
    if order is None:
        return None
    (first,) = struct.unpack(order + "I", _read(handle, 4, 4))
    (count,) = struct.unpack(order + "H", _read(handle, first, 2))
    raw = _read(handle, first + 2, 12 * count)
    entries = tuple(TiffEntry(*struct.unpack_from(order + "HHI4s", raw, 12 * i),
                              at=first + 2 + 12 * i) for i in range(count))
    following = handle.read(4)  # a directory at the very end may lack it: none follows
    return TiffDirectory(order, first, entries, following.ljust(4, b"\0"))


def tiff_value(handle: BinaryIO, directory: TiffDirectory, entry: TiffEntry) -> bytes:
    """The bytes of a one-byte-a-value entry (such as tag 700)."""
    if entry.count <= 4:
        return entry.field[:entry.count]
    return _read(handle, entry.offset(directory.order), entry.count)


def tiff_xmp(handle: BinaryIO) -> bytes | None:
    """Tag 700 (XMLPacket) of a TIFF's first directory, or None."""
    directory = tiff_directory(handle)
    entry = directory.xmp_entry() if directory is not None else None
    return tiff_value(handle, directory, entry) if entry is not None else None


@contextlib.contextmanager
def mapped(handle: BinaryIO) -> Iterator[Bytes]:
    """The whole file as bytes without reading it: a read-only memory map (its contents
    where a map cannot be made)."""
    try:
        view = mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ)
    except (OSError, ValueError):
        handle.seek(0)
        yield handle.read()
        return
    try:
        yield view
    finally:
        view.close()


def embedded_xmp(path: str) -> bytes | None:
    """The XMP packet inside ``path``, or None when it holds none. Raises ImageError."""
    check_regular_file(path)
    try:
        with open(path, "rb") as handle:
            head = handle.read(4)
            if head in TIFF_MAGIC:
                return tiff_xmp(handle)
            if head[:3] == JPEG_MAGIC:
                with mapped(handle) as data:
                    return jpeg_xmp(data)
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
