"""KTAE, Key-token Advantage Estimation: Sun et al., "KTAE: A Model-Free Algorithm to Key-Tokens Advantage
Estimation in Mathematical Reasoning", arXiv 2505.16826 (NeurIPS 2025), §3.

Per group of G completions, split into the correct set x_T and the incorrect set x_F, every token id v that occurs in
the group gets a 2x2 contingency table over completions: a = completions of x_T containing v, b = completions of x_F
containing v, c = |x_T| - a, d = |x_F| - b, N = G. From it:

- significance, Fisher's exact test: P(v) = (a+b)! (c+d)! (a+c)! (b+d)! / (a! b! c! d! N!), the hypergeometric
  probability of the table (computed with lgamma), turned into F(v) = exp(-2 P(v)) (near 1 for a table that is
  unlikely under independence);
- information gain: IG(v) = H(Y) - H(Y | X_v), Y = correctness, X_v = "the completion contains v" (in bits, so
  IG lies in [0, 1] like F);
- direction: D(v) = (arcsin sqrt(a / (a+c)) - arcsin sqrt(b / (b+d))) + h3 * (TF_T/TF_F - TF_F/TF_T), where
  TF_{T/F}(v) = (k1 + 1) tf / (k1 (1 - b_bm25 + b_bm25 len_{T/F} / len_avg) + tf) is BM25's saturated frequency of v
  in the concatenation of the correct (incorrect) completions, len its length in tokens, len_avg the mean of the two.

The key-token value sigma((h1 F(v) + h2 IG(v)) D(v)) - 0.5 is added to the outcome advantage of every valid token
that is v:  A_{i,t} = A_i + sigma((h1 F + h2 IG) D) - 0.5.

Tokens are compared by id only, so any tokenizer works and no special id is assumed (padding is excluded by `mask`).
"Correct" is a reward above the group mean (exactly the correct completions for 0/1 rewards). A group whose rewards
are all equal has an empty x_T or x_F and no table: it gets 0, as trl gives it (and DAPO drops it). A completion with
a NaN reward (unscored, trl's convention) is in no table (N counts the scored completions) and gets 0.

Harness choices (not from the paper): the frequency ratios carry add-one smoothing, (TF_T + 1) / (TF_F + 1), because
a key token of one set has tf = 0 in the other and the paper's ratio is then undefined. Defaults h1 = h2 = h3 = 1,
k1 = 1.2, b_bm25 = 0.75: the stored copies of the paper reachable here (arXiv HTML v2, summaries) hold its abstract
and introduction, not its experiments section, so h1..h3 are unit weights and (k1, b) are BM25's customary values
(Robertson et al.), not values read off the paper. h1 = h2 = 0 switches the shaping off and gives exactly trl's
outcome advantage.
"""

from __future__ import annotations

import math

import torch

from harness.algorithms.batch import AdvantageBatch
from harness.algorithms.credit.groups import broadcast, check_layout, informative_groups, scored, successful

H1 = 1.0
H2 = 1.0
H3 = 1.0
BM25_K1 = 1.2
BM25_B = 0.75
SMOOTHING = 1.0


def _binary_entropy_bits(p: torch.Tensor) -> torch.Tensor:
    """H(p) in bits with 0 log 0 = 0."""
    p = p.clamp(0.0, 1.0)
    q = 1.0 - p
    return -(torch.xlogy(p, p) + torch.xlogy(q, q)) / math.log(2.0)


def _ratio(num: torch.Tensor, den: torch.Tensor) -> torch.Tensor:
    """num / den, 0 where den is 0."""
    return torch.where(den > 0, num / den.clamp(min=1e-30), torch.zeros_like(num))


