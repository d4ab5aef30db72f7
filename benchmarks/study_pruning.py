"""Training steps spent and best value of a study with its shipped pruner vs without pruning, over sampler seeds.

For each sampler seed the study runs twice with one worker each, as a user runs it (`python -m harness.run
sweep=NAME`), at its shipped settings: once as shipped, once with `sweep.pruner.name=none`. Printed per seed and as
mean ± std over seeds:

- steps ratio: optimizer steps of all pruned-study trials / those of the unpruned study (target <= 0.5);
- best-value gap: (unpruned best - pruned best) / unpruned best (target <= 2 %; negative: pruning found better).

`--replay` also feeds the unpruned studies' learning curves, trial by trial in their order, through candidate
pruners (real Optuna pruners on an in-memory study): the steps each would have spent and the best trial it would
have kept, on the same trials. That is how the shipped pruners were chosen; it is exact for the pruning decisions
but not for the sampler, which in a real pruned study sees pruned trials — hence the real runs above.
Finished studies in --dir are reused (a rerun resumes); delete the directory to measure afresh.

    python benchmarks/study_pruning.py [--study gspo_token_lr_eps] [--seeds 0 1 2] [--jobs 2] [--replay]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from itertools import pairwise
from pathlib import Path

import optuna
from _study import ROOT, steps, trials
from optuna.trial import TrialState


def run_study(sweep_dir: Path, study: str, overrides: list[str], threads: int) -> float:
    """One worker running the study to its budget (resuming what is there); its wall time."""
    command = [
        sys.executable,
        "-m",
        "harness.run",
        f"sweep={study}",
        f"sweep.dir={sweep_dir}",
        "logger=none",
        *overrides,
    ]
    env = dict(os.environ, OMP_NUM_THREADS=str(threads))
    start = time.perf_counter()
    with (sweep_dir.parent / f"{sweep_dir.name}.log").open("a") as log:
        if subprocess.run(command, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, env=env).returncode:
            raise SystemExit(f"study failed: see {sweep_dir.parent / sweep_dir.name}.log")
    return time.perf_counter() - start


def measure(sweep_dir: Path, study: str) -> dict:
    done = trials(sweep_dir, study)
    complete = [t.value for t in done if t.state == TrialState.COMPLETE]
    return {
        "trials": len(done),
        "pruned": sum(t.state == TrialState.PRUNED for t in done),
        "steps": sum(steps(sweep_dir, t) for t in done),
        "best": max(complete),
    }


def curves(sweep_dir: Path, study: str) -> list[tuple[dict, float]]:
    """(intermediate values by step, final value) of each complete trial of an unpruned study, in trial order."""
    return [
        (dict(t.intermediate_values), t.value)
        for t in sorted(trials(sweep_dir, study), key=lambda t: t.number)
        if t.state == TrialState.COMPLETE
    ]


def replay(trial_curves: list[tuple[dict, float]], pruner: optuna.pruners.BasePruner, max_steps: int):
    """Steps spent and best final value kept when the given trials, in order, meet `pruner`."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(study_name="replay", direction="maximize", pruner=pruner)  # Hyperband hashes it
    spent, best = 0, float("-inf")
    for values, final in trial_curves:
        trial = study.ask()
        for step in sorted(values):
            trial.report(values[step], step)
            if trial.should_prune():
                spent += step
                study.tell(trial, state=TrialState.PRUNED)
                break
        else:
            spent += max_steps
            best = max(best, final)
            study.tell(trial, final)
    return spent, best


def candidates(max_steps: int) -> dict[str, optuna.pruners.BasePruner]:
    pruners = optuna.pruners
    found: dict[str, optuna.pruners.BasePruner] = {}
    for warmup in (100, 150, 200):
        found[f"median warmup={warmup} startup=5"] = pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=warmup)
        for percentile in (25.0, 33.0):
            found[f"percentile {percentile:.0f} warmup={warmup} startup=5"] = pruners.PercentilePruner(
                percentile, n_startup_trials=5, n_warmup_steps=warmup
            )
    for rf in (2, 3, 4):
        for min_resource in (50, 100, 150, 200):
            found[f"successive_halving rf={rf} min={min_resource}"] = pruners.SuccessiveHalvingPruner(
                min_resource=min_resource, reduction_factor=rf
            )
            found[f"hyperband rf={rf} min={min_resource}"] = pruners.HyperbandPruner(
                min_resource=min_resource, max_resource=max_steps, reduction_factor=rf
            )
    return found


def spread(values: list[float]) -> str:
    sd = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.mean(values):.3f} ± {sd:.3f} (min {min(values):.3f}, max {max(values):.3f})"


def ranks(values: list[float]) -> list[float]:
    order = sorted(range(len(values)), key=values.__getitem__)
    result = [0.0] * len(values)
    for rank, index in enumerate(order):
        result[index] = float(rank)
    return result


