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
from grmpiqa.io.inputs import DEFAULT_EXTENSIONS, expand_inputs, normalise_extensions
from grmpiqa.io.shards import ShardIndex, expand_shards
from grmpiqa.model.acceleration import autocast_context
from grmpiqa.results import ModelSource, PhotoFeatures, ScoreResult
from grmpiqa.scoring.gpu_decode import EncodedJpeg, GpuDecoder, resolve_gpu_decode
from grmpiqa.scoring.sources import Sources

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
    encoded: dict[int, EncodedJpeg] = field(default_factory=dict)  # left for the GPU


@dataclass(frozen=True)
class SignalOptions:
    """What the workers take besides the pixels: the perceptual hash and EXIF capture
    time always, a JPEG thumbnail of at most ``thumbnail`` pixels a side when it is > 0."""

    thumbnail: int = 0


Item = tuple[int, "torch.Tensor | EncodedJpeg | None", "str | None", "PhotoFeatures | None"]


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
    """Decodes one file or tar member per item; errors are returned, not raised, so workers
    never die. With ``gpu_jpeg``, JPEGs come back encoded for :class:`GpuDecoder`."""

    def __init__(self, paths: Sequence[str], cfg: PreprocessConfig, *, draft: bool = False,
                 max_pixels: int = DEFAULT_MAX_PIXELS,
                 known_errors: Mapping[str, str] | None = None,
                 shards: ShardIndex | None = None, gpu_jpeg: bool = False,
                 signals: SignalOptions | None = None) -> None:
        self.paths = list(paths)
        self.known_errors = dict(known_errors or {})
        self.cfg = cfg
        self.signals = signals
        # signals need the decoded image on the CPU: no GPU decoding with them
        self.sources = Sources(cfg, shards or ShardIndex(DEFAULT_EXTENSIONS), draft=draft,
                               max_pixels=max_pixels, gpu_jpeg=gpu_jpeg and signals is None)
        self.decode_on_cpu = self.sources.decode_on_cpu

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> Item:
        path = self.paths[index]
        if path in self.known_errors:
            return index, None, self.known_errors[path], None
        seen = _Signals(self.signals) if self.signals is not None else None
        try:
            pixels = self.sources.load(path, inspect=seen)
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
    good = [(i, px) for i, px, _, _ in items if isinstance(px, torch.Tensor)]
    pixels = torch.stack([px for _, px in good]) if good else None
    return Batch(
        indices=[i for i, _, _, _ in items],
        pixels=pixels,
        errors={i: err for i, _, err, _ in items if err is not None},
        features={i: f for i, _, _, f in items if f is not None},
        encoded={i: px for i, px, _, _ in items if isinstance(px, EncodedJpeg)},
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


def iter_batches(paths: Sequence[str] | ImageFiles, cfg: PreprocessConfig | None = None, *,
                 batch_size: int, workers: int, pin_memory: bool = False, draft: bool = False,
                 max_pixels: int = DEFAULT_MAX_PIXELS, yield_cpu: bool = False,
                 known_errors: Mapping[str, str] | None = None,
                 signals: SignalOptions | None = None) -> Iterator[Batch]:
    """Decoded batches of ``paths`` (or of a ready :class:`ImageFiles`), in order."""
    if isinstance(paths, ImageFiles):
        dataset = paths
    else:
        assert cfg is not None, "cfg is needed to decode paths"
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


def score_batches(model: QualityModel, batches: Iterable[Batch], paths: Sequence[str],
                  gpu: GpuDecoder | None = None, *, embeddings: bool = False
                  ) -> Iterator[ScoreResult]:
    """Run the model on decoded batches and yield one result per path, in order; ``gpu``
    decodes the JPEGs a batch holds encoded.

    With ``embeddings`` each result's ``features`` (taken by the workers) also
    gets the image embedding of the same forward pass.
    """
    label = getattr(model, "label", None)
    predict = BackoffPredictor(model, embeddings=embeddings)
    for batch in batches:
        scores: dict[int, Prediction | None] = {}
        if batch.encoded:
            if gpu is None:
                raise ValueError("a batch holds encoded JPEGs but no GPU decoder was given")
            pixels, good, errors = gpu.assemble(batch)
        else:
            pixels, errors = batch.pixels, batch.errors
            good = [i for i in batch.indices if i not in errors]
        if pixels is not None:
            scores = dict(zip(good, predict(pixels), strict=True))
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
                yield ScoreResult(paths[index], None, errors.get(index, "not scored"))


def score_paths(paths: Iterable[str], model: ModelSource = None, *, device: str = "auto",
                batch_size: int = 32, workers: int | None = None, draft: bool = False,
                max_pixels: int = DEFAULT_MAX_PIXELS, expand: bool = True,
                extensions: Sequence[str] = DEFAULT_EXTENSIONS,
                recursive: bool = True, known_errors: Mapping[str, str] | None = None,
                features: bool = False, thumbnails: int = 0, gpu_decode: str = "auto",
                shards: ShardIndex | None = None) -> Iterator[ScoreResult]:
    """Score image files (folders and globs are expanded) and yield results in input order.

    Parameters
    ----------
    paths : iterable of str
        Files, folders (searched for images), globs, WebDataset ``.tar`` shards (one row
        per sample, path ``SHARD.tar/MEMBER``) and such member paths.
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
    gpu_decode : {"auto", "on", "off"}
        Decode JPEGs on the GPU (nvJPEG) and squash them there with the exact kernel;
        ``auto``: when the model is on a CUDA device.
    shards : ShardIndex, optional
        Tar shards listed already (by :func:`grmpiqa.io.shards.expand_shards`).

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
    use_gpu = resolve_gpu_decode(gpu_decode, model.device, model.preprocess)
    shards = shards if shards is not None else ShardIndex(normalise_extensions(extensions))
    known = dict(known_errors or {})
    files = list(paths)
    if expand:
        files = expand_shards(expand_inputs(files, extensions=extensions, recursive=recursive,
                                            problems=known), shards)
    if not files:
        return
    if workers is None:
        workers = default_workers(model.device)
    dataset = ImageFiles(files, model.preprocess, draft=draft, max_pixels=max_pixels,
                         known_errors=known, shards=shards, gpu_jpeg=use_gpu,
                         signals=SignalOptions(thumbnails) if features else None)
    batches = iter_batches(dataset, batch_size=batch_size, workers=workers,
                           pin_memory=model.device.type == "cuda",
                           yield_cpu=model.device.type == "cpu")
    gpu = GpuDecoder(model.preprocess, model.device, dataset.decode_on_cpu) if use_gpu else None
    yield from score_batches(model, batches, files, gpu, embeddings=features)
