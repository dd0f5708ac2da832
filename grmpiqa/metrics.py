"""How well predicted quality agrees with human labels: the statistics IQA papers report.

All statistics come from scipy. SRCC, KRCC and raw PLCC compare predictions
with labels directly; the fitted PLCC and the RMSE use the standard (VQEG)
4-parameter logistic that maps predictions onto the label scale first.
A statistic that cannot be computed (constant input, too few images) is NaN.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np
from scipy import optimize, stats

MIN_LOGISTIC_POINTS = 5  # four parameters need more points than that to mean anything


def _arrays(pred: Sequence[float], target: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    x = np.asarray(pred, dtype=np.float64).ravel()
    y = np.asarray(target, dtype=np.float64).ravel()
    if x.shape != y.shape:
        raise ValueError(f"{x.size} predictions but {y.size} labels")
    return x, y


def _quiet(func, *args, **kwargs) -> float:
    """Run a scipy statistic; constant or too-short input gives NaN instead of a warning."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            return float(func(*args, **kwargs).statistic)
        except ValueError:
            return math.nan


def srcc(pred: Sequence[float], target: Sequence[float]) -> float:
    """Spearman rank correlation (monotonic agreement)."""
    x, y = _arrays(pred, target)
    return _quiet(stats.spearmanr, x, y) if x.size >= 2 else math.nan


def plcc(pred: Sequence[float], target: Sequence[float]) -> float:
    """Pearson linear correlation, on the predictions as they are."""
    x, y = _arrays(pred, target)
    return _quiet(stats.pearsonr, x, y) if x.size >= 2 else math.nan


def krcc(pred: Sequence[float], target: Sequence[float]) -> float:
    """Kendall rank correlation (tau-b)."""
    x, y = _arrays(pred, target)
    return _quiet(stats.kendalltau, x, y) if x.size >= 2 else math.nan


def rmse(pred: Sequence[float], target: Sequence[float]) -> float:
    x, y = _arrays(pred, target)
    return float(np.sqrt(np.mean((x - y) ** 2))) if x.size else math.nan


def logistic4(x: np.ndarray, b1: float, b2: float, b3: float, b4: float) -> np.ndarray:
    """VQEG's monotonic logistic: from ``b2`` (low x) to ``b1`` (high x), centred at ``b3``."""
    z = np.clip(-(np.asarray(x, dtype=np.float64) - b3) / max(abs(b4), 1e-12), -500.0, 500.0)
    return b2 + (b1 - b2) / (1.0 + np.exp(z))


def fit_logistic4(pred: Sequence[float], target: Sequence[float]
                  ) -> tuple[float, float, float, float] | None:
    """Least-squares logistic parameters mapping predictions to labels; None if it fails."""
    x, y = _arrays(pred, target)
    if x.size < MIN_LOGISTIC_POINTS or np.ptp(x) == 0 or np.ptp(y) == 0:
        return None
    high, low = (float(y.max()), float(y.min())) if np.corrcoef(x, y)[0, 1] >= 0 \
        else (float(y.min()), float(y.max()))
    start = (high, low, float(np.mean(x)), float(np.std(x)) or 1.0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            params, _ = optimize.curve_fit(logistic4, x, y, p0=start, maxfev=20000)
        except (RuntimeError, ValueError, optimize.OptimizeWarning):
            return None
    if not np.all(np.isfinite(params)):
        return None
    return tuple(float(p) for p in params)  # type: ignore[return-value]


def _vectorised_srcc(x: np.ndarray, y: np.ndarray, axis: int = -1) -> np.ndarray:
    """Spearman's rho along ``axis`` for many bootstrap resamples at once."""
    rx = stats.rankdata(x, axis=axis)
    ry = stats.rankdata(y, axis=axis)
    rx = rx - rx.mean(axis=axis, keepdims=True)
    ry = ry - ry.mean(axis=axis, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        return (rx * ry).sum(axis=axis) / np.sqrt((rx ** 2).sum(axis=axis) *
                                                  (ry ** 2).sum(axis=axis))


def bootstrap_srcc(pred: Sequence[float], target: Sequence[float], *, resamples: int = 2000,
                   confidence: float = 0.95, seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap interval for SRCC, resampling (prediction, label) pairs."""
    x, y = _arrays(pred, target)
    if x.size < 3 or resamples < 1 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return math.nan, math.nan
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = stats.bootstrap((x, y), _vectorised_srcc, paired=True, vectorized=True,
                                 n_resamples=resamples, confidence_level=confidence,
                                 method="percentile", rng=np.random.default_rng(seed))
    low, high = result.confidence_interval
    return float(low), float(high)


@dataclass(frozen=True)
class AgreementReport:
    """Every statistic ``grmpiqa evaluate`` prints; NaN where it cannot be computed."""

    n: int
    srcc: float
    srcc_low: float
    srcc_high: float
    plcc: float
    plcc_logistic: float
    krcc: float
    rmse: float
    logistic: tuple[float, float, float, float] | None

    def to_dict(self) -> dict:
        """JSON-ready: NaN becomes None."""
        out = asdict(self)
        for key, value in out.items():
            if isinstance(value, float) and not math.isfinite(value):
                out[key] = None
        out["logistic"] = list(self.logistic) if self.logistic else None
        return out


def agreement(pred: Sequence[float], target: Sequence[float], *, higher_is_better: bool = True,
              resamples: int = 2000, seed: int = 0) -> AgreementReport:
    """All statistics at once, oriented so that a good model correlates positively even on
    a lower-is-better (DMOS) scale. The logistic maps predictions onto the labels as they
    are (it may decrease), so the fitted PLCC and the RMSE are in the labels' own units."""
    x, y = _arrays(pred, target)
    oriented = y if higher_is_better else -y
    params = fit_logistic4(x, y)
    fitted = logistic4(x, *params) if params else None
    low, high = bootstrap_srcc(x, oriented, resamples=resamples, seed=seed)
    return AgreementReport(
        n=int(x.size),
        srcc=srcc(x, oriented),
        srcc_low=low,
        srcc_high=high,
        plcc=plcc(x, oriented),
        plcc_logistic=plcc(fitted, y) if fitted is not None else math.nan,
        krcc=krcc(x, oriented),
        rmse=rmse(fitted, y) if fitted is not None else math.nan,
        logistic=params,
    )
