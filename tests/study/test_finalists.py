"""Finalist selection, fresh seeds, idempotent enqueue and the re-run summary on hand-made trial lists, in real
Optuna storages (in-memory and a journal file shared by two study handles, as two workers hold it)."""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

import optuna
import pytest
from optuna.distributions import CategoricalDistribution, FloatDistribution
from optuna.storages.journal import JournalFileBackend, JournalStorage
from optuna.trial import TrialState
from scipy import stats

from harness.study import finalists
from harness.study.results import best_record, format_best, single_seed_best
from harness.study.worker import Ledger

DISTRIBUTIONS = {"lr": FloatDistribution(1e-4, 1e-2, log=True), "level": CategoricalDistribution(["a", "b"])}


def add(study, value, lr, level="a", state=TrialState.COMPLETE, **user_attrs):
    user_attrs.setdefault(finalists.SEED, 0)
    study.add_trial(
        optuna.create_trial(
            state=state,
            value=value if state == TrialState.COMPLETE else None,
            params={"lr": lr, "level": level},
            distributions=DISTRIBUTIONS,
            user_attrs=user_attrs,
        )
    )


def searched(direction="maximize"):
    """Trials 0-6: two share the best parameters, one is pruned, one failed."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction=direction)
    add(study, 0.5, 1e-3)  # 0
    add(study, 0.9, 2e-3)  # 1
    add(study, 0.9, 2e-3)  # 2: same parameters as 1 (a grid sampler proposes them twice)
    add(study, 0.7, 3e-3, "b")  # 3
    add(study, None, 4e-3, state=TrialState.PRUNED)  # 4
    add(study, None, 5e-3, state=TrialState.FAIL)  # 5
    add(study, 0.1, 6e-3)  # 6
    return study


def test_choose_takes_distinct_complete_configurations_best_first():
    trials = searched().get_trials(deepcopy=False)
    assert [t.number for t in finalists.choose(trials, 3, "maximize")] == [1, 3, 0]
    assert [t.number for t in finalists.choose(trials, 2, "minimize")] == [6, 0]
    assert [t.number for t in finalists.choose(trials, 10, "maximize")] == [1, 3, 0, 6]  # fewer than asked: all


def test_fresh_seeds_skip_every_seed_a_search_trial_used():
    study = searched()
    add(study, 0.2, 7e-3, **{finalists.SEED: 2})
    trials = study.get_trials(deepcopy=False)
    assert finalists.fresh_seeds(trials, 3, default_seed=0) == [1, 3, 4]
    # A finalist's own seed does not count as used: the set stays the same once finalists ran.
    add(study, 0.3, 2e-3, **{finalists.SEED: 1, finalists.FINALIST: {"of": 1, "seed": 1}})
    assert finalists.fresh_seeds(study.get_trials(deepcopy=False), 3, default_seed=0) == [1, 3, 4]
    # Trials from before seeds were recorded trained with the config's seed.
    old = optuna.create_study()
    old.add_trial(optuna.create_trial(state=TrialState.COMPLETE, value=1.0, params={}, distributions={}))
    assert finalists.fresh_seeds(old.get_trials(), 2, default_seed=1) == [0, 2]


def test_enqueue_is_idempotent_across_workers_and_duplicates_are_found(tmp_path):
    storage = JournalStorage(JournalFileBackend(str(tmp_path / "study.journal")))
    study = optuna.create_study(study_name="s", storage=storage, direction="maximize")
    for value, lr in [(0.5, 1e-3), (0.9, 2e-3), (0.7, 3e-3)]:
        add(study, value, lr)
    other = optuna.load_study(study_name="s", storage=storage)  # a second worker
    trials = study.get_trials(deepcopy=False)
    runs = finalists.missing(trials, 2, 2, "maximize", 0)
    assert [(source.number, seed) for source, seed in runs] == [(1, 1), (1, 2), (2, 1), (2, 2)]
    finalists.enqueue(study, runs)
    assert finalists.missing(other.get_trials(deepcopy=False), 2, 2, "maximize", 0) == []  # a resume adds nothing
    waiting = [t for t in other.get_trials() if t.state == TrialState.WAITING]
    assert [finalists.finalist_key(t) for t in waiting] == [(1, 1), (1, 2), (2, 1), (2, 2)]
    assert all(t.user_attrs[finalists.SEED] == finalists.finalist_key(t)[1] for t in waiting)
    assert waiting[0].system_attrs["fixed_params"] == {"lr": 2e-3, "level": "a"}
    # Two workers that both saw nothing enqueued: the second copy of a key names the first.
    finalists.enqueue(other, runs[:1])
    trials = study.get_trials(deepcopy=False)
    copy = trials[-1]
    assert finalists.duplicate_of(copy.number, finalists.finalist_key(copy), trials) == waiting[0].number
    assert finalists.duplicate_of(waiting[0].number, (1, 1), trials) is None
    # The search budget does not count finalists.
    assert Ledger.of(trials).finished == 3 and Ledger.of(trials).waiting == 0


def rerun(study, source, seed, value, state=TrialState.COMPLETE):
    trial = study.get_trials(deepcopy=False)[source]
    add(
        study,
        value,
        trial.params["lr"],
        trial.params["level"],
        state=state,
        **{finalists.SEED: seed, finalists.FINALIST: {"of": source, "seed": seed}},
    )


def test_winner_by_rerun_mean_with_a_t_interval():
    study = searched()
    for seed, value in [(1, 0.4), (2, 0.6), (3, 0.5)]:
        rerun(study, 1, seed, value)  # the single-seed best (0.9) does not hold up
    for seed, value in [(1, 0.7), (2, 0.8), (3, 0.75)]:
        rerun(study, 3, seed, value)
    rerun(study, 0, 1, 0.9)
    rerun(study, 0, 2, None, state=TrialState.FAIL)
    rerun(study, 0, 3, None, state=TrialState.WAITING)
    trials = study.get_trials(deepcopy=False)
    assert single_seed_best(trials, "maximize").number == 1
    ranked = finalists.finalists(trials, "maximize")
    assert [f.trial for f in ranked] == [0, 3, 1]  # trial 0's one re-run is its mean
    assert (ranked[0].pending, ranked[0].failed) == (1, 1) and math.isnan(ranked[0].ci[0])
    values = [0.7, 0.8, 0.75]
    low, high = stats.t.interval(0.95, len(values) - 1, loc=sum(values) / 3, scale=stats.sem(values))
    assert ranked[1].ci == pytest.approx((low, high))
    record = best_record("s", trials[1], "reward", trials, [1, 2, 3], "maximize")
    assert record["trial"] == 1 and record["value"] == 0.9 and record["seed"] == 0
    assert record["winner"]["trial"] == 0 and record["winner"]["seeds"] == [1]
    text = format_best(record)
    assert "trial 1 (single-seed best): search reward=0.9000; re-runs 0.4000, 0.6000, 0.5000; mean 0.5000" in text
    assert "the single-seed best, trial 1, re-ran at mean 0.5000" in text


def test_minimising_study_ranks_low_means_first():
    study = searched("minimize")
    rerun(study, 6, 1, 0.3)
    rerun(study, 0, 1, 0.2)
    ranked = finalists.finalists(study.get_trials(deepcopy=False), "minimize")
    assert [f.trial for f in ranked] == [0, 6]


# --- end to end: real workers, real trials -----------------------------------------------------------------------
@pytest.mark.e2e
def test_finalists_rerun_on_fresh_seeds_and_resume_after_kill(tmp_path):
    """3 search trials, then 2 finalists x 2 fresh seeds; the worker is killed with -9 during a finalist re-run, and
    the same command finishes the study: each finalist run once per seed, the killed one given back."""
    import json
    import os
    import signal

    import yaml

    from tests.study.test_study import SHORT, journal_study, run, start, wait_for, worker_command

    sweep_dir = tmp_path / "study"
    command = worker_command(
        sweep_dir, SHORT, "sweep.n_trials=3", "sweep.finalists.top=2", "sweep.finalists.seeds=2", "seed=5"
    )
    worker = start(command, tmp_path / "first.log")

    def running_finalist():
        try:
            trials = journal_study(sweep_dir).get_trials(deepcopy=False)
        except KeyError:
            return None
        return next((t for t in trials if t.state == TrialState.RUNNING and finalists.is_finalist(t)), None)

    killed = wait_for(running_finalist, 300, "a running finalist", worker)
    os.killpg(worker.pid, signal.SIGKILL)
    worker.wait()

    result = run(command)
    assert result.returncode == 0, result.stderr[-3000:]
    trials = journal_study(sweep_dir).get_trials(deepcopy=False)
    search = finalists.search_trials(trials)
    assert len(search) == 3 and {t.user_attrs[finalists.SEED] for t in search} == {5}
    reruns = [t for t in trials if finalists.is_finalist(t) and t.state == TrialState.COMPLETE]
    keys = sorted(finalists.finalist_key(t) for t in reruns)
    chosen = [t.number for t in finalists.choose(trials, 2, "maximize")]
    assert keys == sorted((n, seed) for n in chosen for seed in (0, 1))  # fresh: the search trials used seed 5
    lost = trials[killed.number]
    assert lost.state == TrialState.FAIL and "died" in lost.user_attrs["fail_reason"]
    assert any(t.system_attrs.get("failed_trial") == killed.number for t in reruns)
    for trial in trials:  # the recorded seed is the seed the run trained with, and is in its command
        if trial.state == TrialState.COMPLETE:
            config = yaml.safe_load((Path(trial.user_attrs["dir"]) / "config.yaml").read_text())
            assert config["seed"] == trial.user_attrs[finalists.SEED]
            assert f"seed={config['seed']}" in trial.user_attrs["command"].split()
            if finalists.is_finalist(trial):
                assert trial.params == trials[finalists.finalist_key(trial)[0]].params
                assert not trial.intermediate_values or trial.state != TrialState.PRUNED
    best = json.loads((sweep_dir / "best.json").read_text())
    assert best["trial"] == chosen[0] and best["finalists"]["seeds"] == [0, 1]
    assert best["winner"]["trial"] in chosen and len(best["winner"]["ci95"]) == 2
    assert "winner by re-run mean: trial" in result.stdout
    show = subprocess.run(
        [sys.executable, "-m", "harness.study", "show", str(sweep_dir)], capture_output=True, text=True, check=True
    )
    assert f"finalist: trial {chosen[0]} on fresh seed 0" in show.stdout
    assert "winner by re-run mean" in show.stdout
