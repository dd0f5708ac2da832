"""Decoding processes and model threads re-balanced during a run from measured costs."""

import logging

import numpy as np
import pytest
import torch
from PIL import Image

from grmpiqa.data.balance import Balancer, DecodeGate
from grmpiqa.data.policy import Costs, Split, combined_limit, estimate


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _run(gate: DecodeGate, balancer: Balancer, clock: Clock, photo_costs, *,
         batch: int, model_s: float) -> None:
    """Feed batches of photos costing ``photo_costs`` to decode; the consumer's model
    spends ``model_s`` CPU seconds per photo (the balancer's clock is a CPU clock)."""
    def batches():
        for start in range(0, len(photo_costs), batch):
            for cost in photo_costs[start:start + batch]:
                gate.record(cost)
            yield min(batch, len(photo_costs) - start)

    for photos in balancer.watch(batches(), photos=lambda n: n):
        clock.now += photos * model_s


def _balancer(cores: int, pool: int):
    gate, clock, threads = DecodeGate(pool), Clock(), [cores]
    balancer = Balancer(gate, cores, set_threads=threads.append, get_threads=lambda: threads[-1],
                        clock=clock)
    return gate, balancer, clock, threads


def test_a_mixed_folder_moves_cores_to_decoding_when_the_photos_grow():
    gate, balancer, clock, threads = _balancer(cores=8, pool=9)
    small, big = [0.005] * 64, [0.2] * 96  # LIVEC-size photos, then 12 MP ones
    _run(gate, balancer, clock, small + big, batch=8, model_s=0.2)
    first, last = balancer.history[0], balancer.history[-1]
    assert first == Split(workers=2, threads=8)  # decoding is 2% of the cost: one + spare
    # half of it: 4 cores' worth of decoding; taken while the window still held small
    # photos, (5, 5) already reaches the combined limit, so (5, 4) is not worth a change
    assert last == Split(workers=5, threads=5)
    assert estimate(8, Costs(0.2, 0.2), last) == pytest.approx(combined_limit(8, Costs(0.2, 0.2)))
    assert len(balancer.history) == 2  # steady costs do not re-split
    assert threads[-2] == 5 and threads[-1] == 8  # restored at the end
    assert gate.allowed == 5


def test_the_split_follows_back_when_photos_shrink():
    gate, balancer, clock, _ = _balancer(cores=16, pool=17)
    _run(gate, balancer, clock, [0.4] * 64 + [0.01] * 128, batch=8, model_s=0.2)
    assert balancer.history[0].workers > balancer.history[-1].workers
    assert balancer.history[-1] == Split(workers=2, threads=16)


def test_the_gate_withdraws_tokens_a_decoder_holds_once_it_lets_go():
    gate = DecodeGate(3)
    with gate.decoding(), gate.decoding():
        gate.allow(1)  # one free token withdrawn now, the rest later
        assert gate.allowed == 2
    gate.allow(1)
    assert gate.allowed == 1
    gate.allow(3)
    assert gate.allowed == 3
    assert gate.take()[1] == 2 and gate.take() == (0.0, 0)


def _mixed_folder(root):
    rng = np.random.default_rng(0)
    for i in range(6):
        side = (40, 30) if i % 2 else (800, 600)
        pixels = rng.integers(0, 256, (side[1], side[0], 3), dtype=np.uint8)
        Image.fromarray(pixels).save(root / f"{i}.jpg", quality=90)
    return sorted(str(p) for p in root.iterdir())


def test_score_paths_balances_on_the_cpu_and_says_so(tiny_model, tmp_path, caplog):
    from grmpiqa.scoring.engine import score_paths

    files = _mixed_folder(tmp_path)
    before = torch.get_num_threads()
    caplog.set_level(logging.DEBUG, logger="grmpiqa")
    balanced = [r.score for r in score_paths(files, tiny_model, batch_size=1, expand=False)]
    assert torch.get_num_threads() == before
    chosen = [r.message for r in caplog.records if "decoding and model split" in r.message]
    assert len(chosen) == 1 and "model threads" in chosen[0]
    exact = [r.score for r in score_paths(files, tiny_model, batch_size=1, expand=False,
                                          workers=0)]
    assert balanced == pytest.approx(exact, abs=1e-6) and None not in balanced


def test_workers_given_override_the_policy(tiny_model, tmp_path, caplog, monkeypatch):
    import grmpiqa.scoring.engine as engine

    def refuse(*_, **__):
        raise AssertionError("workers were given: nothing to measure")

    monkeypatch.setattr(engine, "cpu_balancer", refuse)
    caplog.set_level(logging.DEBUG, logger="grmpiqa")
    results = list(engine.score_paths(_mixed_folder(tmp_path), tiny_model, batch_size=1,
                                      expand=False, workers=1))
    assert all(r.score is not None for r in results)
    assert any("1 decoding processes, as given" in r.message for r in caplog.records)


def test_every_decoder_of_a_pool_is_niced_below_the_model(tmp_path):
    """Several decoders beside the model's threads: each yields the CPU to them."""
    import os

    from grmpiqa.config import PreprocessConfig
    from grmpiqa.data.dataset import ImageFiles
    from grmpiqa.data.loader import iter_batches

    class Niceness(ImageFiles):
        def __getitem__(self, index):
            return index, None, f"{os.getpid()} {os.nice(0)}", None

    files = _mixed_folder(tmp_path)
    dataset = Niceness(files, PreprocessConfig())
    seen = {}
    for batch in iter_batches(dataset, batch_size=1, workers=2, yield_cpu=True):
        seen.update(e.split() for e in batch.errors.values())
    assert len(seen) == 2  # both processes decoded
    assert all(int(nice) >= os.nice(0) + 10 for nice in seen.values()), seen
