"""Per-trial fixed cost inside a long-lived worker: trial wall time minus trl's training loop, and how much of it
is building the model and trainer.

Runs one worker with short trials, reads each trial's start/end from the journal and trl's `train_runtime` from its
metrics.jsonl; separately times `build_trainer` in this process (after a warm-up) for the same config.
Target: fixed cost beyond building the model <= 1 s (heavy libraries are imported once per worker, not per trial).

    python benchmarks/study_overhead.py [--trials 6] [--steps 2]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

from _study import ROOT, run_workers, train_runtime, trials

STUDY = "smoke"


def build_seconds(overrides: list[str], workdir: Path, repeats: int = 3) -> float:
    """Median time of building model + trainer (tokenizer, task, model, GRPOTrainer) for the study's config."""
    sys.path.insert(0, str(ROOT))
    from harness.training.build import build_trainer
    from tests.conftest import parse_config

    run = parse_config("debug=fast", "logger=none", *overrides)
    times = []
    for i in range(repeats + 1):
        start = time.perf_counter()
        build_trainer(run, workdir / f"build{i}", [])
        times.append(time.perf_counter() - start)
    return statistics.median(times[1:])  # the first build pays one-off imports


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--trials", type=int, default=6)
    parser.add_argument("--steps", type=int, default=2)
    args = parser.parse_args()
    overrides = [f"trainer.max_steps={args.steps}"]
    with tempfile.TemporaryDirectory(prefix="study-overhead-") as tmp:
        sweep_dir = Path(tmp) / "study"
        run_workers(sweep_dir, STUDY, [f"sweep.n_trials={args.trials}", "sweep.pruner.name=none", *overrides])
        fixed = []
        for trial in trials(sweep_dir, STUDY)[1:]:  # trial 0 pays the worker's imports
            wall = (trial.datetime_complete - trial.datetime_start).total_seconds()
            fixed.append(wall - train_runtime(sweep_dir, trial))
        build = build_seconds(overrides, Path(tmp))
    overhead = statistics.median(fixed)
    print(f"per-trial time outside trl's training loop (median of {len(fixed)}): {overhead:.2f}s")
    print(f"building model + trainer (median): {build:.2f}s")
    print(f"fixed cost beyond building: {overhead - build:.2f}s   (target <= 1 s)")


if __name__ == "__main__":
    main()
