"""grmpiqa: perceptual quality scores for photographs with GRMP-IQA.

The public API: :func:`score` runs a :class:`ScoreJob` (what ``grmpiqa score``
does, with :class:`ModelOptions`, :class:`Selection`, :class:`BurstOptions` and
:class:`XmpOptions`); :func:`load_model`, :func:`download_model` (fetch a model's
files ahead of time), :func:`list_models`, :func:`score_paths`, :func:`evaluate`,
:func:`adapt`, :func:`pretrain`, :func:`cull`, :func:`group_bursts`,
:func:`read_ratings` (the star ratings photos already carry, to adapt on) and
:func:`suggest` (which photos to rate) and :func:`explain_image` (the measurable
defects of one photo, an :class:`Explanation`, without the model). Long calls report through
:class:`grmpiqa.progress.Progress`. They are imported lazily so that
``import grmpiqa`` (and the command line's ``--help``) stays fast and never
pulls in torch.

Where things live: ``model/`` the network, ``weights/`` where weights come
from, ``io/`` files in and out, ``data/`` from paths to decoded batches,
``scoring/`` the model over batches, ``training/``
adaptation and evaluation, ``pretraining/`` meta-prompt pre-training,
``workflow/`` culling, ratings and selection, ``jobs/`` the scoring job behind
:func:`score`, ``cli/`` the command.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

__all__ = ["BurstOptions", "Explanation", "ModelOptions", "ScoreJob", "Selection", "XmpOptions",
           "__version__", "adapt", "cull", "download_model", "evaluate", "explain_image",
           "group_bursts", "list_models", "load_model", "pretrain", "read_ratings", "score",
           "score_paths", "suggest"]

_LAZY = {
    "BurstOptions": ("grmpiqa.config", "BurstOptions"),
    "Explanation": ("grmpiqa.results", "Explanation"),
    "explain_image": ("grmpiqa.explain.image", "explain_image"),
    "ModelOptions": ("grmpiqa.config", "ModelOptions"),
    "ScoreJob": ("grmpiqa.jobs.score", "ScoreJob"),
    "Selection": ("grmpiqa.workflow.selection", "Selection"),
    "XmpOptions": ("grmpiqa.jobs.score", "XmpOptions"),
    "score": ("grmpiqa.jobs.score", "score"),
    "adapt": ("grmpiqa.training.adaptation", "adapt"),
    "cull": ("grmpiqa.workflow.culling", "cull"),
    "download_model": ("grmpiqa.weights.download", "download_model"),
    "evaluate": ("grmpiqa.training.evaluate", "evaluate"),
    "group_bursts": ("grmpiqa.workflow.bursts", "group_bursts"),
    "list_models": ("grmpiqa.weights.download", "list_models"),
    "load_model": ("grmpiqa.weights.loading", "load_model"),
    "pretrain": ("grmpiqa.pretraining.run", "pretrain"),
    "read_ratings": ("grmpiqa.workflow.ratings", "read_ratings"),
    "score_paths": ("grmpiqa.scoring.engine", "score_paths"),
    "suggest": ("grmpiqa.workflow.suggest", "suggest"),
}

if TYPE_CHECKING:  # pragma: no cover
    from grmpiqa.config import BurstOptions, ModelOptions
    from grmpiqa.explain.image import explain_image
    from grmpiqa.jobs.score import ScoreJob, XmpOptions, score
    from grmpiqa.pretraining.run import pretrain
    from grmpiqa.results import Explanation
    from grmpiqa.scoring.engine import score_paths
    from grmpiqa.training.adaptation import adapt
    from grmpiqa.training.evaluate import evaluate
    from grmpiqa.weights.download import download_model, list_models
    from grmpiqa.weights.loading import load_model
    from grmpiqa.workflow.bursts import group_bursts
    from grmpiqa.workflow.culling import cull
    from grmpiqa.workflow.ratings import read_ratings
    from grmpiqa.workflow.selection import Selection
    from grmpiqa.workflow.suggest import suggest


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        module_name, attr = _LAZY[name]
        value = getattr(importlib.import_module(module_name), attr)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'grmpiqa' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
