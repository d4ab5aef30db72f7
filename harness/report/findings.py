"""The final table and the plain-words verdicts: does GSPO-token beat each baseline, and can it differ at all?"""

from __future__ import annotations

import math
from dataclasses import dataclass

from harness.algorithms.noise_floor import level_granularity, noise_warning, run_noise_floor
from harness.config.levels import LEVELS
from harness.report.aggregates import Aggregates, aggregates, probability_of_improvement, seeds_needed
from harness.report.estimates import Estimate, welch_test
from harness.report.groups import LEVEL_LABELS, Condition, column_label, final_estimate, final_values
from harness.report.runs import Run

TABLE_METRICS = [
    ("reward", "reward"),
    ("clip/region_frac_token", "clipped, token-weighted"),
    ("clip/region_frac_seq", "clipped, sequence-weighted"),
    ("is_ratio/std", "IS ratio std"),
    ("is_ratio/ess", "IS ratio ESS"),
    ("adv/within_seq_std", "within-seq adv std"),
    ("is_ratio/noise_seq_max", "ratio noise floor, seq"),
]
# The compared level and its baselines, as the level registry declares them (harness/config/levels.py).
(GSPO_TOKEN,) = [level.name for level in LEVELS if not level.baseline]
BASELINES = tuple(level.name for level in LEVELS if level.baseline)
ALPHA = 0.05
ZERO_SPREAD = 1e-6  # float32 round-off of a constant advantage along a sequence is ~1e-8


@dataclass
class Row:
    condition: Condition
    n: int
    cells: dict[str, Estimate]


def table(groups: dict[Condition, list[Run]], metrics: list[tuple[str, str]]) -> list[Row]:
    return [Row(c, len(runs), {key: final_estimate(runs, key) for key, _ in metrics}) for c, runs in groups.items()]


@dataclass
class ArmRow:
    """One arm's (condition's) final metric: IQM, mean and median with stratified bootstrap CIs."""

    condition: Condition
    stats: Aggregates


def arm_table(groups: dict[Condition, list[Run]], metric: str = "reward") -> list[ArmRow]:
    return [ArmRow(c, aggregates([final_values(runs, metric)])) for c, runs in groups.items()]


def fmt(estimate: Estimate) -> str:
    if estimate.n == 0:
        return "–"
    if math.isnan(estimate.half_width):
        return f"{estimate.mean:.4g}"
    return f"{estimate.mean:.4g} ± {estimate.half_width:.2g}"


def verdicts(groups: dict[Condition, list[Run]], metric: str = "reward") -> list[str]:
    """One sentence per (column, baseline): GSPO-token's final-window metric against the baseline's, Welch-tested."""
    by_key = {(c.column, c.level): runs for c, runs in groups.items()}
    sentences = []
    for column in dict.fromkeys(c.column for c in groups):
        ours = by_key.get((column, GSPO_TOKEN))
        if ours is None:
            continue
        for baseline in BASELINES:
            theirs = by_key.get((column, baseline))
            if theirs is not None:
                sentences.append(compare(ours, theirs, baseline, column, metric))
    return sentences


def compare(ours: list[Run], theirs: list[Run], baseline: str, column: tuple, metric: str) -> str:
    a, b = final_values(ours, metric), final_values(theirs, metric)
    name = LEVEL_LABELS[baseline].split(" ")[0]
    where = f"With {column_label(column)}"
    means = f"{_mean(a)} vs {_mean(b)}"
    test = welch_test(a, b)
    field = _field_statistics(a, b, name)
    if test is None:
        return (
            f"{where}: GSPO-token vs {name}: final {metric} {means} ({len(a)} vs {len(b)} seeds) — no test possible: "
            "each side needs at least 2 seeds, and the results must vary between seeds."
        )
    detail = (
        f"{means} (difference {test.difference:+.3g}, 95% CI {test.ci_low:+.3g} to {test.ci_high:+.3g}; "
        f"Welch's t-test p = {test.p:.2g}, {len(a)} vs {len(b)} seeds)"
    )
    if test.p < ALPHA:
        direction = "higher" if test.difference > 0 else "lower"
        return (
            f"{where}: GSPO-token's final {metric} is {direction} than {name}'s: {field} "
            f"Secondary: {detail}. Significant at the 5% level."
        )
    return (
        f"{where}: GSPO-token and {name} cannot be told apart on final {metric}: {field} "
        f"Secondary: {detail}. Not significant at the 5% level."
    )


