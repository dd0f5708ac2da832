"""Star ratings in XMP sidecars, the files Lightroom, Capture One, darktable and digiKam read.

A photo ``IMG_1.CR2`` gets ``IMG_1.xmp`` beside it (Adobe's naming, which
Capture One and digiKam also read). If darktable's or digiKam's own
``IMG_1.CR2.xmp`` exists it is updated too; it is never created. Only
``xmp:Rating`` changes: every other property, namespace prefix, comment and
the xpacket wrapper stay as they were. A sidecar that is not well-formed XMP
is left untouched and reported. Writes are atomic and keep the file's mode.

Reading (``grmpiqa adapt --from-ratings``) follows the same naming, with the
``.xmp`` extension in any case; the file's own ``IMG_1.CR2.xmp`` wins over the
shared ``IMG_1.xmp``, which a RAW+JPEG pair share and which carries the RAW's rating.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from xml.dom import minidom
from xml.parsers.expat import ExpatError

from grmpiqa import __version__
from grmpiqa.errors import GrmpiqaError
from grmpiqa.io.atomic import atomic_write
from grmpiqa.io.extensions import extension_of
from grmpiqa.io.inputs import RAW_EXTENSIONS

XMP_NS = "http://ns.adobe.com/xap/1.0/"
RDF_NS = "http://www.w3.org/1999/02/22-rdf-syntax-ns#"
XMLNS_NS = "http://www.w3.org/2000/xmlns/"
XMPMETA_NS = "adobe:ns:meta/"
# score < 0.2: 1 star, < 0.4: 2, < 0.6: 3, < 0.8: 4, else 5
DEFAULT_THRESHOLDS = (0.2, 0.4, 0.6, 0.8)
MAX_SIDECAR_BYTES = 16 * 1024 * 1024

NEW_SIDECAR = f"""<?xpacket begin="\ufeff" id="W5M0MpCehiHzreSzNTczkc9d"?>
<x:xmpmeta xmlns:x="adobe:ns:meta/" x:xmptk="grmpiqa {__version__}">
 <rdf:RDF xmlns:rdf="{RDF_NS}">
  <rdf:Description rdf:about="" xmlns:xmp="{XMP_NS}" xmp:Rating="0"/>
 </rdf:RDF>
