"""Where each photo application reads a photo's rating: which sidecar, or the XMP inside it.

``places_for(photo, app)`` lists the places to write, first the one the
application reads (created when missing), then any other sidecar of the photo
that already exists (updated, never created, so that no application and no
``read_ratings`` finds an old rating there):

=============  ===========================  =========================  ===============
app            JPEG, TIFF, DNG              camera RAW, HEIC, others   PNG, WebP
=============  ===========================  =========================  ===============
None           ``IMG_1.xmp``                ``IMG_1.xmp``              ``IMG_1.xmp``
lightroom      inside the file              ``IMG_1.xmp``              refused
bridge         inside the file              ``IMG_1.xmp``              refused
capture-one    ``IMG_1.xmp``                ``IMG_1.xmp``              ``IMG_1.xmp``
darktable      ``IMG_1.jpg.xmp``            ``IMG_1.CR2.xmp``          ``IMG_1.png.xmp``
digikam        inside the file              ``IMG_1.CR2.xmp``          refused
=============  ===========================  =========================  ===============

PNG and WebP are refused where the application reads XMP inside them: grmpiqa
writes inside JPEG, TIFF and DNG only. docs/workflow.md gives the source of
each rule. ``IMG_1.xmp`` shared by a RAW+JPEG pair is the RAW's: a target that
does not name it leaves it alone for the JPEG.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from grmpiqa.errors import ConfigError, XmpError
from grmpiqa.io.extensions import extension_of
from grmpiqa.io.inputs import HEIF_EXTENSIONS, PILLOW_EXTENSIONS, RAW_EXTENSIONS

APPS = ("lightroom", "capture-one", "darktable", "digikam", "bridge")
#: files grmpiqa writes XMP inside (JPEG APP1, TIFF/DNG tag 700)
INSIDE_EXTENSIONS = ("jpg", "jpeg", "jpe", "jfif", "tif", "tiff", "dng")
#: files whose applications keep XMP inside them, where grmpiqa cannot write it
INSIDE_ONLY_EXTENSIONS = ("png", "webp")
_READS_INSIDE = ("lightroom", "bridge", "digikam")
_PHOTO_EXTENSIONS = frozenset((*PILLOW_EXTENSIONS, *HEIF_EXTENSIONS, *RAW_EXTENSIONS))


@dataclass(frozen=True)
class Place:
    """One place a photo's XMP goes: a sidecar, or (``inside``) the photo itself.
    ``create``: False for a sidecar updated only because it exists."""

    path: str
    inside: bool = False
    create: bool = True


def check_app(app: str | None) -> None:
    """Raise ConfigError unless ``app`` is None or one of :data:`APPS`."""
    if app is not None and app not in APPS:
        raise ConfigError(f"unknown photo application {app!r}: use one of {', '.join(APPS)}")


def sidecar_bases(photo: str) -> tuple[str, str, str]:
    """(folder, name, stem) of ``photo``: its sidecars are ``stem.xmp`` and ``name.xmp``."""
    folder, name = os.path.split(photo)
    stem = os.path.splitext(name)[0]  # the same rule as extension_of
    return folder, name, stem


class FolderIndex:
    """The file names of each folder, listed once: does another photo share a stem?"""

    def __init__(self) -> None:
        self._stems: dict[str, dict[str, int]] = {}

    def shares_stem(self, photo: str) -> bool:
        folder, _, stem = sidecar_bases(photo)
        if folder not in self._stems:
            counts: dict[str, int] = {}
            try:
                names = os.listdir(folder or ".")
            except OSError:
                names = []
            for name in names:
                if extension_of(name) in _PHOTO_EXTENSIONS:
                    key = os.path.splitext(name)[0]
                    counts[key] = counts.get(key, 0) + 1
            self._stems[folder] = counts
        return self._stems[folder].get(stem, 0) > 1


def _existing(folder: str, names: tuple[str, ...]) -> str | None:
    for name in names:
        if os.path.lexists(os.path.join(folder, name)):
            return os.path.join(folder, name)
    return None


def _first_place(photo: str, app: str | None, own: str, shared: str, reading: bool = False
                 ) -> Place:
    kind = extension_of(photo)
    if app in _READS_INSIDE:
        if kind in INSIDE_EXTENSIONS or (reading and kind in INSIDE_ONLY_EXTENSIONS):
            return Place(photo, inside=True)
        if kind in INSIDE_ONLY_EXTENSIONS:
            raise XmpError(f"{app} reads the rating inside {kind.upper()} files, and "
                           "grmpiqa writes inside JPEG, TIFF and DNG files only")
        return Place(own if app == "digikam" else shared)
    return Place(own if app == "darktable" else shared)


def places_for(photo: str, app: str | None = None, index: FolderIndex | None = None
               ) -> tuple[Place, ...]:
    """Where ``photo``'s rating goes for ``app`` (None: ``IMG_1.xmp``, as ``--xmp``), in
    order; raises XmpError when ``app`` reads it where grmpiqa cannot write."""
    check_app(app)
    folder, name, stem = sidecar_bases(photo)
    own = _existing(folder, (name + ".xmp", name + ".XMP"))
    shared = _existing(folder, (stem + ".xmp", stem + ".XMP"))
    first = _first_place(photo, app, own or os.path.join(folder, name + ".xmp"),
                         shared or os.path.join(folder, stem + ".xmp"))
    places = [first]
    if own is not None and own != first.path:
        places.append(Place(own, create=False))
    if (shared is not None and shared not in (first.path, own)
            and not (index or FolderIndex()).shares_stem(photo)):
        places.append(Place(shared, create=False))
    return tuple(places)


def read_place(photo: str, app: str) -> Place:
    """Where ``app`` keeps ``photo``'s rating (inside PNG and WebP too, which grmpiqa can
    read but not write)."""
    check_app(app)
    folder, name, stem = sidecar_bases(photo)
    own = _existing(folder, (name + ".xmp", name + ".XMP"))
    shared = _existing(folder, (stem + ".xmp", stem + ".XMP"))
    return _first_place(photo, app, own or os.path.join(folder, name + ".xmp"),
                        shared or os.path.join(folder, stem + ".xmp"), reading=True)
