"""Advantage estimators as pure torch functions on (N, T) tensors.

Rows are completions in trl's layout: the `num_generations` completions of one prompt are consecutive rows.
`mask` is 1 on valid completion tokens and 0 on padding. `outcome` and `process` are the compute functions of the
registered estimators (declared in harness/config/estimators.py): `fn(batch: AdvantageBatch, **params) -> (N, T)`.
"""

from __future__ import annotations

import torch

from harness.algorithms.batch import AdvantageBatch

SCALINGS = ("group", "batch", "none")  # trl's `scale_rewards`, applied the same way to token rewards


def outcome(batch: AdvantageBatch) -> torch.Tensor:
    """trl's outcome advantage on every valid token: A_{i,t} = A_i where mask is 1, else 0."""
    return torch.where(batch.mask.bool(), batch.advantages.unsqueeze(1), 0.0).to(batch.advantages.dtype)


def process(batch: AdvantageBatch, gamma: float) -> torch.Tensor:
    """`process_advantages` of the batch's token rewards (see there)."""
    return process_advantages(
        batch.token_rewards,
        batch.mask,
        batch.num_generations,
        gamma,
        reward_mask=batch.reward_mask,
        scale=batch.scale,
    )


def process_advantages(
    token_rewards: torch.Tensor,
    mask: torch.Tensor,
    num_generations: int,
    gamma: float = 1.0,
    eps: float = 1e-4,
    reward_mask: torch.Tensor | None = None,
    scale: str = "group",
) -> torch.Tensor:
    """Process-supervision advantages (DeepSeekMath §4.1.3), one value per token.

    Let R be the reward positions: valid tokens that carry a reward (`reward_mask`; every valid token when it is
    None, i.e. dense rewards). Within each group of `num_generations` completions,

        r~_k = (r_k - mean_R(r)) / (std_R(r) + eps)     for k in R    (unbiased std, trl's convention)
        A_t  = sum_{k in R, k >= t} gamma^(k - t) * r~_k

    so a token's advantage is the (discounted) sum of the normalised rewards of the steps that end at or after it;
    tokens after the last reward position and padding get 0. With one reward on each completion's last valid token
    this is exactly trl's outcome advantage on every token. `scale` follows trl's `scale_rewards`: "group" divides by
    the group's std, "batch" by the std over all reward positions of the batch, "none" does not divide.
    """
    if token_rewards.shape != mask.shape or token_rewards.dim() != 2:
        raise ValueError(f"token_rewards {tuple(token_rewards.shape)} and mask {tuple(mask.shape)} must be (N, T)")
    if scale not in SCALINGS:
        raise ValueError(f"scale={scale!r}; allowed: {', '.join(SCALINGS)}")
    n, t = token_rewards.shape
    if n % num_generations:
        raise ValueError(f"{n} completions do not split into groups of num_generations={num_generations}")
    mask = mask.to(token_rewards.dtype)
    carries = mask if reward_mask is None else mask * reward_mask.to(token_rewards.dtype)
    rewards = token_rewards * carries  # positions without a reward hold no value (None arrives as 0 here)
    groups = rewards.reshape(n // num_generations, num_generations * t)
    group_carries = carries.reshape_as(groups)
    mean, var = _masked_mean_var(groups, group_carries)
    if scale == "batch":
        _, var = _masked_mean_var(rewards.reshape(1, -1), carries.reshape(1, -1))
    centred = (groups - mean) * group_carries
    normalised = centred if scale == "none" else centred / (var.sqrt() + eps)
    return discounted_reverse_cumsum(normalised.reshape(n, t), gamma) * mask


def _masked_mean_var(values: torch.Tensor, weights: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Row-wise mean and unbiased variance over the entries where `weights` is 1 (trl's `nanstd` convention)."""
    count = weights.sum(dim=1, keepdim=True)
    mean = values.sum(dim=1, keepdim=True) / count.clamp(min=1.0)
    var = (((values - mean) * weights) ** 2).sum(dim=1, keepdim=True) / (count - 1).clamp(min=1.0)
    return mean, var


def discounted_reverse_cumsum(values: torch.Tensor, gamma: float) -> torch.Tensor:
    """out[:, t] = sum_{k >= t} gamma^(k - t) * values[:, k]."""
    if gamma == 1.0:
        return values.flip(-1).cumsum(-1).flip(-1)
    if gamma == 0.0:
        return values.clone()
    out = torch.empty_like(values)
    running = torch.zeros_like(values[:, 0])
    for position in range(values.shape[1] - 1, -1, -1):
        running = values[:, position] + gamma * running
        out[:, position] = running
    return out


def per_sequence_values(advantages: torch.Tensor, mask: torch.Tensor, name: str = "the estimator") -> torch.Tensor:
    """(N,) one value per row of (N, T) advantages that are constant along each row's valid tokens (0 for a row
    without any); a row that varies is an error: its estimator is declared per-sequence."""
    valid = mask.bool()
    high = torch.where(valid, advantages, -torch.inf).amax(-1)
    low = torch.where(valid, advantages, torch.inf).amin(-1)
    rows = valid.any(-1)
    if not torch.equal(high[rows], low[rows]):
        raise ValueError(f"advantage.estimator={name} is declared per-sequence but its advantage varies within a row")
    return torch.where(rows, high, 0.0).to(advantages.dtype)