</x:xmpmeta>
<?xpacket end="w"?>"""


class XmpError(GrmpiqaError):
    """One sidecar cannot be read or written; the run goes on without it."""

    exit_code = 1


def parse_thresholds(text: str) -> tuple[float, ...]:
    """'0.2,0.4,0.6,0.8' -> four increasing scores in (0, 1) where 2..5 stars begin."""
    try:
        values = tuple(float(part) for part in text.split(","))
    except ValueError:
        raise ValueError(f"{text!r}: give four comma-separated numbers, e.g. 0.2,0.4,0.6,0.8"
                         ) from None
    if len(values) != 4:
        raise ValueError(f"{text!r}: give exactly four thresholds (for 2, 3, 4 and 5 stars)")
    if not all(0.0 < v < 1.0 for v in values) or list(values) != sorted(set(values)):
        raise ValueError(f"{text!r}: thresholds must increase strictly, between 0 and 1")
    return values


def rating_for(score: float, thresholds: Sequence[float] = DEFAULT_THRESHOLDS) -> int:
    """1 star below the first threshold, one more star for each threshold reached."""
    return 1 + sum(score >= t for t in thresholds)


def sidecar_bases(photo: str) -> tuple[str, str, str]:
    """(folder, name, stem) of ``photo``: its sidecars are ``stem.xmp`` and ``name.xmp``."""
    folder, name = os.path.split(photo)
    stem = os.path.splitext(name)[0]  # the same rule as extension_of
    return folder, name, stem


def sidecar_paths(photo: str) -> list[str]:
    """The sidecars to write for ``photo``: ``stem.xmp`` (or an existing ``stem.XMP``),
    plus ``photo.xmp`` when that already exists."""
    folder, name, stem = sidecar_bases(photo)
    paths = []
    for candidate in (stem + ".xmp", stem + ".XMP"):
        if os.path.lexists(os.path.join(folder, candidate)):
            paths.append(os.path.join(folder, candidate))
            break
    else:
        paths.append(os.path.join(folder, stem + ".xmp"))
    for candidate in (name + ".xmp", name + ".XMP"):
        full = os.path.join(folder, candidate)
        if os.path.lexists(full) and full not in paths:
            paths.append(full)
            break
    return paths


def _prefix_in_scope(element: minidom.Element, namespace: str) -> str | None:
    node: minidom.Node | None = element
    while node is not None and node.nodeType == node.ELEMENT_NODE:
        for name, value in node.attributes.items():
            if name.startswith("xmlns:") and value == namespace:
                return name[len("xmlns:"):]
        node = node.parentNode
    return None


def _prefix_taken(element: minidom.Element, prefix: str) -> bool:
    node: minidom.Node | None = element
    while node is not None and node.nodeType == node.ELEMENT_NODE:
        if node.hasAttribute(f"xmlns:{prefix}"):
            return True
        node = node.parentNode
    return False


def _parse(document: bytes) -> minidom.Document:
    if b"<!DOCTYPE" in document or b"<!ENTITY" in document:  # refused before any expansion
        raise XmpError("has a DOCTYPE, which XMP never has")
    try:
        return minidom.parseString(document)
    except (ExpatError, ValueError) as exc:
        raise XmpError(f"malformed XML ({exc})") from None


def read_rating(document: bytes) -> int | None:
    """The ``xmp:Rating`` of an XMP packet (attribute or element form), or None when it has
    none. -1 is rejected, 0 unrated, 1..5 stars. Raises XmpError for anything else."""
    dom = _parse(document)
    values = [d.getAttributeNS(XMP_NS, "Rating")
              for d in dom.getElementsByTagNameNS(RDF_NS, "Description")
              if d.hasAttributeNS(XMP_NS, "Rating")]
    values += ["".join(c.data for c in e.childNodes if c.nodeType == c.TEXT_NODE)
               for e in dom.getElementsByTagNameNS(XMP_NS, "Rating")]
    ratings = {_rating_value(value) for value in values}
    if len(ratings) > 1:
        raise XmpError(f"holds different ratings ({', '.join(map(str, sorted(ratings)))})")
    return ratings.pop() if ratings else None


def _rating_value(text: str) -> int:
    try:
        value = float(text.strip())
    except ValueError:
        raise XmpError(f"xmp:Rating {text.strip()!r} is not a number") from None
    if value != int(value) or not -1 <= value <= 5:
        raise XmpError(f"xmp:Rating {text.strip()!r} is not -1 (rejected), 0 (unrated) "
                       "or 1..5 stars")
    return int(value)


def set_rating(document: bytes, rating: int) -> bytes:
    """``document`` (an XMP packet) with ``xmp:Rating`` set; all else kept. Raises XmpError."""
    dom = _parse(document)
    roots = dom.getElementsByTagNameNS(RDF_NS, "RDF")
    if not roots:
        top = dom.documentElement
        if (top.namespaceURI, top.localName) != (XMPMETA_NS, "xmpmeta"):
            raise XmpError("no rdf:RDF element, not an XMP sidecar")
        rdf = dom.createElementNS(RDF_NS, "rdf:RDF")  # an empty x:xmpmeta: give it one
        rdf.setAttributeNS(XMLNS_NS, "xmlns:rdf", RDF_NS)
        top.appendChild(rdf)
        roots = [rdf]
    descriptions = dom.getElementsByTagNameNS(RDF_NS, "Description")
    found = False
    for description in descriptions:
        if description.hasAttributeNS(XMP_NS, "Rating"):
            description.getAttributeNodeNS(XMP_NS, "Rating").value = str(rating)
            found = True
    for element in dom.getElementsByTagNameNS(XMP_NS, "Rating"):
        for child in list(element.childNodes):
            element.removeChild(child)
        element.appendChild(dom.createTextNode(str(rating)))
        found = True
    if not found:
        _add_rating(dom, roots[0], descriptions, rating)
    parts = [node.toxml() for node in dom.childNodes]
    if document.lstrip(b"\xef\xbb\xbf \t\r\n").startswith(b"<?xml "):
        parts.insert(0, '<?xml version="1.0" encoding="UTF-8"?>')  # re-encoded as UTF-8
    return ("\n".join(parts) + "\n").encode("utf-8")


def _add_rating(dom: minidom.Document, rdf: minidom.Element,
                descriptions: Sequence[minidom.Element], rating: int) -> None:
    """Put ``xmp:Rating`` on the description that already uses the xmp namespace, or the
    first one, or a new one."""
    target = next((d for d in descriptions if _prefix_in_scope(d, XMP_NS)), None)
    if target is None and descriptions:
        target = descriptions[0]
    if target is None:
        rdf_prefix = rdf.prefix or _prefix_in_scope(rdf, RDF_NS)
        qualified = f"{rdf_prefix}:Description" if rdf_prefix else "Description"
        target = dom.createElementNS(RDF_NS, qualified)
        target.setAttributeNS(RDF_NS, f"{rdf_prefix}:about" if rdf_prefix else "about", "")
        rdf.appendChild(target)
    prefix = _prefix_in_scope(target, XMP_NS)
    if prefix is None:
        prefix = "xmp"
        number = 0
        while _prefix_taken(target, prefix):
            number += 1
            prefix = f"xmp{number}"
        target.setAttributeNS(XMLNS_NS, f"xmlns:{prefix}", XMP_NS)
    target.setAttributeNS(XMP_NS, f"{prefix}:Rating", str(rating))


def _load(sidecar: str) -> bytes:
    """An existing sidecar's bytes; OSError when it cannot be read."""
    name = os.path.basename(sidecar)
    if not os.path.isfile(sidecar):
        raise XmpError(f"{name} is not a regular file")
    if os.path.getsize(sidecar) > MAX_SIDECAR_BYTES:
        raise XmpError(f"{name} is over {MAX_SIDECAR_BYTES // 2**20} MiB, not a sidecar")
    with open(sidecar, "rb") as handle:
        return handle.read()


