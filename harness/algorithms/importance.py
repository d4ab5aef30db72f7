"""Importance weights of the registered sampling levels (declared in harness/config/levels.py), as pure torch
functions `fn(logps, old_logps, mask) -> log w`.

- token (GRPO):           log w_{i,t} = log pi(y_t) - log pi_old(y_t)                       shape (B, T)
- sequence (GSPO):        log s_i = mean_t over valid tokens of the token log-ratio           shape (B, 1)
- sequence_token (GSPO-token, arXiv 2507.18071 §4.3):
                          log w_{i,t} = sg[log s_i] + log pi(y_t) - sg[log pi(y_t)]         shape (B, T)
  Its value equals s_i on every token, but each token keeps its own gradient, so per-token advantages matter.
"""

from __future__ import annotations

import torch

from harness.config.levels import LEVELS


def token_log_weights(logps: torch.Tensor, old_logps: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """log w_{i,t} = log pi(y_t) - log pi_old(y_t), shape (B, T)."""
    return logps - old_logps


def sequence_log_ratio(logps: torch.Tensor, old_logps: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """log s_i, the length-normalised sequence log-ratio, shape (B, 1)."""
    mask = mask.to(logps.dtype)
    return ((logps - old_logps) * mask).sum(-1, keepdim=True) / mask.sum(-1, keepdim=True).clamp(min=1.0)


def gspo_token_log_weights(logps: torch.Tensor, old_logps: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """log w_{i,t} = sg[log s_i] + log pi(y_t) - sg[log pi(y_t)], shape (B, T)."""
    return sequence_log_ratio(logps, old_logps, mask).detach() + logps - logps.detach()


def log_importance_weights(
    level: str, logps: torch.Tensor, old_logps: torch.Tensor, mask: torch.Tensor
) -> torch.Tensor:
    """Log importance weights of `level` (a registered level's compute): (B, T) for token levels, (B, 1) for
    sequence."""
    return LEVELS.get(level).function()(logps, old_logps, mask)


def gspo_token_old_logps(logps: torch.Tensor, old_logps: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Old log-probs that make trl's token-level ratio exp(logps - old) equal the GSPO-token weight.

    logps - (sg[logps] - sg[log s_i]) = sg[log s_i] + logps - sg[logps]; the result carries no gradient.
    """
    return (logps - sequence_log_ratio(logps, old_logps, mask)).detach()
