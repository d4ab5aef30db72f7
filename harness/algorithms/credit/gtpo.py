"""GTPO, Group Token Policy Optimization: Tan et al., "GTPO and GRPO-S: Token and Sequence-Level Reward Shaping
with Policy Entropy", arXiv 2508.04349 (§2.1, Eqs. 3, 5 and 6; Remarks 2.1 and 2.5).

The G completions of a prompt split into the successful set O+ (n of them) and the unsuccessful set O- (m). At
position t let d_t (h_t) be the number of completions of O+ (O-) still active, i.e. with a valid token at t. Each
token gets an entropy-weighted reward (Eq. 3 for O+, Eq. 5 for O-):

    r~+_{i,t} = alpha1 * r_i + alpha2 * H_{i,t} / (sum_{k in O+, active at t} H_{k,t}) * d_t
    r~-_{j,t} = alpha1 * r_j - alpha2 * (1 / H_{j,t}) / (sum_{k in O-, active at t} 1 / H_{k,t}) * h_t

so at every position the entropy shares of the active successful completions sum to d_t (high-entropy tokens of
correct answers get more), and the inverse-entropy shares of the active unsuccessful ones sum to h_t (confident
tokens of wrong answers are penalised more). H is the sampling policy's entropy, detached (Remark 2.5); the
denominators carry eps = 1e-8 (Remark 2.1). The paper writes the unsuccessful base reward as alpha1 * (-1) for its
0/1 rewards; alpha1 * r_j differs from it by a constant over O-, which the normalisation below removes, so for 0/1
rewards the two are identical, and for graded rewards alpha1 * r_j keeps "more reward is better" inside O-.

`normalisation="polarity"` is the paper's Eq. 6: the token rewards of O+ and of O- are normalised separately,
A_{i,t} = (r~_{i,t} - mean(R~+/-)) / std(R~+/-), over the valid tokens of the group's set (unbiased std plus 1e-4,
trl's convention for its own group normalisation). Note what this implies: any per-set constant cancels, so with 0/1
rewards the advantages do not depend on alpha1 or on alpha2 > 0, the sign of the outcome is not kept (every set has
mean 0), and alpha2 = 0 gives 0 rather than trl's outcome advantage.

`normalisation="outcome"` (this harness's variant, not the paper's) keeps the outcome part as trl computed it and adds
the paper's entropy redistribution unnormalised: A_{i,t} = alpha1 * A_i + alpha2 * s_{i,t}, s the entropy term of
Eq. 3 (positive) or Eq. 5 (negative). alpha1 = 1, alpha2 = 0 is exactly trl's outcome advantage, and the shaping
never flips the sign of A_i.

"Successful" is r_i above the group mean: for 0/1 rewards exactly the correct completions. A group with all rewards
equal gets 0 under both normalisations (trl gives it 0 and DAPO, the paper's base, drops it by dynamic sampling); a
completion with a NaN reward (unscored, trl's convention) is in neither set and gets 0.

Defaults alpha1 = 1, alpha2 = 0.1: the paper's experimental values, as two independent reproductions of the paper
quote them, not read off its text: the stored copies reachable here (arXiv HTML v5 and v6, and summaries) hold its
abstract and introduction only.
"""

from __future__ import annotations

import torch

from harness.algorithms.batch import AdvantageBatch
from harness.algorithms.credit.groups import TRL_EPS, check_layout, group_view, informative_groups, scored, successful

ALPHA1 = 1.0
ALPHA2 = 0.1
EPS = 1e-8  # Remark 2.1
NORMALISATIONS = ("polarity", "outcome")


def entropy_shares(entropies: torch.Tensor, mask: torch.Tensor, positive: torch.Tensor, num_generations: int):
    """The entropy term s_{i,t} of Eqs. 3 and 5 (without alpha2): (N, T), >= 0 on O+ tokens, <= 0 on O- tokens.

    On O+: H_{i,t} / sum_{active O+} H_{k,t} * d_t. On O-: -(1/H_{j,t}) / sum_{active O-} (1/H_{k,t}) * h_t.
    """
    h = group_view(entropies.detach().to(torch.float64).clamp(min=0.0), num_generations)
    valid = group_view(mask.to(torch.float64), num_generations)
    pos = group_view(positive.to(torch.float64), num_generations).unsqueeze(-1)
    on_pos, on_neg = valid * pos, valid * (1.0 - pos)
    d_t, h_t = on_pos.sum(dim=1, keepdim=True), on_neg.sum(dim=1, keepdim=True)
    weight = h * on_pos
    share_pos = weight / (weight.sum(dim=1, keepdim=True) + EPS) * d_t
    inverse = on_neg / (h + EPS)
    share_neg = inverse / (inverse.sum(dim=1, keepdim=True) + EPS) * h_t
    return (share_pos - share_neg).reshape(entropies.shape)


