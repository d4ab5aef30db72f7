import math
import random

import pytest
import torch
from scipy.stats import spearmanr

from harness.algorithms.credit.correlation import average_ranks, credit_corr, credit_corr_moments


def scipy_reference(estimate, reference, mask):
    """Mean of scipy's Spearman rho over rows with >= 2 valid tokens and neither side constant."""
    rhos = []
    for e_row, r_row, m_row in zip(estimate, reference, mask):
        e = [v for v, m in zip(e_row, m_row) if m]
        r = [v for v, m in zip(r_row, m_row) if m]
        if len(e) >= 2 and len(set(e)) > 1 and len(set(r)) > 1:
            rhos.append(spearmanr(e, r).statistic)
    return (sum(rhos) / len(rhos) if rhos else math.nan), len(rhos)


def test_by_hand_rows():
    estimate = torch.tensor(
        [
            [0.1, 0.2, 0.3, 0.4, 9.0],  # padding at the end must not count
            [0.4, 0.3, 0.2, 0.1, 0.0],
            [1.0, 1.0, 2.0, 2.0, 3.0],  # ties on both sides
            [5.0, 5.0, 5.0, 5.0, 5.0],  # constant estimate: does not count
            [1.0, 2.0, 0.0, 0.0, 0.0],  # a single valid token: does not count
        ]
    )
    reference = torch.tensor(
        [
            [1.0, 2.0, 3.0, 4.0, -7.0],
            [1.0, 2.0, 3.0, 4.0, 5.0],
            [3.0, 3.0, 3.0, 1.0, 0.0],
            [1.0, 2.0, 3.0, 4.0, 5.0],
            [1.0, 2.0, 3.0, 4.0, 5.0],
        ]
    )
    mask = torch.tensor([[1, 1, 1, 1, 0], [1, 1, 1, 1, 1], [1, 1, 1, 1, 1], [1, 1, 1, 1, 1], [1, 0, 0, 0, 0]])
    expected, count = scipy_reference(estimate.tolist(), reference.tolist(), mask.tolist())
    assert count == 3
    moments = credit_corr_moments(estimate, reference, mask)
    assert moments["adv/credit_corr_count"] == 3
    assert math.isclose(credit_corr(estimate, reference, mask), expected, rel_tol=1e-12)
    # Row by row: +1, -1 and the tied row.
    tied = spearmanr([1, 1, 2, 2, 3], [3, 3, 3, 1, 0]).statistic
    assert math.isclose(expected, (1.0 - 1.0 + tied) / 3, rel_tol=1e-12)


@pytest.mark.parametrize("seed", range(10))
def test_matches_scipy_on_random_rows_with_ties(seed):
    rng = random.Random(seed)
    rows, length = 7, 9
    lengths = [rng.randint(0, length) for _ in range(rows)]
    mask = [[int(t < n) for t in range(length)] for n in lengths]
    estimate = [[float(rng.choice([0, 1, 2, 3])) for _ in range(length)] for _ in range(rows)]
    reference = [[rng.choice([-1.0, 0.5, 0.5, 2.0]) for _ in range(length)] for _ in range(rows)]
    expected, count = scipy_reference(estimate, reference, mask)
    got = credit_corr(torch.tensor(estimate), torch.tensor(reference), torch.tensor(mask))
    assert (
        credit_corr_moments(torch.tensor(estimate), torch.tensor(reference), torch.tensor(mask))[
            "adv/credit_corr_count"
        ]
        == count
    )
    if count:
        assert math.isclose(got, expected, rel_tol=1e-9, abs_tol=1e-12)
    else:
        assert math.isnan(got)


def test_average_ranks_follow_scipy():
    from scipy.stats import rankdata

    values = torch.tensor([[3.0, 1.0, 3.0, 2.0, 3.0, 0.0]])
    mask = torch.tensor([[1, 1, 1, 1, 1, 0]])
    assert average_ranks(values, mask)[0, :5].tolist() == rankdata([3, 1, 3, 2, 3]).tolist()


def test_moments_add_across_batches():
    estimate, reference = torch.rand(6, 5), torch.rand(6, 5)
    mask = torch.ones(6, 5)
    whole = credit_corr_moments(estimate, reference, mask)
    halves = [credit_corr_moments(estimate[s], reference[s], mask[s]) for s in (slice(0, 2), slice(2, 6))]
    for key, value in whole.items():
        assert torch.isclose(value, halves[0][key] + halves[1][key])


def test_shapes_must_agree():
    with pytest.raises(ValueError, match="same"):
        credit_corr_moments(torch.zeros(2, 3), torch.zeros(2, 4), torch.ones(2, 3))
