"""``grmpiqa.suggest``: which photos to rate so that a few labels teach ``adapt`` the most.

Every photo is scored once, keeping the image embedding of the same forward
pass; greedy k-centre (:mod:`grmpiqa.workflow.diversity`) then picks photos
that differ from each other in content and in current score. The choice is
written as a labels CSV (``path``, an empty ``rating`` column to fill with 1-5
stars, the model's current ``model_score``) that ``grmpiqa adapt`` reads.
"""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Iterable, Sequence

import numpy as np

from grmpiqa.catalogue.lookup import CatalogueChoice
from grmpiqa.io.atomic import atomic_write
from grmpiqa.io.inputs import DEFAULT_EXTENSIONS
from grmpiqa.progress import Progress, or_silent
from grmpiqa.results import ModelSource, ScoreResult, Suggestion
from grmpiqa.workflow.diversity import (
    coverage,
    farthest_point_order,
    random_coverage,
    suggestion_space,
)

CSV_COLUMNS = ("path", "rating", "model_score")


def suggest(paths: Iterable[str], n: int = 50, *, model: ModelSource = None, seed: int = 0,
            score_weight: float = 1.0, device: str = "auto", batch_size: int | None = None,
            workers: int | None = None, extensions: Sequence[str] = DEFAULT_EXTENSIONS,
            recursive: bool = True, skip_rated: bool = False, base: str | None = None,
            catalogue: CatalogueChoice = True, progress: Progress | None = None) -> Suggestion:
    """Choose ``n`` photos to rate: unlike each other in content, spread over the score range.

    Parameters
    ----------
    paths : iterable of str
        Files, folders and globs, expanded as ``score`` expands them.
    n : int
        How many photos to choose (all of them when there are fewer).
    model : QualityModel, str or path, optional
        The model whose embeddings and scores guide the choice (default: the manifest's
        default model).
    seed : int
        Chooses the first photo; the rest follows deterministically.
    score_weight : float
        How much the current score counts beside the content: 1 makes the whole score
        range count as much as the distance between two typical photos; 0 ignores it.
    device, batch_size, workers, extensions, recursive
        As for :func:`grmpiqa.score_paths`.
    skip_rated : bool
        Photos that already carry a star rating (or a reject) in XMP, as
        :func:`grmpiqa.read_ratings` finds it, are not chosen; they count as covered,
        so the choice fills the gaps around them.
    base, catalogue
        As for :func:`grmpiqa.score_paths`: photos the catalogue knows (with their
        embeddings) are not scored again.
    progress : grmpiqa.progress.Progress, optional
        Advanced by each photo scored; a photo that fails is reported as a message.

    Returns
    -------
    Suggestion
        The chosen photos (with scores and embeddings) in the order picked, the
        photos that could not be scored, and how well the choice covers the collection.
    """
    from grmpiqa.scoring.engine import score_paths

    if n < 1:
        raise ValueError("n must be at least 1")
    if score_weight < 0:
        raise ValueError("score_weight must not be negative")
    report = or_silent(progress)
    scored: list[ScoreResult] = []
    failed: list[ScoreResult] = []
    for result in score_paths(paths, model, device=device, batch_size=batch_size,
                              workers=workers, extensions=extensions, recursive=recursive,
                              features=True, base=base, catalogue=catalogue):
        (scored if result.ok else failed).append(result)
        if not result.ok:
            report.message(f"{result.path}: {result.error}")
        report.advance()
    if not scored:
        return Suggestion((), tuple(failed), 0, float("nan"), float("nan"))
    covered = _rated(scored) if skip_rated else []
    points = suggestion_space(np.array([r.embedding for r in scored]),
                              [r.score for r in scored], score_weight)
    order = farthest_point_order(points, n, seed, covered)
    return Suggestion(tuple(scored[i] for i in order), tuple(failed), len(scored),
                      coverage(points, [*covered, *order]),
                      random_coverage(points, len(order), covered=covered, seed=seed),
                      len(covered))


def _rated(results: Sequence[ScoreResult]) -> list[int]:
    """Indices of the photos that already have a rating: stars or a reject."""
    from grmpiqa.workflow.ratings import SidecarIndex, rating_of

    index = SidecarIndex()
    return [i for i, r in enumerate(results) if rating_of(r.path, index).rating not in (None, 0)]


def suggestion_csv(chosen: Sequence[ScoreResult]) -> str:
    """The labels CSV text: absolute paths, an empty rating, the current score."""
    buffer = io.StringIO(newline="")
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for result in chosen:
        writer.writerow([os.path.abspath(result.path), "", f"{result.score:.4f}"])
    return buffer.getvalue()


def write_suggestion(chosen: Sequence[ScoreResult], path: str | os.PathLike[str]) -> None:
    """Write :func:`suggestion_csv` atomically."""
    with atomic_write(path) as handle:
        handle.write(suggestion_csv(chosen).encode("utf-8"))
