"""How right is the credit: `adv/credit_corr`, the rank correlation within each completion between an estimator's
per-token advantages and a reference credit (the task's process advantages, or Monte-Carlo step advantages).

For each completion, Spearman's rho over its valid tokens: the Pearson correlation of the two rank vectors, ties
given their average rank (scipy.stats.spearmanr's convention). A completion counts when it has at least 2 valid
tokens and neither vector is constant on them (rho is undefined otherwise); `adv/credit_corr` is the mean of rho
over the completions that count. The moments are sums and counts, so micro-batches and processes add exactly.
"""

from __future__ import annotations

import torch


def average_ranks(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """(N, T) 1-based ranks of each row's valid values, ties averaged; entries where `mask` is 0 are meaningless."""
    n, length = values.shape
    filled = torch.where(
        mask.bool(), values.to(torch.float64), torch.full_like(values, float("inf"), dtype=torch.float64)
    )
    ordered, order = torch.sort(filled, dim=1, stable=True)
    starts = torch.ones_like(ordered, dtype=torch.bool)
    starts[:, 1:] = ordered[:, 1:] != ordered[:, :-1]
    tie_group = torch.cumsum(starts.to(torch.int64), dim=1) - 1  # 0-based tie group within the row
    flat = (torch.arange(n, device=values.device).unsqueeze(1) * length + tie_group).reshape(-1)
    position = torch.arange(length, device=values.device, dtype=torch.float64).expand(n, length).reshape(-1)
    total = torch.zeros(n * length, dtype=torch.float64, device=values.device).index_add(0, flat, position)
    count = torch.zeros(n * length, dtype=torch.float64, device=values.device).index_add(
        0, flat, torch.ones_like(position)
    )
    sorted_ranks = (total[flat] / count[flat] + 1.0).reshape(n, length)
    return torch.empty_like(sorted_ranks).scatter_(1, order, sorted_ranks)


def credit_corr_moments(
    estimate: torch.Tensor, reference: torch.Tensor, mask: torch.Tensor, key: str = "adv/credit_corr"
) -> dict[str, torch.Tensor]:
    """{f"{key}_sum": sum of per-completion rho, f"{key}_count": completions that count}; `key` names the metric
    they feed (`adv/credit_corr`, `adv/credit_corr_step`, `adv/credit_corr_mc`: stats.finalize divides them)."""
    if not (estimate.shape == reference.shape == mask.shape) or mask.dim() != 2:
        raise ValueError(
            f"estimate {tuple(estimate.shape)}, reference {tuple(reference.shape)} and mask {tuple(mask.shape)} "
            "must be the same (N, T)"
        )
    valid = mask.to(torch.float64)
    tokens = valid.sum(dim=1)
    ranks = []
    for values in (estimate, reference):
        r = average_ranks(values, mask)
        centred = (r - (r * valid).sum(dim=1, keepdim=True) / tokens.clamp(min=1.0).unsqueeze(1)) * valid
        ranks.append(centred)
    x, y = ranks
    sxx, syy, sxy = (x * x).sum(dim=1), (y * y).sum(dim=1), (x * y).sum(dim=1)
    # Centred ranks of a non-constant row have sum of squares >= 1/2; below that the row is constant.
    counts = (tokens >= 2) & (sxx > 0.25) & (syy > 0.25)
    rho = torch.where(counts, sxy / (sxx * syy).clamp(min=1e-30).sqrt(), torch.zeros_like(sxy))
    return {f"{key}_sum": rho.sum(), f"{key}_count": counts.to(torch.float64).sum()}


def credit_corr(estimate: torch.Tensor, reference: torch.Tensor, mask: torch.Tensor) -> float:
    """Mean within-completion Spearman rho over the completions that count; NaN when none does."""
    moments = credit_corr_moments(estimate, reference, mask)
    count = float(moments["adv/credit_corr_count"])
    return float(moments["adv/credit_corr_sum"]) / count if count else float("nan")
