"""Per-token advantage, clip and importance-ratio statistics as pure torch functions.

Each `*_moments` function returns additive sufficient statistics (sums and counts), so batches, gradient-accumulation
micro-batches and processes combine exactly by addition; `finalize` turns the summed moments into the logged
metrics. Minima and maxima travel separately (`*_extremes`). The metric names are defined in the metric catalogue
(harness/config/metrics.py; docs/metrics.md).
"""

from __future__ import annotations

import math

import torch

from harness.algorithms.importance import sequence_log_ratio


def _broadcast(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """(B,), (B, 1) or (B, T) -> (B, T) aligned with `mask`."""
    if x.dim() == 1:
        x = x.unsqueeze(1)
    return x.expand_as(mask)


def advantage_moments(advantages: torch.Tensor, mask: torch.Tensor) -> dict[str, torch.Tensor]:
    """Moments of the advantages the loss sees: one value per sequence (B,) or per token (B, T)."""
    mask = mask.to(torch.float32)
    full = _broadcast(advantages.to(torch.float32), mask)
    adv = full * mask
    lengths = mask.sum(-1).clamp(min=1.0)
    has_tokens = (mask.sum(-1) > 0).float()
    seq_mean = adv.sum(-1) / lengths
    # Population std within each sequence, shifted by the first value so that a constant advantage gives exactly 0
    # (subtracting a rounded mean would leave ~1e-8).
    shifted = (full - full[:, :1]) * mask
    seq_var = ((shifted**2).sum(-1) / lengths - (shifted.sum(-1) / lengths) ** 2).clamp(min=0.0)
    return {
        "adv/tokens": mask.sum(),
        "adv/sequences": has_tokens.sum(),
        "adv/sum": adv.sum(),
        "adv/sum_sq": (adv**2).sum(),
        "adv/sum_abs": adv.abs().sum(),
        "adv/pos": ((adv > 0).float() * mask).sum(),
        "adv/neg": ((adv < 0).float() * mask).sum(),
        "adv/seq_mean_sum": (seq_mean * has_tokens).sum(),
        "adv/seq_std_sum": (seq_var.sqrt() * has_tokens).sum(),
    }


def ratio_moments(
    log_weights: torch.Tensor,
    advantages: torch.Tensor,
    mask: torch.Tensor,
    epsilon_low: float,
    epsilon_high: float,
) -> dict[str, torch.Tensor]:
    """Clip and importance-ratio moments for the weights a level actually used.

    `log_weights` is (B, 1) for the sequence level and (B, T) otherwise. Clipping follows PPO's pessimistic
    minimum: a token is low-clipped when w < 1 - eps_low with A < 0 and high-clipped when w > 1 + eps_high with A > 0.
    Clip fractions are given token-weighted and sequence-weighted so they compare across levels. Ratio moments are
    over the weights themselves: per sequence for (B, 1), per valid token for (B, T).
    """
    mask = mask.to(torch.float32)
    log_weights = log_weights.detach().to(torch.float32)
    weights = log_weights.exp()
    w_tok = _broadcast(weights, mask)
    adv = _broadcast(advantages.to(torch.float32), mask)
    low = ((w_tok < 1 - epsilon_low) & (adv < 0)).float() * mask
    high = ((w_tok > 1 + epsilon_high) & (adv > 0)).float() * mask
    region = low + high  # disjoint: low needs w < 1, high needs w > 1
    lengths = mask.sum(-1)
    has_tokens = (lengths > 0).float()

    def per_sequence(x: torch.Tensor) -> torch.Tensor:
        return (x.sum(-1) / lengths.clamp(min=1.0) * has_tokens).sum()

    if weights.shape[1] == 1:  # one weight per sequence
        ratio_mask = has_tokens.unsqueeze(1)
    else:
        ratio_mask = mask
    w = weights * ratio_mask
    return {
        "clip/tokens": mask.sum(),
        "clip/sequences": has_tokens.sum(),
        "clip/low_tokens": low.sum(),
        "clip/high_tokens": high.sum(),
        "clip/region_tokens": region.sum(),
        "clip/low_seq_sum": per_sequence(low),
        "clip/high_seq_sum": per_sequence(high),
        "clip/region_seq_sum": per_sequence(region),
        "clip/any_seq_sum": ((region.sum(-1) > 0).float() * has_tokens).sum(),
        "is_ratio/n": ratio_mask.sum(),
        "is_ratio/sum": w.sum(),
        "is_ratio/sum_sq": (w**2).sum(),
    }


def noise_moments(
    logps: torch.Tensor, sampling_logps: torch.Tensor, mask: torch.Tensor
) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """The ratio's noise floor: (moments, maxima) of log w where the policy still equals the sampling policy.

    On the first optimizer step after generation every importance ratio should be exactly 1; what is left of
    log w = logp - logp_sampling is numerical mismatch (precision, kernels, batch shapes, a generation engine).
    Measured at token level (log w_t) and sequence level (log s_i, the length-normalised mean) whatever the level.
    """
    mask = mask.to(torch.float32)
    token = (logps.detach().float() - sampling_logps.float()) * mask
    has_tokens = mask.sum(-1) > 0
    sequence = sequence_log_ratio(logps.detach().float(), sampling_logps.float(), mask).squeeze(1)[has_tokens]
    nan = torch.tensor(float("nan"))
    moments = {
        "noise/tokens": mask.sum(),
        "noise/token_sum_sq": (token**2).sum(),
        "noise/sequences": has_tokens.float().sum(),
        "noise/seq_sum_sq": (sequence**2).sum(),
    }
    maxima = {
        "is_ratio/noise_token_max": token.abs().max() if has_tokens.any() else nan,
        "is_ratio/noise_seq_max": sequence.abs().max() if has_tokens.any() else nan,
    }
    return moments, maxima


def advantage_extremes(advantages: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(min, max) over valid tokens."""
    return _masked_extremes(_broadcast(advantages.to(torch.float32), mask), mask.bool())


def ratio_extremes(log_weights: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(min, max) of the importance weights over the entries `ratio_moments` counts."""
    weights = log_weights.detach().to(torch.float32).exp()
    valid = mask.bool() if weights.shape[1] != 1 else mask.bool().any(-1, keepdim=True)
    return _masked_extremes(weights, valid)


def _masked_extremes(x: torch.Tensor, valid: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    if not valid.any():
        nan = torch.tensor(float("nan"))
        return nan, nan
    values = x[valid]
    return values.min(), values.max()


def finalize(m: dict[str, float]) -> dict[str, float]:
    """Turn summed moments (from either moments function, or both) into the logged metrics."""
    out: dict[str, float] = {}
    if m.get("adv/tokens", 0) > 0:
        n, s = m["adv/tokens"], m["adv/sequences"]
        mean = m["adv/sum"] / n
        out.update(
            {
                "adv/mean_token": mean,
                "adv/mean_seq": m["adv/seq_mean_sum"] / max(s, 1.0),
                "adv/std": _std(m["adv/sum_sq"] / n, mean),
                "adv/abs_mean": m["adv/sum_abs"] / n,
                "adv/frac_pos": m["adv/pos"] / n,
                "adv/frac_neg": m["adv/neg"] / n,
                "adv/frac_zero": 1.0 - (m["adv/pos"] + m["adv/neg"]) / n,
                "adv/within_seq_std": m["adv/seq_std_sum"] / max(s, 1.0),
            }
        )
    # harness.algorithms.credit.correlation.credit_corr_moments: against the process advantage, the reference's own
    # token rewards (gamma = 0), Monte-Carlo step advantages
    for key in ("adv/credit_corr", "adv/credit_corr_step", "adv/credit_corr_mc"):
        if m.get(f"{key}_count", 0) > 0:
            out[key] = m[f"{key}_sum"] / m[f"{key}_count"]
    if m.get("mc/generation_steps", 0) > 0:  # harness.training.trainer's Monte-Carlo continuations (mc_value)
        out["mc/generations"] = m["mc/generations_sum"] / m["mc/generation_steps"]
    if m.get("clip/tokens", 0) > 0:
        n, s = m["clip/tokens"], max(m["clip/sequences"], 1.0)
        for kind in ("low", "high", "region"):
            out[f"clip/{kind}_frac_token"] = m[f"clip/{kind}_tokens"] / n
            out[f"clip/{kind}_frac_seq"] = m[f"clip/{kind}_seq_sum"] / s
        out["clip/any_frac_seq"] = m["clip/any_seq_sum"] / s
    for granularity, count in (("token", "noise/tokens"), ("seq", "noise/sequences")):
        if m.get(count, 0) > 0:
            out[f"is_ratio/noise_{granularity}_rms"] = math.sqrt(m[f"noise/{granularity}_sum_sq"] / m[count])
    if m.get("is_ratio/n", 0) > 0:
        n, total, total_sq = m["is_ratio/n"], m["is_ratio/sum"], m["is_ratio/sum_sq"]
        mean = total / n
        out["is_ratio/mean"] = mean
        out["is_ratio/std"] = _std(total_sq / n, mean)
        # Normalised effective sample size (sum w)^2 / (n sum w^2), in (0, 1]; 1 means uniform weights.
        out["is_ratio/ess"] = total**2 / (n * total_sq) if total_sq > 0 else float("nan")
    return out


def _std(mean_sq: float, mean: float) -> float:
    return math.sqrt(max(mean_sq - mean * mean, 0.0))


class MetricWindow:
    """Accumulates moments and extremes over one logging window; `flush` returns the metrics and resets."""

    def __init__(self) -> None:
        self._moments: dict[str, float] = {}
        self._mins: dict[str, float] = {}
        self._maxs: dict[str, float] = {}

    def add(self, moments: dict[str, float], mins: dict[str, float], maxs: dict[str, float]) -> None:
        for key, value in moments.items():
            self._moments[key] = self._moments.get(key, 0.0) + value
        for key, value in mins.items():
            if math.isfinite(value):  # a batch with no valid token has no extreme
                self._mins[key] = min(self._mins.get(key, value), value)
        for key, value in maxs.items():
            if math.isfinite(value):
                self._maxs[key] = max(self._maxs.get(key, value), value)

    def flush(self) -> dict[str, float]:
        out = finalize(self._moments) | self._mins | self._maxs
        self.__init__()
        return out
