"""The shipped smoke study as a user runs it optimises the held-out objective: the reporter reports it at each
evaluation, and the trial's value is the mean of its last evaluations."""

import json

import pytest
from optuna.trial import TrialState

from harness.training.run_dir import window_mean
from tests.study.test_study import journal_study, run, worker_command

pytestmark = pytest.mark.e2e


def test_smoke_study_reports_the_heldout_metric_at_each_evaluation(tmp_path):
    sweep_dir = tmp_path / "study"
    result = run(worker_command(sweep_dir, "sweep.n_trials=3"), timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    study = journal_study(sweep_dir)
    assert study.user_attrs["metric"] == "eval/greedy/reward"
    for trial in study.trials:
        assert trial.state in (TrialState.COMPLETE, TrialState.PRUNED)
        records = [json.loads(line) for line in (sweep_dir / f"trial-{trial.number:04d}" / "metrics.jsonl").open()]
        heldout = [(r["step"], r["eval/greedy/reward"]) for r in records if "eval/greedy/reward" in r]
        assert [step for step, _ in heldout] == sorted(trial.intermediate_values)  # eval.every = report_every = 2
        for i, (step, _) in enumerate(heldout):  # the objective's window (last_n=3) over the evaluations so far
            expected = window_mean([value for _, value in heldout[: i + 1]], 3)
            assert trial.intermediate_values[step] == pytest.approx(expected)
        if trial.state == TrialState.COMPLETE:
            assert [s for s, _ in heldout] == [2, 4, 6, 8]
            assert trial.value == pytest.approx(window_mean([v for _, v in heldout], 3))
