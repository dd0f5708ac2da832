"""``grmpiqa.evaluate``: how well a model's scores agree with a table of labels."""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from typing import Any

from grmpiqa.catalogue.lookup import CatalogueChoice
from grmpiqa.config import DEFAULT_MAX_PIXELS, LabelScale
from grmpiqa.progress import Progress, or_silent
from grmpiqa.results import ModelSource
from grmpiqa.training.labels import LabelTable, read_labels, require_usable

MIN_EVALUATE_ROWS = 3
PathLike = str | os.PathLike[str]


@dataclass
class EvaluationResult:
    """The metrics (``report``, JSON-ready), what was scored, and what failed."""

    report: dict[str, Any]
    listed: int
    model: str | None
    labels: str
    higher_is_better: bool
    failed: list[str] = field(default_factory=list)

    @property
    def scored(self) -> int:
        return self.listed - len(self.failed)

    def to_dict(self) -> dict[str, Any]:
        meta = {"listed": self.listed, "failed": len(self.failed), "model": self.model,
                "labels": self.labels, "higher_is_better": self.higher_is_better}
        return {**meta, **self.report}


def evaluation_report(scores: list[float], labels: list[float], *, higher_is_better: bool,
                      label_scale: LabelScale | None = None, resamples: int = 2000,
                      seed: int = 0) -> dict[str, Any]:
    """The metrics as a JSON-ready dict; ``rmse_label`` when the model speaks the labels'
    scale (weights from ``grmpiqa adapt``): its own ``score_label`` against the labels."""
    from grmpiqa.metrics import agreement, rmse

    report = agreement(scores, labels, higher_is_better=higher_is_better, resamples=resamples,
                       seed=seed).to_dict()
    if label_scale is not None:
        value = rmse([label_scale.to_label(s) for s in scores], labels)
        report["rmse_label"] = value if math.isfinite(value) else None
    return report


def evaluate(labels: PathLike | LabelTable, model: ModelSource = None, *, base: str | None = None,
             image_column: str | None = None, score_column: str | None = None,
             root: PathLike | None = None, lower_is_better: bool = False,
             resamples: int = 2000, seed: int = 0, device: str = "auto",
             batch_size: int | None = None,
             workers: int | None = None, max_pixels: int = DEFAULT_MAX_PIXELS,
             catalogue: CatalogueChoice = True, progress: Progress | None = None
             ) -> EvaluationResult:
    """Score the photos of a labels table and compare: SRCC (with a bootstrap interval),
    PLCC, KRCC and RMSE.

    Parameters
    ----------
    labels : path or LabelTable
        A CSV of image paths and scores, or one already read with ``read_labels``.
    model : QualityModel, str or path, optional
        A loaded model, a manifest name or a weights file (default: the manifest's default).
    base : str, optional
        The manifest model whose backbone an authors' ``.pt`` file is read on.
    image_column, score_column : str, optional
        The CSV's columns (default: found by their usual names).
    root : path, optional
        The folder relative image paths start from (default: the CSV's folder).
    lower_is_better : bool
        The scores are DMOS-like.
    resamples : int
        Bootstrap resamples for the SRCC interval (0: none).
    seed : int
        Seed of the bootstrap.
    device, batch_size, workers, max_pixels, catalogue
        As for :func:`grmpiqa.score_paths` (a loaded model is never looked up).
    progress : grmpiqa.progress.Progress, optional
        Told of each photo scored, and given one line per photo that failed.

    Returns
    -------
    EvaluationResult
        A photo that cannot be scored is left out and listed in ``failed``.

    Raises
    ------
    grmpiqa.training.labels.LabelsError
        Every problem of the table itself (scores, duplicates, columns), at once.
    """
    from grmpiqa.io.output import display_path
    from grmpiqa.scoring.engine import score_paths

    table = labels if isinstance(labels, LabelTable) else read_labels(
        labels, image_column=image_column, score_column=score_column, root=root,
        lower_is_better=lower_is_better, check_files=False)
    require_usable(table, min_rows=MIN_EVALUATE_ROWS, purpose="evaluate")
    report_to = or_silent(progress)
    label, name = _label_and_name(model, base, device)
    scores: list[float] = []
    used: list[float] = []
    failed: list[str] = []
    results = score_paths(table.paths, model, device=device, base=base, batch_size=batch_size,
                          workers=workers, max_pixels=max_pixels, expand=False,
                          catalogue=catalogue)
    for row, result in zip(table.rows, results, strict=True):
        if result.ok and result.score is not None:
            scores.append(result.score)
            used.append(row.score)
        else:
            failed.append(f"line {row.line}: {display_path(row.image)}: {result.error}")
            report_to.message(failed[-1])
        report_to.advance()
    report = evaluation_report(scores, used, higher_is_better=table.higher_is_better,
                               label_scale=label, resamples=resamples, seed=seed)
    return EvaluationResult(report, len(table.rows), name, table.source,
                            table.higher_is_better, failed)


def _label_and_name(model: ModelSource, base: str | None, device: str
                    ) -> tuple[LabelScale | None, str | None]:
    """The label scale and name of the model, read without loading one given by name."""
    if model is not None and not isinstance(model, (str, os.PathLike)):
        return model.label, model.info.get("name")
    from grmpiqa.config import ModelOptions
    from grmpiqa.weights.identity import identify_options

    name = os.fspath(model) if model is not None else None
    identity, label = identify_options(ModelOptions(name=name, base=base, device=device))
    return label, identity.name
