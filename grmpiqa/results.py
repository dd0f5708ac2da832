"""Result and model-reference types shared by every layer, importable without torch.

Everything downstream of the model (output writers, selection, culling, resume)
types its rows with these instead of importing the scoring engine.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Union

if TYPE_CHECKING:  # pragma: no cover
    from grmpiqa.model.network import QualityModel

#: A loaded model, a manifest name, a weights file, or ``None`` for the default model.
ModelSource = Union["QualityModel", str, "os.PathLike[str]", None]


@dataclass(frozen=True)
class ScoreResult:
    """One row of output. ``score`` is P(high quality) in [0, 1], None when ``error`` is set."""

    path: str
    score: float | None
    error: str | None = None
    score_label: float | None = None

    @property
    def ok(self) -> bool:
        return self.error is None
