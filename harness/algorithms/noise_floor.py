"""The importance ratio's noise floor, read from logged metrics: when does rounding decide clipping?

Imports nothing heavy: the trainer's warning, the run summary and the report share it. The measurement itself is
`stats.noise_moments`; the metric names are in the metric catalogue (harness/config/metrics.py).
"""

from __future__ import annotations

from harness.config.levels import LEVELS

NOISE_FRACTION = 0.1  # "well below the clip range": an order of magnitude
GRANULARITIES = {"token": "token", "seq": "sequence"}


def run_noise_floor(records: list[dict]) -> dict[str, float]:
    """{"token_max", "seq_max"}: the largest |log w| a run measured where every ratio should be 1 ({} if none)."""
    out = {}
    for granularity in GRANULARITIES:
        key = f"is_ratio/noise_{granularity}_max"
        values = [r[key] for r in records if key in r]
        if values:
            out[f"{granularity}_max"] = max(values)
    return out if len(out) == len(GRANULARITIES) else {}


def noise_warning(logs: dict[str, float], level: str, epsilon_low: float, epsilon_high: float) -> str | None:
    """One line when the noise at the level's own granularity is not well below the clip range, else None.

    `logs` holds `is_ratio/noise_{token,seq}_max` (one log record, or `run_noise_floor`'s keys prefixed alike).
    The level's `noise_granularity` (harness/config/levels.py) says which one its clip decisions feel; None for a
    level this process has not registered.
    """
    granularity = level_granularity(level)
    if granularity is None:
        return None
    noise = logs.get(f"is_ratio/noise_{granularity}_max")
    epsilon = min(epsilon_low, epsilon_high)
    if noise is None or noise <= NOISE_FRACTION * epsilon:
        return None
    return (
        f"importance_sampling={level}: the ratio's noise floor ({noise:.2g}, max {GRANULARITIES[granularity]}-level "
        f"|log w| where every ratio should be 1) is not well below epsilon={epsilon:g}, so clipping follows "
        "rounding; compute in float32 (trainer.bf16=false trainer.fp16=false)"
    )


def level_granularity(level: str) -> str | None:
    """The noise floor that matters for `level`, "token" or "seq" (None: not a registered level)."""
    entry = LEVELS.find(level)
    return None if entry is None else entry.noise_granularity
