"""Training steps spent and best value of a study with pruning vs without, on the same space and seed.

Runs the GSPO-token learning rate x clip range study (sweeps/gspo_token_lr_eps.yaml) twice with one worker each:
once with its median pruner, once with `sweep.pruner.name=none`, and prints steps and best value as ratios.
Target: the pruned study's best within 2% of the unpruned best at <= 50% of the steps.

    python benchmarks/study_pruning.py [--trials 16] [--steps 200] [--report-every 20] [--warmup 60]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from _study import run_workers, steps, trials
from optuna.trial import TrialState

STUDY = "gspo_token_lr_eps"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--trials", type=int, default=16)
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--report-every", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=60, help="pruner n_warmup_steps")
    parser.add_argument("--startup", type=int, default=4, help="pruner n_startup_trials")
    args = parser.parse_args()
    common = [
        f"sweep.n_trials={args.trials}",
        f"trainer.max_steps={args.steps}",
        "trainer.logging_steps=10",
        f"sweep.report_every={args.report_every}",
    ]
    pruning = [f"sweep.pruner.n_warmup_steps={args.warmup}", f"sweep.pruner.n_startup_trials={args.startup}"]
    results = {}
    with tempfile.TemporaryDirectory(prefix="study-pruning-") as tmp:
        for label, extra in (("pruned", pruning), ("unpruned", ["sweep.pruner.name=none"])):
            sweep_dir = Path(tmp) / label
            seconds = run_workers(sweep_dir, STUDY, common + extra)
            done = trials(sweep_dir, STUDY)
            results[label] = {
                "steps": sum(steps(sweep_dir, t) for t in done),
                "best": max(t.value for t in done if t.state == TrialState.COMPLETE),
                "pruned": sum(t.state == TrialState.PRUNED for t in done),
                "seconds": seconds,
            }
            r = results[label]
            print(f"{label:9s} trials={len(done)} pruned={r['pruned']} steps={r['steps']} best={r['best']:.4f} "
                  f"wall={r['seconds']:.0f}s", flush=True)  # fmt: skip
    pruned, unpruned = results["pruned"], results["unpruned"]
    print(f"steps ratio (pruned / unpruned): {pruned['steps'] / unpruned['steps']:.3f}   (target <= 0.5)")
    print(f"best ratio  (pruned / unpruned): {pruned['best'] / unpruned['best']:.3f}   (target >= 0.98)")
    print(f"wall ratio  (pruned / unpruned): {pruned['seconds'] / unpruned['seconds']:.3f}")


if __name__ == "__main__":
    main()
