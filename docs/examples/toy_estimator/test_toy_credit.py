"""The toy estimator on a hand-made batch, against the formula written out by hand."""

import pytest
import torch
from toy_credit import Toy

from harness.algorithms.batch import AdvantageBatch
from harness.config.estimators import ESTIMATORS
from harness.config.schema import ConfigError


def batch(advantages, mask) -> AdvantageBatch:
    mask = torch.tensor(mask)
    rewards, completion_ids = torch.zeros(len(advantages)), torch.zeros_like(mask)
    advantages = torch.tensor(advantages)
    return AdvantageBatch(
        rewards=rewards,
        advantages=advantages,
        mask=mask,
        completion_ids=completion_ids,
        num_generations=2,
        scale="group",
    )


def test_ramp_matches_the_formula():
    toy = ESTIMATORS.get("toy")
    got = toy.function()(batch([2.0, -1.0], [[1, 1, 1, 0], [1, 1, 0, 0]]), start=0.5)
    expected = torch.tensor([[1.0, 1.5, 2.0, 0.0], [-0.5, -1.0, 0.0, 0.0]])  # 2 * (0.5, 0.75, 1); -1 * (0.5, 1)
    torch.testing.assert_close(got, expected)


def test_start_one_is_the_outcome_advantage():
    got = ESTIMATORS.get("toy").function()(batch([2.0, -1.0], [[1, 1, 1, 0], [1, 0, 0, 0]]), start=1.0)
    assert torch.equal(got, torch.tensor([[2.0, 2.0, 2.0, 0.0], [-1.0, 0.0, 0.0, 0.0]]))


def test_start_out_of_range_is_refused():
    with pytest.raises(ConfigError, match=r"advantage.start=1.5 must be a finite number in \[0, 1\]"):
        ESTIMATORS.get("toy").parse({"start": 1.5}, "advantage")
    assert ESTIMATORS.get("toy").parse({}, "advantage") == Toy(start=0.5)
