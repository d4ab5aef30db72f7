import pytest
import torch

from harness.algorithms.credit.groups import informative_groups, outcome_advantages, successful
from tests.algorithms.credit_cases import trl_outcome


@pytest.mark.parametrize(
    "rewards", [[1.0, 0.0, 0.0, 1.0, 0.5, 2.0, 0.0, 0.0], [3.0, 3.0, 3.0, 3.0, 1.0, 0.0, 0.0, 0.0]]
)
def test_outcome_advantage_is_trls_group_normalisation(rewards):
    got = outcome_advantages(torch.tensor(rewards, dtype=torch.float64), 4)
    assert torch.allclose(got, torch.tensor(trl_outcome(rewards, 4), dtype=torch.float64), atol=1e-12)


def test_successful_is_above_the_group_mean_and_constant_groups_are_uninformative():
    rewards = torch.tensor([1.0, 0.0, 0.0, 1.0, 0.5, 2.0, 0.0, 1.0, 4.0, 4.0, 4.0, 4.0])
    assert successful(rewards, 4).tolist() == [True, False, False, True, False, True, False, True] + [False] * 4
    assert informative_groups(rewards, 4).tolist() == [True] * 8 + [False] * 4
