"""How many decoding processes and model threads share the CPU's cores (pure maths).

Costs are in *core-seconds per photo*:

- ``decode_s``: CPU seconds one decoding process spends on one photo (decode and
  squash, on one core);
- ``model_s``: the CPU seconds the model's threads spend per photo, all threads
  together: the core-seconds it occupies per photo (the model is assumed to scale
  linearly with its threads; on an idle machine this is its wall-clock seconds per
  photo times its threads).

With ``cores`` cores the machine can do no better than ``cores / (decode_s +
model_s)`` photos per second (the *combined limit*): every photo costs both. At
that rate decoding needs ``x = cores * decode_s / (decode_s + model_s)`` cores.
:func:`split_cores` gives the model the cores decoding leaves, ``cores -
floor(x)`` threads, and the decoders ``ceil(x) + 1`` processes: the fraction of
a core left in ``x`` is shared between one model thread and the decoders, and
one spare decoder keeps decoding while another one waits for the scheduler.
Decoders run niced (``loader._lower_priority``) so that on a shared core they
take only what the model's threads leave idle. Hence the one documented
exception to "workers + threads <= cores": they add up to at most ``cores + 2``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

SPARE_DECODERS = 1


@dataclass(frozen=True)
class Split:
    workers: int  # decoding processes allowed to decode at once
    threads: int  # the model's intra-op threads


@dataclass(frozen=True)
class Costs:
    """Measured costs, core-seconds per photo (see the module's docstring)."""

    decode_s: float
    model_s: float


def combined_limit(cores: int, costs: Costs) -> float:
    """Photos/s when both sides share the ``cores`` perfectly: ``cores / (decode + model)``."""
    return cores / (costs.decode_s + costs.model_s)


def estimate(cores: int, costs: Costs, split: Split) -> float:
    """Photos/s of ``split``: the slower side, and never past the combined limit.

    Decoders beyond the cores count for nothing; past what the model leaves they
    only get time the model's threads leave idle, which the combined limit bounds.
    """
    model = split.threads / costs.model_s if costs.model_s > 0 else math.inf
    decode = min(split.workers, cores) / costs.decode_s if costs.decode_s > 0 else math.inf
    return min(model, decode, combined_limit(cores, costs))


def split_cores(cores: int, costs: Costs, *, max_workers: int | None = None) -> Split:
    """Decoding processes and model threads for ``cores`` cores at ``costs``.

    ``max_workers`` caps the decoders (the processes started); the model then
    keeps the cores they cannot use.
    """
    if cores < 1:
        raise ValueError("cores must be at least 1")
    decode, model = max(costs.decode_s, 0.0), max(costs.model_s, 0.0)
    share = cores * decode / (decode + model) if decode + model > 0 else 0.0
    workers = max(1, math.ceil(share)) + SPARE_DECODERS
    if max_workers is not None:
        workers = max(1, min(workers, max_workers))
    busy = min(math.floor(share), workers - SPARE_DECODERS, cores - 1)  # cores decoding full time
    return Split(workers=workers, threads=max(1, cores - max(busy, 0)))


def describe(cores: int, costs: Costs, split: Split) -> str:
    """One line for the debug log."""
    return (f"{split.workers} decoding processes, {split.threads} model threads on {cores} "
            f"cores (decode {costs.decode_s * 1000:.0f} ms/photo, model "
            f"{costs.model_s * 1000:.0f} core-ms/photo; estimated "
            f"{estimate(cores, costs, split):.1f} photos/s of a "
            f"{combined_limit(cores, costs):.1f} limit)")