def key_token_values(
    rewards: torch.Tensor,
    completion_ids: torch.Tensor,
    mask: torch.Tensor,
    num_generations: int,
    h1: float = H1,
    h2: float = H2,
    h3: float = H3,
    bm25_k1: float = BM25_K1,
    bm25_b: float = BM25_B,
) -> torch.Tensor:
    """sigma((h1 F + h2 IG) D) - 0.5 for every valid token (N, T), float64; 0 on padding and uninformative groups."""
    check_layout(mask, num_generations, rewards=rewards, completion_ids=completion_ids)
    n, length = mask.shape
    valid = mask.bool()
    keep = informative_groups(rewards, num_generations)
    valid = valid & (keep & scored(rewards)).unsqueeze(1)  # an unscored completion (NaN reward) is in no table
    out = torch.zeros(n, length, dtype=torch.float64, device=mask.device)
    if not valid.any():
        return out
    correct = successful(rewards, num_generations)
    rows = torch.arange(n, device=mask.device).unsqueeze(1).expand(n, length)[valid]
    ids = completion_ids.to(torch.int64)[valid]
    if (ids < 0).any():
        raise ValueError("completion_ids must be non-negative token ids")
    # One key per (group, token id), so that every group's statistics come out of one pass over the batch.
    span = int(ids.max()) + 1
    keys, token_key = torch.unique(
        torch.div(rows, num_generations, rounding_mode="floor") * span + ids, return_inverse=True
    )
    groups = torch.div(keys, span, rounding_mode="floor")
    # (completion, key) pairs: tf = occurrences of the key in the completion.
    pairs, tf = torch.unique(rows * keys.numel() + token_key, return_counts=True)
    pair_row, pair_key = torch.div(pairs, keys.numel(), rounding_mode="floor"), pairs % keys.numel()
    in_t = correct[pair_row]
    zeros = torch.zeros(keys.numel(), dtype=torch.float64, device=mask.device)
    a = zeros.index_add(0, pair_key, in_t.to(torch.float64))
    b = zeros.index_add(0, pair_key, (~in_t).to(torch.float64))
    tf_t = zeros.index_add(0, pair_key, tf.to(torch.float64) * in_t)
    tf_f = zeros.index_add(0, pair_key, tf.to(torch.float64) * ~in_t)

    num_groups = n // num_generations
    lengths = mask.to(torch.float64).sum(dim=1)
    per_group = torch.zeros(num_groups, dtype=torch.float64, device=mask.device)
    group_of_row = torch.div(torch.arange(n, device=mask.device), num_generations, rounding_mode="floor")
    wrong = scored(rewards) & ~correct
    n_t = per_group.index_add(0, group_of_row, correct.to(torch.float64))[groups]
    n_f = per_group.index_add(0, group_of_row, wrong.to(torch.float64))[groups]
    len_t = per_group.index_add(0, group_of_row, lengths * correct)[groups]
    len_f = per_group.index_add(0, group_of_row, lengths * wrong)[groups]
    c, d, total = n_t - a, n_f - b, n_t + n_f

    log_p = (
        torch.lgamma(a + b + 1)
        + torch.lgamma(c + d + 1)
        + torch.lgamma(a + c + 1)
        + torch.lgamma(b + d + 1)
        - torch.lgamma(a + 1)
        - torch.lgamma(b + 1)
        - torch.lgamma(c + 1)
        - torch.lgamma(d + 1)
        - torch.lgamma(total + 1)
    )
    fisher = torch.exp(-2.0 * torch.exp(log_p))
    conditional = (a + b) / total * _binary_entropy_bits(_ratio(a, a + b)) + (c + d) / total * _binary_entropy_bits(
        _ratio(c, c + d)
    )
    gain = (_binary_entropy_bits(n_t / total) - conditional).clamp(min=0.0)

    len_avg = (len_t + len_f) / 2.0

    def saturated(freq: torch.Tensor, set_length: torch.Tensor) -> torch.Tensor:
        norm = bm25_k1 * (1.0 - bm25_b + bm25_b * _ratio(set_length, len_avg))
        return _ratio((bm25_k1 + 1.0) * freq, norm + freq)

    ratio = (saturated(tf_t, len_t) + SMOOTHING) / (saturated(tf_f, len_f) + SMOOTHING)
    direction = torch.asin(_ratio(a, n_t).sqrt()) - torch.asin(_ratio(b, n_f).sqrt()) + h3 * (ratio - 1.0 / ratio)
    value = torch.sigmoid((h1 * fisher + h2 * gain) * direction) - 0.5
    out[valid] = value[token_key]
    return out


def ktae_advantages(
    rewards: torch.Tensor,
    outcome: torch.Tensor,
    completion_ids: torch.Tensor,
    mask: torch.Tensor,
    num_generations: int,
    h1: float = H1,
    h2: float = H2,
    h3: float = H3,
    bm25_k1: float = BM25_K1,
    bm25_b: float = BM25_B,
) -> torch.Tensor:
    """A_{i,t} = A_i + sigma((h1 F + h2 IG) D) - 0.5 on valid tokens, 0 on padding; (N, T) in `outcome`'s dtype.

    rewards: sequence rewards (N,), which decide correct vs incorrect. outcome: trl's outcome advantages A_i (N,).
    completion_ids: the sampled token ids (N, T), any tokenizer.
    """
    check_layout(mask, num_generations, outcome=outcome)
    if min(h1, h2, h3) < 0 or bm25_k1 <= 0 or not 0.0 <= bm25_b <= 1.0:
        raise ValueError(
            f"h1={h1}, h2={h2}, h3={h3}, bm25_k1={bm25_k1}, bm25_b={bm25_b}; allowed: h >= 0, k1 > 0, 0 <= b <= 1"
        )
    dtype = outcome.dtype if outcome.is_floating_point() else torch.float32
    values = key_token_values(rewards, completion_ids, mask, num_generations, h1, h2, h3, bm25_k1, bm25_b)
    return broadcast(outcome.to(dtype), mask) + values.to(dtype)


def ktae(batch: AdvantageBatch, h1: float, h2: float, h3: float, bm25_k1: float, bm25_b: float) -> torch.Tensor:
    """The registered estimator `ktae` (harness/config/estimators.py): reads the completion ids, needs nothing else."""
    return ktae_advantages(
        batch.rewards,
        batch.advantages,
        batch.completion_ids,
        batch.mask,
        batch.num_generations,
        h1,
        h2,
        h3,
        bm25_k1,
        bm25_b,
    )
