"""pass@k and best-of-k against an independent reference: the average over every k-subset of the n samples."""

import itertools
import math

import pytest
import torch

from harness.algorithms.evaluation import best_of_k, pass_at_k


def subsets_mean(row: list[float], k: int) -> float:
    """The definition: the mean, over all C(n, k) subsets of k samples, of the subset's best value."""
    values = [max(subset) for subset in itertools.combinations(row, k)]
    return sum(values) / len(values)


def test_pass_at_k_is_the_fraction_of_k_subsets_with_a_correct_sample():
    correct = torch.tensor(
        [[0, 0, 0, 0, 0, 0], [1, 0, 0, 0, 0, 0], [0, 1, 1, 0, 0, 0], [1, 1, 1, 1, 0, 1], [1, 1, 1, 1, 1, 1]]
    )
    for k in range(1, 7):
        expected = [subsets_mean(row, k) for row in correct.tolist()]
        assert pass_at_k(correct, k).tolist() == pytest.approx(expected, abs=1e-6)
        # and the closed form 1 - C(n-c, k) / C(n, k) of Chen et al. 2021
        closed = [1 - math.comb(6 - sum(row), k) / math.comb(6, k) for row in correct.tolist()]
        assert pass_at_k(correct.bool(), k).tolist() == pytest.approx(closed, abs=1e-6)


def test_pass_at_1_is_the_mean_accuracy_and_stable_for_large_n():
    generator = torch.Generator().manual_seed(0)
    correct = torch.rand(4, 200, generator=generator) < torch.tensor([[0.0], [0.01], [0.3], [0.9]])
    assert pass_at_k(correct, 1).tolist() == pytest.approx(correct.float().mean(-1).tolist(), abs=1e-6)
    closed = [1 - math.comb(200 - int(c), 50) / math.comb(200, 50) for c in correct.sum(-1).tolist()]
    assert pass_at_k(correct, 50).tolist() == pytest.approx(closed, abs=1e-6)


def test_best_of_k_is_the_mean_best_reward_over_k_subsets():
    generator = torch.Generator().manual_seed(1)
    rewards = torch.rand(5, 7, generator=generator)
    rewards[0] = 0.25  # ties
    for k in range(1, 8):
        expected = [subsets_mean(row, k) for row in rewards.tolist()]
        assert best_of_k(rewards, k).tolist() == pytest.approx(expected, abs=1e-6)
    binary = (rewards > 0.5).float()
    assert best_of_k(binary, 3).tolist() == pytest.approx(pass_at_k(binary, 3).tolist(), abs=1e-6)


@pytest.mark.parametrize("k", [0, 9])
def test_k_outside_one_to_n_is_refused(k):
    with pytest.raises(ValueError, match=f"k={k}"):
        pass_at_k(torch.ones(2, 8), k)
    with pytest.raises(ValueError, match=f"k={k}"):
        best_of_k(torch.ones(2, 8), k)
