"""The field's statistics for few, heavy-tailed RL runs, from `scipy.stats`.

Agarwal et al., "Deep Reinforcement Learning at the Edge of the Statistical Precipice", NeurIPS 2021
(arXiv:2108.13264), recommend, instead of a mean with a t-interval:
- the interquartile mean (IQM): the mean of the middle 50 % of the runs (`scipy.stats.trim_mean` with 25 % cut from
  each end; with fewer than 4 runs nothing is cut and the IQM is the mean — the paper's own library does the same),
  next to the mean and the median;
- 95 % *stratified* bootstrap confidence intervals: runs are resampled with replacement within each task (stratum)
  and the statistic recomputed; the percentile interval of those resamples is the CI (the paper's choice);
- the probability of improvement P(X > Y) = 1/(N M) sum_i sum_j S(x_i, y_j), S = 1 if x_i > y_j, 1/2 if equal,
  0 otherwise: the Mann-Whitney U statistic of X over Y divided by N M (`scipy.stats.mannwhitneyu`), averaged over
  tasks, with a stratified bootstrap CI resampling X and Y independently;
- performance profiles: the fraction of runs whose score exceeds tau, for every threshold tau, with bootstrap bands.

The paper's library (`rliable`) was the first choice; rliable 1.2.0 requires arch < 8, and arch 7.2 fails to import
under the pandas 3.1 this project uses (`deprecate_kwarg() missing 1 required positional argument`), so the same
definitions are computed with `scipy.stats.bootstrap` (stratification = one independently resampled sample per task).

`seeds_needed` answers "how many seeds would resolve this difference": the smallest n per arm at which a two-sided
two-sample t-test at alpha = 0.05 reaches 80 % power for the observed standardised difference (Cohen's d with the
pooled standard deviation), from the noncentral t distribution (`scipy.stats.nct`).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats

LEVEL = 0.95
RESAMPLES = 2000
SEED = 0  # the bootstrap's own generator: the same runs always give the same page
POWER = 0.8
ALPHA = 0.05
MAX_SEEDS = 1000


@dataclass(frozen=True)
class Interval:
    """A point estimate with its 95 % bootstrap CI (nan bounds when a stratum has fewer than 2 runs)."""

    point: float
    low: float
    high: float

    def __str__(self) -> str:
        if math.isnan(self.low):
            return f"{self.point:.3g}"
        return f"{self.point:.3g} [{self.low:.3g}, {self.high:.3g}]"


def iqm(values, axis: int = -1):
    return stats.trim_mean(values, 0.25, axis=axis)


def _pooled(statistic: Callable) -> Callable:
    """A statistic of all runs pooled across strata (tasks): the paper's aggregate over a runs x tasks matrix."""
    return lambda *strata, axis=-1: statistic(np.concatenate(strata, axis=-1), axis=-1)


def stratified_bootstrap(strata: Sequence[Sequence[float]], statistic: Callable) -> Interval:
    """statistic(*strata, axis=-1) -> scalar, with its percentile CI from resampling within each stratum."""
    samples = [np.asarray(s, dtype=float) for s in strata]
    point = float(statistic(*samples, axis=-1))
    if any(len(s) < 2 for s in samples):
        return Interval(point, math.nan, math.nan)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # constant resamples (every seed at reward 1.0)
        result = stats.bootstrap(
            samples,
            statistic,
            n_resamples=RESAMPLES,
            confidence_level=LEVEL,
            method="percentile",
            vectorized=True,
            paired=False,
            rng=np.random.default_rng(SEED),
        )
    ci = result.confidence_interval
    return Interval(point, float(ci.low), float(ci.high))


@dataclass(frozen=True)
class Aggregates:
    iqm: Interval
    mean: Interval
    median: Interval
    n: int


def aggregates(strata: Sequence[Sequence[float]]) -> Aggregates:
    """IQM, mean and median of one arm's runs, pooled over its strata (one list of per-seed scores per task)."""
    return Aggregates(
        iqm=stratified_bootstrap(strata, _pooled(iqm)),
        mean=stratified_bootstrap(strata, _pooled(np.mean)),
        median=stratified_bootstrap(strata, _pooled(np.median)),
        n=sum(len(s) for s in strata),
    )


def _improvement(*samples, axis=-1):
    """Mean over tasks of U(x, y) / (N M); samples = x_task1, y_task1, x_task2, y_task2, ..."""
    pairs = list(zip(samples[::2], samples[1::2]))
    per_task = [stats.mannwhitneyu(x, y, axis=-1).statistic / (x.shape[-1] * y.shape[-1]) for x, y in pairs]
    return np.mean(per_task, axis=0)


def probability_of_improvement(x_strata: Sequence[Sequence[float]], y_strata: Sequence[Sequence[float]]) -> Interval:
    """P(X > Y) of one arm's runs over another's, task by task (x_strata[k] and y_strata[k] are task k's seeds)."""
    samples = [s for pair in zip(x_strata, y_strata) for s in pair]
    return stratified_bootstrap(samples, _improvement)


def performance_profile(
    strata: Sequence[Sequence[float]], thresholds: Sequence[float]
) -> tuple[list[float], list[float], list[float]]:
    """Fraction of runs (averaged over tasks) scoring above each threshold, with the 95 % bootstrap band."""
    points, lows, highs = [], [], []
    for tau in thresholds:

        def above(*samples, axis=-1, tau=tau):
            return np.mean([np.mean(s > tau, axis=-1) for s in samples], axis=0)

        interval = stratified_bootstrap(strata, above)
        points.append(interval.point)
        lows.append(interval.low)
        highs.append(interval.high)
    return points, lows, highs


def seeds_needed(a: Sequence[float], b: Sequence[float]) -> int | None:
    """Seeds per arm for 80 % power at the observed difference; None when no number of seeds would (no difference,
    fewer than 2 seeds a side, or more than MAX_SEEDS)."""
    if len(a) < 2 or len(b) < 2:
        return None
    difference = abs(float(np.mean(a) - np.mean(b)))
    pooled = math.sqrt(((len(a) - 1) * np.var(a, ddof=1) + (len(b) - 1) * np.var(b, ddof=1)) / (len(a) + len(b) - 2))
    if difference == 0.0:
        return None
    if pooled == 0.0:
        return 2  # every seed of each arm agrees and the arms differ
    d = difference / pooled
    for n in range(2, MAX_SEEDS + 1):
        df = 2 * n - 2
        critical = stats.t.ppf(1 - ALPHA / 2, df)
        noncentrality = d * math.sqrt(n / 2)
        power = stats.nct.sf(critical, df, noncentrality) + stats.nct.cdf(-critical, df, noncentrality)
        if power >= POWER:
            return n
    return None
