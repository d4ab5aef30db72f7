"""Two CPU processes under torchrun: per-token advantages equal the single-process ones; a full run completes."""

import json
import os
import subprocess
import sys

import pytest

from tests.conftest import ROOT

pytestmark = pytest.mark.e2e


def torchrun(*args: str, timeout: float = 600):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", "29533", *args],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout,
    )  # fmt: skip


def test_two_process_process_advantages_match_single_process(tmp_path):
    result = torchrun("-m", "tests.distributed_worker", str(tmp_path))
    assert result.returncode == 0, result.stderr[-4000:]
    for rank in (0, 1):
        assert f"rank {rank}: per-token advantages match" in result.stdout


def test_two_process_training_run(tmp_path):
    result = torchrun(
        "-m", "harness.run", "debug=fast", "logger.mode=offline", "trainer.per_device_train_batch_size=6",
        "trainer.num_generations=4", f"hydra.run.dir={tmp_path}",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-4000:]
    records = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records if "reward" in r] == [2, 4]  # written once, by rank 0
    assert len(list((tmp_path / "wandb").glob("offline-run-*"))) == 1
    assert "clip/region_frac_seq" in records[0] and "adv/within_seq_std" in records[0]