def _normalise_per_set(values: torch.Tensor, sets: torch.Tensor) -> torch.Tensor:
    """(P, G, T) values z-scored over the entries of each group where `sets` (P, G, T) is 1; 0 elsewhere."""
    count = sets.sum(dim=(1, 2), keepdim=True)
    mean = (values * sets).sum(dim=(1, 2), keepdim=True) / count.clamp(min=1.0)
    var = (((values - mean) * sets) ** 2).sum(dim=(1, 2), keepdim=True) / (count - 1).clamp(min=1.0)
    return (values - mean) / (var.sqrt() + TRL_EPS) * sets


def gtpo_advantages(
    rewards: torch.Tensor,
    entropies: torch.Tensor,
    mask: torch.Tensor,
    num_generations: int,
    alpha1: float = ALPHA1,
    alpha2: float = ALPHA2,
    normalisation: str = "polarity",
    outcome: torch.Tensor | None = None,
) -> torch.Tensor:
    """GTPO token advantages (N, T); 0 on padding and in groups whose rewards are all equal.

    rewards: sequence rewards r_i (N,). entropies: sampling-policy entropies (N, T). outcome: trl's outcome advantages
    A_i (N,), needed by `normalisation="outcome"` only. See the module docstring for both normalisations.
    """
    check_layout(mask, num_generations, rewards=rewards, entropies=entropies)
    if rewards.dim() != 1 or entropies.dim() != 2:
        raise ValueError("rewards must be (N,) and entropies (N, T)")
    if normalisation not in NORMALISATIONS:
        raise ValueError(f"normalisation={normalisation!r}; allowed: {', '.join(NORMALISATIONS)}")
    if alpha1 < 0 or alpha2 < 0:
        raise ValueError(f"alpha1={alpha1}, alpha2={alpha2}; allowed: both >= 0")
    if normalisation == "outcome" and (outcome is None or outcome.shape != rewards.shape):
        raise ValueError("normalisation='outcome' needs trl's outcome advantages (N,) as `outcome`")
    dtype = rewards.dtype if rewards.is_floating_point() else torch.float32
    positive = successful(rewards, num_generations)
    valid = mask.to(torch.float64) * scored(rewards).to(torch.float64).unsqueeze(1)  # unscored rows: in no set
    shares = entropy_shares(entropies, valid, positive, num_generations)
    keep = (informative_groups(rewards, num_generations).unsqueeze(1) & valid.bool()).expand_as(valid)
    rewards = torch.nan_to_num(rewards.to(torch.float64), nan=0.0)
    if normalisation == "outcome":
        base = alpha1 * outcome.to(torch.float64).unsqueeze(1)
        return torch.where(keep, base + alpha2 * shares, 0.0).to(outcome.dtype)
    token_rewards = alpha1 * rewards.unsqueeze(1) + alpha2 * shares
    grouped = group_view(token_rewards, num_generations)
    valid_g = group_view(valid, num_generations)
    pos = group_view(positive.to(torch.float64), num_generations).unsqueeze(-1)
    normalised = _normalise_per_set(grouped, valid_g * pos) + _normalise_per_set(grouped, valid_g * (1.0 - pos))
    return torch.where(keep, normalised.reshape(mask.shape), 0.0).to(dtype)


def gtpo(batch: AdvantageBatch, alpha1: float, alpha2: float, normalisation: str) -> torch.Tensor:
    """The registered estimator `gtpo` (harness/config/estimators.py): needs the sampling entropies."""
    return gtpo_advantages(
        batch.rewards,
        batch.entropies,
        batch.mask,
        batch.num_generations,
        alpha1,
        alpha2,
        normalisation,
        outcome=batch.advantages,
    ).to(batch.advantages.dtype)