def spearman(a: list[float], b: list[float]) -> float:
    return statistics.correlation(ranks(a), ranks(b))


def print_curve_noise(per_seed: dict[int, list[tuple[dict, float]]]) -> None:
    """How early a trial's value tells its final one: rank correlation across trials, per report step, and the
    step-to-step noise of one trial's objective (median |change| over the second half, where curves are flat)."""
    steps = sorted(set.intersection(*(set(values) for trials in per_seed.values() for values, _ in trials)))
    print("\nrank correlation of the objective at a step with the final objective (Spearman, per seed):")
    for step in steps:
        cells = [spearman([v[step] for v, _ in trials], [f for _, f in trials]) for trials in per_seed.values()]
        print(f"  step {step:4d}: " + "  ".join(f"{c:+.2f}" for c in cells))
    late = [s for s in steps if s > steps[-1] / 2]
    changes = [abs(v[b] - v[a]) for trials in per_seed.values() for v, _ in trials for a, b in pairwise(late)]
    print(f"objective noise: median |change| between reports over the second half {statistics.median(changes):.3f}")


def print_replay(unpruned: dict[int, Path], study: str, max_steps: int) -> None:
    per_seed = {seed: curves(d, study) for seed, d in unpruned.items()}
    print_curve_noise(per_seed)
    print(f"\nreplay of the unpruned studies' curves through candidate pruners (seeds {list(per_seed)}):")
    print(f"{'pruner':36s} {'steps ratio':>24s} {'best gap':>24s}")
    for name in candidates(max_steps):
        ratios, gaps = [], []
        for trial_curves in per_seed.values():
            spent, best = replay(trial_curves, candidates(max_steps)[name], max_steps)  # a fresh pruner per seed
            unpruned_best = max(final for _, final in trial_curves)
            ratios.append(spent / (max_steps * len(trial_curves)))
            gaps.append((unpruned_best - best) / unpruned_best)
        print(f"{name:36s} {statistics.mean(ratios):10.3f} ± {statistics.pstdev(ratios):.3f}      "
              f"{statistics.mean(gaps):10.3f} ± {statistics.pstdev(gaps):.3f}")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--study", default="gspo_token_lr_eps")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--jobs", type=int, default=2, help="studies run side by side (1 torch thread each if > 1)")
    parser.add_argument("--dir", type=Path, help="default: benchmarks/.runs/study_pruning/STUDY")
    parser.add_argument("--max-steps", type=int, default=600, help="the study's trainer.max_steps (for --replay)")
    parser.add_argument("--replay", action="store_true", help="also replay the unpruned curves through candidates")
    parser.add_argument("--override", nargs="*", default=[], help="overrides of both studies (a smaller version)")
    args = parser.parse_args()
    args.dir = args.dir or ROOT / "benchmarks" / ".runs" / "study_pruning" / args.study
    args.dir.mkdir(parents=True, exist_ok=True)
    runs = {
        (label, seed): (args.dir / f"{label}-s{seed}", [f"sweep.sampler.seed={seed}", *args.override, *extra])
        for seed in args.seeds
        for label, extra in (("unpruned", ["sweep.pruner.name=none"]), ("pruned", []))
    }
    threads = 1 if args.jobs > 1 else (os.cpu_count() or 1)
    with ThreadPoolExecutor(args.jobs) as pool:
        walls = dict(zip(runs, pool.map(lambda run: run_study(run[0], args.study, run[1], threads), runs.values())))
    results = {key: measure(sweep_dir, args.study) | {"wall": walls[key]} for key, (sweep_dir, _) in runs.items()}
    print(f"study {args.study}: shipped pruner vs none, one worker each, sampler seeds {args.seeds}"
          + (f", overrides {' '.join(args.override)}" if args.override else ""))  # fmt: skip
    ratios, gaps = [], []
    for seed in args.seeds:
        pruned, unpruned = results["pruned", seed], results["unpruned", seed]
        ratios.append(pruned["steps"] / unpruned["steps"])
        gaps.append((unpruned["best"] - pruned["best"]) / unpruned["best"])
        print(f"seed {seed}: pruned {pruned['pruned']}/{pruned['trials']} trials, steps {pruned['steps']} vs "
              f"{unpruned['steps']} (ratio {ratios[-1]:.3f}); best {pruned['best']:.4f} vs {unpruned['best']:.4f} "
              f"(gap {100 * gaps[-1]:+.1f} %)")  # fmt: skip
    print(f"steps ratio (pruned / unpruned): {spread(ratios)}   target <= 0.5")
    print(f"best-value gap (1 - pruned / unpruned best): {spread(gaps)}   target <= 0.02")
    if args.replay:
        print_replay({seed: runs["unpruned", seed][0] for seed in args.seeds}, args.study, args.max_steps)


if __name__ == "__main__":
    main()
