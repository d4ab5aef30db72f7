"""Multiruns on a real SLURM cluster (`hydra/launcher=slurm`): a grid, an Optuna study with two workers, a cancelled
job, requeued jobs (a grid job and an Optuna worker) that resume from their checkpoint; plus the launcher configs and
the resume rule, which need no cluster.

The e2e tests need the local cluster of scripts/slurm_cluster.sh (CI starts it). Jobs ask for one CPU, so two
run at once on a 2-core machine; every run is a few tiny steps.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
from omegaconf import OmegaConf
from optuna.storages.journal import JournalFileBackend, JournalStorage
from optuna.trial import TrialState

from harness.runtime.slurm import job_alive, resume_checkpoint, run_id

REPO = Path(__file__).resolve().parents[2]
SLURM = ["hydra/launcher=slurm", "hydra.launcher.poll_interval_s=1"]

# Tests through the cluster; the others need none.
# CI starts the cluster (scripts/setup.sh --test): there a missing SLURM client is a failure, not a skip.
cluster = pytest.mark.skipif(
    shutil.which("sinfo") is None and not os.environ.get("CI"), reason="no SLURM client (sinfo): see slurm_cluster.sh"
)


# --- helpers --------------------------------------------------------------------------------------------------
def multirun(*args: str, env: dict | None = None, log: Path | None = None):
    """`python -m harness.run -m ARGS`: run to the end, or started in the background when `log` is given."""
    command = [sys.executable, "-m", "harness.run", "-m", *args, *SLURM]
    if log is None:
        return subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=400)
    with log.open("w") as out:
        return subprocess.Popen(command, cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT)


def job_ids(sweep_dir: Path) -> list[str]:
    """SLURM ids of the multirun's jobs (`ARRAY_TASK`, or `JOB` for a single job), from submitit's folders."""
    return sorted(p.name for p in (sweep_dir / ".submitit").iterdir() if (p / f"{p.name}_submitted.pkl").exists())


def sacct(job: str) -> list[str]:
    """States of every attempt of a job, oldest first (a requeued job has one line per attempt)."""
    out = subprocess.run(
        ["sacct", "-n", "-X", "-P", "-D", "-j", job, "-o", "State"], capture_output=True, text=True, check=True
    )
    return out.stdout.split()


def study_trials(sweep_dir: Path, name: str = "smoke") -> list:
    """The trials of the study in the sweep directory's journal."""
    storage = JournalStorage(JournalFileBackend(str(sweep_dir / "study.journal")))
    return optuna.load_study(study_name=name, storage=storage).get_trials()


def wait_for(condition, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.5)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def metrics_steps(job_dir: Path) -> list[int]:
    """Steps of the training logs (the end-of-training record carries no reward)."""
    records = [json.loads(line) for line in (job_dir / "metrics.jsonl").read_text().splitlines()]
    return [r["step"] for r in records if "reward" in r]


# --- tests ----------------------------------------------------------------------------------------------------
def preempt_once(launch, sweep_dir: Path, run_dir: Path, log: Path) -> str:
    """Send the job SLURM's warning signal after its first logged step; return its id once requeued and done."""
    try:
        wait_for(lambda: (run_dir / "metrics.jsonl").is_file(), 120, "the first logged step")
        (job,) = job_ids(sweep_dir)
        subprocess.run(["scancel", "--signal=USR2", job], check=True)  # what SLURM sends before preempting
        launch.wait(timeout=240)
    finally:
        if launch.poll() is None:
            launch.kill()
    assert launch.returncode == 0, log.read_text()[-3000:]
    wait_for(lambda: sacct(job) == ["REQUEUED", "COMPLETED"], 30, f"job {job}: one requeued attempt, then done")
    return job


