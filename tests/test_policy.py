"""The split of the cores between decoding processes and model threads (pure)."""

import itertools

import pytest

from grmpiqa.data.policy import (
    SPARE_DECODERS,
    Costs,
    Split,
    combined_limit,
    estimate,
    split_cores,
)

CORES = [2, 8, 16, 64]
RATIOS = [0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0]  # decode cost / model cost
MODEL_S = 0.25  # core-seconds per photo: bf16 ViT-B/16 on one AVX-512 core


def _costs(ratio: float) -> Costs:
    return Costs(decode_s=ratio * MODEL_S, model_s=MODEL_S)


@pytest.mark.parametrize("cores", CORES)
@pytest.mark.parametrize("ratio", RATIOS)
def test_neither_side_waits_and_the_oversubscription_is_bounded(cores, ratio):
    costs = _costs(ratio)
    split = split_cores(cores, costs)
    assert split.workers >= 1 and split.threads >= 1
    # the documented exception: one shared core and one spare decoder
    assert split.workers + split.threads <= cores + 1 + SPARE_DECODERS
    limit = combined_limit(cores, costs)
    assert split.threads / costs.model_s >= 0.999 * limit  # the model keeps up
    assert split.workers / costs.decode_s >= 0.999 * limit  # and decoding does
    assert estimate(cores, costs, split) >= 0.999 * limit


@pytest.mark.parametrize("cores", CORES)
def test_the_decoders_take_no_more_cores_than_decoding_needs(cores):
    for ratio in RATIOS:
        costs = _costs(ratio)
        split = split_cores(cores, costs)
        needed = cores * costs.decode_s / (costs.decode_s + costs.model_s)
        assert cores - split.threads <= needed  # full-time decoding cores
        assert split.workers <= needed + 1 + SPARE_DECODERS


@pytest.mark.parametrize("cores", CORES)
def test_monotone_in_the_decode_cost(cores):
    splits = [split_cores(cores, Costs(d / 100 * MODEL_S, MODEL_S)) for d in range(1, 1001)]
    for cheaper, dearer in itertools.pairwise(splits):
        assert dearer.workers >= cheaper.workers
        assert dearer.threads <= cheaper.threads


def test_figures_by_hand():
    # 2 cores, bf16 12 MP photos: 88 ms decode, 8.3 img/s on 2 threads = 241 core-ms
    costs = Costs(0.088, 2 / 8.3)
    assert split_cores(2, costs) == Split(workers=2, threads=2)
    assert combined_limit(2, costs) == pytest.approx(6.08, abs=0.01)
    # 64 cores, decoding five times the model: 53.3 decoding cores
    assert split_cores(64, Costs(5.0, 1.0)) == Split(workers=55, threads=11)
    # decoding costs nothing: every core to the model, one decoder and its spare
    assert split_cores(16, Costs(0.0, 1.0)) == Split(workers=2, threads=16)
    assert split_cores(1, Costs(0.1, 0.1)) == Split(workers=2, threads=1)


def test_a_cap_on_the_decoders_gives_their_cores_to_the_model():
    capped = split_cores(64, Costs(5.0, 1.0), max_workers=16)
    assert capped == Split(workers=16, threads=49)
    assert estimate(64, Costs(5.0, 1.0), capped) == pytest.approx(16 / 5.0)


def test_estimate_takes_the_slower_side():
    costs = Costs(0.1, 0.4)
    assert estimate(8, costs, Split(workers=1, threads=7)) == pytest.approx(10.0)
    assert estimate(8, costs, Split(workers=7, threads=1)) == pytest.approx(2.5)
    with pytest.raises(ValueError):
        split_cores(0, costs)
