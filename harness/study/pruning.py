"""At which steps asking the pruner can prune.

`trial.should_prune()` is a study's most expensive storage call: the pruner reads every trial of the study (with
PostgreSQL, every running trial's rows again). A trial still reports its objective every `report_every` steps (cheap:
one row), but asks the pruner only at steps where the pruner can say something new: successive halving and Hyperband
only when a rung is crossed, median and percentile only after their warm-up, no pruner never.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable

import optuna

RUNG_PRUNERS = {"successive_halving": "SuccessiveHalvingPruner", "hyperband": "HyperbandPruner"}
WARMUP_PRUNERS = {"median": "MedianPruner", "percentile": "PercentilePruner"}


def decision_due(spec: dict) -> Callable[[int, int], bool]:
    """For the pruner `spec` (a study's `sweep.pruner`, already validated by building it): a predicate
    `due(previous, step)` — whether asking the pruner at `step`, when it was last asked at `previous` (0: never),
    can prune."""
    name = spec["name"]
    if name == "none":
        return lambda previous, step: False
    if name in RUNG_PRUNERS:
        factory = getattr(optuna.pruners, RUNG_PRUNERS[name])
        min_resource = _argument(factory, spec, "min_resource")
        if not isinstance(min_resource, int):  # "auto": rungs known only once a trial completed
            return lambda previous, step: True
        factor = _argument(factory, spec, "reduction_factor")
        # Hyperband's brackets start at min_resource * factor**k, k >= 0: the union of their rungs is that series.
        first = _argument(factory, spec, "min_early_stopping_rate") if name == "successive_halving" else 0
        return lambda previous, step: any(previous < rung <= step for rung in _rungs(min_resource, factor, first, step))
    if name in WARMUP_PRUNERS:
        warmup = _argument(getattr(optuna.pruners, WARMUP_PRUNERS[name]), spec, "n_warmup_steps")
        return lambda previous, step: step >= warmup
    return lambda previous, step: True  # threshold: reads only this trial


def _rungs(min_resource: int, factor: int, first: int, up_to: int) -> list[int]:
    rungs, rung = [], min_resource * factor**first
    while rung <= up_to:
        rungs.append(rung)
        rung *= factor
    return rungs


def _argument(factory, spec: dict, key: str):
    """The spec's value for `key`, else the pruner's own default (read from its signature, not copied here)."""
    return spec.get(key, inspect.signature(factory).parameters[key].default)