@pytest.mark.e2e
@cluster
def test_grid_runs_as_slurm_array_with_grouped_offline_runs_and_clean_env(tmp_path):
    sweep_dir = tmp_path / "grid"
    env = {k: v for k, v in os.environ.items() if k != "WANDB_MODE"}  # offline must come from the launcher
    env["SLURM_HARNESS_PROBE"] = "outer-allocation"  # as if submitted from inside an allocation
    done = multirun(
        "importance_sampling=token,sequence_token", "seed=0,1", "debug=fast", f"hydra.sweep.dir={sweep_dir}",
        # the configured setup line, plus one that prints the probe inside the job
        "hydra.launcher.setup=['export WANDB_MODE=offline','echo probe=$SLURM_HARNESS_PROBE.']", env=env,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]

    jobs = job_ids(sweep_dir)
    assert len(jobs) == 4 and len({job.split("_")[0] for job in jobs}) == 1, jobs  # one array, four tasks
    for job in jobs:  # the result file comes first; the job leaves the queue a moment later
        wait_for(lambda job=job: sacct(job) == ["COMPLETED"], 30, f"job {job} to complete")
        log = (sweep_dir / ".submitit" / job / f"{job}_0_log.out").read_text()
        assert "probe=." in log, log[:2000]  # the outer allocation's SLURM_* variables did not reach the job
    job_dirs = sorted(p for p in sweep_dir.iterdir() if (p / "summary.json").exists())
    assert [p.name for p in job_dirs] == [
        "0-copy-token-process-s0", "1-copy-token-process-s1",
        "2-copy-sequence_token-process-s0", "3-copy-sequence_token-process-s1",
    ]  # fmt: skip
    groups = set()
    for job_dir in job_dirs:
        hydra_job = (job_dir / ".hydra" / "hydra.yaml").read_text()
        assert any(f"id: '{job}'" in hydra_job for job in jobs)  # the Hydra job ran as that SLURM task
        assert json.loads((job_dir / "summary.json").read_text())["steps"] == 4
        assert metrics_steps(job_dir) == [2, 4]
        assert list((job_dir / "wandb").glob("offline-run-*")), "wandb stays offline on compute nodes"
        groups.add(OmegaConf.load(job_dir / "config.yaml").group)
    assert groups == {f"multirun-{sweep_dir.name}"}  # one wandb group: the runs compare side by side


@pytest.mark.e2e
@cluster
def test_optuna_study_with_two_slurm_workers(tmp_path):
    sweep_dir = tmp_path / "study"
    done = multirun(
        "sweep=smoke", "worker=range(2)", "sweep.n_trials=4", f"sweep.dir={sweep_dir}", "logger=none",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]

    jobs = job_ids(sweep_dir)
    assert len(jobs) == 2, jobs
    for job in jobs:
        wait_for(lambda job=job: sacct(job) == ["COMPLETED"], 30, f"job {job} to complete")
    trials = study_trials(sweep_dir)
    assert len(trials) == 4 and all(t.state in (TrialState.COMPLETE, TrialState.PRUNED) for t in trials)
    assert len({t.user_attrs["worker"]["pid"] for t in trials}) == 2  # both workers took trials from the storage
    assert sorted(p.name for p in sweep_dir.glob("trial-*")) == [f"trial-{n:04d}" for n in range(4)]
    assert (sweep_dir / "best.json").is_file()


