"""Star ratings, rejects and colour labels, written where a photo application reads them.

:class:`XmpMarker` writes ``xmp:Rating`` and ``xmp:Label`` at the places
:func:`grmpiqa.workflow.xmp_targets.places_for` gives for an application (None:
the ``IMG_1.xmp`` sidecars of ``--xmp``): a reject is rating -1, the XMP
specification's "rejected"; the kept frame of a burst can get a label such as
"Green". :class:`SidecarRater` turns scores into stars and writes them the
same way. Neither stops at a bad photo: the marker returns the problem in its
:class:`~grmpiqa.results.XmpMark`, the rater raises XmpError for that photo.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence

from grmpiqa.errors import XmpError
from grmpiqa.io.extensions import extension_of
from grmpiqa.io.inputs import RAW_EXTENSIONS
from grmpiqa.results import REJECTED, XmpMark
from grmpiqa.workflow.xmp import DEFAULT_THRESHOLDS, rating_for, stars_for_label, write_places
from grmpiqa.workflow.xmp_targets import FolderIndex, check_app, places_for

#: the colour label given to the photo a burst keeps, unless another is asked for
DEFAULT_KEEP_LABEL = "Green"


class XmpMarker:
    """Writes ratings and labels for one application.

    Parameters
    ----------
    app : str or None
        ``lightroom``, ``capture-one``, ``darktable``, ``digikam`` or ``bridge``: write
        where that application reads (see :mod:`grmpiqa.workflow.xmp_targets`); None:
        the ``IMG_1.xmp`` sidecars (and an existing ``IMG_1.jpg.xmp``), as ``--xmp``.
    dry_run : bool
        Check everything and report the places, write nothing.
    """

    def __init__(self, app: str | None = None, *, dry_run: bool = False) -> None:
        check_app(app)
        self.app = app
        self.dry_run = dry_run
        self._folders = FolderIndex()

    def mark(self, photo: str, *, rating: int | None = None, label: str | None = None,
             skip: Collection[str] = ()) -> XmpMark:
        """Set ``rating`` and/or ``label`` for ``photo`` (at every place but ``skip``).
        Never raises for one photo's problem: the mark carries it."""
        if rating is not None and not -1 <= rating <= 5:
            raise ValueError(f"xmp:Rating {rating} is not -1 (rejected), 0 or 1..5 stars")
        values = {"Rating": str(rating)} if rating is not None else {}
        if label is not None:
            values["Label"] = label
        try:
            places = places_for(photo, self.app, self._folders)
        except XmpError as exc:
            return XmpMark(photo, rating, label, (), self.dry_run, f"not written: {exc}")
        written, problems = write_places(places, values, dry_run=self.dry_run, skip=skip)
        return XmpMark(photo, rating, label, tuple(written), self.dry_run,
                       "; ".join(problems) or None)

    def reject(self, photo: str) -> XmpMark:
        """Mark ``photo`` rejected (``xmp:Rating`` -1)."""
        return self.mark(photo, rating=REJECTED)

    def label(self, photo: str, label: str = DEFAULT_KEEP_LABEL) -> XmpMark:
        """Give ``photo`` the colour label ``label`` (``xmp:Label``), keeping its rating."""
        return self.mark(photo, label=label)


class SidecarRater:
    """Rates photo after photo, where ``app`` reads ratings (None: ``IMG_1.xmp``, as
    ``--xmp``). A RAW+JPEG pair shares ``stem.xmp``: the RAW's rating wins, whichever
    of the two comes first, because the sidecar describes the RAW.

    ``on_label_scale``: the weights learned star ratings, so a photo gets the stars
    the model predicts on that scale (:func:`stars_for_label` of its ``score_label``)
    instead of the thresholds. ``dry_run``: check and report, write nothing.
    """

    def __init__(self, thresholds: Sequence[float] = DEFAULT_THRESHOLDS, *,
                 on_label_scale: bool = False, app: str | None = None,
                 dry_run: bool = False) -> None:
        self.thresholds = tuple(thresholds)
        self.on_label_scale = on_label_scale
        self.marker = XmpMarker(app, dry_run=dry_run)
        self._written_for_raw: set[str] = set()

    def stars(self, score: float, score_label: float | None = None) -> int:
        if self.on_label_scale and score_label is not None:
            return stars_for_label(score_label)
        return rating_for(score, self.thresholds)

    def rate(self, photo: str, score: float, score_label: float | None = None) -> list[str]:
        """Write the rating for ``photo``; returns the files written (sidecars, or the
        photo for XMP inside it). Raises XmpError for this photo; the others go on."""
        is_raw = extension_of(photo) in RAW_EXTENSIONS
        mark = self.marker.mark(photo, rating=self.stars(score, score_label),
                                skip=() if is_raw else self._written_for_raw)
        if is_raw:
            self._written_for_raw.update(p for p in mark.places if p != photo)
        if mark.error is not None:
            raise XmpError(mark.error)
        return list(mark.places)
