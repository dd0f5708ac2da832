"""Score many files: decoding in worker processes overlaps the model on the main one.

Results come back in input order, one per file, as soon as their batch is
done; a file that cannot be decoded gets a result with an error instead of a
score and never stops the others.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import torch

from grmpiqa.catalogue.lookup import CatalogueChoice, open_catalogue
from grmpiqa.catalogue.store import Catalogue
from grmpiqa.config import DEFAULT_MAX_PIXELS, default_batch_size
from grmpiqa.data.dataset import Batch, ImageFiles, SignalOptions
from grmpiqa.data.gpu_decode import GpuDecoder, resolve_gpu_decode
from grmpiqa.data.loader import cpu_balancer, default_workers, iter_batches
from grmpiqa.io.inputs import DEFAULT_EXTENSIONS, expand_inputs, normalise_extensions
from grmpiqa.io.shards import ShardIndex, expand_shards
from grmpiqa.model.acceleration import autocast_context
from grmpiqa.results import ModelSource, ScoreResult

if TYPE_CHECKING:  # pragma: no cover
    from grmpiqa.model.network import QualityModel

log = logging.getLogger("grmpiqa")
Prediction = tuple[float, Any]  # a score and the image embedding (None unless asked for)


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


def _photos(batch: Batch) -> int:
    return 0 if batch.pixels is None else batch.pixels.shape[0]


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
                explanation = features.explanation if features is not None else None
                if features is not None and vector is not None:
                    features = replace(features, embedding=vector, explanation=None)
                elif not embeddings:
                    features = None  # only the explanation was asked for
                yield ScoreResult(paths[index], value, None,
                                  label.to_label(value) if label is not None else None,
                                  features, explanation=explanation)
            elif index in scores:
                yield ScoreResult(paths[index], None, "out of memory even at batch size 1")
            else:
                yield ScoreResult(paths[index], None, errors.get(index, "not scored"))


def score_paths(paths: Iterable[str], model: ModelSource = None, *, device: str = "auto",
                batch_size: int | None = None, workers: int | None = None,
                draft: bool = False,
                max_pixels: int = DEFAULT_MAX_PIXELS, expand: bool = True,
                extensions: Sequence[str] = DEFAULT_EXTENSIONS,
                recursive: bool = True, known_errors: Mapping[str, str] | None = None,
                features: bool = False, thumbnails: int = 0, gpu_decode: str = "auto",
                shards: ShardIndex | None = None, explain: bool = False,
                catalogue: CatalogueChoice = True, base: str | None = None
                ) -> Iterator[ScoreResult]:
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
    batch_size : int, optional
        Images per forward pass (default: :func:`~grmpiqa.config.default_batch_size` of the
        model's device: 8 on the CPU, after a first batch of one photo so that the first
        result comes soon; 32 elsewhere).
    workers : int, optional
        Decoding processes (default: on the CPU, how many decode at once and the model's
        threads follow the decode and model costs measured during the run,
        :mod:`grmpiqa.data.balance`; on a GPU, up to 16, one per core).
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
    explain : bool
        Also give each result its :class:`~grmpiqa.results.Explanation` (measured by the
        decoding workers from the decoded photo; JPEGs are then decoded on the CPU).
    catalogue : bool, str, path or Catalogue
        Where scores are remembered (docs/catalogue.md): True, the default catalogue;
        a path, that file; False, none. Photos it knows for this model come back
        without the model, which is loaded only when some are left. A model passed
        already loaded is never looked up (it may have been changed since it loaded).
    base : str, optional
        The manifest model an authors' ``.pt`` weights file is read on.

    Yields
    ------
    ScoreResult
        One per file, in input order; a file that fails carries ``error`` instead of a
        score and never stops the others.
    """
    if batch_size is not None and batch_size < 1:
        raise ValueError("batch_size must be at least 1")
    shards = shards if shards is not None else ShardIndex(normalise_extensions(extensions))
    known = dict(known_errors or {})
    files = list(paths)
    if expand:
        files = expand_shards(expand_inputs(files, extensions=extensions, recursive=recursive,
                                            problems=known), shards)
    if not files:
        return
    decoding = {"workers": workers, "draft": draft, "max_pixels": max_pixels, "known": known,
                "shards": shards, "features": features, "thumbnails": thumbnails,
                "gpu_decode": gpu_decode, "batch_size": batch_size, "explain": explain}
    unloaded = model is None or isinstance(model, (str, os.PathLike))
    store = open_catalogue(catalogue, log.warning) if unloaded else None
    if store is None:
        if unloaded:
            from grmpiqa.weights.loading import load_model

            model = load_model(model, device=device, base=base)
        yield from _score_files(files, model, **decoding)
        return
    from grmpiqa.catalogue.lookup import cached
    from grmpiqa.config import ModelOptions
    from grmpiqa.weights.identity import identify_options
    from grmpiqa.weights.loading import load_model

    name = os.fspath(model) if model is not None else None
    identity, _ = identify_options(ModelOptions(name=name, base=base, device=device,
                                                fast_decode=draft))

    def score_misses(misses: list[str]) -> Iterator[ScoreResult]:
        return _score_files(misses, load_model(name, device=device, base=base), **decoding)

    try:
        yield from cached(files, identity.key, store, score_misses, features=features,
                          thumbnails=thumbnails, explain=explain)
    finally:
        if not isinstance(catalogue, Catalogue):
            store.close()


def _score_files(files: list[str], model: QualityModel, *, batch_size: int | None,
                 workers: int | None, draft: bool, max_pixels: int, known: dict[str, str],
                 shards: ShardIndex, features: bool, thumbnails: int, gpu_decode: str,
                 explain: bool) -> Iterator[ScoreResult]:
    """:func:`score_paths` once the files are listed and the model is loaded."""
    model.eval()
    use_gpu = resolve_gpu_decode(gpu_decode, model.device, model.preprocess)
    # the CPU's default batch starts small: its first rows come after seconds, not a batch
    ramp = batch_size is None and model.device.type == "cpu"
    if batch_size is None:
        batch_size = default_batch_size(model.device.type)
    dataset = ImageFiles(files, model.preprocess, draft=draft, max_pixels=max_pixels,
                         known_errors=known, shards=shards, gpu_jpeg=use_gpu,
                         signals=SignalOptions(thumbnails, features=features, explain=explain)
                         if features or explain else None)
    balancer = cpu_balancer(dataset, batch_size) \
        if workers is None and model.device.type == "cpu" else None
    if workers is None:
        workers = balancer.gate.pool if balancer is not None else default_workers(model.device)
    else:
        log.debug("%d decoding processes, as given", workers)
    batches = iter_batches(dataset, batch_size=batch_size, workers=workers,
                           pin_memory=model.device.type == "cuda",
                           yield_cpu=model.device.type == "cpu", ramp=ramp)
    if balancer is not None:
        batches = balancer.watch(batches, _photos)
    gpu = GpuDecoder(model.preprocess, model.device, dataset.decode_on_cpu) if use_gpu else None
    yield from score_batches(model, batches, files, gpu, embeddings=features)
