"""Held-out evaluation statistics from n sampled completions per prompt, as pure torch functions.

- `pass_at_k`: the unbiased pass@k estimator of Chen et al. 2021 ("Evaluating Large Language Models Trained on
  Code", arXiv 2107.03374, §2.1): with n samples of which c are correct, pass@k = 1 − C(n−c, k) / C(n, k), the
  probability that k of the n samples drawn without replacement hold at least one correct one. Computed in the
  paper's numerically stable product form 1 − ∏_{i=n−c+1}^{n} (1 − k/i) (no large binomials); 1 when n − c < k.
- `best_of_k`: the same estimator for a graded reward: the expected best reward of k of the n samples drawn
  without replacement, Σ_{i=k}^{n} C(i−1, k−1) / C(n, k) · r_(i) with r_(1) ≤ … ≤ r_(n) the sorted rewards (the
  i-th smallest is the best of a k-subset exactly when the subset holds it and k−1 of the i−1 below it). For 0/1
  rewards it equals `pass_at_k`. Weights via log-gamma, stable for any n.
- mean@k (avg@k in DAPO and the GSPO paper): its unbiased estimate from n ≥ k samples is the mean of all n, the
  same for every k, so the evaluator logs it once (`eval/sampled/*`).
"""

from __future__ import annotations

import torch


def pass_at_k(correct: torch.Tensor, k: int) -> torch.Tensor:
    """(P,) unbiased pass@k per prompt from `correct`, a (P, n) 0/1 (or bool) tensor of n samples per prompt."""
    n = correct.shape[-1]
    if not 1 <= k <= n:
        raise ValueError(f"k={k} must be in [1, n={n}]")
    c = correct.to(torch.float64).sum(-1, keepdim=True)  # (P, 1)
    i = torch.arange(1, n + 1, dtype=torch.float64, device=correct.device)  # (n,)
    factors = torch.where(i > n - c, 1.0 - k / i, torch.ones_like(i))  # only i in (n - c, n]
    return (1.0 - factors.prod(-1)).to(torch.float32)


def best_of_k(rewards: torch.Tensor, k: int) -> torch.Tensor:
    """(P,) unbiased expected maximum of k of the n rewards per prompt (k drawn without replacement) from (P, n)."""
    n = rewards.shape[-1]
    if not 1 <= k <= n:
        raise ValueError(f"k={k} must be in [1, n={n}]")
    ordered = rewards.to(torch.float64).sort(dim=-1).values
    i = torch.arange(1, n + 1, dtype=torch.float64, device=rewards.device)
    weights = torch.zeros(n, dtype=torch.float64, device=rewards.device)
    above = i >= k
    j = i[above]
    weights[above] = torch.exp(_log_choose(j - 1, torch.tensor(k - 1.0)) - _log_choose(torch.tensor(float(n)), k))
    return (ordered * weights).sum(-1).to(torch.float32)


def _log_choose(n: torch.Tensor, k) -> torch.Tensor:
    k = torch.as_tensor(k, dtype=torch.float64)
    n = torch.as_tensor(n, dtype=torch.float64)
    return torch.lgamma(n + 1) - torch.lgamma(k + 1) - torch.lgamma(n - k + 1)
