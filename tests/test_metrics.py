import math

import numpy as np
import pytest
from scipy import stats

from grmpiqa.metrics import (
    agreement,
    bootstrap_srcc,
    fit_logistic4,
    krcc,
    logistic4,
    plcc,
    rmse,
    srcc,
)


@pytest.fixture
def pair():
    rng = np.random.default_rng(1)
    x = rng.random(60)
    y = 20 + 60 / (1 + np.exp(-(x - 0.5) / 0.1)) + rng.normal(0, 4, 60)
    return x, y


def test_correlations_are_scipys(pair):
    x, y = pair
    assert srcc(x, y) == pytest.approx(stats.spearmanr(x, y).statistic)
    assert plcc(x, y) == pytest.approx(stats.pearsonr(x, y).statistic)
    assert krcc(x, y) == pytest.approx(stats.kendalltau(x, y).statistic)
    assert rmse([1, 2, 3], [1, 2, 5]) == pytest.approx(math.sqrt(4 / 3))


def test_degenerate_input_gives_nan_not_an_exception():
    assert math.isnan(srcc([1, 1, 1], [1, 2, 3]))
    assert math.isnan(plcc([1], [2]))
    assert fit_logistic4([1, 1, 1, 1, 1], [1, 2, 3, 4, 5]) is None
    assert fit_logistic4([1, 2, 3], [1, 2, 3]) is None  # fewer points than it needs
    with pytest.raises(ValueError):
        srcc([1, 2], [1, 2, 3])


def test_logistic_fit_recovers_a_known_curve():
    x = np.linspace(0, 1, 40)
    y = logistic4(x, 80.0, 20.0, 0.4, 0.08)
    params = fit_logistic4(x, y)
    assert params is not None
    assert np.allclose(logistic4(x, *params), y, atol=1e-3)
    falling = fit_logistic4(x, 100 - y)  # a decreasing relation (DMOS) fits as well
    assert np.allclose(logistic4(x, *falling), 100 - y, atol=1e-3)


def test_fitted_plcc_and_rmse_beat_the_raw_ones(pair):
    x, y = pair
    report = agreement(x, y, resamples=500)
    assert report.n == 60
    assert report.plcc_logistic > report.plcc
    fitted = logistic4(x, *report.logistic)
    assert report.plcc_logistic == pytest.approx(stats.pearsonr(fitted, y).statistic)
    assert report.rmse == pytest.approx(float(np.sqrt(np.mean((fitted - y) ** 2))))
    assert report.rmse < float(np.std(y))


def test_bootstrap_interval_is_seeded_and_brackets_the_estimate(pair):
    x, y = pair
    low, high = bootstrap_srcc(x, y, resamples=800, seed=3)
    assert low < srcc(x, y) < high <= 1.0
    assert (low, high) == bootstrap_srcc(x, y, resamples=800, seed=3)
    resampled = stats.bootstrap((x, y), lambda a, b: stats.spearmanr(a, b).statistic,
                                paired=True, vectorized=False, n_resamples=800,
                                method="percentile", rng=np.random.default_rng(3))
    assert (low, high) == pytest.approx(tuple(resampled.confidence_interval), abs=0.02)


def test_lower_is_better_labels_still_give_positive_agreement(pair):
    x, y = pair
    up = agreement(x, y, resamples=200)
    down = agreement(x, -y, higher_is_better=False, resamples=200)
    assert down.srcc == pytest.approx(up.srcc) and down.krcc == pytest.approx(up.krcc)
    assert down.plcc_logistic == pytest.approx(up.plcc_logistic, abs=1e-4)
    assert down.rmse == pytest.approx(up.rmse, rel=1e-3)
    data = agreement([0.1, 0.1, 0.1], [1, 2, 3], resamples=10).to_dict()
    assert data["srcc"] is None and data["rmse"] is None and data["logistic"] is None
