"""Decoded batches in input order, decoding in worker processes beside the model."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Mapping, Sequence

import torch
from torch.utils.data import DataLoader

from grmpiqa.config import DEFAULT_MAX_PIXELS, PreprocessConfig
from grmpiqa.data.balance import PREFETCH_BATCHES, Balancer, DecodeGate
from grmpiqa.data.dataset import Batch, ImageFiles, SignalOptions, collate

#: Decoding processes started at most when their number follows the measured costs.
MAX_POOL = 32


def available_cores() -> int:
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return cores or 1


def default_workers(device: torch.device) -> int:
    """Without measured costs. CPU: the model is most of the cost, one decoder. GPU: decoding
    is, use the cores (:func:`cpu_balancer` measures instead)."""
    return 1 if device.type == "cpu" else min(16, available_cores())


def cpu_balancer(dataset: ImageFiles, batch_size: int) -> Balancer:
    """A pool of decoders for ``dataset`` whose share of the cores, and the model's threads,
    follow the costs measured during the run (:mod:`grmpiqa.data.balance`)."""
    # the cores to share: the model's threads when the run starts (torch's default is the
    # physical cores; OMP_NUM_THREADS or a torchrun rank's share lower it), within reach
    cores = max(1, min(torch.get_num_threads(), available_cores()))
    batches = -(-len(dataset) // batch_size)
    # no more processes than cores: beyond them torch warns, and the policy rarely asks
    dataset.gate = DecodeGate(max(1, min(MAX_POOL, cores, batches)))
    return Balancer(dataset.gate, cores, set_threads=torch.set_num_threads,
                    get_threads=torch.get_num_threads)


def _lower_priority(_: int) -> None:
    """Decoders yield the CPU to the model's threads: on a CPU-bound run a decoder that
    preempts one matrix-multiply thread stalls all of them at the next barrier."""
    with contextlib.suppress(OSError, AttributeError):
        os.nice(10)


def _start_method(dataset: ImageFiles, workers: int) -> str | None:
    """How decoding workers start: ``forkserver`` when RAW files are among the photos.
    LibRaw runs OpenMP, whose thread pool a forked child can inherit in a broken state
    (a hang in the demosaic; rawpy warns in every forked worker); a fork server is a
    fresh process with no pool. Other photos keep fork, which starts workers at once."""
    from grmpiqa.io.extensions import extension_of
    from grmpiqa.io.inputs import RAW_EXTENSIONS

    raw = set(RAW_EXTENSIONS)
    if workers and any(extension_of(path) in raw for path in dataset.paths):
        return "forkserver"
    return None


def ramp_batches(count: int, batch_size: int) -> list[list[int]]:
    """Indices of ``count`` photos in batches: one photo, then the rest of a batch, then
    ``batch_size`` each. On a CPU a batch takes seconds: the first row then comes after one
    photo's forward pass instead of a whole batch's (the bar moves at once, a stopped run
    keeps it), for the cost of one small batch (a ramp of 1, 2, 4 cost more,
    benchmarks/cpu_batch.py)."""
    sizes = [1, batch_size - 1] if batch_size > 1 else [1]
    batches, start = [], 0
    while start < count:
        size = sizes[len(batches)] if len(batches) < len(sizes) else batch_size
        batches.append(list(range(start, min(count, start + size))))
        start += size
    return batches


def iter_batches(paths: Sequence[str] | ImageFiles, cfg: PreprocessConfig | None = None, *,
                 batch_size: int, workers: int, pin_memory: bool = False, draft: bool = False,
                 max_pixels: int = DEFAULT_MAX_PIXELS, yield_cpu: bool = False,
                 known_errors: Mapping[str, str] | None = None,
                 signals: SignalOptions | None = None, ramp: bool = False) -> Iterator[Batch]:
    """Decoded batches of ``paths`` (or of a ready :class:`ImageFiles`), in order; with
    ``ramp``, the first ones smaller (:func:`ramp_batches`)."""
    if isinstance(paths, ImageFiles):
        dataset = paths
    else:
        assert cfg is not None, "cfg is needed to decode paths"
        dataset = ImageFiles(paths, cfg, draft=draft, max_pixels=max_pixels,
                             known_errors=known_errors, signals=signals)
    # a list of index batches in order, or torch's own batches of batch_size
    sampler = ramp_batches(len(dataset), batch_size) if ramp else None
    count = len(sampler) if sampler is not None else -(-len(dataset) // batch_size)
    workers = max(0, min(workers, count))
    loader = DataLoader(
        dataset,
        batch_size=batch_size if sampler is None else 1,
        batch_sampler=sampler,
        shuffle=False,
        num_workers=workers,
        collate_fn=collate,
        pin_memory=pin_memory,
        prefetch_factor=PREFETCH_BATCHES if workers else None,
        persistent_workers=False,
        worker_init_fn=_lower_priority if yield_cpu and workers else None,
        multiprocessing_context=_start_method(dataset, workers),
    )
    yield from loader
