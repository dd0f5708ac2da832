"""Star ratings the way photo software stores them: XMP sidecars and XMP inside files."""

from __future__ import annotations

import hashlib
import io
import struct
from pathlib import Path

import numpy as np
from PIL import Image, PngImagePlugin, TiffImagePlugin

XMP_HEADER = b"http://ns.adobe.com/xap/1.0/\x00"


def packet(rating: int | str | None, form: str = "attribute") -> bytes:
    """An XMP packet with ``xmp:Rating`` as an attribute (Lightroom) or an element
    (darktable, with the ``xap`` prefix); ``None``: no rating at all."""
    if rating is None:
        inner = '<rdf:Description rdf:about="" xmlns:dc="http://purl.org/dc/elements/1.1/"/>'
    elif form == "attribute":
        inner = ('<rdf:Description rdf:about="" xmlns:xmp="http://ns.adobe.com/xap/1.0/" '
                 f'xmp:Rating="{rating}" xmp:CreatorTool="test"/>')
    else:
        inner = ('<rdf:Description rdf:about=""><xap:Rating '
                 f'xmlns:xap="http://ns.adobe.com/xap/1.0/">{rating}</xap:Rating>'
                 '</rdf:Description>')
    return ('<?xpacket begin="\ufeff" id="W5M0MpCehiHzreSzNTczkc9d"?>\n'
            '<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF '
            f'xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">{inner}'
            '</rdf:RDF></x:xmpmeta>\n<?xpacket end="w"?>').encode()


def jpeg_with_xmp(jpeg: bytes, xmp: bytes) -> bytes:
    """``jpeg`` with an APP1 XMP segment right after SOI; the pixels stay as they were."""
    payload = XMP_HEADER + xmp
    return jpeg[:2] + b"\xff\xe1" + struct.pack(">H", len(payload) + 2) + payload + jpeg[2:]


def save_with_xmp(image: Image.Image, path: Path, xmp: bytes) -> Path:
    """Save ``image`` in the format of ``path``'s extension with ``xmp`` embedded."""
    kind = path.suffix.lower()
    if kind in (".jpg", ".jpeg"):
        buffer = io.BytesIO()
        image.save(buffer, "JPEG", quality=90)
        path.write_bytes(jpeg_with_xmp(buffer.getvalue(), xmp))
    elif kind == ".png":
        info = PngImagePlugin.PngInfo()
        info.add_itxt("XML:com.adobe.xmp", xmp.decode("utf-8"))
        image.save(path, "PNG", pnginfo=info)
    elif kind == ".webp":
        image.save(path, "WEBP", xmp=xmp)
    elif kind in (".tif", ".tiff"):
        ifd = TiffImagePlugin.ImageFileDirectory_v2()
        ifd[700] = xmp
        ifd.tagtype[700] = 1
        image.save(path, "TIFF", tiffinfo=ifd)
    elif kind in (".heic", ".heif"):
        import pillow_heif

        pillow_heif.from_pillow(image).save(path, quality=80, xmp=xmp)
    else:
        raise ValueError(kind)
    return path


#: a Lightroom packet: rating, label, develop settings, keywords, a comment
LIGHTROOM_PACKET = """<?xpacket begin="\ufeff" id="W5M0MpCehiHzreSzNTczkc9d"?>
<x:xmpmeta xmlns:x="adobe:ns:meta/" x:xmptk="Adobe XMP Core 7.0">
 <rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">
  <rdf:Description rdf:about=""
    xmlns:xmp="http://ns.adobe.com/xap/1.0/"
    xmlns:crs="http://ns.adobe.com/camera-raw-settings/1.0/"
    xmlns:dc="http://purl.org/dc/elements/1.1/"
    xmlns:lr="http://ns.adobe.com/lightroom/1.0/"
   xmp:ModifyDate="2024-05-01T10:00:00"
   xmp:Rating="2"
   xmp:Label="Red"
   crs:Exposure2012="+0.35"
   crs:Temperature="5200">
   <!-- a comment the user wants kept -->
   <dc:subject>
    <rdf:Bag>
     <rdf:li>holiday</rdf:li>
     <rdf:li>caf\u00e9</rdf:li>
    </rdf:Bag>
   </dc:subject>
   <lr:hierarchicalSubject>
    <rdf:Bag>
     <rdf:li>places|Lisbon</rdf:li>
    </rdf:Bag>
   </lr:hierarchicalSubject>
  </rdf:Description>
 </rdf:RDF>
</x:xmpmeta>
<?xpacket end="w"?>""".encode()


