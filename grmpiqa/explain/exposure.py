"""Exposure in stops (EV) from middle grey, and the share of clipped pixels, both from the
256-bin histogram of the luma.

``exposure`` is log2 of the median pixel's linear luminance over 18% grey (sRGB
decoded): 0 means a typical pixel sits at middle grey, -1 one stop darker, +1 one
brighter. The median, not the mean, so a bright sky or a dark frame edge does not
decide it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

MIDDLE_GREY = 0.18
BLACK, WHITE = 3, 252  # 8-bit levels counted as clipped at or beyond
SHADOW = 8  # 8-bit level at or under which shadows read as crushed (no detail left)


def linear(value: float) -> float:
    """sRGB -> linear (IEC 61966-2-1) for one value in 0..1."""
    return value / 12.92 if value <= 0.04045 else ((value + 0.055) / 1.055) ** 2.4


def exposure_ev(histogram: Sequence[int]) -> float:
    """Stops of the median pixel from middle grey (negative: under, positive: over);
    black reads as half a level, so the value stays finite (about -11 EV)."""
    counts = np.asarray(histogram[:256], dtype=np.int64)
    cumulative = np.cumsum(counts)
    median = int(np.searchsorted(cumulative, cumulative[-1] / 2.0))
    return math.log2(linear(max(median, 0.5) / 255.0) / MIDDLE_GREY)


def clipped_parts(histogram: Sequence[int]) -> tuple[float, float]:
    """(fraction of pixels at black, fraction at white)."""
    counts = np.asarray(histogram[:256], dtype=np.int64)
    total = max(int(counts.sum()), 1)
    return float(counts[:BLACK + 1].sum()) / total, float(counts[WHITE:].sum()) / total


def shadow_share(histogram: Sequence[int]) -> float:
    """Fraction of pixels at or under level ``SHADOW``: a darkened photo piles its shadows
    there even when its median still looks normal (a gamma of 2.2 sends level 53 to 8)."""
    counts = np.asarray(histogram[:256], dtype=np.int64)
    return float(counts[:SHADOW + 1].sum()) / max(int(counts.sum()), 1)


def level_at(histogram: Sequence[int], share: float) -> int:
    """The level at or under which ``share`` of the pixels lie. At 0.01 (the darkest 1%):
    a brightened photo lifts its blacks, so even its darkest pixels sit well above black."""
    counts = np.asarray(histogram[:256], dtype=np.int64)
    cumulative = np.cumsum(counts)
    return int(np.searchsorted(cumulative, cumulative[-1] * share))
