"""Optuna studies: find the storage, then the optimisation history, parameter importances and best trials.

The study helper (harness/study/) keeps its journal file in the sweep directory, runs each trial in a directory named
by its number (`trial-NNNN`) and stores `dir` and `command` on every trial; any SQLAlchemy URL or journal path can also
be given with `--storage`.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass, field
from pathlib import Path

from harness.report.figures import Figure, study_history, study_importances
from harness.study import backends, finalists

BEST_TRIALS = 5


@dataclass
class StudyReport:
    name: str
    storage: str
    direction: str
    counts: dict[str, int]
    figures: list[Figure] = field(default_factory=list)
    best: list[dict] = field(default_factory=list)  # number, value, params, command, run_dir
    notes: list[str] = field(default_factory=list)


def shown(storage: str) -> str:
    """The storage as the page and messages show it: a database URL without its password."""
    if "://" not in storage:
        return storage
    from sqlalchemy.engine import make_url

    return make_url(storage).render_as_string(hide_password=True)


def load_study(storage: str, study_name: str | None):
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return backends.load_study(backends.open_storage({"storage": storage}), study_name, shown(storage))


def study_report(study, storage: str, out_dir: Path, sweep_dirs: list[Path]) -> StudyReport:
    import optuna

    if len(study.directions) > 1:
        raise ValueError(f"study {study.study_name} is multi-objective; the report covers single-objective studies")
    trials = study.get_trials(deepcopy=False)
    # Finalists' re-runs are not search trials: the history, importances and best trials are the search's.
    complete = [
        t
        for t in finalists.search_trials(trials)
        if t.state == optuna.trial.TrialState.COMPLETE and t.value is not None
    ]
    direction = study.direction.name.lower()
    report = StudyReport(study.study_name, shown(storage), direction, _state_counts(trials))
    ranked = [f for f in finalists.finalists(trials, direction) if f.values]
    if ranked:
        winner = ranked[0]
        low, high = winner.ci
        ci = "" if low != low else f" (95% t-interval {low:.4g} to {high:.4g})"
        report.notes.append(
            f"Finalists: {len(ranked)} configuration(s) re-run on fresh seeds; the winner by re-run mean is trial "
            f"{winner.trial}: {winner.mean:.4g}{ci} over seeds {', '.join(map(str, sorted(winner.values)))}, "
            f"against {winner.search_value:.4g} on its search seed (python -m harness.study show lists them all)."
        )
    if not complete:
        report.notes.append("No trial has completed yet: no history, importances or best trials.")
        return report
    report.figures.append(
        study_history([(t.number, t.value) for t in complete], direction, out_dir / "study_history.png")
    )
    try:
        importances = optuna.importance.get_param_importances(study)
    except (ValueError, RuntimeError) as error:  # e.g. fewer than two completed trials or a single-valued space
        importances = {}
        report.notes.append(f"Parameter importances unavailable: {error}")
    if importances:
        report.figures.append(study_importances(importances, out_dir / "study_importances.png"))
    ranked = sorted(complete, key=lambda t: t.value, reverse=direction == "maximize")[:BEST_TRIALS]
    report.best = [_best_entry(t, sweep_dirs) for t in ranked]
    return report


def _state_counts(trials) -> dict[str, int]:
    counts: dict[str, int] = {}
    for trial in trials:
        counts[trial.state.name] = counts.get(trial.state.name, 0) + 1
    return counts


def _best_entry(trial, sweep_dirs: list[Path]) -> dict:
    return {
        "number": trial.number,
        "value": trial.value,
        "params": trial.params,
        "command": reproduce_command(trial),
        "run_dir": trial_dir(trial, sweep_dirs),
    }


def trial_dir(trial, sweep_dirs: list[Path]) -> str:
    """Where the study helper says the trial ran (user attr `dir`), else a dir named by the trial number."""
    if "dir" in trial.user_attrs:
        return str(trial.user_attrs["dir"])
    names = (f"trial-{trial.number:04d}", str(trial.number))
    found = [d / name for d in sweep_dirs for name in names if (d / name).is_dir()]
    return str(found[0]) if found else ""


def reproduce_command(trial) -> str:
    """The study helper's own command when it stored one on the trial; otherwise the trial's parameters as overrides
    of a single run (the study's fixed overrides, if any, must be added by hand)."""
    for key, value in trial.user_attrs.items():
        if "command" in key and isinstance(value, str):
            return value
    overrides = [f"{key}={value}" for key, value in trial.params.items()]
    return " ".join(["python -m harness.run", *map(shlex.quote, overrides)])
