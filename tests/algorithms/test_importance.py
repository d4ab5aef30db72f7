import pytest
import torch

from harness.algorithms.importance import gspo_token_old_logps, log_importance_weights, sequence_log_ratio


def _example():
    torch.manual_seed(0)
    logps = torch.randn(3, 4, requires_grad=True)
    old = (logps + 0.1 * torch.randn(3, 4)).detach()
    mask = torch.tensor([[1, 1, 1, 1], [1, 1, 0, 0], [1, 0, 0, 0]])
    return logps, old, mask


def test_sequence_ratio_is_length_normalised():
    logps, old, mask = _example()
    expected = torch.stack([((logps - old)[i, :n]).mean() for i, n in enumerate([4, 2, 1])]).unsqueeze(1)
    assert torch.allclose(sequence_log_ratio(logps, old, mask), expected)


def test_gspo_token_weight_has_sequence_value_and_token_gradient():
    logps, old, mask = _example()
    seq = log_importance_weights("sequence", logps, old, mask)
    tok = log_importance_weights("sequence_token", logps, old, mask)
    assert torch.allclose(tok, seq.expand_as(tok))
    # d w_{i,t} / d logp_{i,t'} = s_i * [t == t']: every token keeps its own gradient.
    (tok.exp() * mask)[0].sum().backward()
    assert torch.allclose(logps.grad[0], seq[0].exp().expand(4))
    assert torch.count_nonzero(logps.grad[1:]) == 0


def test_rebased_old_logps_make_token_ratio_the_gspo_token_weight():
    logps, old, mask = _example()
    rebased = gspo_token_old_logps(logps, old, mask)
    assert not rebased.requires_grad
    assert torch.allclose(logps - rebased, log_importance_weights("sequence_token", logps, old, mask), atol=1e-6)


def _surrogate_grad(level, advantages, logps, old, mask):
    logps = logps.detach().requires_grad_(True)
    weights = log_importance_weights(level, logps, old, mask).exp()
    ((weights * advantages * mask).sum(-1) / mask.sum(-1)).mean().backward()
    return logps.grad


def test_per_sequence_advantages_make_gspo_token_equal_gspo():
    logps, old, mask = _example()
    advantages = torch.tensor([[1.0], [-2.0], [0.5]]).expand(3, 4)
    a = _surrogate_grad("sequence", advantages, logps, old, mask)
    b = _surrogate_grad("sequence_token", advantages, logps, old, mask)
    assert torch.allclose(a, b, rtol=1e-6, atol=1e-7)


def test_per_token_advantages_make_gspo_token_differ_from_gspo():
    logps, old, mask = _example()
    advantages = torch.tensor([[1.0, -1.0, 2.0, 0.0], [0.5, -0.5, 0, 0], [1.0, 0, 0, 0]])
    a = _surrogate_grad("sequence", advantages, logps, old, mask)
    b = _surrogate_grad("sequence_token", advantages, logps, old, mask)
    assert (a - b).norm() > 1e-2 * a.norm()


def test_unknown_level_names_the_allowed_ones():
    logps, old, mask = _example()
    with pytest.raises(ValueError, match="allowed: token, sequence, sequence_token"):
        log_importance_weights("seq", logps, old, mask)
