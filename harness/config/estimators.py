"""The advantage estimators (`advantage.estimator`): torch-free declarations; the math is in
harness/algorithms/advantages.py, imported when training starts.

Each entry's compute function is `fn(batch: AdvantageBatch, **params) -> Tensor (N, T)` on all ranks' rows
(harness/algorithms/batch.py). Registration order is the order of the generated tables and of error messages.
Add one with `@ESTIMATORS.register(...)` on its parameters' frozen dataclass (docs/extending.md).
"""

from __future__ import annotations

from dataclasses import dataclass

from harness.config.registry import TOKEN_REWARDS, Entry, Registry
from harness.config.schema import ranged


@dataclass(frozen=True, kw_only=True)
class Estimator(Entry):
    """An advantage estimator. `per_sequence`: its advantage is one value per sequence (constant along each row of
    what `compute` returns); the trainer then hands trl the (B,) column, so trl's loss and its clip metrics (which
    average over sequences for a (B, 1) ratio) are exactly trl's."""

    per_sequence: bool = False


ESTIMATORS: Registry[Estimator] = Registry("advantage.estimator", Estimator)


@ESTIMATORS.register(
    "outcome",
    "trl's group-normalised outcome advantage: one value per sequence",
    compute="harness.algorithms.advantages:outcome",
    per_sequence=True,
)
@dataclass(frozen=True, kw_only=True)
class Outcome:
    """Outcome supervision (DeepSeekMath, arXiv 2402.03300 §4.1.2), as trl computes it:

        A_{i,t} = (r_i - mean_group(r)) / (std_group(r) + 1e-4)    on every valid token t of completion i

    (trl's `scale_rewards` chooses the group's std, the batch's std or none; 1e-4 is trl's epsilon).
    """


@ESTIMATORS.register(
    "process",
    "per-token process advantage from the task's token rewards (DeepSeekMath process supervision)",
    compute="harness.algorithms.advantages:process",
    needs=frozenset({TOKEN_REWARDS}),
)
@dataclass(frozen=True, kw_only=True)
class Process:
    """Process supervision (DeepSeekMath, arXiv 2402.03300 §4.1.3), with an optional discount:

        r~_k    = (r_k - mean_R(r)) / (std_R(r) + 1e-4)        k in R, the group's reward positions
        A_{i,t} = sum_{k in R, k >= t} gamma^(k - t) r~_k

    gamma = 1 is the paper's sum of the normalised rewards of the steps at or after t; gamma < 1 (the
    `advantage=discounted` option) discounts later steps, as a return in RL does.
    """

    gamma: float = ranged(1.0, gt=0, le=1, doc="discount along the sequence (1: DeepSeekMath's undiscounted sum)")
