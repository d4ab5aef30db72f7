"""Advantage estimators as pure torch functions on (N, T) tensors.

Rows are completions in trl's layout: the `num_generations` completions of one prompt are consecutive rows.
`mask` is 1 on valid completion tokens and 0 on padding.
"""

from __future__ import annotations

import torch


def process_advantages(
    token_rewards: torch.Tensor,
    mask: torch.Tensor,
    num_generations: int,
    gamma: float = 1.0,
    eps: float = 1e-4,
) -> torch.Tensor:
    """Process-supervision advantages (DeepSeekMath §4.1.3), one value per token.

    Every token-level reward of a group is normalised with the mean and std of all valid token rewards of that
    group; the advantage of token t is the (gamma-discounted) sum of normalised rewards at positions >= t.
    Padding tokens get advantage 0.
    """
    if token_rewards.shape != mask.shape or token_rewards.dim() != 2:
        raise ValueError(f"token_rewards {tuple(token_rewards.shape)} and mask {tuple(mask.shape)} must be (N, T)")
    n, t = token_rewards.shape
    if n % num_generations:
        raise ValueError(f"{n} completions do not split into groups of num_generations={num_generations}")
    mask = mask.to(token_rewards.dtype)
    groups = token_rewards.reshape(n // num_generations, num_generations * t)
    group_mask = mask.reshape_as(groups)
    count = group_mask.sum(dim=1, keepdim=True).clamp(min=1.0)
    mean = (groups * group_mask).sum(dim=1, keepdim=True) / count
    # Unbiased std over the group's valid tokens, like trl's per-sequence `nanstd`.
    var = (((groups - mean) * group_mask) ** 2).sum(dim=1, keepdim=True) / (count - 1).clamp(min=1.0)
    normalised = ((groups - mean) / (var.sqrt() + eps) * group_mask).reshape(n, t)
    return discounted_reverse_cumsum(normalised, gamma) * mask


def discounted_reverse_cumsum(values: torch.Tensor, gamma: float) -> torch.Tensor:
    """out[:, t] = sum_{k >= t} gamma^(k - t) * values[:, k]."""
    if gamma == 1.0:
        return values.flip(-1).cumsum(-1).flip(-1)
    out = torch.empty_like(values)
    running = torch.zeros_like(values[:, 0])
    for position in range(values.shape[1] - 1, -1, -1):
        running = values[:, position] + gamma * running
        out[:, position] = running
    return out
