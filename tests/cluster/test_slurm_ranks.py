"""Jobs of several SLURM tasks (`hydra.launcher.tasks_per_node=2`), each task one torch.distributed rank (gloo).

Needs the local cluster of scripts/slurm_cluster.sh: two nodes (two slurmd on localhost) of 2 CPUs each, so that
two 2-rank jobs run at once and a job can span both nodes.
"""

from __future__ import annotations

import contextlib
import json
import math
import re
import time

import psutil
import pytest
import submitit
from omegaconf import OmegaConf
from optuna.trial import TrialState

from tests.cluster.test_slurm import (
    cluster,
    job_ids,
    metrics_steps,
    multirun,
    preempt_once,
    sacct,
    study_trials,
    wait_for,
)
from tests.conftest import ROOT, run_cli

TWO_RANKS = ["hydra.launcher.tasks_per_node=2", "trainer.ddp_timeout=120"]


def task_results(sweep_dir, job: str, tasks: int = 2) -> list:
    """What each task of a job returned (submitit keeps one result file per task)."""
    folder = sweep_dir / ".submitit" / job
    outcomes = [submitit.core.utils.pickle_load(folder / f"{job}_{task}_result.pkl") for task in range(tasks)]
    assert all(status == "success" for status, _ in outcomes), outcomes
    return [value for _, value in outcomes]


@pytest.mark.e2e
@cluster
def test_grid_of_two_jobs_with_two_ranks_each(tmp_path):
    sweep_dir = tmp_path / "grid"
    done = multirun("seed=0,1", "debug=fast", f"hydra.sweep.dir={sweep_dir}", *TWO_RANKS)
    assert done.returncode == 0, done.stderr[-3000:]
    assert f"2 SLURM job(s) finished; outputs in {sweep_dir}" in done.stdout + done.stderr

    jobs = job_ids(sweep_dir)
    assert len(jobs) == 2 and len({job.split("_")[0] for job in jobs}) == 1, jobs  # one array, two jobs
    for job, job_dir in zip(jobs, sorted(p for p in sweep_dir.iterdir() if p.name[0].isdigit())):
        wait_for(lambda job=job: sacct(job) == ["COMPLETED"], 30, f"job {job} to complete")
        rank0, rank1 = task_results(sweep_dir, job)  # Hydra's JobReturn of each task
        assert math.isfinite(rank0.return_value) and rank1.return_value == rank0.return_value  # one objective
        summary = json.loads((job_dir / "summary.json").read_text())
        assert summary["processes"] == 2 and summary["steps"] == 4 and summary["objective"] == rank0.return_value
        assert metrics_steps(job_dir) == [2, 4]  # written once, by rank 0
        assert len(list((job_dir / "wandb").glob("offline-run-*"))) == 1
        assert OmegaConf.load(job_dir / "config.yaml").seed == int(job_dir.name[0])


@pytest.mark.e2e
@cluster
@pytest.mark.parametrize("nodes, tasks_per_node", [(1, 2), (2, 1)], ids=["one-node", "two-nodes"])
def test_per_token_advantages_and_metrics_across_two_slurm_tasks_match_one_process(
    nodes, tasks_per_node, tmp_path, monkeypatch
):
    """tests/distributed_worker.py, as 2 tasks of one SLURM job (on one node, or one on each) instead of under
    torchrun."""
    from tests.distributed_worker import main_in_slurm_task

    monkeypatch.chdir(ROOT)  # the job imports `tests` from its working directory
    executor = submitit.AutoExecutor(folder=tmp_path / "submitit", cluster="slurm")
    executor.update_parameters(nodes=nodes, slurm_ntasks_per_node=tasks_per_node, cpus_per_task=1, timeout_min=10)
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


