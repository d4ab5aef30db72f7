"""The pure part of Monte-Carlo value credit: Kazemnejad et al., "VinePPO: Refining Credit Assignment in RL Training
of LLMs", arXiv 2410.01679 (§4: unbiased Monte-Carlo value estimates replace PPO's value network).

A completion is cut into reasoning steps. The state s_k is the prompt plus the tokens before step k (s_0 is the
prompt alone). The trainer (not this module) samples K continuations from each s_k with the run's sampling settings,
scores them with the task's reward functions and sets V^(s_k) to their mean reward. Every token of step k then gets
the step's advantage

    A_k = r_k + V^(s_{k+1}) - V^(s_k),      V^(s_K) = 0 after the last step K - 1,

where r_k is the step's reward: the outcome reward R arrives with the last step, plus any per-step reward a task has
(so with no step rewards A_{K-1} = R - V^(s_{K-1})). VinePPO's LLM setting is undiscounted (gamma = 1, an episode is
one completion). Here: where steps begin, and the advantages given the values.

Step boundaries are either a separator token sequence (a step ends with the separator that closes it, the tokens
after the last separator are the final step) or every `every` tokens.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from harness.algorithms.batch import AdvantageBatch
from harness.algorithms.credit.groups import check_layout


def steps_every(mask: torch.Tensor, every: int) -> torch.Tensor:
    """(N, T) long step index of every valid token when a step is `every` tokens long; -1 on padding."""
    if every < 1:
        raise ValueError(f"every={every}; allowed: an integer >= 1")
    check_layout(mask)
    position = (mask.to(torch.int64).cumsum(dim=1) - 1).clamp(min=0)
    return torch.where(mask.bool(), torch.div(position, every, rounding_mode="floor"), -1)


def steps_from_separator(completion_ids: torch.Tensor, mask: torch.Tensor, separator: Sequence[int]) -> torch.Tensor:
    """(N, T) long step index: a step ends with each occurrence of the token sequence `separator`; -1 on padding.

    The separator's tokens belong to the step they close, so a token's step index is the number of separators that
    end strictly before it. Occurrences are matched on token ids among valid tokens only.
    """
    separator = list(separator)
    if not separator:
        raise ValueError("separator must hold at least one token id")
    check_layout(mask, completion_ids=completion_ids)
    valid = mask.bool()
    n, length = completion_ids.shape
    width = len(separator)
    ends = torch.zeros(n, length, dtype=torch.bool, device=mask.device)
    if length >= width:
        target = torch.tensor(separator, dtype=completion_ids.dtype, device=mask.device)
        windows = completion_ids.unfold(1, width, 1)  # (N, T - width + 1, width): windows[:, s] starts at s
        window_valid = valid.unfold(1, width, 1).all(dim=-1)
        ends[:, width - 1 :] = (windows == target).all(dim=-1) & window_valid
    closed_before = torch.cumsum(ends.to(torch.int64), dim=1) - ends.to(torch.int64)
    return torch.where(valid, closed_before, -1)


def step_starts(steps: torch.Tensor) -> torch.Tensor:
    """(N, S) long: position of the first token of step k (the prefix s_k ends just before it); -1 past a row's steps.

    S is the largest number of steps of any row. These are the prefixes the trainer branches its K continuations from.
    """
    n = steps.shape[0]
    count = int(steps.max()) + 1 if steps.numel() and int(steps.max()) >= 0 else 0
    starts = torch.full((n, count), -1, dtype=torch.int64, device=steps.device)
    first = steps.ne(-1) & torch.cat(
        [torch.ones_like(steps[:, :1], dtype=torch.bool), steps[:, 1:] != steps[:, :-1]], 1
    )
    row, position = first.nonzero(as_tuple=True)
    starts[row, steps[row, position]] = position
    return starts


def step_advantages(
    values: torch.Tensor,
    steps: torch.Tensor,
    rewards: torch.Tensor,
    step_rewards: torch.Tensor | None = None,
) -> torch.Tensor:
    """(N, T) advantages: every token of step k gets r_k + V^(s_{k+1}) - V^(s_k); 0 on padding.

    values: (N, S) Monte-Carlo values V^(s_k) for the row's steps k < K_i (entries past them are ignored). steps:
    (N, T) step index per token, -1 on padding (from `steps_every` or `steps_from_separator`). rewards: the
    outcome reward R (N,), which arrives with each row's last step. step_rewards: optional (N, S) per-step rewards.
    """
    n, count = values.shape
    if steps.shape[0] != n or rewards.shape != (n,):
        raise ValueError(f"values {tuple(values.shape)}, steps {tuple(steps.shape)}, rewards {tuple(rewards.shape)}")
    if step_rewards is not None and step_rewards.shape != values.shape:
        raise ValueError(f"step_rewards {tuple(step_rewards.shape)} must match values {tuple(values.shape)}")
    if int(steps.max()) >= count:
        raise ValueError(f"steps go up to {int(steps.max())} but values has only {count} columns")
    dtype = values.dtype
    if count == 0:
        return torch.zeros(steps.shape, dtype=dtype, device=values.device)
    num_steps = steps.max(dim=1).values + 1  # K_i (0 for an empty completion)
    index = torch.arange(count, device=values.device).unsqueeze(0)
    exists = index < num_steps.unsqueeze(1)
    last = index == (num_steps - 1).unsqueeze(1)
    value_now = torch.where(exists, values, torch.zeros_like(values))
    value_next = torch.cat([value_now[:, 1:], torch.zeros_like(value_now[:, :1])], dim=1)
    value_next = torch.where(last, torch.zeros_like(value_next), value_next)
    reward = torch.where(last, rewards.to(dtype).unsqueeze(1), torch.zeros_like(values))
    if step_rewards is not None:
        reward = reward + torch.where(exists, step_rewards.to(dtype), torch.zeros_like(values))
    per_step = torch.where(exists, reward + value_next - value_now, torch.zeros_like(values))
    gathered = per_step.gather(1, steps.clamp(min=0))
    return torch.where(steps >= 0, gathered, torch.zeros_like(gathered))


def mc_value(batch: AdvantageBatch, rollouts: int, separator: str | None, every: int | None) -> torch.Tensor:
    """The registered estimator `mc_value` (harness/config/estimators.py): the trainer has cut the batch into steps
    (`batch.steps`) and estimated each step's value by `rollouts` continuations (`batch.step_values`); this is
    `step_advantages` of them, 0 on padding and on a completion no reward function scored (NaN reward)."""
    if batch.steps is None or batch.step_values is None:
        raise ValueError("mc_value needs the trainer's Monte-Carlo step values (batch.steps, batch.step_values)")
    mask = batch.mask.bool()
    steps = torch.where(mask, batch.steps, -1)
    rewards = batch.rewards.to(torch.float64)
    scored = ~torch.isnan(rewards)
    values = torch.nan_to_num(batch.step_values.to(torch.float64), nan=0.0)
    advantages = step_advantages(values, steps, torch.nan_to_num(rewards, nan=0.0))
    advantages = torch.where(mask & scored.unsqueeze(1), advantages, 0.0)
    dtype = batch.advantages.dtype if batch.advantages.is_floating_point() else torch.float32
    return advantages.to(dtype)
