"""`AdvantageBatch`: what an advantage estimator's compute function reads, for all ranks' rows of one generation
batch (the trainer gathers them: a prompt's group can straddle ranks).

Rows are completions in trl's layout: the `num_generations` completions of one prompt are consecutive rows.
Per-token tensors are (N, T), padded to the longest completion of the batch; `mask` is 1 on the tokens the loss
sees. Optional fields are None unless the estimator's entry `needs` them (harness/config/registry.py).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True, kw_only=True)
class AdvantageBatch:
    rewards: torch.Tensor  # (N,) the weighted sequence rewards trl computed (NaN: no reward function scored it)
    advantages: torch.Tensor  # (N,) trl's group-normalised outcome advantage
    mask: torch.Tensor  # (N, T) 1 on valid completion tokens (trl's completion mask times its tool mask)
    completion_ids: torch.Tensor  # (N, T) the generated token ids (padding where mask is 0)
    num_generations: int  # completions per prompt: rows [g * n, (g + 1) * n) are one group
    scale: str  # trl's scale_rewards: "group", "batch" or "none"
    token_rewards: torch.Tensor | None = None  # (N, T) TOKEN_REWARDS: the task's token rewards, 0 where none
    reward_mask: torch.Tensor | None = None  # (N, T) TOKEN_REWARDS: 1 where a token carries a reward
    entropies: torch.Tensor | None = None  # (N, T) ENTROPIES: the sampling policy's entropy at each token
    steps: torch.Tensor | None = None  # (N, T) GENERATIONS: each valid token's step index (-1 or 0 on padding)
    step_values: torch.Tensor | None = None  # (N, S) GENERATIONS: Monte-Carlo value V^(s_k) of each row's steps

    @property
    def shape(self) -> tuple[int, int]:
        return tuple(self.mask.shape)
