"""Score many files: decoding in worker processes overlaps the model on the main one.

Results come back in input order, one per file, as soon as their batch is
done; a file that cannot be decoded gets a result with an error instead of a
score and never stops the others.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

import torch
from torch.utils.data import DataLoader, Dataset

from grmpiqa.config import PreprocessConfig
from grmpiqa.errors import ImageError
from grmpiqa.io.images import DEFAULT_MAX_PIXELS
from grmpiqa.io.inputs import DEFAULT_EXTENSIONS, expand_inputs
from grmpiqa.io.preprocess import load_pixels
from grmpiqa.model.acceleration import autocast_context
from grmpiqa.results import ModelSource, PhotoFeatures, ScoreResult

if TYPE_CHECKING:  # pragma: no cover
    from grmpiqa.model.network import QualityModel

log = logging.getLogger("grmpiqa")
Prediction = tuple[float, Any]  # a score and the image embedding (None unless asked for)


@dataclass
class Batch:
    indices: list[int]
    pixels: torch.Tensor | None
    errors: dict[int, str]
    features: dict[int, PhotoFeatures] = field(default_factory=dict)


@dataclass(frozen=True)
class SignalOptions:
    """What the workers take besides the pixels: the perceptual hash and EXIF capture
    time always, a JPEG thumbnail of at most ``thumbnail`` pixels a side when it is > 0."""

    thumbnail: int = 0


Item = tuple[int, "torch.Tensor | None", "str | None", "PhotoFeatures | None"]


class _Signals:
    """Collects the signals of one decoded image (called before it is squashed)."""

    def __init__(self, options: SignalOptions) -> None:
        self.options = options
        self.hash = 0
        self.layout = b""
        self.thumbnail: bytes | None = None

    def __call__(self, image: Any) -> None:
        from grmpiqa.io.signals import HASH_SIDE, hash_and_layout, reduced, thumbnail_jpeg

        small = reduced(image, max(2 * HASH_SIDE, self.options.thumbnail))
        self.hash, self.layout = hash_and_layout(small)
        if self.options.thumbnail > 0:
            self.thumbnail = thumbnail_jpeg(small, self.options.thumbnail)


class ImageFiles(Dataset):
    """Decodes one file per item; errors are returned, not raised, so workers never die."""

    def __init__(self, paths: Sequence[str], cfg: PreprocessConfig, *, draft: bool = False,
                 max_pixels: int = DEFAULT_MAX_PIXELS,
                 known_errors: Mapping[str, str] | None = None,
                 signals: SignalOptions | None = None) -> None:
        self.paths = list(paths)
        self.known_errors = dict(known_errors or {})
        self.cfg = cfg
        self.draft = draft
        self.max_pixels = max_pixels
        self.signals = signals

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> Item:
        path = self.paths[index]
        if path in self.known_errors:
            return index, None, self.known_errors[path], None
        seen = _Signals(self.signals) if self.signals is not None else None
        try:
            pixels = load_pixels(path, self.cfg, draft=self.draft,
                                 max_pixels=self.max_pixels, inspect=seen)
        except ImageError as exc:
            return index, None, str(exc), None
        except MemoryError:
            return index, None, "out of memory while decoding", None
        except Exception as exc:  # a decoder bug must not cost the other photos
            return index, None, f"unexpected {type(exc).__name__}: {exc}", None
        if seen is None:
            return index, pixels, None, None
        from grmpiqa.io.signals import read_capture

        features = PhotoFeatures(seen.hash, seen.layout, capture=read_capture(path),
                                 thumbnail=seen.thumbnail)
        return index, pixels, None, features


def collate(items: list[Item]) -> Batch:
    good = [(i, px) for i, px, _, _ in items if px is not None]
    pixels = torch.stack([px for _, px in good]) if good else None
    return Batch(
        indices=[i for i, _, _, _ in items],
        pixels=pixels,
        errors={i: err for i, _, err, _ in items if err is not None},
        features={i: f for i, _, _, f in items if f is not None},
    )


def default_workers(device: torch.device) -> int:
    """CPU: the model is the whole cost, one decoder suffices. GPU: decoding is, use the cores."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    cores = cores or 1
    return 1 if device.type == "cpu" else min(16, cores)


