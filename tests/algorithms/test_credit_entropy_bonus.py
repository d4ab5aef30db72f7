import pytest
import torch

from harness.algorithms.credit.entropy_bonus import entropy_bonus_advantages
from tests.algorithms.credit_cases import batch, tensors, trl_outcome, within_sequence_std


def reference(outcome, entropies, mask, alpha, kappa):
    """Cheng et al. §3 token by token: A + min(alpha * H, |A| / kappa) on valid tokens, 0 on padding."""
    return [
        [(a + min(alpha * h, abs(a) / kappa)) if m else 0.0 for h, m in zip(h_row, m_row)]
        for a, h_row, m_row in zip(outcome, entropies, mask)
    ]


def test_by_hand():
    outcome = torch.tensor([1.0, -1.0])
    entropies = torch.tensor([[0.5, 2.0, 0.0], [1.0, 0.1, 7.0]])
    mask = torch.tensor([[1, 1, 1], [1, 1, 0]])
    # alpha * H = 0.2, 0.8, 0 and 0.4, 0.04; the cap |A| / kappa = 0.5 clips 0.8.
    expected = torch.tensor([[1.2, 1.5, 1.0], [-0.6, -0.96, 0.0]])
    assert torch.allclose(entropy_bonus_advantages(outcome, entropies, mask), expected)


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("alpha,kappa", [(0.4, 2.0), (1.5, 1.2), (0.05, 4.0)])
def test_matches_the_papers_formula(seed, alpha, kappa):
    case = batch(seed)
    t = tensors(case)
    got = entropy_bonus_advantages(t["outcome"], t["entropies"], t["mask"], alpha, kappa)
    expected = torch.tensor(reference(case["outcome"], case["entropies"], case["mask"], alpha, kappa), dtype=got.dtype)
    assert torch.allclose(got, expected, atol=1e-12)
    assert (got[t["mask"] == 0] == 0).all()


@pytest.mark.parametrize("seed", range(3))
def test_alpha_zero_is_trls_outcome_advantage_exactly(seed):
    case = batch(seed)
    t = tensors(case)
    outcome = t["outcome"].to(torch.float32)
    got = entropy_bonus_advantages(outcome, t["entropies"].float(), t["mask"], alpha=0.0)
    assert torch.equal(got, outcome.unsqueeze(1) * t["mask"].float())


def test_constant_rewards_give_zero():
    outcome = torch.tensor(trl_outcome([1.0] * 4 + [0.0] * 4, 4))
    got = entropy_bonus_advantages(outcome, torch.rand(8, 5) * 3, torch.ones(8, 5))
    assert torch.count_nonzero(got) == 0


def test_shaping_spreads_advantage_within_sequences_and_keeps_its_sign():
    case = batch(7, length=9)
    t = tensors(case)
    got = entropy_bonus_advantages(t["outcome"], t["entropies"], t["mask"])
    assert max(within_sequence_std(got, t["mask"])) > 0.05
    signs = torch.sign(t["outcome"]).unsqueeze(1) * t["mask"]
    assert torch.equal(torch.sign(got) * t["mask"], signs)  # the clip at |A|/kappa never flips a sign


def test_entropy_is_detached():
    entropies = torch.rand(4, 3, requires_grad=True)
    got = entropy_bonus_advantages(torch.tensor([1.0, -1.0, 0.5, -0.5]), entropies, torch.ones(4, 3))
    assert not got.requires_grad


@pytest.mark.parametrize("kwargs,match", [({"alpha": -0.1}, "alpha"), ({"kappa": 1.0}, "kappa")])
def test_out_of_range_parameters_are_refused(kwargs, match):
    with pytest.raises(ValueError, match=match):
        entropy_bonus_advantages(torch.zeros(2), torch.zeros(2, 3), torch.ones(2, 3), **kwargs)


def test_misaligned_shapes_are_refused():
    with pytest.raises(ValueError, match="line up"):
        entropy_bonus_advantages(torch.zeros(3), torch.zeros(2, 3), torch.ones(2, 3))
