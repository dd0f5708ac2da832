"""Star ratings and colour labels in XMP: sidecars, and the packet inside JPEG, TIFF and DNG.

Which places a photo's rating goes to, for each photo application, is
:mod:`grmpiqa.workflow.xmp_targets`; :mod:`grmpiqa.workflow.xmp_marks` writes
ratings, rejects and labels there. This module edits one packet: only the
``xmp:`` properties asked for change (``xmp:Rating``, ``xmp:Label``); every
other property, namespace prefix, comment and the xpacket wrapper stay as
they were. A packet that is not well-formed XMP is left untouched and
reported. Writes are atomic and keep the file's mode (and, for a photo, its
owner; for a sidecar, its owner when running as root).

Reading (``grmpiqa adapt --from-ratings``, :mod:`grmpiqa.workflow.ratings`)
finds every place the writers use: the file's own ``IMG_1.CR2.xmp`` wins over
the shared ``IMG_1.xmp`` (which a RAW+JPEG pair share and which carries the
RAW's rating), which wins over the XMP inside the file.
"""

from __future__ import annotations

import math
import os
from collections.abc import Collection, Mapping, Sequence
from xml.dom import minidom
from xml.parsers.expat import ExpatError

from grmpiqa import __version__
from grmpiqa.errors import ImageError, XmpError
from grmpiqa.io.atomic import atomic_write
from grmpiqa.workflow.xmp_targets import Place, places_for

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
  <rdf:Description rdf:about="" xmlns:xmp="{XMP_NS}"/>
 </rdf:RDF>
