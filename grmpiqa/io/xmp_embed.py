"""Replace or insert the XMP packet inside a JPEG, TIFF or DNG file, and nothing else.

JPEG: the standard XMP segment (APP1, ``http://ns.adobe.com/xap/1.0/``) is
replaced where it is, or inserted after the start marker and any leading JFIF
(APP0) and Exif (APP1) segments, where the XMP specification (Part 3, Storage
in Files) puts it. Every other byte is copied as it was. Extended XMP (the
``http://ns.adobe.com/xmp/extension/`` segments of packets over 64 kB) is left
as it is: the edit goes into the standard packet, which must stay within
65502 bytes, or the file is refused.

TIFF and DNG: tag 700 of the first directory (IFD0). A packet that fits the
old one's bytes is written there, padded with whitespace as XMP packets are
meant to be; else it is appended to the file (with room to grow) and the
tag's count and offset patched, the old bytes blanked; a file without tag 700
gets a copy of IFD0 with the new entry appended and the header's pointer
patched. Nothing moves, so every offset in the file (SubIFDs, Exif, maker
notes) stays valid.

The new file is written beside the old one, parsed again, and renamed over
it: a crash leaves the old file or the new one. It keeps the old file's mode,
owner and extended attributes, or is not written.
"""

from __future__ import annotations

import os
import stat
import struct
from collections.abc import Callable
from typing import IO, BinaryIO

from grmpiqa.errors import ImageError
from grmpiqa.io.atomic import atomic_write
from grmpiqa.io.embedded_xmp import (
    APP0,
    APP1,
    JPEG_MAGIC,
    JPEG_XMP_HEADER,
    TIFF_MAGIC,
    XMP_TAG,
    Bytes,
    JpegSegment,
    TiffDirectory,
    jpeg_image_end,
    jpeg_segments,
    jpeg_xmp,
    jpeg_xmp_segment,
    mapped,
    tiff_directory,
    tiff_value,
    tiff_xmp,
)

#: the most a standard XMP packet may hold in one JPEG APP1 segment (XMP spec, Part 3)
MAX_JPEG_PACKET = 65502
#: whitespace left in a packet appended to a TIFF, so later edits fit in place
TIFF_ROOM = 2048
EXIF_HEADER = b"Exif\x00"

Edit = Callable[[bytes | None], bytes]


