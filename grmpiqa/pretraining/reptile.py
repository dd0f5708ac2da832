"""First-order Reptile (docs/method.md, "Pre-train"), independent of the quality model.

For every task the trainable parameters are reset to the meta parameters
theta, adapted with a fresh Adam on the task's support and query batches, and
the adapted copy theta_i is kept; after all tasks
``theta <- theta - eps * mean_i(theta - theta_i)``.

The reset is the point the authors' code misses: it copies theta once and
then lets the task model drift from task to task, so each "adapted" copy
starts where the previous task left it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

import torch

Batch = tuple[torch.Tensor, torch.Tensor]
LossFn = Callable[[Batch], torch.Tensor]


def reptile_update(meta: Mapping[str, torch.Tensor],
                   adapted: Iterable[Mapping[str, torch.Tensor]],
                   meta_lr: float) -> dict[str, torch.Tensor]:
    """``theta - meta_lr * mean_i(theta - theta_i)``: the Reptile meta step, as a pure function."""
    total: dict[str, torch.Tensor] = {k: torch.zeros_like(v) for k, v in meta.items()}
    count = 0
    for theta_i in adapted:
        for key, value in meta.items():
            total[key] += value - theta_i[key]
        count += 1
    if count == 0:
        raise ValueError("a Reptile update needs at least one adapted task")
    return {key: value - meta_lr * total[key] / count for key, value in meta.items()}


@dataclass(frozen=True)
class InnerLoop:
    """How one task adapts: ``steps`` pairs of Adam steps, one on a support batch then one
    on a query batch (the authors' order), with learning rate ``lr``."""

    steps: int
    lr: float = 1e-4

    def __post_init__(self) -> None:
        if self.steps < 1:
            raise ValueError("the inner loop needs at least one step")
        if not self.lr > 0:
            raise ValueError("the inner learning rate must be positive")


def snapshot(parameters: Mapping[str, torch.nn.Parameter]) -> dict[str, torch.Tensor]:
    return {k: p.detach().clone() for k, p in parameters.items()}


def load_into(parameters: Mapping[str, torch.nn.Parameter],
              values: Mapping[str, torch.Tensor]) -> None:
    with torch.no_grad():
        for key, param in parameters.items():
            param.copy_(values[key])


def adapt_to_task(parameters: Mapping[str, torch.nn.Parameter], meta: Mapping[str, torch.Tensor],
                  support: Iterable[Batch], query: Iterable[Batch], loss_fn: LossFn,
                  inner: InnerLoop) -> tuple[dict[str, torch.Tensor], float]:
    """Reset ``parameters`` to ``meta``, adapt them to one task, return (theta_i, mean query loss).

    ``support`` and ``query`` are endless iterators of batches (see
    :func:`cycle_batches`); ``loss_fn`` runs the model on a batch.
    """
    load_into(parameters, meta)  # the reset: every task starts from theta
    optimiser = torch.optim.Adam(list(parameters.values()), lr=inner.lr)
    support_it, query_it = iter(support), iter(query)
    query_total = 0.0
    for _ in range(inner.steps):
        for batches, is_query in ((support_it, False), (query_it, True)):
            optimiser.zero_grad(set_to_none=True)
            loss = loss_fn(next(batches))
            loss.backward()
            optimiser.step()
            if is_query:
                query_total += float(loss.detach())
    return snapshot(parameters), query_total / inner.steps


def cycle_batches(inputs: torch.Tensor, labels: torch.Tensor, batch_size: int,
                  generator: torch.Generator) -> Iterable[Batch]:
    """Endless shuffled passes over (inputs, labels) in batches of at most ``batch_size``."""
    count = inputs.shape[0]
    if count == 0:
        raise ValueError("cannot draw batches from an empty set")
    while True:
        order = torch.randperm(count, generator=generator)
        for start in range(0, count, batch_size):
            index = order[start:start + batch_size]
            yield inputs[index], labels[index]


def batches_per_pass(count: int, batch_size: int) -> int:
    return -(-count // batch_size)