@pytest.mark.e2e
@cluster
def test_study_finalists_run_through_slurm_workers(tmp_path):
    """Two SLURM workers: 3 search trials, then 2 finalists x 2 fresh seeds, each run exactly once."""
    sweep_dir = tmp_path / "study"
    done = multirun(
        "sweep=smoke", "worker=range(2)", "sweep.n_trials=3", "sweep.finalists.top=2", "sweep.finalists.seeds=2",
        "trainer.max_steps=4", f"sweep.dir={sweep_dir}", "logger=none",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    trials = study_trials(sweep_dir)
    reruns = [t for t in trials if "finalist" in t.user_attrs]
    assert len(trials) == 7 and all(t.state == TrialState.COMPLETE for t in reruns)
    keys = sorted((t.user_attrs["finalist"]["of"], t.user_attrs["finalist"]["seed"]) for t in reruns)
    assert len(set(keys)) == 4 and {seed for _, seed in keys} == {1, 2}
    best = json.loads((sweep_dir / "best.json").read_text())
    assert best["winner"]["seeds"] == [1, 2] and best["finalists"]["seeds"] == [1, 2]


@pytest.mark.e2e
@cluster
def test_tuned_comparison_on_slurm(tmp_path):
    """`experiment=tuned_comparison` with the SLURM launcher: one array task per arm, then the report."""
    root = tmp_path / "tuned"
    done = multirun(
        "experiment=tuned_comparison", f"hydra.sweep.dir={root}", "logger=none", "debug=fast",
        "trainer.max_steps=4", "trainer.logging_steps=2", "sweep.report_every=2", "sweep.n_trials=2",
        "sweep.finalists.top=1", "sweep.finalists.seeds=2",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    assert len(job_ids(root)) == 3  # one array task per arm
    for arm in ("token-process", "sequence-process", "sequence_token-process"):
        assert json.loads((root / arm / "best.json").read_text())["winner"]["seeds"] == [1, 2]
    html = (root / "report" / "report.html").read_text()
    assert "<h2>Tuned comparison</h2>" in html and "from 6 run(s)" in html


@pytest.mark.e2e
@cluster
def test_cancelled_job_is_reported_failed_within_seconds(tmp_path):
    sweep_dir = tmp_path / "cancel"
    launch = multirun(
        "trainer.max_steps=100000", "debug=fast", "logger=none", f"hydra.sweep.dir={sweep_dir}",
        log=tmp_path / "multirun.log",
    )  # fmt: skip
    try:
        wait_for(lambda: (sweep_dir / ".submitit").is_dir() and job_ids(sweep_dir), 60, "the submission")
        (job,) = job_ids(sweep_dir)
        wait_for(lambda: sacct(job)[-1:] == ["RUNNING"], 60, f"job {job} to run")
        subprocess.run(["scancel", job], check=True)
        cancelled = time.monotonic()
        launch.wait(timeout=30)
        took = time.monotonic() - cancelled
    finally:
        if launch.poll() is None:
            launch.kill()
    log = (tmp_path / "multirun.log").read_text()
    assert launch.returncode != 0
    assert f"SLURM job {job} ended CANCELLED" in log, log[-3000:]
    assert took < 15, f"the multirun took {took:.1f}s to report the cancelled job"


@pytest.mark.e2e
@cluster
def test_requeued_job_resumes_from_its_checkpoint_in_the_same_wandb_run(tmp_path):
    sweep_dir = tmp_path / "requeue"
    launch = multirun(
        "debug=fast", "trainer.max_steps=40", f"hydra.sweep.dir={sweep_dir}", log=tmp_path / "multirun.log"
    )
    job_dir = sweep_dir / "0-copy-sequence_token-process-s0"
    job = preempt_once(launch, sweep_dir, job_dir, tmp_path / "multirun.log")
    log = (sweep_dir / ".submitit" / job / f"{job}_0_log.out").read_text()
    assert f"Requeued job {job}" in log
    (checkpoint,) = (job_dir / "trainer").glob("checkpoint-*")
    saved_at = int(checkpoint.name.split("-")[1])
    assert 0 < saved_at < 40
    steps = metrics_steps(job_dir)
    assert steps == sorted(set(steps)) and steps[-1] == 40  # steps continue: none logged twice, none restarted
    assert any(step <= saved_at for step in steps) and any(step > saved_at for step in steps)
    assert json.loads((job_dir / "summary.json").read_text())["steps"] == 40
    runs = sorted((job_dir / "wandb").glob("offline-run-*"))
    expected = run_id("copy-sequence_token-process-s0", job_dir)
    assert len(runs) == 2 and all(run.name.endswith(f"-{expected}") for run in runs), runs  # one run, two attempts


@pytest.mark.e2e
@cluster
def test_requeued_optuna_worker_resumes_its_trial_without_a_duplicate(tmp_path):
    sweep_dir = tmp_path / "study"
    launch = multirun(
        "sweep=smoke", "worker=0", "sweep.n_trials=1", "trainer.max_steps=30", f"sweep.dir={sweep_dir}",
        log=tmp_path / "multirun.log",
    )  # fmt: skip
    trial_dir = sweep_dir / "trial-0000"
    job = preempt_once(launch, sweep_dir, trial_dir, tmp_path / "multirun.log")
    assert "resuming trial 0" in (sweep_dir / ".submitit" / job / f"{job}_0_log.out").read_text()
    (trial,) = study_trials(sweep_dir)  # the budget, no retry
    assert trial.number == 0 and trial.state == TrialState.COMPLETE and "fail_reason" not in trial.user_attrs
    (checkpoint,) = (trial_dir / "trainer").glob("checkpoint-*")
    saved_at = int(checkpoint.name.split("-")[1])
    steps = metrics_steps(trial_dir)
    assert steps == sorted(set(steps)) and steps[-1] == 30 and steps[0] <= saved_at < steps[-1]
    runs = sorted((trial_dir / "wandb").glob("offline-run-*"))
    assert len(runs) == 2 and all(run.name.endswith("-smoke-0") for run in runs), runs  # one wandb run, resumed


@pytest.mark.e2e
@cluster
def test_job_alive_follows_the_queue(tmp_path):
    submitted = subprocess.run(
        ["sbatch", "--parsable", "-c", "1", "-o", str(tmp_path / "sleep.out"), "--wrap", "sleep 60"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    job = submitted.stdout.strip().split(";")[0]
    try:
        assert job_alive(job)  # pending or running
    finally:
        subprocess.run(["scancel", job], check=True)
    wait_for(lambda: not job_alive(job), 30, f"job {job} to leave the queue")
    assert not job_alive("999999999")  # unknown to SLURM


def test_resume_checkpoint_only_in_a_requeued_job_and_drops_metrics_logged_after_it(tmp_path, monkeypatch):
    trainer_dir, metrics = tmp_path / "trainer", tmp_path / "metrics.jsonl"
    for step in (4, 12):
        (trainer_dir / f"checkpoint-{step}").mkdir(parents=True)
        (trainer_dir / f"checkpoint-{step}" / "trainer_state.json").write_text("{}")
    (trainer_dir / "checkpoint-16").mkdir()  # cut short by a kill: no trainer_state.json
    metrics.write_text("".join(json.dumps({"step": s, "reward": 0.1}) + "\n" for s in (4, 8, 12, 16)))
    monkeypatch.delenv("SLURM_RESTART_COUNT", raising=False)
    assert resume_checkpoint(trainer_dir, metrics) == (None, [])  # not requeued: checkpoints here are not ours
    assert metrics_steps(tmp_path) == [4, 8, 12, 16]

    monkeypatch.setenv("SLURM_RESTART_COUNT", "1")
    checkpoint, records = resume_checkpoint(trainer_dir, metrics)
    assert checkpoint == str(trainer_dir / "checkpoint-12")
    assert [r["step"] for r in records] == [4, 8, 12] and metrics_steps(tmp_path) == [4, 8, 12]
    shutil.rmtree(trainer_dir)
    assert resume_checkpoint(trainer_dir, metrics) == (None, [])  # requeued before any checkpoint: start over
    assert metrics.read_text() == ""


@pytest.mark.parametrize("launcher", ["slurm", "local"])
def test_launcher_configs_compose(launcher):
    from hydra import compose, initialize_config_dir

    from harness.config.options import CONF_DIR

    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose(config_name="config", overrides=[f"hydra/launcher={launcher}"], return_hydra_config=True)
    target = cfg.hydra.launcher._target_
    assert target.endswith("HarnessSlurmLauncher" if launcher == "slurm" else "JoblibLauncher")
