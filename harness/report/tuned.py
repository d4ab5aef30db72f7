"""A tuned comparison's report input: each arm's study (a journal under the given directory), and of it only the
winning finalist's re-runs on the fresh seeds (`experiment=tuned_comparison`, harness/study/finalists.py).

The winner is the arm's finalist with the best mean over the fresh seeds, and the report then shows it on those same
seeds: with several finalists this keeps a (smaller than single-seed) selection bias in the arm's favour, equal for
every arm; `sweep.finalists.top=1` removes it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from optuna.trial import TrialState

from harness.report.runs import ReportInputError
from harness.report.studies import load_study
from harness.study import finalists
from harness.study.backends import find_journal
from harness.study.results import single_seed_best


@dataclass
class TunedArm:
    study: str
    search_trials: int
    best_trial: int | None
    best_value: float | None
    winner: finalists.Finalist | None
    run_dirs: list[Path]


def study_dirs(path: Path) -> list[Path]:
    """`path` itself when it holds a study journal, else its subdirectories that do (a tuned comparison's arms)."""
    if find_journal(path) is not None:
        return [path]
    return sorted(d for d in path.iterdir() if d.is_dir() and find_journal(d) is not None)


def tuned_arms(paths: list[Path], warnings: list[str]) -> list[TunedArm]:
    arms = []
    for path in paths:
        if not path.is_dir():
            raise ReportInputError(f"{path} is not a directory")
        dirs = study_dirs(path)
        if not dirs:
            raise ReportInputError(f"no study journal under {path}: --finalists reads the studies' finalist trials")
        for directory in dirs:
            arms.append(_arm(load_study(str(find_journal(directory)), None), warnings))
    return arms


def _arm(study, warnings: list[str]) -> TunedArm:
    trials = study.get_trials(deepcopy=False)
    direction = study.direction.name.lower()
    best = single_seed_best(trials, direction)
    ranked = [f for f in finalists.finalists(trials, direction) if f.values]
    search = len(finalists.search_trials(trials))
    if not ranked:
        warnings.append(f"study {study.study_name}: no finalist re-run has finished yet; the arm is left out")
        return TunedArm(study.study_name, search, best and best.number, best and best.value, None, [])
    winner = ranked[0]
    dirs = [
        Path(t.user_attrs["dir"])
        for t in trials
        if finalists.is_finalist(t)
        and t.state == TrialState.COMPLETE
        and finalists.finalist_key(t)[0] == winner.trial
        and "dir" in t.user_attrs
    ]
    if winner.pending or winner.failed:
        warnings.append(
            f"study {study.study_name}: the winning finalist (trial {winner.trial}) has {winner.pending} re-run(s) "
            f"pending and {winner.failed} failed; its {len(dirs)} finished re-run(s) are shown"
        )
    return TunedArm(study.study_name, search, best and best.number, best and best.value, winner, dirs)


def arm_rows(arms: list[TunedArm]) -> list[dict]:
    """One row per arm for the page: the single-seed best next to the winner by re-run mean."""
    rows = []
    for arm in arms:
        row = {"study": arm.study, "search_trials": arm.search_trials, "best_trial": arm.best_trial}
        row["best_value"] = arm.best_value
        if arm.winner is not None:
            low, high = arm.winner.ci
            row |= {
                "winner": arm.winner.trial,
                "params": arm.winner.params,
                "seeds": sorted(arm.winner.values),
                "mean": arm.winner.mean,
                "ci": None if math.isnan(low) else (low, high),
            }
        rows.append(row)
    return rows
