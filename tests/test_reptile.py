import itertools

import pytest
import torch

from grmpiqa.pretraining.reptile import (
    InnerLoop,
    adapt_to_task,
    batches_per_pass,
    cycle_batches,
    reptile_update,
)


def test_reptile_update_on_hand_made_tensors():
    meta = {"a": torch.tensor([1.0, 2.0]), "b": torch.tensor([[0.0]])}
    adapted = [{"a": torch.tensor([3.0, 2.0]), "b": torch.tensor([[1.0]])},
               {"a": torch.tensor([1.0, 0.0]), "b": torch.tensor([[3.0]])}]
    out = reptile_update(meta, adapted, meta_lr=0.5)
    # mean(theta - theta_i) = ([-2, 0] + [0, 2]) / 2 = [-1, 1]; b: (-1 + -3) / 2 = -2
    assert torch.allclose(out["a"], torch.tensor([1.5, 1.5]))
    assert torch.allclose(out["b"], torch.tensor([[1.0]]))
    assert torch.equal(meta["a"], torch.tensor([1.0, 2.0]))  # pure: inputs untouched
    with pytest.raises(ValueError):
        reptile_update(meta, [], 0.1)


def _toy(targets, meta_lr=0.5, steps=60):
    """Quadratic tasks with solutions ``targets``; returns (new meta, adapted, start points)."""
    param = torch.nn.Parameter(torch.zeros(2))
    parameters = {"w": param}
    meta = {"w": torch.zeros(2)}
    starts, adapted = [], []
    for target in targets:
        first = []

        def loss_fn(batch, target=target, first=first):
            if not first:
                first.append(param.detach().clone())
            return ((param - target) ** 2).sum()

        batches = itertools.repeat((torch.zeros(1), torch.zeros(1)))
        theta_i, _ = adapt_to_task(parameters, meta, batches, batches, loss_fn,
                                   InnerLoop(steps=steps, lr=0.05))
        starts.append(first[0])
        adapted.append(theta_i)
    return reptile_update(meta, adapted, meta_lr), adapted, starts


def test_parameters_move_toward_every_task_solution():
    targets = [torch.tensor([1.0, 0.0]), torch.tensor([0.0, 1.0])]
    new, adapted, _ = _toy(targets)
    for target, theta_i in zip(targets, adapted, strict=True):
        assert torch.dist(theta_i["w"], target) < 0.1  # the inner loop solves each task
        assert torch.dist(new["w"], target) < torch.dist(torch.zeros(2), target)
    # theta + eps * (mean theta_i - theta) with theta = 0, eps = 0.5
    expected = 0.5 * (adapted[0]["w"] + adapted[1]["w"]) / 2
    assert torch.allclose(new["w"], expected)


def test_every_task_starts_from_the_meta_parameters():
    """The reset the authors' code lacks: task 2 must not start where task 1 ended."""
    targets = [torch.tensor([1.0, 0.0]), torch.tensor([0.0, 1.0]), torch.tensor([-1.0, -1.0])]
    _, adapted, starts = _toy(targets)
    for start in starts:
        assert torch.equal(start, torch.zeros(2))
    assert torch.dist(adapted[0]["w"], torch.zeros(2)) > 0.9  # so a missing reset would show


def test_inner_loop_alternates_support_and_query():
    seen = []
    param = torch.nn.Parameter(torch.zeros(1))
    support = iter([("s", i) for i in range(10)])
    query = iter([("q", i) for i in range(10)])

    def loss_fn(batch):
        seen.append(batch)
        return (param - 1.0).pow(2).sum()

    _, mean_query = adapt_to_task({"p": param}, {"p": torch.zeros(1)}, support, query, loss_fn,
                                  InnerLoop(steps=3))
    assert seen == [("s", 0), ("q", 0), ("s", 1), ("q", 1), ("s", 2), ("q", 2)]
    assert mean_query > 0
    with pytest.raises(ValueError):
        InnerLoop(steps=0)


def test_cycle_batches_visits_every_example_once_per_pass():
    inputs = torch.arange(10).float()
    batches = cycle_batches(inputs, inputs * 2, 4, torch.Generator().manual_seed(0))
    first_pass = [next(batches) for _ in range(batches_per_pass(10, 4))]
    assert [len(x) for x, _ in first_pass] == [4, 4, 2]
    seen = torch.cat([x for x, _ in first_pass])
    assert sorted(seen.tolist()) == list(range(10))
    assert all(torch.equal(y, x * 2) for x, y in first_pass)
    assert len(next(batches)[0]) == 4  # and then it starts again
