"""Result and model-reference types shared by every layer, importable without torch.

Everything downstream of the model (output writers, selection, culling, resume)
types its rows with these instead of importing the scoring engine.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Union

if TYPE_CHECKING:  # pragma: no cover
    from grmpiqa.model.network import QualityModel

#: A loaded model, a manifest name, a weights file, or ``None`` for the default model.
ModelSource = Union["QualityModel", str, "os.PathLike[str]", None]


@dataclass(frozen=True)
class Capture:
    """When and with what a photo was taken, from its EXIF. ``time`` is seconds since the
    epoch (``DateTimeOriginal`` + ``SubSecTimeOriginal``, in UTC when ``OffsetTimeOriginal``
    or ``OffsetTime`` is given); ``camera`` is make, model and body serial, as far as the
    file says."""

    time: float
    camera: str = ""


@dataclass(frozen=True)
class PhotoFeatures:
    """What burst grouping and the report need besides the score, from the scoring pass.

    ``embedding`` is the model's L2-normalised image embedding (a float32 numpy
    vector); ``phash`` a 64-bit DCT perceptual hash; ``layout`` the image reduced to
    16x16 RGB (768 bytes, row-major); ``thumbnail`` JPEG bytes
    (only when a report asked for them).
    """

    phash: int
    layout: bytes = field(default=b"", repr=False)
    embedding: Any = field(default=None, repr=False)
    capture: Capture | None = None
    thumbnail: bytes | None = field(default=None, repr=False)
    explanation: Explanation | None = None


#: The defects ``Explanation.why`` can name, in the order it names them.
DEFECTS = ("blur", "noise", "underexposed", "overexposed", "compression")
#: The flat columns an explained row adds, in output order.
EXPLAIN_COLUMNS = ("sharpness", "noise", "exposure", "clipped", "compression", "why")


@dataclass(frozen=True)
class Explanation:
    """Measurable defects of one photo, beside its score (:func:`grmpiqa.explain_image`).

    ``sharpness`` 0..1 (1 = sharp where the photo is sharpest); ``noise`` the noise
    standard deviation in 8-bit levels; ``exposure`` stops (EV) of the median pixel from
    middle grey, negative under, positive over; ``clipped`` the fraction of pixels at
    the black or white end; ``compression`` JPEG blocking strength (0 = none); ``why``
    the defects found (:data:`DEFECTS`), ``;``-separated, empty when none.
    """

    sharpness: float
    noise: float
    exposure: float
    clipped: float
    compression: float
    why: str = ""

    @property
    def defects(self) -> tuple[str, ...]:
        return tuple(self.why.split(";")) if self.why else ()


class _Explained:
    """A row attribute read from the same field of its ``explanation`` (None without one)."""

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    def __get__(self, row: Any, owner: type | None = None) -> Any:
        if row is None:
            return self
        return getattr(row.explanation, self.name) if row.explanation is not None else None


@dataclass(frozen=True)
class ScoreResult:
    """One row of output. ``score`` is P(high quality) in [0, 1], None when ``error`` is set.
    ``features`` is filled only when scoring was asked for them (bursts, report);
    ``model`` is the key of the model that scored the row (:mod:`grmpiqa.identity`),
    set by :func:`grmpiqa.score` for the rows it writes. ``explanation`` (with
    ``explain``) holds the measured defects; its fields read as the row's columns
    ``sharpness``, ``noise``, ``exposure``, ``clipped``, ``compression`` and ``why``."""

    path: str
    score: float | None
    error: str | None = None
    score_label: float | None = None
    features: PhotoFeatures | None = field(default=None, compare=False, repr=False)
    model: str | None = None
    explanation: Explanation | None = None

    # the explanation's fields, read as the row's own columns (None without ``explain``)
    sharpness = _Explained()
    noise = _Explained()
    exposure = _Explained()
    clipped = _Explained()
    compression = _Explained()
    why = _Explained()

    @property
    def embedding(self) -> Any:
        """The unit-length image embedding (a float32 numpy vector), with
        ``score_paths(..., features=True)``; None otherwise."""
        return self.features.embedding if self.features is not None else None

    @property
    def ok(self) -> bool:
        return self.error is None


@dataclass(frozen=True)
class ScoreRun:
    """What :func:`grmpiqa.score` did.

    ``rows`` is every row of the output, ``carried`` of them kept from the output an
    earlier run wrote (resume); ``shown`` the rows the output shows after score
    filters and ``top``. ``failed`` counts files that could not be scored,
    ``unreadable_folders`` and ``unmatched_patterns`` inputs that named no file.
    ``left_out``: paths the ``paths`` format left out (a line break in the name
    without NUL separators). ``sidecars``/``sidecars_failed``: XMP sidecars written
    and not written. ``output``/``report``: the files written (``output`` None: rows
    went to the stream); ``report_error`` says why the report could not be
    written. ``summary`` (a :class:`grmpiqa.workflow.summary.Summary`) when asked
    for. ``model`` is the key of the model that scored the rows.
    """

    rows: int = 0
    scored: int = 0
    failed: int = 0
    unreadable_folders: int = 0
    unmatched_patterns: int = 0
    carried: int = 0
    shown: int = 0
    left_out: int = 0
    sidecars: int = 0
    sidecars_failed: int = 0
    output: str | None = None
    report: str | None = None
    report_error: str | None = None
    summary: Any = None
    interrupted: bool = False
    model: str | None = None

    @property
    def ok(self) -> bool:
        """Every photo scored and every file written."""
        return not (self.failed or self.unreadable_folders or self.unmatched_patterns
                    or self.left_out or self.sidecars_failed or self.report_error)


#: xmp:Rating values: -1 rejected, 0 unrated, 1..5 stars.
REJECTED, UNRATED = -1, 0


@dataclass(frozen=True)
class PhotoRating:
    """The star rating found for one photo.

    ``rating`` is the ``xmp:Rating`` (-1 rejected, 0 unrated, 1..5 stars), None when
    the photo has none or ``error`` says why it cannot be read. ``source`` is the
    sidecar it came from, or ``"embedded"`` for XMP inside the file.
    """

    path: str
    rating: int | None
    source: str | None = None
    error: str | None = None


@dataclass(frozen=True)
class XmpMark:
    """What one photo's XMP got, or would get with ``dry_run``: ``rating``
    (``xmp:Rating``; -1 rejected) and ``label`` (``xmp:Label``), None where left as it was.

    ``places`` are the files written: sidecars, and the photo itself where the XMP
    goes inside it. ``error`` says what failed (the places that worked are still
    listed).
    """

    path: str
    rating: int | None
    label: str | None
    places: tuple[str, ...] = ()
    dry_run: bool = False
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def inside(self) -> bool:
        """The XMP inside the photo was (or would be) written."""
        return self.path in self.places


@dataclass(frozen=True)
class Ratings:
    """The ratings of a collection, as :func:`grmpiqa.read_ratings` found them.

    A rejected photo (-1) is left out, or with ``rejected_as_lowest`` becomes the
    label 0, one step below one star; unrated photos are always left out.
    """

    photos: tuple[PhotoRating, ...]
    rejected_as_lowest: bool = False
    source: str = "XMP ratings"

    def label(self, photo: PhotoRating) -> int | None:
        """The training label of ``photo``, or None when it is not used."""
        if photo.error is not None or photo.rating is None or photo.rating == UNRATED:
            return None
        if photo.rating == REJECTED:
            return 0 if self.rejected_as_lowest else None
        return photo.rating

    @property
    def labelled(self) -> list[PhotoRating]:
        return [p for p in self.photos if self.label(p) is not None]

    @property
    def unreadable(self) -> list[PhotoRating]:
        return [p for p in self.photos if p.error is not None]

    def counts(self) -> dict[str, int]:
        """How many photos of each kind: '1'..'5' stars, 'rejected', 'unrated', 'unreadable'."""
        out = dict.fromkeys(["1", "2", "3", "4", "5", "rejected", "unrated", "unreadable"], 0)
        for photo in self.photos:
            if photo.error is not None:
                out["unreadable"] += 1
            elif photo.rating is None or photo.rating == UNRATED:
                out["unrated"] += 1
            elif photo.rating == REJECTED:
                out["rejected"] += 1
            else:
                out[str(photo.rating)] += 1
        return out


@dataclass(frozen=True)
class Suggestion:
    """The photos :func:`grmpiqa.suggest` chose to rate, in the order it picked them.

    ``coverage`` is the mean distance from each scored photo to its nearest chosen
    one (in the space the choice was made in); ``random_coverage`` the same for a
    random choice of as many photos (mean of 20 draws): lower covers better. Photos
    already rated (``already_rated`` of them, with ``skip_rated``) count as chosen
    in both.
    """

    chosen: tuple[ScoreResult, ...]
    failed: tuple[ScoreResult, ...]
    scored: int
    coverage: float
    random_coverage: float
    already_rated: int = 0


@dataclass(frozen=True)
class BurstResult(ScoreResult):
    """A scored row with its burst: ``burst`` is shared by the frames of one burst or
    near-duplicate group, ``burst_rank`` 1 is its best. In score rows a single photo has
    neither (None); :func:`grmpiqa.group_bursts` gives it a burst of its own."""

    burst: int | None = None
    burst_rank: int | None = None

    @classmethod
    def of(cls, result: ScoreResult, burst: int | None, rank: int | None) -> BurstResult:
        return cls(result.path, result.score, result.error, result.score_label,
                   result.features, result.model, result.explanation, burst, rank)
