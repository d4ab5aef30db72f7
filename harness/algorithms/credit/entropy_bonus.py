"""Entropy-based advantage shaping: Cheng et al., "Reasoning with Exploration: An Entropy Perspective on
Reinforcement Learning for LLMs", arXiv 2506.14758 (§3, the method; "one line of code").

The paper augments the outcome advantage of every token with a clipped, gradient-detached entropy term:

    psi(H_{i,t}) = min(alpha * H_{i,t}^detach, |A_i| / kappa),      alpha > 0, kappa > 1
    A_{i,t}      = A_i + psi(H_{i,t})

H_{i,t} = -sum_v pi(v | q, o_{<t}) log pi(v | q, o_{<t}) is the sampling policy's entropy at token t. The clip at
|A_i| / kappa keeps the term below the outcome advantage (kappa > 1), so it never flips the sign of A_i and never
dominates it; a completion with A_i = 0 gets no bonus at all. The term is detached: it changes the weight of the
policy-gradient term, it is not an entropy-maximisation gradient.
"""

from __future__ import annotations

import torch

from harness.algorithms.batch import AdvantageBatch
from harness.algorithms.credit.groups import broadcast, check_layout

# Defaults: alpha = 0.4 and kappa = 2 are the values reimplementations of the paper give as its defaults (e.g. the
# `alpha: float = 0.4, kappa: float = 2.0` of third-party verl/trl ports that cite it). The formula and the
# constraints alpha > 0, kappa > 1 are the paper's own (§3). The stored copies of the paper reachable here (arXiv HTML
# v1 and v3, and summaries) hold its abstract and introduction only, so the numbers were not read off its text.
ALPHA = 0.4
KAPPA = 2.0


def entropy_bonus_advantages(
    outcome: torch.Tensor,
    entropies: torch.Tensor,
    mask: torch.Tensor,
    alpha: float = ALPHA,
    kappa: float = KAPPA,
) -> torch.Tensor:
    """A_{i,t} = A_i + min(alpha * H_{i,t}, |A_i| / kappa) on valid tokens, 0 on padding; (N, T).

    outcome: trl's outcome advantages A_i (N,). entropies: the sampling policy's token entropies H_{i,t} (N, T),
    detached here. alpha = 0 gives exactly A_i on every valid token; a group with constant rewards (A_i = 0) gets 0.
    """
    check_layout(mask, outcome=outcome, entropies=entropies)
    if outcome.dim() != 1 or entropies.dim() != 2:
        raise ValueError("outcome must be (N,) and entropies (N, T)")
    if alpha < 0:
        raise ValueError(f"alpha={alpha}; allowed: alpha >= 0 (0 switches the entropy term off)")
    if kappa <= 1:
        raise ValueError(f"kappa={kappa}; allowed: kappa > 1 (the clip |A|/kappa must stay below |A|)")
    if not outcome.is_floating_point():
        outcome = outcome.float()
    cap = (outcome.abs() / kappa).unsqueeze(1)
    bonus = torch.minimum(alpha * entropies.detach().to(outcome.dtype).clamp(min=0.0), cap)
    return broadcast(outcome, mask) + bonus * mask.to(outcome.dtype)


def entropy_bonus(batch: AdvantageBatch, alpha: float, kappa: float) -> torch.Tensor:
    """The registered estimator `entropy_bonus` (harness/config/estimators.py): needs the sampling entropies."""
    return entropy_bonus_advantages(batch.advantages, batch.entropies, batch.mask, alpha, kappa)