def pad_packet(packet: bytes, size: int) -> bytes:
    """``packet`` grown to ``size`` bytes with whitespace before its closing
    ``<?xpacket end`` (the padding XMP packets are meant to carry), or at its end."""
    missing = size - len(packet)
    if missing <= 0:
        return packet
    room = b"".join((b" " * 99 + b"\n") for _ in range(missing // 100))
    room += b" " * (missing - len(room))
    trailer = packet.rfind(b"<?xpacket end")
    if trailer < 0:
        return packet + room
    return packet[:trailer] + room + packet[trailer:]


def write_xmp_inside(path: str, edit: Edit, *, dry_run: bool = False) -> bytes:
    """Give the JPEG, TIFF or DNG ``path`` the packet ``edit(old packet or None)``
    returns; returns that packet. ``dry_run`` checks all (structure, size, file
    permissions) but writes nothing. Raises ImageError (structure), OSError, or
    whatever ``edit`` raises; the file is then untouched."""
    real = os.path.realpath(path)
    st = os.stat(real)
    _check_writable(st)
    with open(real, "rb") as handle:
        head = handle.read(4)
        if head in TIFF_MAGIC:
            return _write_tiff(real, handle, st.st_size, edit, dry_run)
        if head[:3] == JPEG_MAGIC:
            with mapped(handle) as data:
                return _write_jpeg(real, data, edit, dry_run)
    raise ImageError("not a JPEG or TIFF file inside, whatever its name says")


def _check_writable(st: os.stat_result) -> None:
    if not stat.S_ISREG(st.st_mode):
        raise ImageError("not a regular file")
    if not _may_write(st):
        raise ImageError("is read-only (its permissions forbid writing it)")
    if st.st_nlink > 1:
        raise ImageError(f"has {st.st_nlink} hard links; writing a new file would split them")


def _may_write(st: os.stat_result) -> bool:
    """Write permission by the mode bits, for this process; root needs a write bit too,
    so that a photo made read-only stays as it is."""
    if not hasattr(os, "geteuid"):  # Windows: the read-only attribute
        return bool(st.st_mode & stat.S_IWRITE)
    uid = os.geteuid()
    if uid == 0:
        return bool(st.st_mode & 0o222)
    if st.st_uid == uid:
        return bool(st.st_mode & stat.S_IWUSR)
    if st.st_gid in (os.getegid(), *os.getgroups()):
        return bool(st.st_mode & stat.S_IWGRP)
    return bool(st.st_mode & stat.S_IWOTH)


def _xmp_spot(data: Bytes, segments: list[JpegSegment]) -> tuple[int, int, bytes | None]:
    """Where the XMP segment goes and the packet there now: the old segment's bytes, or
    an empty range after SOI, JFIF and Exif."""
    old = jpeg_xmp_segment(data, segments)
    if old is not None:
        return old.start, old.end, old.payload(data)[len(JPEG_XMP_HEADER):]
    at = 2
    for segment in segments:
        exif = segment.marker == APP1 and segment.payload(data).startswith(EXIF_HEADER)
        if segment.start != at or not (segment.marker == APP0 or exif):
            break
        at = segment.end
    return at, at, None


def _write_jpeg(real: str, data: Bytes, edit: Edit, dry_run: bool) -> bytes:
    segments, sos = jpeg_segments(data)
    jpeg_image_end(data, sos)  # a truncated file is refused, not rewritten
    start, end, old = _xmp_spot(data, segments)
    packet = edit(old)
    if len(packet) > MAX_JPEG_PACKET:
        raise ImageError(f"the XMP packet would be {len(packet):,} bytes, over the "
                         f"{MAX_JPEG_PACKET:,} a JPEG's standard XMP can hold")
    payload = JPEG_XMP_HEADER + packet
    segment = b"\xff\xe1" + struct.pack(">H", len(payload) + 2) + payload
    if dry_run:
        return packet
    with atomic_write(real, "w+b", owner="keep") as out:
        out.write(data[:start])
        out.write(segment)
        _copy_range(data, end, len(data), out)
        _verify(out, _reread_jpeg, packet)
    return packet


def _copy_range(data: Bytes, start: int, end: int, out: IO[bytes], chunk: int = 1 << 22
                ) -> None:
    for at in range(start, end, chunk):
        out.write(data[at:min(at + chunk, end)])


def _reread_jpeg(handle: BinaryIO) -> bytes | None:
    with mapped(handle) as data:
        jpeg_image_end(data, jpeg_segments(data)[1])
        return jpeg_xmp(data)


def _verify(out: IO[bytes], reread: Callable[[BinaryIO], bytes | None], packet: bytes
            ) -> None:
    """Parse the new file again before it replaces the old one."""
    out.flush()
    out.seek(0)
    if reread(out) != packet:  # pragma: no cover - a bug in the writer, never the input
        raise ImageError("the rewritten file did not read back; left unchanged")


def _write_tiff(real: str, handle: BinaryIO, size: int, edit: Edit, dry_run: bool) -> bytes:
    directory = tiff_directory(handle)
    assert directory is not None
    entry = directory.xmp_entry()
    packet = edit(tiff_value(handle, directory, entry) if entry is not None else None)
    patches, tail, stored = _tiff_changes(directory, size, packet)
    if dry_run:
        return packet
    with atomic_write(real, "w+b", owner="keep") as out:
        handle.seek(0)
        while block := handle.read(1 << 22):
            out.write(block)
        for offset, data in patches:
            out.seek(offset)
            out.write(data)
        out.seek(size)
        out.write(tail)
        _verify(out, tiff_xmp, stored)
    return packet


def _tiff_changes(directory: TiffDirectory, size: int, packet: bytes
                  ) -> tuple[list[tuple[int, bytes]], bytes, bytes]:
    """The (offset, bytes) patches and the bytes appended at ``size`` that put ``packet``
    in tag 700, and the value tag 700 then holds (``packet`` padded)."""
    order, entry = directory.order, directory.xmp_entry()
    if entry is not None and entry.count > 4 and len(packet) <= entry.count:
        stored = pad_packet(packet, entry.count)
        return [(entry.offset(order), stored)], b"", stored
    room = len(packet) + TIFF_ROOM
    stored = pad_packet(packet, room + room % 2)  # values start on a word boundary
    align = b"\0" * (size % 2)
    at = size + len(align)
    if entry is not None:
        patches = [(entry.at + 4, struct.pack(order + "II", len(stored), at))]
        if entry.count > 4:  # the old packet stays unreferenced: blank it for scanners
            patches.append((entry.offset(order), b" " * entry.count))
        return patches, align + stored, stored
    entries = [struct.pack(order + "HHI", e.tag, e.kind, e.count) + e.field
               for e in directory.entries]
    entries.append(struct.pack(order + "HHII", XMP_TAG, 1, len(stored), at))
    entries.sort(key=lambda raw: struct.unpack_from(order + "H", raw)[0])
    ifd = struct.pack(order + "H", len(entries)) + b"".join(entries) + directory.next_ifd
    return [(4, struct.pack(order + "I", at + len(stored)))], align + stored + ifd, stored
