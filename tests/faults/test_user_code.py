"""User code failing after training started (a reward that returns NaN, the wrong number of values, or raises, on a
later call): one line naming the function, its `_target_` and the call, exit 1; summary.json `status: failed` with
the reason; every logged step kept in metrics.jsonl and the wandb run, which is finished as failed; the traceback in
run.log, not on the terminal."""

from __future__ import annotations

import json

import pytest

from tests.conftest import run_cli, wandb_summary
from tests.faults import records, the_line
from tests.in_process import run_in_process

FN = "reward.functions.position_accuracy.fn"
TARGET = "reward.functions.position_accuracy (tests.bad_rewards.FailsOnCall)"
NAME = "copy-sequence_token-process-s0"


def failing(how: str) -> list[str]:
    """A reward that passes its pre-flight call and the first generation (calls 1, 2) and fails on call 3: the second
    generation, after step 2 of debug=fast (2 optimizer steps per generation) was logged."""
    return [
        f"{FN}._target_=tests.bad_rewards.FailsOnCall",
        f"{FN}._partial_=false",
        f"+{FN}.how='{how}'",
    ]  # quoted: Hydra reads a bare nan as a float


CASES = [
    ("nan", f"{TARGET} returned nan for completion 0 on call 3; rewards must be finite numbers"),
    ("count", f"{TARGET} returned 15 values for 16 completions on call 3; return one per completion"),
    ("raise", f"{TARGET} raised ZeroDivisionError on call 3: division by zero"),
]


def assert_failed_run(run_dir, result, reason: str) -> dict:
    assert result.returncode == 1, result.stderr[-3000:]
    kept = "metrics.jsonl (every logged step), summary.json, the traceback in run.log"
    assert the_line(result) == f"harness: error: {NAME} failed after step 2: {reason}; kept in {run_dir}: {kept}"
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "failed" and summary["reason"] == reason
    assert summary["failed_after_step"] == 2 and summary["steps"] == 2
    assert [r["step"] for r in records(run_dir)] == [2]  # the step logged before the failure is there
    log = (run_dir / "run.log").read_text()
    assert "Traceback (most recent call last)" in log and "UserCodeError" in log
    assert not (run_dir / "final_model").exists()
    return summary


@pytest.mark.parametrize("how, reason", CASES[1:], ids=[c[0] for c in CASES[1:]])
def test_user_code_failing_later_ends_the_run_in_one_line(tmp_path, how, reason):
    run_dir = tmp_path / "run"
    result = run_in_process("debug=fast", "logger=none", *failing(how), f"hydra.run.dir={run_dir}")
    assert_failed_run(run_dir, result, reason)


def test_a_failed_run_finishes_its_wandb_run_as_failed_with_every_step(tmp_path):
    run_dir = tmp_path / "run"
    result = run_cli("debug=fast", "logger.mode=offline", *failing("nan"), f"hydra.run.dir={run_dir}")
    assert_failed_run(run_dir, result, CASES[0][1])
    wandb = wandb_summary(run_dir)
    assert wandb["exit_code"] == 1 and wandb["state"] == "failed"
    assert wandb["step"] == 2  # the last logged step reached the wandb run
    assert wandb["summary"]["status"] == "failed"
