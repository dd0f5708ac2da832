"""Group bursts and near-duplicates, and rank the frames of each group by score.

Signals (all from the scoring pass, see :class:`grmpiqa.results.PhotoFeatures`):
EXIF capture time and camera, a 64-bit DCT perceptual hash, a 16x16 colour
layout, and the model's image embedding.

Two photos are *linked* when

* they come from one camera less than ``time_gap`` seconds apart and their
  content does not clearly differ (hash distance <= ``TIME_HASH`` or layout
  correlation >= ``similarity - TIME_SLACK``), or
* their content matches: hash distance <= ``NEAR_HASH`` (the same picture), or
  hash distance <= ``LAYOUT_HASH`` and layout correlation >= ``similarity``;

and, in both cases, their embeddings' cosine is at least ``embedding_floor``
(the model's veto on two frames that only look alike in layout).
Groups are the connected components of the links (union-find).

Memory and time stay linear in the number of photos: no all-pairs matrix.
Pairs are only looked at between neighbours: in time order (per camera), in
input order, and in ``orderings`` sorts of the perceptual hash and of a
sign hash of the embedding, each under its own fixed bit permutation (photos
that agree on most bits share a long prefix in some permutation), within a
window of ``window`` neighbours.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from grmpiqa.config import BurstOptions
from grmpiqa.io.signals import LAYOUT_SIDE
from grmpiqa.results import BurstResult, ScoreResult

NEAR_HASH = 8  # the same picture re-encoded or resized: bits that flip by noise alone
LAYOUT_HASH = 20  # beyond this the hashes of two unrelated photos are the rule
TIME_HASH = 24
TIME_SLACK = 0.2
CHUNK = 4096  # pairs compared at once
LAYOUT_SHIFT = 1  # layout correlation is the best over shifts of up to 1/16 of a side


@dataclass(frozen=True)
class Burst:
    """One group: ``frames`` best first (failed files are never in a burst)."""

    id: int
    frames: tuple[BurstResult, ...]

    @property
    def best(self) -> BurstResult:
        return self.frames[0]

    def __len__(self) -> int:
        return len(self.frames)


class UnionFind:
    def __init__(self, n: int) -> None:
        self.parent = np.arange(n)

    def find(self, i: int) -> int:
        parent = self.parent
        root = i
        while parent[root] != root:
            root = parent[root]
        while parent[i] != root:
            parent[i], i = root, parent[i]
        return int(root)

    def union(self, a: int, b: int) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[max(ra, rb)] = min(ra, rb)


def hamming_many(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Bit distances between two arrays of 64-bit codes."""
    x = np.bitwise_xor(a, b)
    if hasattr(np, "bitwise_count"):
        return np.bitwise_count(x).astype(np.int64)
    bits = np.unpackbits(x.view(np.uint8).reshape(-1, 8), axis=1)
    return bits.sum(axis=1).astype(np.int64)


def layout_correlation(a: np.ndarray, b: np.ndarray, shift: int = LAYOUT_SHIFT) -> np.ndarray:
    """Best normalised cross-correlation of pairs of (side, side, 3) layouts over small
    shifts; per-channel means removed, so an exposure change does not count."""
    # channels first, so that every shifted window is a run of contiguous rows
    a = np.ascontiguousarray(a.transpose(0, 3, 1, 2), dtype=np.float32)
    b = np.ascontiguousarray(b.transpose(0, 3, 1, 2), dtype=np.float32)
    side = a.shape[2]
    best = np.full(a.shape[0], -1.0, dtype=np.float32)
    for dy in range(-shift, shift + 1):
        for dx in range(-shift, shift + 1):
            pa = a[:, :, max(0, dy):side + min(0, dy), max(0, dx):side + min(0, dx)]
            pb = b[:, :, max(0, -dy):side + min(0, -dy), max(0, -dx):side + min(0, -dx)]
            count = pa.shape[2] * pa.shape[3]
            sum_a, sum_b = pa.sum(axis=(2, 3)), pb.sum(axis=(2, 3))  # (m, 3)
            num = np.einsum("mchw,mchw->mc", pa, pb) - sum_a * sum_b / count
            var_a = np.einsum("mchw,mchw->mc", pa, pa) - sum_a * sum_a / count
            var_b = np.einsum("mchw,mchw->mc", pb, pb) - sum_b * sum_b / count
            den = np.sqrt(np.maximum(var_a.sum(axis=1), 0) * np.maximum(var_b.sum(axis=1), 0))
            best = np.maximum(best, num.sum(axis=1) / np.maximum(den, 1e-6))
    return best


