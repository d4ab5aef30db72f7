"""The pruner is asked only where it can prune (harness/study/pruning.py), and skipping the other steps never
changes a decision of the real Optuna pruners."""

from __future__ import annotations

import random

import optuna
import pytest
from optuna.trial import TrialState

from harness.study.backends import build_pruner
from harness.study.pruning import decision_due

EVERY_50 = list(range(50, 601, 50))


def asked_steps(spec: dict, steps: list[int]) -> list[int]:
    due, previous, asked = decision_due(spec), 0, []
    for step in steps:
        if due(previous, step):
            asked.append(step)
            previous = step
    return asked


@pytest.mark.parametrize(
    "spec, steps, asked",
    [
        ({"name": "successive_halving", "min_resource": 100, "reduction_factor": 3}, EVERY_50, [100, 300]),
        ({"name": "successive_halving", "min_resource": 100, "reduction_factor": 3}, list(range(40, 601, 40)), [120, 320]),
        ({"name": "successive_halving", "min_resource": 50, "reduction_factor": 2, "min_early_stopping_rate": 1}, EVERY_50, [100, 200, 400]),
        ({"name": "successive_halving", "min_resource": 100}, EVERY_50, [100, 400]),  # Optuna's reduction_factor=4
        ({"name": "successive_halving"}, EVERY_50, EVERY_50),  # min_resource="auto": rungs unknown in advance
        ({"name": "hyperband", "min_resource": 50, "max_resource": 600, "reduction_factor": 3}, EVERY_50, [50, 150, 450]),
        ({"name": "median", "n_startup_trials": 5, "n_warmup_steps": 100}, EVERY_50, EVERY_50[1:]),
        ({"name": "percentile", "percentile": 25.0}, EVERY_50, EVERY_50),
        ({"name": "threshold", "lower": 0.1}, EVERY_50, EVERY_50),
        ({"name": "none"}, EVERY_50, []),
    ],
)  # fmt: skip
def test_pruner_is_asked_only_where_it_can_decide(spec, steps, asked):
    build_pruner(spec)  # a valid spec
    assert asked_steps(spec, steps) == asked


def run_study(spec: dict, gated: bool, curves: list[dict[int, float]]) -> list[tuple[str, int]]:
    """Each curve as a trial of a real in-memory study with the spec's pruner: (state, last step) per trial."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    # Hyperband assigns trials to brackets by a hash of the study name: the same name for both runs.
    study = optuna.create_study(study_name="gate", direction="maximize", pruner=build_pruner(spec))
    due, outcome = decision_due(spec), []
    for curve in curves:
        trial, previous = study.ask(), 0
        for step, value in curve.items():
            trial.report(value, step)
            if gated and not due(previous, step):
                continue
            previous = step
            if trial.should_prune():
                study.tell(trial, state=TrialState.PRUNED)
                outcome.append(("pruned", step))
                break
        else:
            study.tell(trial, value)
            outcome.append(("complete", step))
    return outcome


@pytest.mark.parametrize(
    "spec",
    [
        {"name": "successive_halving", "min_resource": 100, "reduction_factor": 3},
        {"name": "successive_halving", "min_resource": 60, "reduction_factor": 2, "min_early_stopping_rate": 1},
        {"name": "hyperband", "min_resource": 50, "max_resource": 600, "reduction_factor": 3},
        {"name": "median", "n_startup_trials": 3, "n_warmup_steps": 150},
    ],
)
def test_skipped_steps_never_change_a_decision(spec):
    rng = random.Random(0)
    curves = []
    for _ in range(40):
        quality, speed = rng.random(), rng.uniform(0.2, 3)
        curves.append({step: quality * (step / 600) ** speed + rng.gauss(0, 0.03) for step in range(40, 601, 40)})
    outcome = run_study(spec, gated=False, curves=curves)
    assert sum(state == "pruned" for state, _ in outcome) >= 10  # the comparison is not vacuous
    assert run_study(spec, gated=True, curves=curves) == outcome


def test_trial_reports_every_step_but_asks_only_at_rungs(tmp_path):
    """The harness's reporter, driven as the trainer drives it: a value every `report_every` steps, the (costly)
    pruner question only where a rung is passed."""
    from transformers import TrainerControl, TrainerState, TrainingArguments

    from harness.study.worker import objective_reporter

    class CountingPruner(optuna.pruners.SuccessiveHalvingPruner):  # the real pruner, its calls recorded
        asked: list[int] = []

        def prune(self, study, trial):
            self.asked.append(trial.last_step)
            return super().prune(study, trial)

    spec = {"name": "successive_halving", "min_resource": 100, "reduction_factor": 3}
    pruner = CountingPruner(min_resource=100, reduction_factor=3)
    study = optuna.create_study(direction="maximize", pruner=pruner)
    trial = study.ask()
    reporter = objective_reporter(trial, "reward", 1, 50, decision_due(spec))
    args = TrainingArguments(output_dir=str(tmp_path), use_cpu=True, report_to=[])
    state, control = TrainerState(), TrainerControl()
    for step in range(10, 601, 10):
        state.global_step = step
        reporter.on_log(args, state, control, logs={"reward": step / 600})
    assert sorted(study.trials[0].intermediate_values) == list(range(50, 601, 50))
    assert pruner.asked == [100, 300]
    assert not reporter.pruned
