"""Scale-out without cluster code of our own: shards for any scheduler, ranks for torchrun.

``--shard K/N`` keeps every N-th file of the deterministic input list,
starting at K (0-based), so N independent jobs (Slurm arrays, Kubernetes
indexed jobs, GNU parallel) cover every image exactly once. Under
``torchrun``, each rank scores its share and rank 0 writes the merged rows in
input order, streaming them as the ranks progress.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from itertools import islice
from typing import Any, TypeVar

from grmpiqa.env import launched_rank
from grmpiqa.errors import ConfigError

T = TypeVar("T")
_SHARD = re.compile(r"^\s*(\d+)\s*/\s*(\d+)\s*$")


@dataclass(frozen=True)
class Shard:
    index: int
    count: int

    def take(self, items: Sequence[T]) -> list[T]:
        return list(items[self.index::self.count])


def parse_shard(text: str) -> Shard:
    """``K/N`` with 0 <= K < N (Kubernetes' JOB_COMPLETION_INDEX and torchrun ranks count
    from 0 too)."""
    match = _SHARD.match(text or "")
    if not match:
        raise ConfigError(f"{text!r}: expected K/N, e.g. 0/4", param="shard")
    index, count = int(match.group(1)), int(match.group(2))
    if count < 1 or not 0 <= index < count:
        raise ConfigError(f"{text!r}: need 0 <= K < N (shards are numbered from 0)",
                          param="shard")
    return Shard(index, count)


@dataclass(frozen=True)
class RankInfo:
    rank: int
    world_size: int
    local_rank: int
    local_world_size: int

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def torchrun_rank() -> RankInfo | None:
    """The rank torchrun (or any env:// launcher) gave this process, if more than one."""
    launched = launched_rank()
    if launched is None:
        return None
    return RankInfo(launched.rank, launched.world_size, launched.local_rank,
                    launched.local_world_size)


def start(info: RankInfo, device: str) -> str:
    """Join the process group (gloo: it moves only small Python objects) and pick the device."""
    import torch
    import torch.distributed as dist

    if not dist.is_initialized():
        dist.init_process_group(backend="gloo")
    if device in ("auto", "cuda") and torch.cuda.is_available():
        return f"cuda:{info.local_rank % torch.cuda.device_count()}"
    if device in ("auto", "cpu"):
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") \
            else (os.cpu_count() or 1)
        torch.set_num_threads(max(1, cores // info.local_world_size))
        return "cpu"
    return device


def stop() -> None:
    import torch.distributed as dist

    if dist.is_initialized():
        dist.destroy_process_group()


def merge_in_order(info: RankInfo, local: Iterator[T], total: int, chunk: int = 32
                   ) -> Iterator[T]:
    """Gather every rank's results to rank 0, which yields all ``total`` of them in input order.

    Rank r holds the items r, r + W, r + 2W, ... Results travel in rounds of
    ``chunk`` per rank, so rank 0 writes rows while the ranks still work and
    holds at most a few rounds in memory. Other ranks yield nothing.
    """
    import torch.distributed as dist

    world = info.world_size
    per_rank = -(-total // world)
    rounds = -(-per_rank // chunk) if per_rank else 0
    positions = iter(range(info.rank, total, world))
    pending: dict[int, Any] = {}
    next_index = 0
    for _ in range(rounds):
        mine = list(zip(islice(positions, chunk), islice(local, chunk), strict=True))
        gathered: list[Any] | None = [None] * world if info.is_main else None
        dist.gather_object(mine, gathered, dst=0)
        if not info.is_main:
            continue
        for part in gathered or []:
            for index, item in part:
                pending[index] = item
        while next_index in pending:
            yield pending.pop(next_index)
            next_index += 1
    if info.is_main and next_index != total:
        raise RuntimeError(f"merged {next_index} of {total} results; a rank lost some")


def all_ok(ok: bool) -> bool:
    """True only if every rank reports ``ok``, so one rank's failure cannot strand the others."""
    import torch.distributed as dist

    flags: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(flags, bool(ok))
    return all(flags)


def score_here(files: Sequence[str], device: str, load: Callable[[str], Any],
               score: Callable[[Any, Sequence[str]], Iterator[T]]
               ) -> tuple[Any, Iterator[T] | None]:
    """Load the model and score what this process is responsible for.

    A plain process scores every file. Under torchrun, each rank loads the
    model on its own device and scores its share; rank 0 gets every result,
    merged in input order, and other ranks get None once their share is done.
    """
    info = torchrun_rank()
    if info is None:
        model = load(device)
        return model, score(model, files)
    device = start(info, device)
    model, failure = None, None
    try:
        model = load(device)
    except BaseException as exc:  # every rank must hear of it before anyone raises
        failure = exc
    if not all_ok(failure is None):
        stop()
        if failure is not None:
            raise failure
        raise ConfigError("another rank failed to load the model; see its error above")
    merged = merge_in_order(info, score(model, files[info.rank::info.world_size]), len(files))
    if info.is_main:
        return model, _stop_when_done(merged)
    for _ in merged:
        pass
    stop()
    return model, None


def _stop_when_done(results: Iterator[T]) -> Iterator[T]:
    try:
        yield from results
    finally:
        stop()