def _codes_to_bits(codes: np.ndarray) -> np.ndarray:
    return np.unpackbits(codes.astype(">u8").view(np.uint8).reshape(-1, 8), axis=1)


def _sign_codes(embeddings: np.ndarray) -> np.ndarray:
    """64-bit sign hash of the embeddings against fixed random hyperplanes."""
    planes = np.random.default_rng(7).standard_normal((embeddings.shape[1], 64))
    bits = (embeddings @ planes > 0).astype(np.uint8)
    return np.ascontiguousarray(np.packbits(bits, axis=1)).view(">u8").ravel().astype(np.uint64)


def _window_pairs(order: np.ndarray, window: int) -> list[np.ndarray]:
    return [np.stack([order[:-k], order[k:]], axis=1) for k in range(1, min(window, len(order)))]


def _permuted_orders(codes: np.ndarray, count: int, seed: int) -> Iterable[np.ndarray]:
    bits = _codes_to_bits(codes)
    rng = np.random.default_rng(seed)
    for _ in range(count):
        packed = np.packbits(bits[:, rng.permutation(64)], axis=1)
        permuted = np.ascontiguousarray(packed).view(">u8").ravel()
        yield np.argsort(permuted, kind="stable")


def content_pairs(hashes: np.ndarray, embeddings: np.ndarray | None,
                  options: BurstOptions) -> np.ndarray:
    """Candidate pairs (i < j) for the content test: bounded, about
    ``(1 + 2 * orderings) * window`` per photo."""
    n = len(hashes)
    pairs = _window_pairs(np.arange(n), options.window)
    for order in _permuted_orders(hashes, options.orderings, seed=1):
        pairs += _window_pairs(order, options.window)
    if embeddings is not None:
        for order in _permuted_orders(_sign_codes(embeddings), options.orderings, seed=2):
            pairs += _window_pairs(order, options.window)
    if not pairs:
        return np.empty((0, 2), dtype=np.int64)
    both = np.sort(np.concatenate(pairs), axis=1)
    keys = np.sort(both[:, 0] * n + both[:, 1])  # one int64 a pair: a fast 1-D sort
    keys = keys[np.concatenate([[True], keys[1:] != keys[:-1]])]
    return np.stack([keys // n, keys % n], axis=1)


def time_pairs(times: Sequence[float | None], cameras: Sequence[str], gap: float,
               window: int) -> np.ndarray:
    """Pairs of one camera within ``gap`` seconds, each photo with up to ``window`` later
    ones, from a sort by (camera, time)."""
    timed = sorted((cameras[i], t, i) for i, t in enumerate(times) if t is not None)
    out = []
    for pos, (camera, when, i) in enumerate(timed):
        for camera2, when2, j in timed[pos + 1:pos + 1 + window]:
            if camera2 != camera or when2 - when > gap:
                break
            out.append((min(i, j), max(i, j)))
    return np.array(out, dtype=np.int64).reshape(-1, 2)


def _cosine(embeddings: np.ndarray | None, pairs: np.ndarray) -> np.ndarray:
    if embeddings is None:
        return np.ones(len(pairs))
    return np.einsum("ij,ij->i", embeddings[pairs[:, 0]], embeddings[pairs[:, 1]])


def linked(pairs: np.ndarray, hashes: np.ndarray, layouts: np.ndarray,
           embeddings: np.ndarray | None, options: BurstOptions, *, timed: bool
           ) -> np.ndarray:
    """The pairs that pass the test (the lenient one for time-adjacent pairs)."""
    if len(pairs) == 0:
        return pairs
    distance = hamming_many(hashes[pairs[:, 0]], hashes[pairs[:, 1]])
    if timed:
        sure, threshold = distance <= TIME_HASH, options.similarity - TIME_SLACK
        check = ~sure
    else:
        sure, threshold = distance <= NEAR_HASH, options.similarity
        check = ~sure & (distance <= LAYOUT_HASH)
    correlation = np.full(len(pairs), -1.0)
    chosen = np.flatnonzero(check)
    for start in range(0, len(chosen), CHUNK):  # bounded memory: 6 kB of floats a pair
        part = chosen[start:start + CHUNK]
        correlation[part] = layout_correlation(layouts[pairs[part, 0]], layouts[pairs[part, 1]])
    alike = pairs[sure | (correlation >= threshold)]
    return alike[_cosine(embeddings, alike) >= options.embedding_floor]


def _arrays(results: Sequence[ScoreResult]) -> tuple[np.ndarray, np.ndarray, Any]:
    hashes = np.array([r.features.phash for r in results], dtype=np.uint64)
    layouts = np.stack([np.frombuffer(r.features.layout, dtype=np.uint8)
                        .reshape(LAYOUT_SIDE, LAYOUT_SIDE, 3) for r in results]
                       ) if results else np.empty((0, LAYOUT_SIDE, LAYOUT_SIDE, 3), np.uint8)
    vectors = [r.features.embedding for r in results]
    embeddings = None
    if vectors and all(v is not None for v in vectors):
        embeddings = np.stack(vectors).astype(np.float32)
    return hashes, layouts, embeddings


def find_components(results: Sequence[ScoreResult], options: BurstOptions) -> list[int]:
    """For each scored result (all must carry features), the index of its group's first
    member."""
    hashes, layouts, embeddings = _arrays(results)
    captures = [r.features.capture for r in results]
    times = [c.time if c is not None else None for c in captures]
    cameras = [c.camera if c is not None else "" for c in captures]
    groups = UnionFind(len(results))
    for pairs, timed in (
        (time_pairs(times, cameras, options.time_gap, options.window), True),
        (content_pairs(hashes, embeddings, options), False),
    ):
        for a, b in linked(pairs, hashes, layouts, embeddings, options, timed=timed):
            groups.union(int(a), int(b))
    return [groups.find(i) for i in range(len(results))]


def assign(results: Sequence[ScoreResult], options: BurstOptions | None = None
           ) -> list[tuple[int, int] | None]:
    """(burst id, rank) for each result in input order; None for a failed one. Bursts of
    two or more photos are numbered first, 1, 2, ... in order of their first photo, then
    the single photos (so that the ids of real bursts run without gaps); rank 1 is the
    best score."""
    options = options or BurstOptions()
    scored = [i for i, r in enumerate(results) if r.score is not None]
    for i in scored:
        if results[i].features is None:
            raise ValueError(f"{results[i].path}: no burst features; score with features=True")
    members: dict[int, list[int]] = {}
    roots = find_components([results[i] for i in scored], options)
    for index, root in zip(scored, roots, strict=True):
        members.setdefault(root, []).append(index)
    out: list[tuple[int, int] | None] = [None] * len(results)
    groups = sorted(members.values(), key=lambda m: (len(m) == 1, m[0]))
    for number, indices in enumerate(groups, start=1):
        best_first = sorted(indices, key=lambda i: (-(results[i].score or 0.0), i))
        for rank, i in enumerate(best_first, start=1):
            out[i] = (number, rank)
    return out


def with_burst_columns(results: Sequence[ScoreResult], options: BurstOptions | None = None
                       ) -> list[ScoreResult]:
    """The results in input order as rows: a photo of a burst of two or more becomes a
    :class:`BurstResult` with its ``burst`` and ``burst_rank``; a single photo one with
    neither (a burst number of its own would read as a burst)."""
    places = assign(results, options)
    sizes = Counter(place[0] for place in places if place is not None)
    return [r if place is None else BurstResult.of(r, *place) if sizes[place[0]] > 1
            else BurstResult.of(r, None, None)
            for r, place in zip(results, places, strict=True)]


def rank_bursts(results: Sequence[ScoreResult], options: BurstOptions | None = None
                ) -> tuple[list[Burst], list[ScoreResult]]:
    """The bursts (frames best first, ordered by id) and the failed results."""
    frames: dict[int, list[BurstResult]] = {}
    failed = []
    for row, place in zip(results, assign(results, options), strict=True):
        if place is not None:  # a single photo too is a burst (of one) here
            frames.setdefault(place[0], []).append(BurstResult.of(row, *place))
        else:
            failed.append(row)
    bursts = [Burst(number, tuple(sorted(rows, key=lambda r: r.burst_rank)))
              for number, rows in sorted(frames.items())]
    return bursts, failed


def cull_notes(results: Iterable[ScoreResult], options: BurstOptions, keep: int
               ) -> Iterator[tuple[ScoreResult, int | None, str | None]]:
    """Waits for every result; then each with its burst and, for a frame beyond the best
    ``keep`` of its burst, why it goes (else None)."""
    held = list(results)
    places = assign(held, options)
    sizes = Counter(place[0] for place in places if place is not None)
    for result, place in zip(held, places, strict=True):
        if place is None:
            yield result, None, None
            continue
        burst, rank = place
        note = (f"burst {burst}: rank {rank} of {sizes[burst]}, keeping {keep}"
                if rank > keep else None)
        yield result, burst, note


def group_bursts(results_or_paths: Iterable[Any], model: Any = None, *,
                 similarity: float = BurstOptions.similarity,
                 time_gap: float = BurstOptions.time_gap,
                 embedding_floor: float = BurstOptions.embedding_floor,
                 **score_options: Any) -> list[Burst]:
    """Group photos into bursts and near-duplicate groups, frames ranked by score.

    Parameters
    ----------
    results_or_paths : iterable of ScoreResult, or of str / path
        Results of ``score_paths(..., features=True)``, or files, folders and globs to
        score now (with ``model`` and ``score_options``).
    model : QualityModel, str or path, optional
        Used only for paths: a loaded model, a manifest name or a weights file.
    similarity : float
        Layout correlation (0..1) at which two photos with close perceptual hashes
        are grouped; lower groups more.
    time_gap : float
        Seconds: frames of one camera (EXIF) closer than this are one burst unless
        their content clearly differs.
    embedding_floor : float
        Cosine of the model's image embeddings below which two photos are never
        grouped.
    **score_options
        Passed to :func:`grmpiqa.score_paths` when scoring paths.

    Returns
    -------
    list of Burst
        Every scored photo in exactly one burst (a single photo is a burst of one),
        by id: bursts of two or more 1, 2, ... in input order, then the single photos;
        ``frames`` best first, each a :class:`~grmpiqa.results.BurstResult` with
        ``burst`` and ``burst_rank``. Files that could not be scored are left out.
    """
    items = list(results_or_paths)
    if items and not all(isinstance(item, ScoreResult) for item in items):
        from grmpiqa.scoring.engine import score_paths

        items = list(score_paths([str(item) for item in items], model, features=True,
                                 **score_options))
    options = BurstOptions(similarity=similarity, time_gap=time_gap,
                           embedding_floor=embedding_floor)
    bursts, _ = rank_bursts(items, options)
    return bursts