def jpeg_photo(path: Path, seed: int = 0, *, exif: bool = True, xmp: bytes | None = None,
               size: tuple[int, int] = (96, 64)) -> Path:
    """A noisy JPEG with JFIF (APP0) and, with ``exif``, an Exif APP1 (camera make), then
    optionally an XMP APP1 after them, as cameras and Adobe lay them out."""
    rgb = np.random.default_rng(seed).integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    buffer = io.BytesIO()
    info = Image.Exif()
    info[0x010F] = "grmpiqa test camera"
    Image.fromarray(rgb).save(buffer, "JPEG", quality=90, exif=info if exif else b"")
    data = buffer.getvalue()
    if xmp is not None:
        at = data.find(b"\xff\xdb")  # before the first quantisation table: after APP0/APP1
        payload = XMP_HEADER + xmp
        data = data[:at] + b"\xff\xe1" + struct.pack(">H", len(payload) + 2) + payload + data[at:]
    path.write_bytes(data)
    return path


def extended_xmp(standard: bytes, extension: bytes, chunk: int = 65000) -> bytes:
    """APP1 segments of extended XMP for ``extension`` (its GUID announced in ``standard``
    with xmpNote:HasExtendedXMP), then the standard segment: what goes after SOI."""
    guid = hashlib.md5(extension).hexdigest().upper().encode()
    note = (b' xmlns:xmpNote="http://ns.adobe.com/xmp/note/" xmpNote:HasExtendedXMP="'
            + guid + b'"')
    standard = standard.replace(b'rdf:about=""', b'rdf:about=""' + note, 1)
    out = b"\xff\xe1" + struct.pack(">H", len(XMP_HEADER + standard) + 2) + XMP_HEADER + standard
    for at in range(0, len(extension), chunk):
        part = (b"http://ns.adobe.com/xmp/extension/\x00" + guid
                + struct.pack(">II", len(extension), at) + extension[at:at + chunk])
        out += b"\xff\xe1" + struct.pack(">H", len(part) + 2) + part
    return out


def xmp_span(data: bytes) -> tuple[int, int]:
    """(start, end) of the one standard XMP APP1 segment in a JPEG, found by its
    signature (independently of grmpiqa's parser)."""
    at = data.find(XMP_HEADER)
    assert at > 4 and data.find(XMP_HEADER, at + 1) < 0
    start = at - 4
    assert data[start:start + 2] == b"\xff\xe1"
    return start, start + 2 + struct.unpack(">H", data[start + 2:start + 4])[0]


def tiny_tiff(order: str, entries: list[tuple[int, int, bytes]]) -> bytes:
    """A TIFF header and one directory whose values follow it."""
    head = (b"II*\0" if order == "<" else b"MM\0*") + struct.pack(order + "I", 8)
    directory = struct.pack(order + "H", len(entries))
    data_at = 8 + 2 + 12 * len(entries) + 4
    extra = b""
    for tag, kind, value in entries:
        if len(value) <= 4:
            field = value.ljust(4, b"\0")
        else:
            field = struct.pack(order + "I", data_at + len(extra))
            extra += value
        directory += struct.pack(order + "HHI", tag, kind, len(value)) + field
    return head + directory + struct.pack(order + "I", 0) + extra
