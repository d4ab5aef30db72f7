"""Shared helpers of the study benchmarks: run real workers and read their trials back from the journal."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import optuna
from optuna.storages.journal import JournalFileBackend, JournalStorage

ROOT = Path(__file__).resolve().parent.parent


def worker(
    sweep_dir: Path, study: str, overrides: list[str], worker_index: int = 0, threads: int | None = None
) -> subprocess.Popen:
    command = [
        sys.executable, "-m", "harness.run", f"sweep={study}", f"sweep.dir={sweep_dir}", "logger=none",
        f"worker={worker_index}", *overrides,
    ]  # fmt: skip
    log = (sweep_dir.parent / f"{sweep_dir.name}-worker{worker_index}.log").open("w")
    env = dict(os.environ, **({"OMP_NUM_THREADS": str(threads)} if threads else {}))
    return subprocess.Popen(command, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, env=env)


def run_workers(
    sweep_dir: Path, study: str, overrides: list[str], workers: int = 1, threads: int | None = None
) -> float:
    """Start `workers` concurrent worker processes (torch with `threads` threads each); return the wall time until
    all are done."""
    start = time.perf_counter()
    processes = [worker(sweep_dir, study, overrides, i, threads) for i in range(workers)]
    for process in processes:
        if process.wait() != 0:
            raise SystemExit(f"a worker failed: see {sweep_dir.parent}/{sweep_dir.name}-worker*.log")
    return time.perf_counter() - start


def trials(sweep_dir: Path, study: str) -> list:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage = JournalStorage(JournalFileBackend(str(sweep_dir / "study.journal")))
    return optuna.load_study(study_name=study, storage=storage).get_trials(deepcopy=False)


def steps(sweep_dir: Path, trial) -> int:
    return json.loads((sweep_dir / f"trial-{trial.number:04d}" / "summary.json").read_text())["steps"]


def train_runtime(sweep_dir: Path, trial) -> float:
    """trl's own train-loop time, from the final record of the trial's metrics.jsonl."""
    lines = (sweep_dir / f"trial-{trial.number:04d}" / "metrics.jsonl").read_text().splitlines()
    return [json.loads(line)["train_runtime"] for line in lines if "train_runtime" in line][-1]