def _field_statistics(a: list[float], b: list[float], name: str) -> str:
    """P(X > Y) with its bootstrap CI, the IQMs, and whether the difference is resolved or how many seeds would
    resolve it. Welch's test follows as the secondary line: it is the test the seeds-needed number is computed
    for, and its CI is of the mean difference in the metric's own units."""
    if not a or not b:
        return ""
    improvement = probability_of_improvement([a], [b])
    ours, theirs = aggregates([a]), aggregates([b])
    resolved = not math.isnan(improvement.low) and (improvement.low > 0.5 or improvement.high < 0.5)
    if resolved:
        power = "the 95% CI of P(X > Y) excludes 1/2: resolved with these seeds."
    else:
        n = seeds_needed(a, b)
        power = (
            "no number of seeds would resolve the observed difference (it is 0 or too small to measure)."
            if n is None
            else f"resolving the observed difference at 80% power would take about {n} seeds per arm."
        )
    return (
        f"P(GSPO-token > {name}) = {improvement}; IQM {ours.iqm} vs {theirs.iqm} "
        f"(95% stratified bootstrap CIs); {power}"
    )


def _mean(values: list[float]) -> str:
    return f"{sum(values) / len(values):.3g}" if values else "n/a"


def spread_notes(groups: dict[Condition, list[Run]]) -> list[str]:
    """Why GSPO-token can or cannot differ from GSPO: its per-token gradient only matters if advantages vary
    within a sequence."""
    notes = []
    for condition, runs in groups.items():
        if condition.level != GSPO_TOKEN:
            continue
        spread = final_estimate(runs, "adv/within_seq_std")
        if spread.n == 0:
            continue
        where = f"With {column_label(condition.column)}"
        if abs(spread.mean) < ZERO_SPREAD:
            notes.append(
                f"{where}, every token of a sequence has the same advantage (within-sequence std "
                f"{spread.mean:.1g}), so GSPO-token computes GSPO's gradient: any difference "
                "between the two is noise (seeds, floating-point round-off)."
            )
        else:
            notes.append(
                f"{where}, advantages vary within sequences (mean within-sequence std {spread.mean:.3g} "
                "in the final window), so GSPO-token's per-token gradient can differ from GSPO's."
            )
    return notes


def noise_notes(groups: dict[Condition, list[Run]]) -> list[str]:
    """Where the importance ratio's noise floor reaches a level's clip range, clipping follows rounding."""
    noisy, floors = [], []
    for condition, runs in groups.items():
        for run in runs:
            floor = run_noise_floor(run.records)
            if not floor:
                continue  # logged before the noise floor was measured
            floors.append(floor[f"{level_granularity(run.level) or 'seq'}_max"])
            sampling = run.config["importance_sampling"]
            logs = {f"is_ratio/noise_{key}": value for key, value in floor.items()}
            if noise_warning(logs, run.level, sampling["epsilon"], sampling["epsilon_high"]):
                noisy.append(f"{LEVEL_LABELS.get(run.level, run.level)} ({column_label(condition.column)})")
                break
    if noisy:
        return [
            f"The importance ratio's noise floor (|log w| where every ratio should be 1) is not well below the clip "
            f"range for {', '.join(noisy)}: clip decisions there follow rounding, so those runs are not a fair "
            "comparison; rerun in float32."
        ]
    if floors:
        return [
            f"The importance ratio's noise floor is at most {max(floors):.2g}, well below every level's clip range."
        ]
    return []
