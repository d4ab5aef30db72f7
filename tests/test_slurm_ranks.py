"""Jobs of several SLURM tasks (`hydra.launcher.tasks_per_node=2`), each task one torch.distributed rank (gloo).

Needs the local cluster of scripts/slurm_cluster.sh, which declares 4 CPUs so that two 2-rank jobs run at once.
"""

from __future__ import annotations

import json
import math

import pytest
import submitit
from omegaconf import OmegaConf

from tests.conftest import ROOT, run_cli
from tests.test_slurm import cluster, job_ids, metrics_steps, multirun, sacct, wait_for

TWO_RANKS = ["hydra.launcher.tasks_per_node=2", "trainer.ddp_timeout=120"]


def task_results(sweep_dir, job: str) -> list:
    """What each task of a job returned (submitit keeps one result file per task)."""
    folder = sweep_dir / ".submitit" / job
    outcomes = [submitit.core.utils.pickle_load(folder / f"{job}_{task}_result.pkl") for task in (0, 1)]
    assert all(status == "success" for status, _ in outcomes), outcomes
    return [value for _, value in outcomes]


@pytest.mark.e2e
@cluster
def test_grid_of_two_jobs_with_two_ranks_each(tmp_path):
    sweep_dir = tmp_path / "grid"
    done = multirun("seed=0,1", "debug=fast", f"hydra.sweep.dir={sweep_dir}", *TWO_RANKS)
    assert done.returncode == 0, done.stderr[-3000:]

    jobs = job_ids(sweep_dir)
    assert len(jobs) == 2 and len({job.split("_")[0] for job in jobs}) == 1, jobs  # one array, two jobs
    for job, job_dir in zip(jobs, sorted(p for p in sweep_dir.iterdir() if p.name[0].isdigit())):
        wait_for(lambda: sacct(job) == ["COMPLETED"], 30, f"job {job} to complete")
        rank0, rank1 = task_results(sweep_dir, job)  # Hydra's JobReturn of each task
        assert math.isfinite(rank0.return_value) and rank1.return_value == rank0.return_value  # one objective
        summary = json.loads((job_dir / "summary.json").read_text())
        assert summary["processes"] == 2 and summary["steps"] == 4 and summary["objective"] == rank0.return_value
        assert metrics_steps(job_dir) == [2, 4]  # written once, by rank 0
        assert len(list((job_dir / "wandb").glob("offline-run-*"))) == 1
        assert OmegaConf.load(job_dir / "config.yaml").seed == int(job_dir.name[0])


@pytest.mark.e2e
@cluster
def test_per_token_advantages_and_metrics_across_two_slurm_tasks_match_one_process(tmp_path, monkeypatch):
    """tests/distributed_worker.py, as 2 tasks of one SLURM job instead of under torchrun."""
    from tests.distributed_worker import main_in_slurm_task

    monkeypatch.chdir(ROOT)  # the job imports `tests` from its working directory
    executor = submitit.AutoExecutor(folder=tmp_path / "submitit", cluster="slurm")
    executor.update_parameters(slurm_ntasks_per_node=2, cpus_per_task=1, timeout_min=10)
    job = executor.submit(main_in_slurm_task, tmp_path / "out")
    assert sorted(job.results()) == [(0, 2), (1, 2)]  # both tasks ran, as ranks 0 and 1 of 2
    for task in (0, 1):
        log = job.task(task).stdout()
        assert f"rank {task}: per-token advantages match" in log and f"rank {task}: ratio and clip metrics match" in log


@pytest.mark.parametrize("override", ["tasks_per_node=0", "tasks_per_node=-1", "nodes=abc", "nodes=1.5"])
def test_bad_task_counts_are_refused_before_submission(override, tmp_path):
    done = run_cli("-m", "debug=fast", "hydra/launcher=slurm", f"hydra.launcher.{override}", cwd=tmp_path)
    assert done.returncode == 2 and done.stderr.strip().splitlines() == [
        f"harness: error: hydra.launcher.{override} must be a whole number >= 1 (ranks per job: nodes x tasks_per_node)"
    ]
    assert not (tmp_path / "multirun").exists()
