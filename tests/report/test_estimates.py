"""The report's means, CIs and Welch tests on hand-made samples, against the textbook formulas computed here: sample
variance with n - 1, the Welch-Satterthwaite degrees of freedom, and Student's t density integrated numerically."""

import math

import pytest

from harness.report.estimates import mean_ci, welch_test


def t_density(x: float, df: float) -> float:
    """Student's t density: Gamma((df+1)/2) / (sqrt(df pi) Gamma(df/2)) (1 + x^2/df)^(-(df+1)/2)."""
    log_norm = math.lgamma((df + 1) / 2) - math.lgamma(df / 2) - 0.5 * math.log(df * math.pi)
    return math.exp(log_norm - (df + 1) / 2 * math.log1p(x * x / df))


def central_mass(t: float, df: float, intervals: int = 20_000) -> float:
    """P(|T| <= |t|) by Simpson's rule on [0, |t|]."""
    h = abs(t) / intervals
    inner = sum((4 if i % 2 else 2) * t_density(i * h, df) for i in range(1, intervals))
    return 2 * h / 3 * (t_density(0.0, df) + inner + t_density(abs(t), df))


def sample_stats(values: list[float]) -> tuple[float, float, int]:
    n = len(values)
    mean = sum(values) / n
    return mean, sum((v - mean) ** 2 for v in values) / (n - 1), n


@pytest.mark.parametrize("values", [[0.0, 2.0], [-2, -1, 0, 1, 2], [0.31, 0.52, 0.47, 0.50, 0.38, 0.29, 0.61]])
def test_mean_ci_is_the_student_t_interval(values):
    mean, variance, n = sample_stats(values)
    estimate = mean_ci(values)
    assert (estimate.mean, estimate.std, estimate.n) == pytest.approx((mean, math.sqrt(variance), n), rel=1e-12)
    quantile = estimate.half_width / math.sqrt(variance / n)
    assert central_mass(quantile, n - 1) == pytest.approx(0.95, abs=1e-9)  # the 97.5% quantile of t(n - 1)


def test_t_quantiles_match_the_tables():
    # Printed tables: t(0.975; 1) = 12.7062, t(0.975; 4) = 2.7764 (half-width = t * s / sqrt(n)).
    assert mean_ci([0.0, 2.0]).half_width == pytest.approx(12.7062, abs=1e-4)  # s / sqrt(n) = 1
    assert mean_ci([-2, -1, 0, 1, 2]).half_width == pytest.approx(2.7764 * math.sqrt(0.5), abs=1e-4)


def test_mean_ci_of_fewer_than_two_values():
    assert mean_ci([]).n == 0 and math.isnan(mean_ci([]).mean)
    one = mean_ci([0.7])
    assert (one.mean, one.n) == (0.7, 1) and math.isnan(one.half_width) and math.isnan(one.std)


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ([1, 2, 3, 4], [2, 4, 6, 8.5]),
        ([0.42, 0.47, 0.51], [0.30, 0.33, 0.35, 0.41, 0.29]),
        ([0.5, 0.5, 0.5], [0.1, 0.3, 0.2, 0.4]),  # one side constant: its variance is 0, the other's carries the test
    ],
)
def test_welch_test_follows_the_textbook(a, b):
    mean_a, var_a, n_a = sample_stats(a)
    mean_b, var_b, n_b = sample_stats(b)
    se2_a, se2_b = var_a / n_a, var_b / n_b
    t = (mean_a - mean_b) / math.sqrt(se2_a + se2_b)
    df = (se2_a + se2_b) ** 2 / (se2_a**2 / (n_a - 1) + se2_b**2 / (n_b - 1))  # Welch-Satterthwaite
    test = welch_test(a, b)
    assert (test.difference, test.t, test.df) == pytest.approx((mean_a - mean_b, t, df), rel=1e-10)
    assert test.p == pytest.approx(1 - central_mass(t, df), abs=1e-9)
    half = (test.ci_high - test.ci_low) / 2
    assert (test.ci_low + test.ci_high) / 2 == pytest.approx(mean_a - mean_b, abs=1e-12)
    assert central_mass(half / math.sqrt(se2_a + se2_b), df) == pytest.approx(0.95, abs=1e-9)


def test_welch_test_matches_r_and_tables():
    test = welch_test([1, 2, 3, 4], [2, 4, 6, 8.5])  # R: t.test(...): t = -1.7127, df = 4.2363, p = 0.1579
    assert (test.t, test.df, test.p) == pytest.approx((-1.7127, 4.2363, 0.1579), abs=1e-4)
    # Equal sizes and variances give df = 2 (n - 1) = 10; a shift of 2 standard errors gives t = 2, and the table's
    # two-sided P(|T| >= 2; 10) = 0.073388.
    b = [0.0, 1.0, 2.0, 3.0, 4.0, 5.0]
    shift = 2 * math.sqrt(2 * 3.5 / 6)  # 2 * sqrt(s^2/6 + s^2/6), s^2 = 3.5
    test = welch_test([v + shift for v in b], b)
    assert (test.t, test.df) == pytest.approx((2.0, 10.0), abs=1e-9)
    assert test.p == pytest.approx(0.073388, abs=1e-6)


def test_no_welch_test_without_two_varying_seeds():
    assert welch_test([1.0], [2.0, 3.0]) is None and welch_test([1.0, 1.0], [2.0, 2.0]) is None