def read_sidecar(sidecar: str) -> int | None:
    """The rating in one sidecar (None: it has none). Raises XmpError naming the file."""
    name = os.path.basename(sidecar)
    try:
        document = _load(sidecar)
    except OSError as exc:
        raise XmpError(f"cannot read {name} ({exc.strerror or exc})") from None
    if not document.strip():
        return None
    try:
        return read_rating(document)
    except XmpError as exc:
        raise XmpError(f"{name}: {exc}") from None


def stars_for_label(label: float) -> int:
    """Stars on a star-rating label scale: ``label`` rounded half up, clamped to 1..5."""
    return min(5, max(1, math.floor(label + 0.5)))


def write_rating(sidecar: str, rating: int) -> None:
    """Create or update one sidecar atomically. Raises XmpError naming the problem."""
    name = os.path.basename(sidecar)
    document = NEW_SIDECAR.encode("utf-8")
    try:
        if os.path.lexists(sidecar):
            existing = _load(sidecar)
            if existing.strip():
                document = existing
        try:
            updated = set_rating(document, rating)
        except XmpError as exc:
            raise XmpError(f"{name}: {exc}; left unchanged") from None
        with atomic_write(os.path.realpath(sidecar)) as handle:
            handle.write(updated)
    except XmpError:
        raise
    except OSError as exc:
        raise XmpError(f"cannot write {name} ({exc.strerror or exc})") from None


class SidecarRater:
    """Rates photo after photo. A RAW+JPEG pair shares ``stem.xmp``: the RAW's rating wins,
    whichever of the two comes first, because the sidecar describes the RAW.

    ``on_label_scale``: the weights learned star ratings, so a photo gets the stars
    the model predicts on that scale (:func:`stars_for_label` of its ``score_label``)
    instead of the thresholds.
    """

    def __init__(self, thresholds: Sequence[float] = DEFAULT_THRESHOLDS, *,
                 on_label_scale: bool = False) -> None:
        self.thresholds = tuple(thresholds)
        self.on_label_scale = on_label_scale
        self._written_for_raw: set[str] = set()

    def stars(self, score: float, score_label: float | None = None) -> int:
        if self.on_label_scale and score_label is not None:
            return stars_for_label(score_label)
        return rating_for(score, self.thresholds)

    def rate(self, photo: str, score: float, score_label: float | None = None) -> list[str]:
        """Write the rating for ``photo``; returns the sidecars written. Raises XmpError."""
        rating = self.stars(score, score_label)
        is_raw = extension_of(photo) in RAW_EXTENSIONS
        written, problems = [], []
        for sidecar in sidecar_paths(photo):
            if not is_raw and sidecar in self._written_for_raw:
                continue
            try:
                write_rating(sidecar, rating)
            except XmpError as exc:
                problems.append(str(exc))
                continue
            if is_raw:
                self._written_for_raw.add(sidecar)
            written.append(sidecar)
        if problems:
            raise XmpError("; ".join(problems))
        return written
