import pytest
import torch

from harness.advantages import discounted_reverse_cumsum, process_advantages


def test_process_advantage_by_hand():
    # One group of two completions: rewards [1, 0, 1] and [0, 1] (+ padding).
    rewards = torch.tensor([[1.0, 0.0, 1.0], [0.0, 1.0, 9.0]])
    mask = torch.tensor([[1, 1, 1], [1, 1, 0]])
    # Valid rewards 1,0,1,0,1: mean 0.6, unbiased std sqrt(0.3).
    std = 0.3**0.5 + 1e-4
    hi, lo = (1 - 0.6) / std, (0 - 0.6) / std
    expected = torch.tensor([[hi + lo + hi, lo + hi, hi], [lo + hi, hi, 0.0]])
    assert torch.allclose(process_advantages(rewards, mask, num_generations=2), expected, atol=1e-6)


def test_groups_are_normalised_separately_and_padding_is_zero():
    rewards = torch.tensor([[1.0, 1.0], [0.0, 0.0], [5.0, 5.0], [5.0, 7.0]])
    mask = torch.tensor([[1, 1], [1, 1], [1, 0], [1, 1]])
    adv = process_advantages(rewards, mask, num_generations=2)
    assert adv[2, 1] == 0
    # Group 1 is symmetric: the two completions get opposite advantages.
    assert torch.allclose(adv[0], -adv[1])
    # Shifting a whole group's rewards leaves its advantages unchanged.
    assert torch.allclose(process_advantages(rewards + 3.0, mask, 2), adv, atol=1e-5)


def test_discounted_cumsum_by_hand():
    values = torch.tensor([[1.0, 2.0, 3.0]])
    assert torch.allclose(discounted_reverse_cumsum(values, 0.5), torch.tensor([[1 + 1 + 0.75, 2 + 1.5, 3.0]]))
    assert torch.allclose(discounted_reverse_cumsum(values, 1.0), torch.tensor([[6.0, 5.0, 3.0]]))


def test_constant_token_rewards_give_zero_advantage():
    rewards = torch.ones(4, 5)
    assert torch.count_nonzero(process_advantages(rewards, torch.ones(4, 5), 4)) == 0


def test_bad_shapes_are_refused():
    with pytest.raises(ValueError, match="num_generations=3"):
        process_advantages(torch.zeros(4, 2), torch.ones(4, 2), 3)
