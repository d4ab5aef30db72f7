"""The importance-sampling levels (`importance_sampling.level`): torch-free declarations; the log-weight functions are
in harness/algorithms/importance.py, imported when training starts.

Registration order is the report's order: the baselines first, then GSPO-token. Each entry's compute function is
`fn(logps, old_logps, mask) -> log w`, (B, T) or (B, 1): the weights the level uses, for the logged statistics.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from harness.config.registry import Entry, Registry


@dataclass(frozen=True, kw_only=True)
class Level(Entry):
    """An importance-sampling level.

    - `label`: its name in the report.
    - `trl_level`: the `importance_sampling_level` trl is told.
    - `rebase_old_logps`: "module:function" (logps, old, mask) -> old log-probs that make trl's ratio at `trl_level`
      this level's weight (None: trl's ratio is the level's own). A re-based level is refused with trl's off-policy
      mask, which would read the re-based log-probs.
    - `level_blind_refused`: refused with the loss types that ignore the level (cispo, vespo): such a run would
      silently equal another level, a mislabelled arm.
    - `noise_granularity`: which measured noise floor (token or seq) matters for its clip decisions.
    - `baseline`: a level GSPO-token is compared against (the report's verdicts).
    """

    label: str
    trl_level: Literal["token", "sequence"]
    rebase_old_logps: str | None = None
    level_blind_refused: bool = False
    noise_granularity: Literal["token", "seq"]
    baseline: bool = True


LEVELS: Registry[Level] = Registry("importance_sampling.level", Level)


@LEVELS.register(
    "token",
    "GRPO: one importance ratio per token",
    label="GRPO (token)",
    trl_level="token",
    noise_granularity="token",
    compute="harness.algorithms.importance:token_log_weights",
)
@dataclass(frozen=True, kw_only=True)
class Token:
    """GRPO (DeepSeekMath, arXiv 2402.03300): log w_{i,t} = log pi(y_t) - log pi_old(y_t), shape (B, T)."""


@LEVELS.register(
    "sequence",
    "GSPO: one length-normalised ratio per sequence",
    label="GSPO (sequence)",
    trl_level="sequence",
    noise_granularity="seq",
    compute="harness.algorithms.importance:sequence_log_ratio",
)
@dataclass(frozen=True, kw_only=True)
class Sequence:
    """GSPO (arXiv 2507.18071 §4.1): log s_i = mean over valid tokens t of (log pi(y_t) - log pi_old(y_t)),
    shape (B, 1)."""


@LEVELS.register(
    "sequence_token",
    "GSPO-token: the sequence ratio's value with a per-token gradient",
    label="GSPO-token (sequence_token)",
    trl_level="token",
    rebase_old_logps="harness.algorithms.importance:gspo_token_old_logps",
    level_blind_refused=True,
    noise_granularity="seq",
    baseline=False,
    compute="harness.algorithms.importance:gspo_token_log_weights",
)
@dataclass(frozen=True, kw_only=True)
class SequenceToken:
    """GSPO-token (arXiv 2507.18071 §4.3): log w_{i,t} = sg[log s_i] + log pi(y_t) - sg[log pi(y_t)], shape (B, T).
    Its value is s_i on every token, but each token keeps its own gradient, so per-token advantages matter."""
