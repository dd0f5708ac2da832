"""Star ratings the way photo software stores them: XMP sidecars and XMP inside files."""

from __future__ import annotations

import io
import struct
from pathlib import Path

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
