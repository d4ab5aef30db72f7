"""Means with Student-t 95% confidence intervals, and Welch's unequal-variance t-test, from `scipy.stats`."""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import numpy as np
from scipy import stats

LEVEL = 0.95


@dataclass(frozen=True)
class Estimate:
    """Mean of n values with the half-width of its 95% CI (nan when n < 2)."""

    mean: float
    half_width: float
    n: int
    std: float


def mean_ci(values: list[float]) -> Estimate:
    n = len(values)
    if n == 0:
        return Estimate(math.nan, math.nan, 0, math.nan)
    mean = float(np.mean(values))
    if n < 2:
        return Estimate(mean, math.nan, 1, math.nan)
    std = float(np.std(values, ddof=1))
    quantile = float(stats.t.ppf((1 + LEVEL) / 2, n - 1))
    return Estimate(mean, quantile * std / math.sqrt(n), n, std)


@dataclass(frozen=True)
class Welch:
    """Welch's unequal-variance t-test of mean(a) - mean(b)."""

    difference: float
    ci_low: float
    ci_high: float
    t: float
    df: float
    p: float


def welch_test(a: list[float], b: list[float]) -> Welch | None:
    """None when either side has fewer than 2 values or neither side varies (no test is possible)."""
    if len(a) < 2 or len(b) < 2 or np.var(a) + np.var(b) == 0.0:
        return None
    with warnings.catch_warnings():
        # scipy warns about "nearly identical" data for a side whose seeds all agree (e.g. every reward 1.0): its
        # variance is exactly 0 and the other side's carries the test.
        warnings.filterwarnings("ignore", "Precision loss occurred in moment calculation", RuntimeWarning)
        result = stats.ttest_ind(a, b, equal_var=False)
    ci = result.confidence_interval(LEVEL)
    difference = float(np.mean(a) - np.mean(b))
    return Welch(difference, *map(float, (ci.low, ci.high, result.statistic, result.df, result.pvalue)))