@pytest.mark.e2e
@cluster
def test_study_of_three_trials_with_two_ranks_each_one_pruned(tmp_path):
    """Rank 0 asks and tells, both ranks train each trial. The objective is the logged learning rate (constant
    schedule), so the threshold pruner deterministically prunes the trial with lr=0.003 at its first report."""
    sweep_dir = tmp_path / "study"
    done = multirun(
        "sweep=smoke", "worker=0", "sweep.n_trials=3", f"sweep.dir={sweep_dir}", "+trainer.lr_scheduler_type=constant",
        "~sweep.space", "+sweep.space={lr: {key: trainer.learning_rate, choices: [0.001, 0.002, 0.003]}}",
        "sweep.sampler.name=grid", "~sweep.pruner", "+sweep.pruner={name: threshold, upper: 0.0025}",
        "sweep.objective.metric=learning_rate", *TWO_RANKS,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]

    (job,) = job_ids(sweep_dir)
    rank0, rank1 = task_results(sweep_dir, job)
    assert rank0.return_value == rank1.return_value == 0.002  # the best value, on both ranks
    trials = {t.params["lr"]: t for t in study_trials(sweep_dir)}
    assert (
        sorted(trials) == [0.001, 0.002, 0.003] and len({t.user_attrs["worker"]["pid"] for t in trials.values()}) == 1
    )
    assert [trials[lr].state for lr in (0.001, 0.002)] == [TrialState.COMPLETE] * 2
    pruned = trials[0.003]
    assert pruned.state == TrialState.PRUNED and pruned.user_attrs["pruned_at"] == 2
    for lr, trial in trials.items():
        trial_dir = sweep_dir / f"trial-{trial.number:04d}"
        summary = json.loads((trial_dir / "summary.json").read_text())
        assert summary["processes"] == 2
        assert (summary["status"], summary["steps"]) == (("pruned", 2) if lr == 0.003 else ("finished", 8))
        runs = list((trial_dir / "wandb").glob("offline-run-*"))
        assert len(runs) == 1 and runs[0].name.endswith(f"-smoke-{trial.number}")  # one wandb run, from rank 0
    assert json.loads((sweep_dir / "best.json").read_text())["value"] == 0.002


@pytest.mark.e2e
@cluster
def test_study_whose_trials_span_two_nodes(tmp_path):
    """docs/slurm.md's multi-node study on the local cluster's two nodes: every trial is 4 ranks, 2 on each node, which
    meet at the first node by name (MASTER_ADDR); rank 0 asks and tells, every rank trains each trial."""
    sweep_dir = tmp_path / "study"
    done = multirun(
        "sweep=smoke", "worker=0", "sweep.n_trials=2", f"sweep.dir={sweep_dir}", "logger=none",
        "hydra.launcher.nodes=2", "hydra.launcher.tasks_per_node=2", "trainer.ddp_timeout=120",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]

    (job,) = job_ids(sweep_dir)
    results = task_results(sweep_dir, job, tasks=4)
    trials = study_trials(sweep_dir)
    best = max(t.value for t in trials)  # the smoke study maximizes the reward
    assert [r.return_value for r in results] == [best] * 4
    placement = set()
    for task in range(4):  # submitit's first log line: which node and local rank each task was
        log = (sweep_dir / ".submitit" / job / f"{job}_{task}_log.out").read_text()
        placement.add(re.search(r"local_rank=(\d)\(2\), node=(\d)\(2\), global_rank=" + str(task), log).groups())
    assert placement == {("0", "0"), ("1", "0"), ("0", "1"), ("1", "1")}
    assert [t.state for t in trials] == [TrialState.COMPLETE] * 2
    for trial in trials:
        summary = json.loads((sweep_dir / f"trial-{trial.number:04d}" / "summary.json").read_text())
        assert (summary["processes"], summary["status"], summary["objective"]) == (4, "finished", trial.value)


def rank_process(sweep_dir, rank: int):
    """The process of one rank of the multirun's job (its SLURM task)."""
    for process in psutil.process_iter(["cmdline"]):
        command = " ".join(process.info["cmdline"] or [])
        if "submitit.core._submit" in command and str(sweep_dir) in command and not command.startswith("srun"):
            with contextlib.suppress(psutil.Error):
                if process.environ().get("SLURM_PROCID") == str(rank):
                    return process
    return None


@pytest.mark.e2e
@cluster
def test_a_killed_rank_fails_its_trial_and_the_worker_at_once(tmp_path):
    """kill -9 of rank 1 mid-trial: rank 0 must neither wait in a collective nor start another trial."""
    sweep_dir = tmp_path / "study"
    launch = multirun(
        "sweep=smoke", "worker=0", "sweep.n_trials=2", f"sweep.dir={sweep_dir}", "logger=none",
        "trainer.max_steps=100000", *TWO_RANKS, log=tmp_path / "multirun.log",
    )  # fmt: skip
    try:
        wait_for(lambda: (sweep_dir / "trial-0000" / "metrics.jsonl").is_file(), 120, "the first logged step")
        rank_process(sweep_dir, 1).kill()
        killed = time.monotonic()
        launch.wait(timeout=60)
        took = time.monotonic() - killed
    finally:
        if launch.poll() is None:
            launch.kill()
    assert launch.returncode != 0 and took < 30, (took, (tmp_path / "multirun.log").read_text()[-3000:])
    (trial,) = study_trials(sweep_dir)  # no second trial was asked for
    assert trial.state == TrialState.FAIL and "Connection" in trial.user_attrs["fail_reason"], trial.user_attrs


