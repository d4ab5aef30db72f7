"""Group runs by their resolved config: task -> condition (level x advantage x other swept keys) -> seeds.

Runs whose configs differ only in replicate keys (seed, names) are seeds of one condition. Any other key that differs
between runs of the same level and advantage (e.g. a learning-rate grid) becomes part of the condition, so runs that
were trained differently are never averaged together. A key that is constant within each level x advantage cell but
differs between cells (e.g. a learning rate tuned per level) stays in the comparison and is shown in the label.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass

from harness.config.levels import LEVELS  # registration order is the plot and table order: baselines, then GSPO-token
from harness.report.estimates import Estimate, mean_ci
from harness.report.runs import Run

LEVEL_LABELS = {level.name: level.label for level in LEVELS}
REPLICATE_KEYS = {"name", "group"}


@dataclass(frozen=True)
class Condition:
    advantage: str
    variant: tuple[tuple[str, str], ...]  # (config key, value) pairs beyond level and advantage
    level: str
    settings: tuple[tuple[str, str], ...] = ()  # per-cell differences that do not split the comparison

    @property
    def column(self) -> tuple[str, tuple]:
        """Conditions that share a column of the figures: the same advantage and variant, one line per level."""
        return self.advantage, self.variant

    @property
    def label(self) -> str:
        settings = [" ".join(f"{k}={v}" for k, v in self.settings)] if self.settings else []
        return " · ".join([LEVEL_LABELS.get(self.level, self.level), column_label(self.column), *settings])


def column_label(column: tuple[str, tuple]) -> str:
    advantage, variant = column
    return " ".join([f"{advantage} advantage", *(f"{k}={v}" for k, v in variant)])


def level_rank(level: str) -> int:
    names = LEVELS.names()
    return names.index(level) if level in names else len(names)


def flatten(config: dict, prefix: str = "") -> dict[str, str]:
    flat = {}
    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(flatten(value, name + "."))
        else:
            flat[name] = repr(value)
    return flat


def is_replicate_key(key: str) -> bool:
    # Seeds (the top-level one and those it resolves into, e.g. reward.dataset.seed) and names vary between
    # replicates; `sweep.*` describes the study a trial came from, not how it was trained.
    return key in REPLICATE_KEYS or "seed" in key.rsplit(".", 1)[-1] or key.startswith("sweep.")


def differing_keys(runs: list[Run]) -> tuple[list[str], list[str]]:
    """(keys that differ between runs of the same level and advantage, keys that differ only between such cells).

    The second list leaves out the importance_sampling and advantage groups: their keys follow the level and
    estimator presets (e.g. each level's clip range)."""
    flats = [flatten(run.config) for run in runs]
    cells: dict[tuple, list[dict]] = defaultdict(list)
    for run, flat in zip(runs, flats):
        cells[run.level, run.advantage].append(flat)
    keys = {k for k in set().union(*flats) if not is_replicate_key(k) and len({f.get(k) for f in flats}) > 1}
    within = {k for k in keys for configs in cells.values() if len({c.get(k) for c in configs}) > 1}
    between = {k for k in keys - within if not k.startswith(("importance_sampling.", "advantage."))}
    return sorted(within), sorted(between)


def by_task(runs: list[Run]) -> dict[str, list[Run]]:
    tasks: dict[str, list[Run]] = defaultdict(list)
    for run in runs:
        tasks[run.task].append(run)
    return dict(sorted(tasks.items()))


def by_condition(runs: list[Run], split_variants: bool = True) -> dict[Condition, list[Run]]:
    within, between = differing_keys(runs) if split_variants else ([], [])
    groups: dict[Condition, list[Run]] = defaultdict(list)
    for run in runs:
        flat = flatten(run.config)
        variant = tuple((key, flat.get(key, "unset")) for key in within)
        settings = tuple((key, flat.get(key, "unset")) for key in between)
        groups[Condition(run.advantage, variant, run.level, settings)].append(run)
    return dict(sorted(groups.items(), key=lambda item: (item[0].column, level_rank(item[0].level))))


def over_steps(runs: list[Run], metric: str) -> tuple[list[int], list[float], list[float]]:
    """Per logged step: mean across runs and the 95% CI half-width (nan where fewer than 2 runs logged it)."""
    at_step: dict[int, list[float]] = defaultdict(list)
    for run in runs:
        for step, value in run.series(metric):
            if math.isfinite(value):
                at_step[step].append(value)
    steps = sorted(at_step)
    estimates = [mean_ci(at_step[s]) for s in steps]
    return steps, [e.mean for e in estimates], [e.half_width for e in estimates]


def final_values(runs: list[Run], metric: str) -> list[float]:
    """One value per run: the metric averaged over the run's final logging window."""
    return [v for v in (run.final(metric) for run in runs) if v is not None and math.isfinite(v)]


def final_estimate(runs: list[Run], metric: str) -> Estimate:
    return mean_ci(final_values(runs, metric))
