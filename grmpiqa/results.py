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


@dataclass(frozen=True)
class ScoreResult:
    """One row of output. ``score`` is P(high quality) in [0, 1], None when ``error`` is set.
    ``features`` is filled only when scoring was asked for them (bursts, report)."""

    path: str
    score: float | None
    error: str | None = None
    score_label: float | None = None
    features: PhotoFeatures | None = field(default=None, compare=False, repr=False)

    @property
    def ok(self) -> bool:
        return self.error is None


@dataclass(frozen=True)
class BurstResult(ScoreResult):
    """A scored row with its burst: ``burst`` is shared by the frames of one burst or
    near-duplicate group (a single photo has its own), ``burst_rank`` 1 is its best."""

    burst: int = 0
    burst_rank: int = 0

    @classmethod
    def of(cls, result: ScoreResult, burst: int, rank: int) -> BurstResult:
        return cls(result.path, result.score, result.error, result.score_label,
                   result.features, burst, rank)