@pytest.mark.e2e
@cluster
def test_preempted_two_node_job_checkpoints_on_every_rank_and_resumes(tmp_path):
    """One rank on each node: each node's slurmd delivers the warning signal to its rank."""
    sweep_dir = tmp_path / "requeue"
    launch = multirun(
        "debug=fast", "trainer.max_steps=40", f"hydra.sweep.dir={sweep_dir}", "hydra.launcher.nodes=2",
        "hydra.launcher.tasks_per_node=1", "trainer.ddp_timeout=120", log=tmp_path / "multirun.log",
    )  # fmt: skip
    job_dir = sweep_dir / "0-copy-sequence_token-process-s0"
    job = preempt_once(launch, sweep_dir, job_dir, tmp_path / "multirun.log")
    (checkpoint,) = (job_dir / "trainer").glob("checkpoint-*")
    saved_at = int(checkpoint.name.split("-")[1])
    assert 0 < saved_at < 40
    # One checkpoint, with each rank's RNG state: both ranks stopped and saved at the same step.
    assert sorted(p.name for p in checkpoint.glob("rng_state_*.pth")) == ["rng_state_0.pth", "rng_state_1.pth"]
    steps = metrics_steps(job_dir)
    assert steps == sorted(set(steps)) and steps[-1] == 40  # steps continue: none logged twice, none restarted
    assert any(step <= saved_at for step in steps) and any(step > saved_at for step in steps)
    summary = json.loads((job_dir / "summary.json").read_text())
    assert (summary["steps"], summary["processes"], summary["status"]) == (40, 2, "finished")
    rank0, rank1 = task_results(sweep_dir, job)  # the requeued attempt's results
    assert rank0.return_value == rank1.return_value == summary["objective"]


def test_gpu_node_launcher_preset_is_one_node_of_eight_ranks():
    from hydra import compose, initialize_config_dir

    from harness.config.options import CONF_DIR

    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose(config_name="config", overrides=["hydra/launcher=slurm_gpu_node"], return_hydra_config=True)
    launcher = cfg.hydra.launcher
    assert launcher._target_.endswith("HarnessSlurmLauncher") and launcher.signal_delay_s == 120  # slurm's, plus:
    assert (launcher.nodes, launcher.tasks_per_node, launcher.gpus_per_node) == (1, 8, 8)


@pytest.mark.e2e
@cluster
def test_preempted_two_rank_optuna_worker_resumes_its_trial_on_both_ranks(tmp_path):
    sweep_dir = tmp_path / "study"
    launch = multirun(
        "sweep=smoke", "worker=0", "sweep.n_trials=1", "trainer.max_steps=30", f"sweep.dir={sweep_dir}", "logger=none",
        *TWO_RANKS, log=tmp_path / "multirun.log",
    )  # fmt: skip
    trial_dir = sweep_dir / "trial-0000"
    job = preempt_once(launch, sweep_dir, trial_dir, tmp_path / "multirun.log")
    assert "resuming trial 0" in (sweep_dir / ".submitit" / job / f"{job}_0_log.out").read_text()
    (trial,) = study_trials(sweep_dir)  # the budget, no retry
    assert trial.number == 0 and trial.state == TrialState.COMPLETE
    (checkpoint,) = (trial_dir / "trainer").glob("checkpoint-*")
    assert sorted(p.name for p in checkpoint.glob("rng_state_*.pth")) == ["rng_state_0.pth", "rng_state_1.pth"]
    steps = metrics_steps(trial_dir)
    assert steps == sorted(set(steps)) and steps[-1] == 30 and steps[0] <= int(checkpoint.name.split("-")[1])
    summary = json.loads((trial_dir / "summary.json").read_text())
    assert (summary["processes"], summary["steps"], summary["objective"]) == (2, 30, trial.value)
    rank0, rank1 = task_results(sweep_dir, job)
    assert rank0.return_value == rank1.return_value == trial.value  # the best value, on both ranks


@cluster
def test_more_nodes_than_the_cluster_has_is_refused_with_one_line(tmp_path):
    done = multirun("debug=fast", f"hydra.sweep.dir={tmp_path / 'grid'}", "hydra.launcher.nodes=3")  # 2-node cluster
    assert done.returncode == 2, done.stderr[-3000:]
    errors = [line for line in done.stderr.splitlines() if line.startswith("harness: error:")]
    assert errors == [
        "harness: error: sbatch refused the jobs: Batch job submission failed: Node count specification invalid"
    ]
    assert "Traceback" not in done.stderr
