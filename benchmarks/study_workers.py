"""Trials per hour with 2 concurrent workers vs 1, on the same study (journal storage, this machine's cores).

Each run starts its workers as OS processes against a fresh sweep directory; wall time includes each worker's
one-off imports, as a user would see it. Each worker's torch gets cores / workers threads (OMP_NUM_THREADS), so two
workers do not oversubscribe the cores.

    python benchmarks/study_workers.py [--trials 8] [--steps 40]
"""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

from _study import run_workers, trials

STUDY = "smoke"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--trials", type=int, default=8)
    parser.add_argument("--steps", type=int, default=40)
    args = parser.parse_args()
    overrides = [f"sweep.n_trials={args.trials}", f"trainer.max_steps={args.steps}", "sweep.pruner.name=none"]
    rate = {}
    with tempfile.TemporaryDirectory(prefix="study-workers-") as tmp:
        for workers in (1, 2):
            sweep_dir = Path(tmp) / f"workers{workers}"
            threads = max(1, (os.cpu_count() or 1) // workers)
            seconds = run_workers(sweep_dir, STUDY, overrides, workers, threads)
            count = sum(t.state.is_finished() for t in trials(sweep_dir, STUDY))
            rate[workers] = count / seconds * 3600
            print(
                f"{workers} worker(s): {count} trials in {seconds:.1f}s = {rate[workers]:.0f} trials/hour", flush=True
            )
    print(f"trials/hour ratio (2 workers / 1): {rate[2] / rate[1]:.2f}")


if __name__ == "__main__":
    main()
