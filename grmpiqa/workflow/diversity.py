"""Which photos to rate: a spread-out choice over image embeddings and scores (pure numpy).

Greedy k-centre (farthest-point sampling) picks, one after another, the photo
farthest from everything already picked, so near-identical frames of one scene
are never picked twice before every scene has one. The space it works in is the
unit-length image embedding plus the current score as one more coordinate, so
that the choice also spreads over the score range.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

PAIRS_FOR_SCALE = 20_000  # random pairs estimating the typical distance between photos


def typical_distance(points: np.ndarray, seed: int = 0) -> float:
    """The median distance between two random photos (from up to 20,000 random pairs)."""
    n = len(points)
    if n < 2:
        return 1.0
    rng = np.random.default_rng(seed)
    first = rng.integers(0, n, PAIRS_FOR_SCALE)
    second = (first + rng.integers(1, n, PAIRS_FOR_SCALE)) % n  # never the same photo
    median = float(np.median(np.linalg.norm(points[first] - points[second], axis=1)))
    return median if median > 0 else 1.0


def suggestion_space(embeddings: np.ndarray, scores: Sequence[float],
                     score_weight: float = 1.0) -> np.ndarray:
    """Each photo as its embedding plus one coordinate: its score, min-max scaled over the
    collection, times ``score_weight`` times the typical distance between two photos.

    With ``score_weight`` 1 the whole score range counts as much as the difference
    between two typical unrelated photos; 0 ignores the scores.
    """
    points = np.asarray(embeddings, dtype=np.float64)
    values = np.asarray(scores, dtype=np.float64)
    span = float(values.max() - values.min()) if len(values) else 0.0
    unit = (values - values.min()) / span if span > 0 else np.zeros_like(values)
    scale = score_weight * typical_distance(points)
    return np.concatenate([points, (unit * scale)[:, None]], axis=1)


def farthest_point_order(points: np.ndarray, n: int, seed: int = 0,
                         covered: Sequence[int] = ()) -> list[int]:
    """``n`` row indices of ``points``, in the order greedy k-centre picks them.

    The first is drawn at random (``seed``), unless ``covered`` points (already
    labelled) count as picked; each next one is the point farthest from its
    nearest pick so far (ties: the lowest index). Deterministic for a seed.
    ``covered`` points are never returned.
    """
    points = np.asarray(points, dtype=np.float64)
    taken = sorted(set(covered))
    n = min(n, len(points) - len(taken))
    if n <= 0:
        return []
    nearest = np.full(len(points), np.inf)
    for index in taken:
        nearest = np.minimum(nearest, np.linalg.norm(points - points[index], axis=1))
    chosen: list[int] = []
    if not taken:
        first = int(np.random.default_rng(seed).integers(len(points)))
        chosen.append(first)
        nearest = np.linalg.norm(points - points[first], axis=1)
    while len(chosen) < n:
        nearest[taken + chosen] = -1.0  # never picked twice, even among identical photos
        pick = int(np.argmax(nearest))
        chosen.append(pick)
        nearest = np.minimum(nearest, np.linalg.norm(points - points[pick], axis=1))
    return chosen


def coverage(points: np.ndarray, chosen: Sequence[int]) -> float:
    """Mean distance from each point to its nearest chosen one (lower covers better)."""
    points = np.asarray(points, dtype=np.float64)
    if not len(chosen):
        return float("inf")
    nearest = np.full(len(points), np.inf)
    for index in chosen:
        nearest = np.minimum(nearest, np.linalg.norm(points - points[index], axis=1))
    return float(nearest.mean())


def random_coverage(points: np.ndarray, n: int, *, covered: Sequence[int] = (), draws: int = 20,
                    seed: int = 0) -> float:
    """:func:`coverage` of ``covered`` plus a random choice of ``n`` other points, averaged
    over ``draws`` choices."""
    rng = np.random.default_rng(seed)
    taken = sorted(set(covered))
    others = np.setdiff1d(np.arange(len(points)), taken)
    n = min(n, len(others))
    return float(np.mean([coverage(points, [*taken, *rng.choice(others, n, replace=False)])
                          for _ in range(draws)]))
