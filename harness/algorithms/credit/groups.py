"""What every credit estimator needs about trl's layout: shape checks, groups, the outcome split.

Rows are completions in trl's layout: the `num_generations` completions of one prompt are consecutive rows, so
group g is rows [g * num_generations, (g + 1) * num_generations). `mask` (N, T) is 1 on valid completion tokens.
A NaN reward marks a completion no reward function scored (trl's convention): it is left out of its group's
statistics, and the estimators give it 0, as trl does.
"""

from __future__ import annotations

import torch

TRL_EPS = 1e-4  # trl's `(r - mean) / (std + 1e-4)` group normalisation


def check_layout(mask: torch.Tensor, num_generations: int | None = None, **tensors: torch.Tensor) -> None:
    """Refuse tensors that do not line up with `mask` (N, T): (N, T) or (N,) each, N a multiple of the group size."""
    if mask.dim() != 2:
        raise ValueError(f"mask must be (N, T), got {tuple(mask.shape)}")
    n, length = mask.shape
    for name, tensor in tensors.items():
        if tensor.shape not in ((n,), (n, length)):
            raise ValueError(f"{name} {tuple(tensor.shape)} does not line up with mask {(n, length)}")
    if num_generations is not None and (num_generations < 1 or n % num_generations):
        raise ValueError(f"{n} completions do not split into groups of num_generations={num_generations}")


def group_view(values: torch.Tensor, num_generations: int) -> torch.Tensor:
    """(N, ...) -> (N // G, G, ...): one row of the first axis per prompt."""
    return values.reshape(values.shape[0] // num_generations, num_generations, *values.shape[1:])


def outcome_advantages(rewards: torch.Tensor, num_generations: int, eps: float = TRL_EPS) -> torch.Tensor:
    """trl's outcome advantage (N,): A_i = (r_i - mean_group r) / (std_group r + eps), unbiased std.

    This is trl 1.16's default (`scale_rewards="group"`); the estimators take the advantage trl actually computed as
    an input, this helper exists for callers that only have the rewards.
    """
    grouped = group_view(rewards.to(torch.float64), num_generations)
    centred = grouped - grouped.mean(dim=1, keepdim=True)
    std = grouped.std(dim=1, keepdim=True) if num_generations > 1 else torch.zeros_like(centred)
    return (centred / (std + eps)).reshape(-1).to(rewards.dtype)


def scored(rewards: torch.Tensor) -> torch.Tensor:
    """(N,) bool: the completion has a reward (not NaN)."""
    return ~torch.isnan(rewards)


def informative_groups(rewards: torch.Tensor, num_generations: int) -> torch.Tensor:
    """(N,) bool: the completion's group has scored rewards that are not all equal.

    A group whose rewards are all equal carries no outcome information: trl gives it advantage 0, and DAPO (the base
    of GTPO and KTAE's experiments) drops it by dynamic sampling. Every estimator here gives such a group 0.
    """
    grouped = group_view(rewards, num_generations)
    has = ~torch.isnan(grouped)
    high = torch.where(has, grouped, -torch.inf).amax(dim=1)
    low = torch.where(has, grouped, torch.inf).amin(dim=1)
    return (high > low).unsqueeze(1).expand_as(grouped).reshape(-1)


def successful(rewards: torch.Tensor, num_generations: int) -> torch.Tensor:
    """(N,) bool: r_i is above its group's mean reward (over the scored completions; a NaN reward is not).

    For binary 0/1 rewards in a group with both outcomes this is exactly "correct"; for graded rewards it is the
    sign of the (unnormalised) GRPO advantage, so `successful` and trl's advantage > 0 agree on every completion.
    """
    grouped = group_view(rewards.to(torch.float64), num_generations)
    return (grouped > grouped.nanmean(dim=1, keepdim=True)).reshape(-1)  # NaN > anything is False


def broadcast(outcome: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """(N,) float -> (N, T): the value on every valid token, 0 on padding."""
    return outcome.unsqueeze(1) * mask.to(outcome.dtype)
