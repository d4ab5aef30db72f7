"""Held-out evaluation in a real run: eval/... in metrics.jsonl, wandb's history and summary, summary.json and the
console; training is unchanged by it."""

import json
import subprocess

import pytest

from harness.training.job import wandb_command
from tests.conftest import run_cli, wandb_summary

pytestmark = pytest.mark.e2e

EVAL_KEYS = {"eval/greedy/reward", "eval/greedy/accuracy", "eval/sampled/reward", "eval/pass@1", "eval/pass@4"}


def records(run_dir):
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def test_a_run_evaluates_every_n_steps_and_at_the_end(tmp_path):
    on, off = tmp_path / "on", tmp_path / "off"
    result = run_cli("debug=fast", "trainer.max_steps=7", "eval.every=3", "logger.mode=offline", f"hydra.run.dir={on}")
    assert result.returncode == 0, result.stderr[-3000:]
    evaluated = [r for r in records(on) if "eval/greedy/reward" in r]
    assert [r["step"] for r in evaluated] == [3, 6, 7]  # every 3 steps, and at the last step
    for record in evaluated:
        assert EVAL_KEYS <= record.keys()
        assert 0 <= record["eval/pass@1"] <= record["eval/pass@4"] <= 1
        assert record["eval/best_reward@1"] == pytest.approx(record["eval/sampled/reward"], abs=1e-6)
    # the console: a line per evaluation and the held-out numbers in the summary
    assert result.stdout.count("held-out step ") == 3
    assert "held-out (step 7): greedy reward " in result.stdout and "pass@4 " in result.stdout
    summary = json.loads((on / "summary.json").read_text())
    assert summary["eval"]["step"] == 7 and EVAL_KEYS <= summary["eval"].keys()
    # wandb: the series at the steps they were taken, and the last values in the run's summary
    state = wandb_summary(on)
    assert EVAL_KEYS <= state["summary"].keys()
    (wandb_dir,) = (on / "wandb").glob("offline-run-*")
    lines = subprocess.run([wandb_command(), "leet", "inspect", "--json", str(wandb_dir)], capture_output=True,
                           text=True, check=True).stdout.splitlines()  # fmt: skip
    history = [json.loads(line)["history"] for line in lines if '"type":"history"' in line]
    assert [h["step"]["num"] for h in history if "eval/greedy/reward" in h["item"]] == [3, 6, 7]

    # Evaluation draws from its own seeded RNG: the run trains exactly as one without evaluation.
    result = run_cli("debug=fast", "trainer.max_steps=7", "eval.enabled=false", "logger=none", f"hydra.run.dir={off}")
    assert result.returncode == 0, result.stderr[-3000:]
    assert not any(key.startswith("eval/") for r in records(off) for key in r)
    assert "held-out" not in result.stdout
    trained = [{k: v for k, v in r.items() if k in ("step", "reward", "loss", "entropy")} for r in records(on)]
    assert [r for r in trained if "reward" in r] == [
        {k: v for k, v in r.items() if k in ("step", "reward", "loss", "entropy")}
        for r in records(off)
        if "reward" in r
    ]


def test_a_task_without_eval_dataset_says_evaluation_is_off_once(tmp_path):
    result = run_cli("debug=fast", "logger=none", "reward.eval_dataset=null", f"hydra.run.dir={tmp_path}")
    assert result.returncode == 0, result.stderr[-3000:]
    output = result.stdout + result.stderr
    assert output.count("harness: evaluation is off: reward=copy has no reward.eval_dataset") == 1
    assert not any(key.startswith("eval/") for r in records(tmp_path) for key in r)
