"""End-to-end tiny runs of the real trainer: every level x advantage, wandb offline read back, the CLI."""

import json
import math
import subprocess
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from harness.config.metrics import logged_metrics
from harness.config.validate import parse
from harness.training.job import run_job, wandb_command
from tests.conftest import compose_config, run_cli, wandb_summary

pytestmark = pytest.mark.e2e

STAT_KEYS = [
    "adv/mean_token", "adv/mean_seq", "adv/std", "adv/min", "adv/max", "adv/abs_mean", "adv/frac_pos",
    "adv/frac_neg", "adv/frac_zero", "adv/within_seq_std", "clip/low_frac_token", "clip/low_frac_seq",
    "clip/high_frac_token", "clip/high_frac_seq", "clip/region_frac_token", "clip/region_frac_seq",
    "clip/any_frac_seq", "is_ratio/mean", "is_ratio/min", "is_ratio/max", "is_ratio/std", "is_ratio/ess",
]  # fmt: skip


def read_metrics(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def weights(path: Path) -> dict[str, torch.Tensor]:
    return load_file(path / "model.safetensors")


@pytest.mark.parametrize("advantage", ["outcome", "process", "discounted"])
@pytest.mark.parametrize("level", ["token", "sequence", "sequence_token"])
def test_tiny_run_trains_and_logs_statistics(level, advantage, tmp_path):
    cfg = compose_config(f"importance_sampling={level}", f"advantage={advantage}", "debug=fast", "logger=none")
    metrics = logged_metrics(parse(cfg))  # before run_job records the effective group and precision in cfg
    objective = run_job(cfg, tmp_path, group="test")
    assert math.isfinite(objective)
    before, after = weights(tmp_path / "initial_model"), weights(tmp_path / "final_model")
    assert any(not torch.equal(before[k], after[k]) for k in before), "no parameter changed"
    records = [r for r in read_metrics(tmp_path) if "reward" in r]
    assert [r["step"] for r in records] == [2, 4]
    assert [r["step"] for r in read_metrics(tmp_path)] == [2, 4]  # one record per step: trl's end keys join step 4
    for record in records:
        missing = [k for k in STAT_KEYS if k not in record]
        assert not missing, missing
        assert all(math.isfinite(record[k]) for k in STAT_KEYS)
        assert "clip_ratio/region_mean" in record and "entropy" in record  # trl's own metrics are kept
    if advantage == "outcome":
        assert all(r["adv/within_seq_std"] == 0 for r in records)
    histograms = [r["adv/histogram"] for r in read_metrics(tmp_path) if "adv/histogram" in r]
    assert histograms and sum(histograms[0]["counts"]) > 0
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["objective"] == objective and summary["steps"] == 4
    # What `objective.metric` may name is exactly what the run logs (scalars; the histogram is not an objective).
    logged = set().union(*map(set, read_metrics(tmp_path))) - {"step", "adv/histogram"}
    assert logged == metrics


def test_wandb_offline_run_read_back_with_wandb_tooling(tmp_path):
    secret = "0123456789abcdef0123456789abcdef01234567"
    result = run_cli(
        "debug=fast", "logger.mode=offline", "group=readback", f"hydra.run.dir={tmp_path}",
        env={"WANDB_API_KEY": secret},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"{wandb_command()} leet" in result.stdout and f"{wandb_command()} sync" in result.stdout
    (run_dir,) = (tmp_path / "wandb").glob("offline-run-*")
    state = wandb_summary(tmp_path)
    summary = state["summary"]
    for prefix in ("adv/", "clip/", "is_ratio/"):
        assert any(key.startswith(prefix) for key in summary), prefix
    assert "objective" in summary and "reward" in summary
    assert state["config"]["importance_sampling"]["level"] == "sequence_token"
    records = subprocess.run(
        [wandb_command(), "leet", "inspect", "--json", str(run_dir)], capture_output=True, text=True
    )
    run_record = next(json.loads(line)["run"] for line in records.stdout.splitlines() if '"type":"run"' in line)
    assert run_record["run_group"] == "readback" and run_record["job_type"] == "sequence_token"
    assert run_record["display_name"] == "copy-sequence_token-process-s0"
    # The API key is never written anywhere in the run directory.
    for path in tmp_path.rglob("*"):
        if path.is_file():
            assert secret.encode() not in path.read_bytes(), path


def test_wandb_run_is_finished_when_training_fails(tmp_path):
    # A reward that breaks mid-training: the run must end as failed, with the metrics logged so far kept.
    result = run_cli(
        "debug=fast", "logger.mode=offline", "trainer.max_steps=6",
        "reward.functions.position_accuracy.fn._target_=tests.training.test_runs.breaks_after_two_batches",
        f"hydra.run.dir={tmp_path}",
    )  # fmt: skip
    assert result.returncode != 0
    assert "reward.functions.position_accuracy (tests.training.test_runs.breaks_after_two_batches) returned nan" in (
        result.stderr
    )
    (run_dir,) = (tmp_path / "wandb").glob("offline-run-*")
    inspect = subprocess.run(
        [wandb_command(), "leet", "inspect", "--json", str(run_dir)], capture_output=True, text=True
    )
    exits = [json.loads(line) for line in inspect.stdout.splitlines() if '"type":"exit"' in line]
    assert exits and exits[-1]["exit"]["exit_code"] == 1
    assert len(read_metrics(tmp_path)) >= 1


_calls = {"n": 0}


def breaks_after_two_batches(completions, **_):
    _calls["n"] += 1
    return [0.5] * len(completions) if _calls["n"] <= 3 else [float("nan")] * len(completions)


def test_default_command_help_and_config_are_fast_paths():
    result = run_cli("--cfg", "job")
    assert result.returncode == 0 and "importance_sampling:" in result.stdout


def test_local_model_runs_from_a_saved_directory(tiny_model_dir, tmp_path):
    cfg = compose_config("model=local", f"model.path={tiny_model_dir}", "debug=fast", "logger=none")
    assert math.isfinite(run_job(cfg, tmp_path, group="test"))


def test_multirun_grid_gives_one_directory_and_wandb_run_per_job(tmp_path):
    result = run_cli(
        "-m", "importance_sampling=token,sequence_token", "debug=fast", "logger.mode=offline",
        f"hydra.sweep.dir={tmp_path}",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    jobs = sorted(p for p in tmp_path.iterdir() if p.is_dir() and p.name[0].isdigit())
    assert [p.name for p in jobs] == ["0-copy-token-process-s0", "1-copy-sequence_token-process-s0"]
    for job in jobs:
        assert len(list((job / "wandb").glob("offline-run-*"))) == 1
        assert (job / "metrics.jsonl").exists()
