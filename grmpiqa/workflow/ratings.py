"""Star ratings a photographer already gave, read back as training labels.

Where a photo's rating comes from, first found wins: its own sidecar
``IMG_1.CR2.xmp`` (darktable, digiKam), the shared ``IMG_1.xmp`` (Adobe's
naming for RAW files, Capture One, ``--xmp``), then XMP inside the file (JPEG,
TIFF/DNG, PNG, WebP, HEIC): every place the writers of
:mod:`grmpiqa.workflow.xmp_marks` use. With ``app``, only the place that
application keeps the rating in counts (the XMP inside a JPEG for Lightroom,
whatever sidecar an older run left). The ``.xmp`` extension may be in any
case. A sidecar or embedded packet that cannot be read makes the photo
unreadable (listed), never silently unrated. No torch here.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence

from grmpiqa.errors import ImageError, XmpError
from grmpiqa.io.embedded_xmp import embedded_xmp
from grmpiqa.io.images import check_regular_file
from grmpiqa.io.inputs import DEFAULT_EXTENSIONS, expand_inputs
from grmpiqa.results import PhotoRating, Ratings
from grmpiqa.workflow.xmp import read_rating, read_sidecar
from grmpiqa.workflow.xmp_targets import check_app, read_place, sidecar_bases


class SidecarIndex:
    """The ``*.xmp`` files (any case) of each folder, listed once per folder."""

    def __init__(self) -> None:
        self._folders: dict[str, dict[str, list[str]]] = {}

    def _listing(self, folder: str) -> dict[str, list[str]]:
        if folder not in self._folders:
            found: dict[str, list[str]] = {}
            try:
                names = sorted(os.listdir(folder or "."))
            except OSError:
                names = []
            for name in names:
                base, dot, ext = name.rpartition(".")
                if dot and ext.lower() == "xmp":
                    found.setdefault(base, []).append(name)
            for variants in found.values():  # .xmp, then .XMP, then other cases
                variants.sort(key=lambda n: (not n.endswith(".xmp"), not n.endswith(".XMP"), n))
            self._folders[folder] = found
        return self._folders[folder]

    def sidecars(self, photo: str) -> list[str]:
        """``photo``'s sidecars in the order they count: ``name.xmp``, then ``stem.xmp``."""
        folder, name, stem = sidecar_bases(photo)
        listing = self._listing(folder)
        out = []
        for base in dict.fromkeys((name, stem)):
            if base in listing:
                out.append(os.path.join(folder, listing[base][0]))
        return out


def rating_of(photo: str, index: SidecarIndex | None = None, app: str | None = None
              ) -> PhotoRating:
    """The rating of one photo (with ``app``: where that application keeps it); a
    problem comes back as ``error``, never raised."""
    try:
        check_regular_file(photo)
        if app is not None:
            place = read_place(photo, app)
            if not place.inside:
                found = read_sidecar(place.path) if os.path.lexists(place.path) else None
                return PhotoRating(photo, found, place.path if found is not None else None)
        else:
            for sidecar in (index or SidecarIndex()).sidecars(photo):
                rating = read_sidecar(sidecar)
                if rating is not None:
                    return PhotoRating(photo, rating, sidecar)
        packet = embedded_xmp(photo)
        if packet is None:
            return PhotoRating(photo, None)
        try:
            rating = read_rating(packet)
        except XmpError as exc:
            raise XmpError(f"its embedded XMP: {exc}") from None
        return PhotoRating(photo, rating, "embedded" if rating is not None else None)
    except (XmpError, ImageError) as exc:
        return PhotoRating(photo, None, error=str(exc))


def read_ratings(paths: Iterable[str], *, rejected_as_lowest: bool = False,
                 extensions: Sequence[str] = DEFAULT_EXTENSIONS,
                 recursive: bool = True, app: str | None = None) -> Ratings:
    """Read the star ratings (``xmp:Rating``) of photos, to adapt the model to them.

    Parameters
    ----------
    paths : iterable of str
        Files, folders and globs, expanded as ``score`` expands them.
    rejected_as_lowest : bool
        Use rejected photos (rating -1) as the lowest label (0, below one star)
        instead of leaving them out.
    extensions : sequence of str
        Image extensions looked for in folders.
    recursive : bool
        Search sub-folders.
    app : str or None
        ``lightroom``, ``capture-one``, ``darktable``, ``digikam`` or ``bridge``: read
        only where that application keeps ratings (see
        :mod:`grmpiqa.workflow.xmp_targets`); None: the first of all places.

    Returns
    -------
    Ratings
        One :class:`~grmpiqa.results.PhotoRating` per photo, in input order; give it
        to :func:`grmpiqa.adapt` to train on it (``training.labels.ratings_table``
        makes its label rows).
    """
    check_app(app)
    args = list(paths)
    problems: dict[str, str] = {}  # unreadable folders, patterns that match nothing
    files = expand_inputs(args, extensions=extensions, recursive=recursive, problems=problems)
    index = SidecarIndex()
    photos = tuple(PhotoRating(photo, None, error=problems[photo]) if photo in problems
                   else rating_of(photo, index, app) for photo in files)
    where = ", ".join(args[:3]) + (f" and {len(args) - 3} more" if len(args) > 3 else "")
    return Ratings(photos, rejected_as_lowest, f"XMP ratings in {where or 'nothing'}")


def format_counts(ratings: Ratings) -> str:
    """One line for the user: labels per star and what was left out, and why."""
    counts = ratings.counts()
    stars = ", ".join(f"{star} star{'s' if star != '1' else ''}: {counts[star]}"
                      for star in "12345")
    rejected = counts["rejected"]
    left = [f"unrated: {counts['unrated']} (left out)"]
    if rejected:
        left.append(f"rejected: {rejected} (used as 0 stars)" if ratings.rejected_as_lowest
                    else f"rejected: {rejected} (left out; --rejected-as-lowest uses them)")
    if counts["unreadable"]:
        left.append(f"unreadable: {counts['unreadable']}")
    embedded = sum(p.source == "embedded" for p in ratings.labelled)
    origin = (f"{len(ratings.labelled) - embedded} from sidecars, {embedded} embedded in the "
              "files (a sidecar wins over the file's own XMP)")
    return (f"{len(ratings.labelled)} labels of {len(ratings.photos)} photos ({stars}); "
            f"{'; '.join(left)}; {origin}")