</x:xmpmeta>
<?xpacket end="w"?>"""


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


def sidecar_paths(photo: str) -> list[str]:
    """The sidecars ``--xmp`` writes for ``photo``: ``stem.xmp`` (or an existing
    ``stem.XMP``), plus ``photo.xmp`` when that already exists."""
    return [place.path for place in places_for(photo)]


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


def _values(dom: minidom.Document, name: str) -> list[str]:
    """Every value of the simple property ``xmp:name``, attribute or element form."""
    values = [d.getAttributeNS(XMP_NS, name)
              for d in dom.getElementsByTagNameNS(RDF_NS, "Description")
              if d.hasAttributeNS(XMP_NS, name)]
    return values + ["".join(c.data for c in e.childNodes if c.nodeType == c.TEXT_NODE)
                     for e in dom.getElementsByTagNameNS(XMP_NS, name)]


def read_rating(document: bytes) -> int | None:
    """The ``xmp:Rating`` of an XMP packet (attribute or element form), or None when it has
    none. -1 is rejected, 0 unrated, 1..5 stars. Raises XmpError for anything else."""
    ratings = {_rating_value(value) for value in _values(_parse(document), "Rating")}
    if len(ratings) > 1:
        raise XmpError(f"holds different ratings ({', '.join(map(str, sorted(ratings)))})")
    return ratings.pop() if ratings else None


def read_label(document: bytes) -> str | None:
    """The ``xmp:Label`` (a colour label such as "Green") of an XMP packet, or None."""
    labels = {value.strip() for value in _values(_parse(document), "Label")}
    if len(labels) > 1:
        raise XmpError(f"holds different labels ({', '.join(sorted(labels))})")
    return labels.pop() if labels else None


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
    return set_properties(document, {"Rating": str(rating)})


def set_properties(document: bytes, values: Mapping[str, str]) -> bytes:
    """``document`` (an XMP packet) with simple ``xmp:`` properties set, e.g.
    ``{"Rating": "-1", "Label": "Green"}``: each value replaced where it is (attribute or
    element form, any prefix) or added; every other property, comment, namespace and
    the xpacket wrapper kept. Raises XmpError."""
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
    for name, value in values.items():
        if not _replace(dom, name, value):
            _add_property(dom, roots[0], name, value)
    parts = [node.toxml() for node in dom.childNodes]
    if document.lstrip(b"\xef\xbb\xbf \t\r\n").startswith(b"<?xml "):
        parts.insert(0, '<?xml version="1.0" encoding="UTF-8"?>')  # re-encoded as UTF-8
    return ("\n".join(parts) + "\n").encode("utf-8")


def _replace(dom: minidom.Document, name: str, value: str) -> bool:
    """Set every existing ``xmp:name``; False when there was none."""
    found = False
    for description in dom.getElementsByTagNameNS(RDF_NS, "Description"):
        if description.hasAttributeNS(XMP_NS, name):
            description.getAttributeNodeNS(XMP_NS, name).value = value
            found = True
    for element in dom.getElementsByTagNameNS(XMP_NS, name):
        for child in list(element.childNodes):
            element.removeChild(child)
        element.appendChild(dom.createTextNode(value))
        found = True
    return found


def _add_property(dom: minidom.Document, rdf: minidom.Element, name: str, value: str
                  ) -> None:
    """Put ``xmp:name`` on the description that already uses the xmp namespace, or the
    first one, or a new one."""
    descriptions = dom.getElementsByTagNameNS(RDF_NS, "Description")
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
    target.setAttributeNS(XMP_NS, f"{prefix}:{name}", value)


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
    write_sidecar(sidecar, {"Rating": str(rating)})


def write_sidecar(sidecar: str, values: Mapping[str, str], *, dry_run: bool = False
                  ) -> None:
    """Create or update one sidecar atomically with :func:`set_properties`; ``dry_run``
    checks that it could, writing nothing. Raises XmpError naming the problem."""
    name = os.path.basename(sidecar)
    document = NEW_SIDECAR.encode("utf-8")
    try:
        if os.path.lexists(sidecar):
            existing = _load(sidecar)
            if existing.strip():
                document = existing
        try:
            updated = set_properties(document, values)
        except XmpError as exc:
            raise XmpError(f"{name}: {exc}; left unchanged") from None
        if not dry_run:
            with atomic_write(os.path.realpath(sidecar), owner="if-root") as handle:
                handle.write(updated)
    except XmpError:
        raise
    except OSError as exc:
        raise XmpError(f"cannot write {name} ({exc.strerror or exc})") from None


def write_inside(photo: str, values: Mapping[str, str], *, dry_run: bool = False) -> None:
    """Set ``values`` in the XMP inside a JPEG, TIFF or DNG (see
    :mod:`grmpiqa.io.xmp_embed`); ``dry_run`` checks that it could. Raises XmpError
    naming the problem; the photo is then untouched."""
    from grmpiqa.io.xmp_embed import write_xmp_inside  # Pillow stays out of --help

    name = os.path.basename(photo)

    def edit(packet: bytes | None) -> bytes:
        if packet is None or not packet.strip(b" \t\r\n\0"):
            packet = NEW_SIDECAR.encode("utf-8")
        return set_properties(packet.rstrip(b"\0"), values)

    try:
        write_xmp_inside(photo, edit, dry_run=dry_run)
    except XmpError as exc:
        raise XmpError(f"{name}: its XMP: {exc}; left unchanged") from None
    except ImageError as exc:
        raise XmpError(f"{name}: {exc}; left unchanged") from None
    except OSError as exc:
        raise XmpError(f"cannot write {name} ({exc.strerror or exc}); left unchanged"
                       ) from None


def write_places(places: Sequence[Place], values: Mapping[str, str], *,
                 dry_run: bool = False, skip: Collection[str] = ()
                 ) -> tuple[list[str], list[str]]:
    """Write ``values`` at each place (but those in ``skip``): (paths written, or that
    would be with ``dry_run``; one message per place that failed)."""
    written, problems = [], []
    for place in places:
        if place.path in skip:
            continue
        try:
            if place.inside:
                write_inside(place.path, values, dry_run=dry_run)
            else:
                write_sidecar(place.path, values, dry_run=dry_run)
        except XmpError as exc:
            problems.append(str(exc))
            continue
        written.append(place.path)
    return written, problems

