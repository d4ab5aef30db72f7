"""What a run directory holds, by file name, and the objective computed from its metrics.

Imported by the writers (train.py, sinks.py), the Optuna reporter and the report; it imports nothing heavy, so the
report reads runs without torch.
"""

from __future__ import annotations

import math

CONFIG_FILE = "config.yaml"  # the resolved config
METRICS_FILE = "metrics.jsonl"  # one JSON record per logging step
SUMMARY_FILE = "summary.json"  # written last: a run without it did not finish


def window_mean(values: list[float], last_n: int) -> float:
    """The objective's aggregation: the mean of the last `last_n` values (NaN when there are none)."""
    window = values[-last_n:]
    return sum(window) / len(window) if window else math.nan


def objective_value(records: list[dict], metric: str, last_n: int) -> float:
    """`metric` aggregated over the last `last_n` records that logged it."""
    return window_mean([r[metric] for r in records if metric in r], last_n)
