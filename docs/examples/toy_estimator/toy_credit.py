"""A toy advantage estimator: trl's outcome advantage times a linear ramp along the completion.

    A_{i,t} = A_i * (s + (1 - s) * t / (L_i - 1))      t = 0 .. L_i - 1, the valid tokens of completion i

so the first token gets the share `start` = s of the outcome advantage and the last token all of it (s = 1 gives
trl's outcome advantage on every token).
"""

from dataclasses import dataclass

import torch

from harness.algorithms.batch import AdvantageBatch
from harness.config.estimators import ESTIMATORS
from harness.config.schema import ranged


def ramp(batch: AdvantageBatch, start: float) -> torch.Tensor:
    mask = batch.mask.float()
    position = mask.cumsum(-1) - 1  # t: the index among the valid tokens
    last = (mask.sum(-1, keepdim=True) - 1).clamp(min=1)  # L_i - 1
    return batch.advantages.unsqueeze(1) * (start + (1 - start) * position / last) * mask


@ESTIMATORS.register("toy", "outcome advantage times a linear ramp along the completion", compute=ramp)
@dataclass(frozen=True, kw_only=True)
class Toy:
    """A_{i,t} = A_i (s + (1 - s) t / (L_i - 1)): a toy for docs/extending.md."""

    start: float = ranged(0.5, ge=0, le=1, doc="the ramp's share of the outcome advantage at the first token")
