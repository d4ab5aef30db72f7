import random

import pytest
import torch

from harness.algorithms.credit.mc_value import step_advantages, step_starts, steps_every, steps_from_separator


def reference_steps_from_separator(ids, mask, separator):
    """Walk each row: a token's step is the number of separators completed before it."""
    out = []
    for row, valid in zip(ids, mask):
        steps, closed, tokens = [], 0, []
        for token, m in zip(row, valid):
            if not m:
                steps.append(-1)
                continue
            steps.append(closed)
            tokens.append(token)
            if tokens[-len(separator) :] == separator:
                closed += 1
        out.append(steps)
    return out


def reference_advantages(values, steps, rewards, step_rewards=None):
    """VinePPO: step k gets r_k + V(s_{k+1}) - V(s_k), V after the last step 0, the outcome reward on the last step."""
    out = []
    for i, row in enumerate(steps):
        count = max(row) + 1
        per_step = []
        for k in range(count):
            nxt = values[i][k + 1] if k + 1 < count else 0.0
            r = (rewards[i] if k == count - 1 else 0.0) + (step_rewards[i][k] if step_rewards else 0.0)
            per_step.append(r + nxt - values[i][k])
        out.append([per_step[k] if k >= 0 else 0.0 for k in row])
    return torch.tensor(out, dtype=torch.float64)


def test_every_n_tokens():
    mask = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0], [0, 0, 0, 0, 0]])
    assert steps_every(mask, 2).tolist() == [[0, 0, 1, 1, 2], [0, 0, 1, -1, -1], [-1] * 5]
    assert step_starts(steps_every(mask, 2)).tolist() == [[0, 2, 4], [0, 2, -1], [-1, -1, -1]]


@pytest.mark.parametrize("seed", range(8))
@pytest.mark.parametrize("separator", [[3], [3, 4], [4, 4, 4]])
def test_separator_steps_match_a_walk_over_the_tokens(seed, separator):
    rng = random.Random(seed)
    length = 10
    lengths = [rng.randint(0, length) for _ in range(5)]
    mask = [[int(t < n) for t in range(length)] for n in lengths]
    ids = [[rng.choice([3, 4, 5]) if m else 3 for m in row] for row in mask]  # padding holds separator ids on purpose
    got = steps_from_separator(torch.tensor(ids), torch.tensor(mask), separator)
    assert got.tolist() == reference_steps_from_separator(ids, mask, separator)


def test_separator_by_hand():
    ids = torch.tensor([[9, 13, 10, 7, 7, 13, 10, 8]])  # "\n\n" as the two ids (13, 10)
    got = steps_from_separator(ids, torch.ones_like(ids), [13, 10])
    assert got.tolist() == [[0, 0, 0, 1, 1, 1, 1, 2]]
    assert step_starts(got).tolist() == [[0, 3, 7]]


def test_step_advantages_by_hand():
    steps = torch.tensor([[0, 0, 1, 1, 2], [0, 1, -1, -1, -1]])
    values = torch.tensor([[0.5, 0.8, 0.4], [0.2, 0.9, 99.0]])  # the 99 is past row 2's steps: ignored
    rewards = torch.tensor([1.0, 0.0])
    expected = torch.tensor([[0.3, 0.3, -0.4, -0.4, 0.6], [0.7, -0.9, 0.0, 0.0, 0.0]])
    assert torch.allclose(step_advantages(values, steps, rewards), expected)


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("with_step_rewards", [False, True])
def test_step_advantages_match_the_papers_formula(seed, with_step_rewards):
    rng = random.Random(seed)
    mask = torch.tensor([[int(t < rng.randint(1, 9)) for t in range(9)] for _ in range(6)])
    steps = steps_every(mask, rng.randint(1, 3))
    count = int(steps.max()) + 1
    values = [[rng.random() for _ in range(count)] for _ in range(6)]
    rewards = [float(rng.random() < 0.5) for _ in range(6)]
    step_rewards = [[rng.uniform(-1, 1) for _ in range(count)] for _ in range(6)] if with_step_rewards else None
    got = step_advantages(
        torch.tensor(values, dtype=torch.float64),
        steps,
        torch.tensor(rewards, dtype=torch.float64),
        torch.tensor(step_rewards, dtype=torch.float64) if step_rewards else None,
    )
    assert torch.allclose(got, reference_advantages(values, steps.tolist(), rewards, step_rewards), atol=1e-12)


def test_advantages_telescope_to_the_return_minus_the_first_value():
    """Summed over the steps, r + V(s') - V(s) telescopes: sum_k A_k = R - V(s_0)."""
    steps = torch.tensor([[0, 0, 1, 2, 2, 3]])
    values = torch.tensor([[0.3, 0.6, 0.1, 0.9]], dtype=torch.float64)
    adv = step_advantages(values, steps, torch.tensor([1.0], dtype=torch.float64))
    first_token_of_each_step = adv[0, [0, 2, 3, 5]]
    assert torch.isclose(first_token_of_each_step.sum(), torch.tensor(1.0 - 0.3, dtype=torch.float64))


def test_exact_values_give_zero_advantage_when_nothing_changes():
    """If every prefix already has the value of the outcome, no step gets credit."""
    steps = torch.tensor([[0, 1, 1, 2]])
    adv = step_advantages(torch.full((1, 3), 1.0), steps, torch.tensor([1.0]))
    assert torch.count_nonzero(adv) == 0


def test_bad_input_is_refused():
    with pytest.raises(ValueError, match="every"):
        steps_every(torch.ones(1, 3), 0)
    with pytest.raises(ValueError, match="separator"):
        steps_from_separator(torch.ones(1, 3, dtype=torch.long), torch.ones(1, 3), [])
    with pytest.raises(ValueError, match="columns"):
        step_advantages(torch.zeros(1, 1), torch.tensor([[0, 1]]), torch.zeros(1))


def test_registered_estimator_constant_rewards_give_zero_and_unscored_rows_get_zero():
    from harness.algorithms.batch import AdvantageBatch
    from harness.algorithms.credit.mc_value import mc_value

    mask = torch.tensor([[1, 1, 1, 0], [1, 1, 1, 1], [1, 0, 0, 0], [1, 1, 0, 0]])
    steps = steps_every(mask, 2)
    rewards = torch.full((4,), 0.75)
    values = torch.full((4, 2), 0.75)  # every continuation of every prefix scores the task's constant reward
    batch = AdvantageBatch(rewards=rewards, advantages=torch.zeros(4), mask=mask, completion_ids=mask,
                           num_generations=2, scale="group", steps=steps, step_values=values)  # fmt: skip
    assert torch.equal(mc_value(batch, rollouts=3, separator=None, every=2), torch.zeros(4, 4))
    unscored = AdvantageBatch(rewards=torch.tensor([float("nan"), 1.0, 0.0, 1.0]), advantages=torch.zeros(4),
                              mask=mask, completion_ids=mask, num_generations=2, scale="group",
                              steps=torch.where(mask.bool(), steps, 0), step_values=values)  # fmt: skip
    out = mc_value(unscored, rollouts=3, separator=None, every=2)
    assert torch.equal(out[0], torch.zeros(4)) and torch.all(out[~mask.bool()] == 0)
    # Row 1: steps (0, 0, 1, 1); A = V(s1) - V(s0) = 0 on step 0, R - V(s1) = 0.25 on the last step.
    assert out[1].tolist() == [0.0, 0.0, 0.25, 0.25]
