"""Finalists: once a study's budget is spent, its best configurations re-run on seeds no search trial used.

A study's best trial is one training run with one seed: a lucky seed and a better configuration look the same.
With `sweep.finalists.top=k` and `sweep.finalists.seeds=m`, the k best distinct configurations among the COMPLETE
search trials are re-run, each on the m smallest seeds that no search trial trained with, as trials of the same study
(user attribute `finalist = {"of": search trial number, "seed": seed}`), through the same workers. The winner is the
finalist with the best mean over its re-runs, shown with a 95 % Student-t interval of that mean.

Why a t-interval and not the report's bootstrap: with 2-5 re-runs a percentile bootstrap interval can never be wider
than the seeds' own range and so is too narrow; the t-interval widens with few seeds as it should (it assumes the
re-run values are roughly normal, which a handful of values cannot refute). The report's statistics
(harness/report/aggregates.py) are for comparing arms.

Finalists are enqueued as WAITING trials, so any worker picks them up and a killed one is given back like any trial.
The enqueue is a function of the finished search trials only, so every worker and every resume computes the same
set and enqueues only keys (source trial, seed) that no trial has yet; should two workers enqueue the same key at
the same moment, the higher-numbered copy sees the lower one when it starts and finishes at once as a duplicate.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass

from optuna.trial import FrozenTrial, TrialState

FINALIST = "finalist"  # user attr of a finalist trial: {"of": search trial number, "seed": seed}
SEED = "seed"  # user attr of every trial: the seed it trained with
DUPLICATE = "duplicate_of"  # user attr of a finalist trial that another worker had enqueued already
LEVEL = 0.95


def is_finalist(trial: FrozenTrial) -> bool:
    return FINALIST in trial.user_attrs


def finalist_key(trial: FrozenTrial) -> tuple[int, int]:
    attr = trial.user_attrs[FINALIST]
    return int(attr["of"]), int(attr["seed"])


def search_trials(trials: list[FrozenTrial]) -> list[FrozenTrial]:
    return [t for t in trials if not is_finalist(t)]


def fresh_seeds(trials: list[FrozenTrial], count: int, default_seed: int) -> list[int]:
    """The `count` smallest non-negative seeds that no search trial trained with (a trial without a recorded seed,
    from before seeds were recorded, trained with `default_seed`)."""
    used = {int(t.user_attrs.get(SEED, default_seed)) for t in search_trials(trials)}
    seeds, seed = [], 0
    while len(seeds) < count:
        if seed not in used:
            seeds.append(seed)
        seed += 1
    return seeds


def _params_key(trial: FrozenTrial) -> tuple:
    return tuple(sorted((k, repr(v)) for k, v in trial.params.items()))


def choose(trials: list[FrozenTrial], top: int, direction: str) -> list[FrozenTrial]:
    """The `top` best COMPLETE search trials with distinct parameters, best first (ties: the earlier trial)."""
    complete = [
        t
        for t in search_trials(trials)
        if t.state == TrialState.COMPLETE and t.value is not None and math.isfinite(t.value)
    ]
    sign = -1.0 if direction == "maximize" else 1.0
    chosen, seen = [], set()
    for trial in sorted(complete, key=lambda t: (sign * t.value, t.number)):
        key = _params_key(trial)
        if key not in seen:
            seen.add(key)
            chosen.append(trial)
        if len(chosen) == top:
            break
    return chosen


def planned(trials: list[FrozenTrial], top: int, seeds: int, direction: str, default_seed: int) -> list[tuple]:
    """(source trial, seed) for every finalist run the study should have, in enqueue order."""
    fresh = fresh_seeds(trials, seeds, default_seed)
    return [(source, seed) for source in choose(trials, top, direction) for seed in fresh]


def missing(trials: list[FrozenTrial], top: int, seeds: int, direction: str, default_seed: int) -> list[tuple]:
    """The planned finalist runs that no trial stands for yet (in any state: a failed one is not run again, a lost
    one comes back through the retry of lost trials)."""
    have = {finalist_key(t) for t in trials if is_finalist(t)}
    runs = planned(trials, top, seeds, direction, default_seed)
    return [(source, seed) for source, seed in runs if (source.number, seed) not in have]


def enqueue(study, runs: list[tuple]) -> None:
    for source, seed in runs:
        study.enqueue_trial(source.params, user_attrs={FINALIST: {"of": source.number, "seed": seed}, SEED: seed})


def duplicate_of(trial_number: int, key: tuple[int, int], trials: list[FrozenTrial]) -> int | None:
    """A lower-numbered finalist trial for the same (source, seed) that has not failed: this one need not run."""
    for other in trials:
        if (
            other.number < trial_number
            and is_finalist(other)
            and other.state != TrialState.FAIL
            and DUPLICATE not in other.user_attrs
            and finalist_key(other) == key
        ):
            return other.number
    return None


@dataclass(frozen=True)
class Finalist:
    """One finalist configuration: its search trial, and its re-runs' values by seed."""

    trial: int
    params: dict
    search_value: float
    values: dict[int, float]  # seed -> value (COMPLETE re-runs only)
    pending: int  # re-runs not finished yet
    failed: int

    @property
    def mean(self) -> float:
        return statistics.fmean(self.values.values()) if self.values else math.nan

    @property
    def ci(self) -> tuple[float, float]:
        """95 % Student-t interval of the mean over the re-runs (nan with fewer than 2)."""
        return t_interval(list(self.values.values()))


