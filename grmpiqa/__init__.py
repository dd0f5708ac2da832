"""grmpiqa: perceptual quality scores for photographs with GRMP-IQA.

The public API is small: :func:`load_model`, :func:`score_paths` and
:func:`adapt`. They are imported lazily so that ``import grmpiqa`` (and the
command line's ``--help``) stays fast and never pulls in torch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

__all__ = ["__version__", "adapt", "load_model", "score_paths"]

_LAZY = {
    "adapt": ("grmpiqa.training.adaptation", "adapt"),
    "load_model": ("grmpiqa.weights.loading", "load_model"),
    "score_paths": ("grmpiqa.scoring.engine", "score_paths"),
}

if TYPE_CHECKING:  # pragma: no cover
    from grmpiqa.scoring.engine import score_paths
    from grmpiqa.training.adaptation import adapt
    from grmpiqa.weights.loading import load_model


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        module_name, attr = _LAZY[name]
        value = getattr(importlib.import_module(module_name), attr)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'grmpiqa' has no attribute {name!r}")
