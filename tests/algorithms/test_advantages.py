import random
import statistics

import pytest
import torch

from harness.algorithms.advantages import discounted_reverse_cumsum, process_advantages


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


def deepseekmath_reference(steps: list[list[tuple[int, float]]], length: int, group: int, gamma=1.0, eps=1e-4):
    """Process supervision written out as in DeepSeekMath §4.1.3, independently of harness.algorithms.advantages.

    steps[i] lists (end position, reward) of completion i's steps. Rewards are normalised with the mean and the
    (unbiased) std of all step rewards of the group; a token's advantage sums the normalised rewards of the steps
    that end at or after it (discounted by gamma per token).
    """
    out = [[0.0] * length for _ in steps]
    for start in range(0, len(steps), group):
        members = range(start, start + group)
        values = [reward for i in members for _, reward in steps[i]]
        if not values:
            continue  # a group without a single step: every advantage is 0
        mean = statistics.fmean(values)
        std = statistics.stdev(values) if len(values) > 1 else 0.0
        for i in members:
            for t in range(length):
                out[i][t] = sum(gamma ** (end - t) * (r - mean) / (std + eps) for end, r in steps[i] if end >= t)
    return torch.tensor(out, dtype=torch.float64)


def random_sparse_batch(seed: int, rows=8, length=10, group=4):
    rng = random.Random(seed)
    lengths = [rng.randint(1, length) for _ in range(rows)]
    steps = []
    for n in lengths:
        ends = sorted(rng.sample(range(n), rng.randint(1, min(3, n))))
        steps.append([(end, float(rng.choice([0.0, 0.5, 1.0, -1.0]))) for end in ends])
    rewards = torch.zeros(rows, length, dtype=torch.float64)
    carries = torch.zeros(rows, length)
    for i, row in enumerate(steps):
        for end, reward in row:
            rewards[i, end], carries[i, end] = reward, 1.0
    mask = (torch.arange(length) < torch.tensor(lengths).unsqueeze(1)).long()
    return steps, rewards, carries, mask


@pytest.mark.parametrize("gamma", [1.0, 0.9, 0.0])
@pytest.mark.parametrize("seed", range(5))
def test_sparse_step_rewards_match_deepseekmath(seed, gamma):
    steps, rewards, carries, mask = random_sparse_batch(seed)
    # Tokens after a completion's last step and padding must come out 0 even with garbage rewards there.
    garbage = rewards + (1 - carries) * 7.0
    got = process_advantages(garbage, mask, 4, gamma, reward_mask=carries)
    expected = deepseekmath_reference(steps, rewards.shape[1], 4, gamma) * mask
    assert torch.allclose(got, expected, atol=1e-9), (got - expected).abs().max()


def test_reward_on_the_last_token_is_trls_outcome_advantage():
    rows, length = 8, 6
    lengths = torch.tensor([6, 2, 4, 1, 5, 6, 3, 2])
    mask = (torch.arange(length) < lengths.unsqueeze(1)).long()
    outcome = torch.tensor([0.2, 0.9, 0.4, 0.4, 1.0, 0.0, 0.3, 0.8], dtype=torch.float64)
    rewards = torch.zeros(rows, length, dtype=torch.float64)
    rewards[torch.arange(rows), lengths - 1] = outcome
    carries = torch.zeros(rows, length)
    carries[torch.arange(rows), lengths - 1] = 1.0
    got = process_advantages(rewards, mask, 4, reward_mask=carries)
    grouped = outcome.view(-1, 4)  # trl: (r - group mean) / (unbiased group std + 1e-4)
    trl = ((grouped - grouped.mean(1, keepdim=True)) / (grouped.std(1, keepdim=True) + 1e-4)).view(-1)
    assert torch.allclose(got, trl.unsqueeze(1) * mask, atol=1e-12)


def test_dense_rewards_unchanged_by_an_all_ones_reward_mask():
    _, rewards, _, mask = random_sparse_batch(3)
    dense = torch.rand(rewards.shape, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    assert torch.equal(
        process_advantages(dense, mask, 4), process_advantages(dense, mask, 4, reward_mask=torch.ones(mask.shape))
    )


def test_scale_conventions_follow_trl():
    _, rewards, carries, mask = random_sparse_batch(1)
    none = process_advantages(rewards, mask, 4, reward_mask=carries, scale="none")
    steps = rewards[carries.bool()]
    batch = process_advantages(rewards, mask, 4, reward_mask=carries, scale="batch")
    assert torch.allclose(batch, none / (steps.std() + 1e-4), atol=1e-12)
    with pytest.raises(ValueError, match="scale='mean'; allowed: group, batch, none"):
        process_advantages(rewards, mask, 4, scale="mean")
