"""Out-of-memory backoff, with the error injected on the CPU."""

import logging

import torch

from grmpiqa.data.dataset import Batch
from grmpiqa.scoring.engine import BackoffPredictor, is_out_of_memory, score_batches


class FlakyModel:
    """Raises CUDA's out-of-memory error for batches bigger than ``fits``."""

    label = None
    precision = "fp32"
    device = torch.device("cpu")

    def __init__(self, fits: int) -> None:
        self.fits = fits
        self.sizes: list[int] = []

    def predict(self, pixels):
        self.sizes.append(pixels.shape[0])
        if pixels.shape[0] > self.fits:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return pixels.float().mean(dim=(1, 2, 3)) / 255.0


def _batches(n_batches: int, size: int):
    index = 0
    for _ in range(n_batches):
        pixels = torch.arange(index, index + size, dtype=torch.uint8).view(-1, 1, 1, 1)
        yield Batch(list(range(index, index + size)), pixels.expand(-1, 3, 2, 2).clone(), {})
        index += size


def test_a_batch_that_does_not_fit_is_retried_at_half_size(caplog):
    model = FlakyModel(fits=3)
    paths = [f"{i}.jpg" for i in range(16)]
    with caplog.at_level(logging.WARNING, logger="grmpiqa"):
        results = list(score_batches(model, _batches(2, 8), paths))
    assert [r.path for r in results] == paths
    assert all(r.ok for r in results)
    assert abs(results[5].score - 5 / 255) < 1e-7
    assert model.sizes[:3] == [8, 4, 2]  # halved until it fits ...
    assert set(model.sizes[3:]) == {2}  # ... and stays there for the rest of the run
    assert "going on at batch size 2" in caplog.text


def test_an_image_that_never_fits_gets_an_error_row():
    model = FlakyModel(fits=0)
    results = list(score_batches(model, _batches(1, 4), [f"{i}.jpg" for i in range(4)]))
    assert [r.error for r in results] == ["out of memory even at batch size 1"] * 4


def test_other_errors_are_not_swallowed():
    class Broken(FlakyModel):
        def predict(self, pixels):
            raise ValueError("a bug")

    predictor = BackoffPredictor(Broken(fits=8))
    try:
        predictor(torch.zeros(2, 3, 2, 2, dtype=torch.uint8))
    except ValueError:
        pass
    else:
        raise AssertionError("the bug was swallowed")


def test_out_of_memory_detection():
    assert is_out_of_memory(torch.cuda.OutOfMemoryError("x"))
    assert is_out_of_memory(RuntimeError("MPS backend out of memory (MPS allocated: 1 GB)"))
    assert not is_out_of_memory(RuntimeError("shape mismatch"))
