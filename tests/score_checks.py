"""A fast path's scores against the exact ones, on photos the tiny model tells apart."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from fakehub import calibration_photos


def spread_photos(count: int = 12, seed: int = 7) -> list[torch.Tensor]:
    """Generated photos, not those the tiny model's scores were spread on, as uint8 CHW."""
    return [torch.from_numpy(p).permute(2, 0, 1) for p in calibration_photos(count, seed=seed)]


def assert_same_scores(exact: Sequence[float], fast: Sequence[float], atol: float) -> None:
    """``fast`` within ``atol`` of ``exact`` and in the same order (rank correlation >= 0.9),
    where the exact scores lie far apart: a tolerance means nothing on scores all alike."""
    exact, fast = np.asarray(exact), np.asarray(fast)
    assert len(exact) == len(fast) >= 8
    assert exact.max() - exact.min() >= 0.5, exact
    worst = float(np.abs(exact - fast).max())
    ranks = float(np.corrcoef(exact.argsort().argsort(), fast.argsort().argsort())[0, 1])
    assert worst < atol and ranks >= 0.9, (worst, ranks, exact.round(3), fast.round(3))
