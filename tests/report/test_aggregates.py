"""The field's statistics on hand-made samples, each against an independent computation written here."""

import math
from itertools import product

import numpy as np
import pytest

from harness.report.aggregates import (
    aggregates,
    iqm,
    performance_profile,
    probability_of_improvement,
    seeds_needed,
)


def test_iqm_is_the_mean_of_the_middle_half():
    values = [9.0, -3.0, 0.5, 100.0, 2.0, 1.0, 4.0, 7.0]
    middle = sorted(values)[2:6]  # 8 runs: drop the 2 lowest and the 2 highest
    assert iqm(values) == pytest.approx(sum(middle) / 4)
    assert iqm([1.0, 2.0, 30.0]) == pytest.approx(11.0)  # 3 runs: a quarter of 3 rounds to 0, nothing is cut


def test_aggregates_and_their_intervals():
    values = [0.1, 0.2, 0.25, 0.3, 0.35, 0.9]
    result = aggregates([values])
    assert result.n == 6
    assert result.mean.point == pytest.approx(sum(values) / 6)
    assert result.median.point == pytest.approx((0.25 + 0.3) / 2)
    assert result.iqm.point == pytest.approx(iqm(values))
    for interval in (result.iqm, result.mean, result.median):
        assert min(values) <= interval.low <= interval.point <= interval.high <= max(values)
        assert interval.low < interval.high
    constant = aggregates([[1.0, 1.0, 1.0]])
    assert (constant.mean.low, constant.mean.point, constant.mean.high) == (1.0, 1.0, 1.0)
    single = aggregates([[0.4]])
    assert single.mean.point == 0.4 and math.isnan(single.mean.low)


def test_bootstrap_resamples_within_each_task():
    """Two tasks whose seeds agree: resampling within a task never changes the pooled mean; resampling the pooled
    runs would (it would draw 4 runs from one task some of the time)."""
    result = aggregates([[0.0, 0.0], [1.0, 1.0]])
    assert (result.mean.low, result.mean.high) == (0.5, 0.5)


def test_probability_of_improvement_counts_pairs():
    x, y = [0.3, 0.5, 0.5, 0.9], [0.5, 0.1, 0.7]
    by_hand = sum(1.0 if a > b else 0.5 if a == b else 0.0 for a, b in product(x, y)) / (len(x) * len(y))
    result = probability_of_improvement([x], [y])
    assert result.point == pytest.approx(by_hand)
    assert 0.0 <= result.low <= result.point <= result.high <= 1.0
    # Two tasks: the mean of the per-task probabilities.
    two = probability_of_improvement([x, [1.0, 2.0]], [y, [0.0, 0.5]])
    assert two.point == pytest.approx((by_hand + 1.0) / 2)
    assert probability_of_improvement([[1.0, 2.0]], [[0.0, 0.5]]).low == 1.0  # every resample: X beats Y


def test_performance_profile_counts_runs_above_each_threshold():
    runs = [0.1, 0.4, 0.5, 0.8]
    thresholds = [0.0, 0.3, 0.45, 0.9]
    points, lows, highs = performance_profile([runs], thresholds)
    assert points == pytest.approx([sum(r > t for r in runs) / len(runs) for t in thresholds])
    assert all(lo <= p <= hi for lo, p, hi in zip(lows, points, highs))
    assert (lows[0], highs[0]) == (1.0, 1.0) and (lows[-1], highs[-1]) == (0.0, 0.0)


@pytest.mark.parametrize(("d", "n"), [(1.0, 17), (0.8, 26), (0.5, 64)])
def test_seeds_needed_matches_cohens_power_table(d, n):
    """Cohen (1988), Table 2.4.1: n per group for power 0.8, two-sided alpha 0.05, at effect size d."""
    spread = [1.0, -1.0]  # pooled standard deviation sqrt(2)
    a = list(np.add(spread, d * math.sqrt(2)))
    assert seeds_needed(a, spread) == n


def test_seeds_needed_without_a_difference_or_seeds():
    assert seeds_needed([0.5, 0.6], [0.6, 0.5]) is None  # no difference: no number of seeds resolves it
    assert seeds_needed([0.5], [0.1, 0.2]) is None
    assert seeds_needed([1.0, 1.0], [0.0, 0.0]) == 2
    assert seeds_needed([0.0, 1.0], [0.001, 1.001]) is None  # d ~ 0.0014: beyond MAX_SEEDS
