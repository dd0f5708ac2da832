"""Ray Data: ``ds.map_batches(grmpiqa.ray.Scorer, concurrency=N, num_gpus=1)`` (extra ``ray``).

Ray creates one :class:`Scorer` per actor, so the model is loaded once per
actor and every batch reuses it. A batch holds either a ``path`` column
(files, or tar members named ``SHARD.tar/MEMBER`` as
:func:`grmpiqa.io.shards.expand_shards` lists them) or an ``image`` column of
decoded RGB arrays (what ``ray.data.read_images`` gives). The batch comes
back with ``score`` (float32, null where the row failed) and ``error`` (the
reason, or null); see :func:`with_results`. This module never imports ``ray``: Ray calls it, and
``grmpiqa.ray`` cannot shadow the ``ray`` package (imports are absolute).
See docs/scale.md for the cluster recipe.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from grmpiqa.config import DEFAULT_MAX_PIXELS
from grmpiqa.results import ScoreResult

__all__ = ["Scorer"]


class Scorer:
    """A callable for ``map_batches``; constructor arguments reach it via
    ``fn_constructor_kwargs``.

    Parameters
    ----------
    model : str, optional
        A manifest name (default: the manifest's default model), or the base model of
        ``weights``.
    weights : str, optional
        A weights file (``.safetensors`` or the authors' ``.pt``) instead of a name.
    device : str
        ``auto`` picks the actor's GPU when Ray gave it one (``num_gpus=1``).
    batch_size : int
        Images per forward pass within a Ray batch.
    precision : str
        As ``grmpiqa score --precision``.
    compile : bool
        ``torch.compile`` the image tower (GPU).
    workers : int
        Decoding processes per actor for ``path`` batches (0: decode in the actor; give
        the actor ``num_cpus`` to match).
    gpu_decode : {"auto", "on", "off"}
        As ``grmpiqa score --gpu-decode``.
    max_pixels : int
        Refuse images with more pixels.
    """

    def __init__(self, model: str | None = None, *, weights: str | None = None,
                 device: str = "auto", batch_size: int = 32, precision: str = "auto",
                 compile: bool = False, workers: int = 0, gpu_decode: str = "auto",
                 max_pixels: int = DEFAULT_MAX_PIXELS) -> None:
        from grmpiqa.weights.loading import load_model

        self.model = load_model(weights or model, device=device, base=model,
                                precision=precision, compile=compile)
        self.model.eval()
        self.batch_size = batch_size
        self.workers = workers
        self.gpu_decode = gpu_decode
        self.max_pixels = max_pixels

    def __call__(self, batch: Any) -> Any:
        """``batch``: a dict of numpy arrays (Ray's default), a pyarrow Table or a pandas
        DataFrame; see :func:`with_results` for what comes back."""
        if "path" in _columns(batch):
            results = self.score_paths([str(p) for p in _column(batch, "path")])
        elif "image" in _columns(batch):
            results = self.score_images(list(_column(batch, "image")))
        else:
            raise ValueError("grmpiqa.ray.Scorer: the batch needs a 'path' column (files or "
                             "SHARD.tar/MEMBER) or an 'image' column (decoded RGB arrays); "
                             f"it has {', '.join(map(str, _columns(batch)))}")
        return with_results(batch, results)

    def score_paths(self, paths: Sequence[str]) -> list[ScoreResult]:
        from grmpiqa.scoring.engine import score_paths

        return list(score_paths(paths, self.model, batch_size=self.batch_size,
                                workers=self.workers, max_pixels=self.max_pixels,
                                expand=False, gpu_decode=self.gpu_decode))

    def score_images(self, images: Sequence[Any]) -> list[ScoreResult]:
        """Decoded images (H, W, 3) uint8 arrays, squashed like files; a bad one gets an error."""
        import torch

        from grmpiqa.io.preprocess import to_model_input
        from grmpiqa.scoring.engine import BackoffPredictor

        prepared: dict[int, torch.Tensor] = {}
        errors: dict[int, str] = {}
        for i, image in enumerate(images):
            try:
                prepared[i] = to_model_input(_as_pil(image), self.model.preprocess)[0]
            except (TypeError, ValueError) as exc:
                errors[i] = str(exc)
        predict = BackoffPredictor(self.model)
        scores: dict[int, float | None] = {}
        good = list(prepared)
        for start in range(0, len(good), self.batch_size):
            chunk = good[start:start + self.batch_size]
            predictions = predict(torch.stack([prepared[i] for i in chunk]))
            scores.update((i, None if p is None else p[0])
                          for i, p in zip(chunk, predictions, strict=True))
        return [ScoreResult(f"image {i}", scores[i], None) if scores.get(i) is not None
                else ScoreResult(f"image {i}", None,
                                 errors.get(i, "out of memory even at batch size 1"))
                for i in range(len(images))]


def with_results(batch: Any, results: Sequence[ScoreResult]) -> Any:
    """``batch`` plus ``score`` and ``error``.

    Where the columns fit Arrow (paths and other 1-D columns), a pyarrow Table
    with ``score`` float32 and ``error`` string, both null where unset, so the
    blocks Ray writes with ``write_parquet`` share one schema. Otherwise (image
    columns) the batch's own type, with ``score`` NaN where the row failed.
    """
    scores = [r.score for r in results]
    errors = [r.error for r in results]
    if isinstance(batch, dict):
        try:
            import pyarrow as pa

            table = pa.table({name: np.asarray(column) for name, column in batch.items()})
            return _append(table, scores, errors)
        except (ImportError, ValueError, TypeError, NotImplementedError):
            pass  # pyarrow.ArrowInvalid is a ValueError
    if type(batch).__module__.startswith("pyarrow"):
        return _append(batch, scores, errors)
    numeric = np.array([np.nan if v is None else v for v in scores], dtype=np.float32)
    if isinstance(batch, dict):
        return {**batch, "score": numeric, "error": np.array(errors, dtype=object)}
    out = batch.copy()
    out["score"], out["error"] = numeric, errors
    return out


def _append(table: Any, scores: list[float | None], errors: list[str | None]) -> Any:
    import pyarrow as pa

    return table.append_column("score", pa.array(scores, pa.float32())) \
        .append_column("error", pa.array(errors, pa.string()))


def _as_pil(image: Any) -> Any:
    from PIL import Image

    array = np.asarray(image)
    if array.dtype != np.uint8 or array.ndim not in (2, 3) or \
            (array.ndim == 3 and array.shape[2] not in (1, 3, 4)) or 0 in array.shape[:2]:
        raise ValueError(f"expected an RGB uint8 array (H, W, 3), got {array.dtype} "
                         f"{array.shape}")
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[:, :, 0]
    return Image.fromarray(np.ascontiguousarray(array))


def _columns(batch: Any) -> list[str]:
    names = getattr(batch, "column_names", None)  # pyarrow
    return list(names) if names is not None else list(batch.keys())


def _column(batch: Any, name: str) -> Any:
    column = batch[name]
    return column.to_pylist() if hasattr(column, "to_pylist") else column
