"""Step time of HarnessGRPOTrainer (statistics on) vs bare trl.GRPOTrainer on the same tiny config.

Both trainers are built once and trained in alternating rounds in this one process, so machine noise hits both
alike. Step wall time (generation + loss + backward + optimizer) comes from a callback; a round's total covers whole
generation cycles (one generation every `steps_per_generation` steps), and the printed ratio is the median over
rounds of harness round time / bare round time. Bare trl has no "sequence_token" level: its baseline there is trl's "token" level, the computation
GSPO-token reduces to. Also times `python -m harness.run --cfg job` (the config path must stay free of torch/trl).

The credit estimators (`--only estimators`): each estimator's HarnessGRPOTrainer against the same trainer with
`advantage=outcome`, on the copy task with outcome rewards only (`reward.token_function=null`, the setting they exist
for), built once each and trained in alternating rounds as above; the ratio is estimator / outcome (target <= 1.05
for entropy_bonus, gtpo, ktae; mc_value prints its factor and the Monte-Carlo continuations per generation step).

    python benchmarks/step_time.py [--rounds 10] [--steps 20] [--only levels|estimators] [--clock wall|cpu]
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from transformers import TrainerCallback

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


CLOCK = {"wall": time.perf_counter, "cpu": time.process_time}


class StepTimer(TrainerCallback):
    clock = staticmethod(time.perf_counter)  # `--clock cpu`: this process's CPU time, robust on a shared machine

    def __init__(self):
        self.times: list[float] = []
        self.rounds: list[float] = []
        self.generations: list[float] = []  # mc/generations of each log (mc_value)

    def on_log(self, args, state, control, logs=None, **kwargs):
        if logs and "mc/generations" in logs:
            self.generations.append(logs["mc/generations"])

    def on_train_end(self, args, state, control, **kwargs):
        self.rounds.append(sum(self.times))
        self.times = []

    def on_step_begin(self, args, state, control, **kwargs):
        self._start = self.clock()

    def on_step_end(self, args, state, control, **kwargs):
        self.times.append(self.clock() - self._start)


def build_pair(level: str, advantage: str, steps: int, workdir: Path):
    from transformers.trainer_callback import PrinterCallback
    from trl import GRPOTrainer

    from harness.config.levels import LEVELS
    from harness.training.build import build_trainer, grpo_config
    from tests.conftest import parse_config

    # Identical workloads: every train() call re-seeds, and a vanishing learning rate keeps both policies at the
    # same weights, so both trainers sample the same completions each round; only the harness's own work differs.
    run = parse_config(
        f"importance_sampling={level}", f"advantage={advantage}", "logger=none", f"trainer.max_steps={steps}",
        "trainer.learning_rate=1e-12",
    )  # fmt: skip
    harness_timer, bare_timer = StepTimer(), StepTimer()
    harness = build_trainer(run, workdir / f"{level}-{advantage}-harness", [harness_timer])
    bare_level = LEVELS.get(level).trl_level  # GSPO-token runs trl's token level with re-based old log-probs
    bare_run = dataclasses.replace(
        run, importance_sampling=dataclasses.replace(run.importance_sampling, level=bare_level)
    )
    bare_args = grpo_config(bare_run, workdir / f"{level}-{advantage}-bare")
    bare = GRPOTrainer(
        model=str(workdir / f"{level}-{advantage}-harness" / "initial_model"),
        processing_class=harness.processing_class,
        reward_funcs=harness.reward_funcs,
        args=bare_args,
        train_dataset=harness.train_dataset,
        callbacks=[bare_timer],
    )
    bare.remove_callback(PrinterCallback)  # the harness trainer prints a compact line instead; neither prints dicts
    return (harness, harness_timer), (bare, bare_timer)


def measure(level: str, advantage: str, rounds: int, steps: int, workdir: Path) -> float:
    (harness, harness_timer), (bare, bare_timer) = build_pair(level, advantage, steps, workdir)
    for round_ in range(rounds):
        for trainer in (harness, bare) if round_ % 2 == 0 else (bare, harness):  # ABBA order
            trainer.train()
    ratios = [h / b for h, b in zip(harness_timer.rounds, bare_timer.rounds)]
    per_step = [1e3 * statistics.median(t.rounds) / steps for t in (harness_timer, bare_timer)]
    ratio = statistics.median(ratios)
    print(
        f"{level:15s} {advantage:8s} harness {per_step[0]:6.1f} ms/step  bare trl {per_step[1]:6.1f} ms/step  "
        f"ratio {ratio:.3f} (rounds: {min(ratios):.3f}..{max(ratios):.3f})",
        flush=True,
    )
    return ratio


ESTIMATORS = ("entropy_bonus", "gtpo", "ktae", "mc_value")
OUTCOME_ONLY = ("reward=copy", "reward.token_function=null")


def build_estimator(advantage: str, steps: int, workdir: Path):
    from harness.training.build import build_trainer
    from tests.conftest import parse_config

    run = parse_config(
        *OUTCOME_ONLY, "importance_sampling=sequence_token", f"advantage={advantage}", "logger=none",
        f"trainer.max_steps={steps}", f"trainer.logging_steps={steps}", "trainer.learning_rate=1e-12",
    )  # fmt: skip
    timer = StepTimer()
    return build_trainer(run, workdir / f"estimator-{advantage}", [timer]), timer


def measure_estimators(rounds: int, steps: int, workdir: Path) -> dict[str, float]:
    """Each estimator's round time / outcome's, median over ABBA-ordered rounds against one outcome trainer."""
    outcome, outcome_timer = build_estimator("outcome", steps, workdir)
    ratios = {}
    for advantage in ESTIMATORS:
        trainer, timer = build_estimator(advantage, steps, workdir)
        first = len(outcome_timer.rounds)
        for round_ in range(rounds):
            for each in (trainer, outcome) if round_ % 2 == 0 else (outcome, trainer):
                each.train()
        mine, base = timer.rounds, outcome_timer.rounds[first:]
        per_round = [m / b for m, b in zip(mine, base)]
        ratios[advantage] = statistics.median(per_round)
        extra = ""
        if timer.generations:
            extra = f"  Monte-Carlo continuations per generation step {statistics.median(timer.generations):.0f}"
        print(
            f"{advantage:14s} {1e3 * statistics.median(mine) / steps:7.1f} ms/step  outcome "
            f"{1e3 * statistics.median(base) / steps:7.1f} ms/step  ratio {ratios[advantage]:.3f} "
            f"(rounds: {min(per_round):.3f}..{max(per_round):.3f}){extra}",
            flush=True,
        )
        del trainer
    return ratios


def cfg_job_seconds(repeats: int = 5) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        subprocess.run([sys.executable, "-m", "harness.run", "--cfg", "job"], cwd=ROOT, check=True, capture_output=True)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--only", choices=["levels", "estimators"], default=None)
    parser.add_argument(
        "--clock", choices=list(CLOCK), default="wall",
        help="wall: elapsed time; cpu: this process's CPU time (all threads), for a machine other jobs share",
    )  # fmt: skip
    args = parser.parse_args()
    StepTimer.clock = staticmethod(CLOCK[args.clock])
    import logging

    from harness.config.levels import LEVELS

    logging.disable(logging.WARNING)
    if args.only != "estimators":
        print(f"`python -m harness.run --cfg job`: {cfg_job_seconds():.2f} s (median of 5; target < 1.5 s)")
        with tempfile.TemporaryDirectory() as tmp:
            ratios = {}
            for level in LEVELS.names():
                ratios[level] = measure(level, "outcome", args.rounds, args.steps, Path(tmp))
            process = measure("sequence_token", "process", args.rounds, args.steps, Path(tmp))
        print("step-time ratio harness/bare (target <= 1.05): " + ", ".join(f"{k} {v:.3f}" for k, v in ratios.items()))
        print(f"with per-token process advantages (token rewards + gather): sequence_token {process:.3f}")
    if args.only != "levels":
        with tempfile.TemporaryDirectory() as tmp:
            credit = measure_estimators(args.rounds, args.steps, Path(tmp))
        print(
            "step-time ratio estimator/outcome, copy with outcome rewards only (target <= 1.05 but mc_value): "
            + ", ".join(f"{k} {v:.3f}" for k, v in credit.items())
        )


if __name__ == "__main__":
    main()