def _lower_priority(_: int) -> None:
    """Decoders yield the CPU to the model's threads: on a CPU-bound run a decoder that
    preempts one matrix-multiply thread stalls all of them at the next barrier."""
    with contextlib.suppress(OSError, AttributeError):
        os.nice(10)


def iter_batches(paths: Sequence[str], cfg: PreprocessConfig, *, batch_size: int, workers: int,
                 pin_memory: bool = False, draft: bool = False,
                 max_pixels: int = DEFAULT_MAX_PIXELS, yield_cpu: bool = False,
                 known_errors: Mapping[str, str] | None = None,
                 signals: SignalOptions | None = None) -> Iterator[Batch]:
    dataset = ImageFiles(paths, cfg, draft=draft, max_pixels=max_pixels,
                         known_errors=known_errors, signals=signals)
    workers = max(0, min(workers, -(-len(dataset) // batch_size)))
    loader = DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=False,
        num_workers=workers,
        collate_fn=collate,
        pin_memory=pin_memory,
        prefetch_factor=4 if workers else None,
        persistent_workers=False,
        worker_init_fn=_lower_priority if yield_cpu and workers else None,
    )
    yield from loader


def is_out_of_memory(exc: BaseException) -> bool:
    oom = getattr(torch, "OutOfMemoryError", None) or torch.cuda.OutOfMemoryError
    return isinstance(exc, oom) or (
        isinstance(exc, RuntimeError) and "out of memory" in str(exc).lower())


def _release_memory(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.empty_cache()
    elif device.type == "mps" and hasattr(torch, "mps"):
        torch.mps.empty_cache()


class BackoffPredictor:
    """Runs the model on a batch; on out-of-memory, retries at half the size and stays there.

    One batch that does not fit must not end a 10,000-photo run. An image that
    does not fit even alone gets an error row.
    """

    def __init__(self, model: QualityModel, *, embeddings: bool = False) -> None:
        self.model = model
        self.embeddings = embeddings
        self.limit: int | None = None
        self.embeddings = embeddings

    def _run(self, pixels: torch.Tensor) -> list[Prediction]:
        device = self.model.device
        pixels = pixels.to(device, non_blocking=True)
        with torch.inference_mode(), autocast_context(device, self.model.precision):
            if not self.embeddings:
                quality = self.model.predict(pixels)
                return [(q, None) for q in quality.float().cpu().tolist()]
            quality, embedding = self.model.predict_with_embedding(pixels)
        vectors = list(embedding.float().cpu().numpy())
        return list(zip(quality.float().cpu().tolist(), vectors, strict=True))

    def __call__(self, pixels: torch.Tensor) -> list[Prediction | None]:
        """(score, embedding or None) per image; None for one that never fits in memory."""
        out: list[Prediction | None] = []
        start, total = 0, pixels.shape[0]
        while start < total:
            size = min(self.limit or total, total - start)
            try:
                out.extend(self._run(pixels[start:start + size]))
                start += size
            except Exception as exc:
                if not is_out_of_memory(exc):
                    raise
                _release_memory(self.model.device)
                if size == 1:
                    out.append(None)
                    start += 1
                    continue
                self.limit = size // 2
                log.warning("out of memory at batch size %d; going on at batch size %d",
                            size, self.limit)
        return out


def score_batches(model: QualityModel, batches: Iterable[Batch], paths: Sequence[str], *,
                  embeddings: bool = False) -> Iterator[ScoreResult]:
    """Run the model on decoded batches and yield one result per path, in order.

    With ``embeddings`` each result's ``features`` (taken by the workers) also
    gets the image embedding of the same forward pass.
    """
    label = getattr(model, "label", None)
    predict = BackoffPredictor(model, embeddings=embeddings)
    for batch in batches:
        scores: dict[int, Prediction | None] = {}
        if batch.pixels is not None:
            good = [i for i in batch.indices if i not in batch.errors]
            scores = dict(zip(good, predict(batch.pixels), strict=True))
        for index in batch.indices:
            prediction = scores.get(index)
            if prediction is not None:
                value, vector = prediction
                features = batch.features.get(index)
                if features is not None and vector is not None:
                    features = replace(features, embedding=vector)
                yield ScoreResult(paths[index], value, None,
                                  label.to_label(value) if label is not None else None,
                                  features)
            elif index in scores:
                yield ScoreResult(paths[index], None, "out of memory even at batch size 1")
            else:
                yield ScoreResult(paths[index], None, batch.errors.get(index, "not scored"))


def score_paths(paths: Iterable[str], model: ModelSource = None, *, device: str = "auto",
                batch_size: int = 32, workers: int | None = None, draft: bool = False,
                max_pixels: int = DEFAULT_MAX_PIXELS, expand: bool = True,
                extensions: Sequence[str] = DEFAULT_EXTENSIONS,
                recursive: bool = True, known_errors: Mapping[str, str] | None = None,
                features: bool = False, thumbnails: int = 0) -> Iterator[ScoreResult]:
    """Score image files (folders and globs are expanded) and yield results in input order.

    Parameters
    ----------
    paths : iterable of str
        Files, folders (searched for images) and globs.
    model : QualityModel, str or path, optional
        A loaded model, a manifest name or a weights path (default: the manifest's
        default model, loaded on ``device``).
    device : str
        Where to load ``model`` when it is not loaded yet.
    batch_size : int
        Images per forward pass.
    workers : int, optional
        Decoding processes (default: chosen from the device and the CPU count).
    draft : bool
        Let JPEG decoding reduce large images at decode time (``--fast-decode``): faster,
        but not the authors' exact pixels (docs/method.md).
    max_pixels : int
        Refuse images with more pixels (decompression bombs).
    expand : bool
        Expand folders and globs; ``False`` takes ``paths`` as files, in order.
    extensions : sequence of str
        Image extensions looked for in folders.
    recursive : bool
        Search sub-folders.
    known_errors : mapping of str to str, optional
        Entries that get their row with this error and are not opened (an unreadable
        folder, a pattern that matched nothing; see ``expand_inputs``).
    features : bool
        Also give each result :class:`~grmpiqa.results.PhotoFeatures`: the model's
        normalised image embedding (same forward pass), a perceptual hash and the
        EXIF capture time; burst grouping needs them.
    thumbnails : int
        With ``features``: also a JPEG thumbnail of at most this many pixels a side,
        made from the decoded image (for reports).

    Yields
    ------
    ScoreResult
        One per file, in input order; a file that fails carries ``error`` instead of a
        score and never stops the others.
    """
    if batch_size < 1:
        raise ValueError("batch_size must be at least 1")
    if model is None or isinstance(model, (str, os.PathLike)):
        from grmpiqa.weights.loading import load_model

        model = load_model(model, device=device)
    model.eval()
    known = dict(known_errors or {})
    files = expand_inputs(list(paths), extensions=extensions, recursive=recursive,
                          problems=known) if expand else list(paths)
    if not files:
        return
    if workers is None:
        workers = default_workers(model.device)
    batches = iter_batches(files, model.preprocess, batch_size=batch_size, workers=workers,
                           pin_memory=model.device.type == "cuda", draft=draft,
                           max_pixels=max_pixels, yield_cpu=model.device.type == "cpu",
                           known_errors=known,
                           signals=SignalOptions(thumbnails) if features else None)
    yield from score_batches(model, batches, files, embeddings=features)