def t_interval(values: list[float]) -> tuple[float, float]:
    if len(values) < 2:
        return math.nan, math.nan
    from scipy import stats

    mean = statistics.fmean(values)
    half = stats.t.ppf(0.5 + LEVEL / 2, len(values) - 1) * statistics.stdev(values) / math.sqrt(len(values))
    return mean - half, mean + half


def finalists(trials: list[FrozenTrial], direction: str) -> list[Finalist]:
    """Every configuration with finalist trials, best re-run mean first (those with no finished re-run last)."""
    by_number = {t.number: t for t in trials}
    runs: dict[int, list[FrozenTrial]] = {}
    for trial in trials:
        if is_finalist(trial) and DUPLICATE not in trial.user_attrs:
            runs.setdefault(finalist_key(trial)[0], []).append(trial)
    retried = {n for t in trials for n in t.system_attrs.get("retry_history", [])}
    found = []
    for number, reruns in runs.items():
        source = by_number[number]
        values = {
            finalist_key(t)[1]: float(t.value) for t in reruns if t.state == TrialState.COMPLETE and t.value is not None
        }
        live = [t for t in reruns if t.number not in retried]
        pending = sum(t.state in (TrialState.WAITING, TrialState.RUNNING) for t in live)
        failed = sum(t.state == TrialState.FAIL for t in live)
        found.append(Finalist(number, dict(source.params), float(source.value), values, pending, failed))
    sign = -1.0 if direction == "maximize" else 1.0
    return sorted(found, key=lambda f: (not f.values, sign * f.mean if f.values else 0.0, f.trial))


def record(found: list[Finalist], seeds: list[int]) -> dict:
    """The finalists as best.json holds them: the winner by re-run mean first."""
    rows = [
        {
            "trial": f.trial,
            "params": f.params,
            "search_value": f.search_value,
            "values": {str(seed): value for seed, value in sorted(f.values.items())},
            "mean": f.mean,
            "ci95": list(f.ci),
            "pending": f.pending,
            "failed": f.failed,
        }
        for f in found
    ]
    return {"seeds": seeds, "interval": "95% Student-t interval of the mean over the re-runs", "ranked": rows}


def format_finalists(entry: dict, metric: str, best_trial: int | None) -> str:
    """The winner by re-run mean next to the single-seed best, one line per finalist."""
    ranked = entry["ranked"]
    seeds = ", ".join(map(str, entry["seeds"]))
    lines = [f"  finalists (re-run on fresh seeds {seeds}; {entry['interval']}):"]
    for row in ranked:
        values = ", ".join(f"{v:.4f}" for v in row["values"].values()) or "none yet"
        low, high = row["ci95"]
        ci = f" [{low:.4f}, {high:.4f}]" if not math.isnan(low) else ""
        mean = f"mean {row['mean']:.4f}{ci}" if row["values"] else "no re-run finished"
        state = []
        if row["pending"]:
            state.append(f"{row['pending']} pending")
        if row["failed"]:
            state.append(f"{row['failed']} failed")
        marks = " (single-seed best)" if row["trial"] == best_trial else ""
        lines.append(
            f"    trial {row['trial']}{marks}: search {metric}={row['search_value']:.4f}; re-runs {values}; {mean}"
            + (f"; {', '.join(state)}" if state else "")
        )
    done = [row for row in ranked if row["values"]]
    if done:
        winner = done[0]
        low, high = winner["ci95"]
        ci = f", 95% CI [{low:.4f}, {high:.4f}]" if not math.isnan(low) else ""
        best = next((row for row in ranked if row["trial"] == best_trial), None)
        if winner["trial"] == best_trial:
            held = "the single-seed best is also the best on fresh seeds"
        elif best is not None and best["values"]:
            held = f"the single-seed best, trial {best_trial}, re-ran at mean {best['mean']:.4f}"
        else:
            held = f"not the single-seed best, trial {best_trial}"
        lines.append(
            f"  winner by re-run mean: trial {winner['trial']}, {metric}={winner['mean']:.4f}{ci} "
            f"over {len(winner['values'])} seed(s) ({held})"
        )
    return "\n".join(lines)
