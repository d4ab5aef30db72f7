"""Cost of held-out evaluation at the default settings, as a share of a default run's training time.

One trainer of the default config (`python -m harness.run`: copy, GSPO-token, process advantages, 600 steps,
eval.every=50, eval.size=24, eval.samples=8) trains in rounds of `--steps` optimizer steps; each round ends with one
evaluation at the default settings (transformers' end-of-training evaluation). Step times come from a callback
(on_step_begin -> on_step_end, which excludes the evaluation), evaluation times from the `eval/seconds` it logs, in
the same process and alternating, so machine noise hits both alike. A run with evaluation trains exactly as one
without (its RNG is forked: tests/training/test_evaluation.py), so evaluation's whole cost is its own time:

    overhead = (evaluations per default run x median evaluation time) / (max_steps x median step time)

    python benchmarks/eval_overhead.py [--rounds 5] [--steps 20] [overrides ...]
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import tempfile
import time
from pathlib import Path

from transformers import TrainerCallback

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
TARGET = 0.10


class Timer(TrainerCallback):
    def __init__(self):
        self.steps: list[float] = []
        self.evals: list[float] = []

    def on_step_begin(self, args, state, control, **kwargs):
        self._start = time.perf_counter()

    def on_step_end(self, args, state, control, **kwargs):
        self.steps.append(time.perf_counter() - self._start)

    def on_log(self, args, state, control, logs=None, **kwargs):
        if logs and "eval/seconds" in logs:
            self.evals.append(logs["eval/seconds"])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("overrides", nargs="*", help="config overrides of the measured run (e.g. eval.samples=16)")
    options = parser.parse_args()

    from harness.training.build import build_trainer
    from tests.conftest import parse_config

    default = parse_config(*options.overrides)
    run = parse_config("logger=none", *options.overrides, f"trainer.max_steps={options.steps}", "eval.every=1000000")
    timer = Timer()
    with tempfile.TemporaryDirectory() as workdir:
        trainer = build_trainer(run, Path(workdir), [timer])
        step_medians = []
        for _ in range(options.rounds):
            before = len(timer.steps)
            trainer.train()
            step_medians.append(statistics.median(timer.steps[before:]))
    step, evaluation = statistics.median(step_medians), statistics.median(timer.evals)
    max_steps, every = default.trainer_value("max_steps"), default.eval.every
    evaluations = math.ceil(max_steps / every)  # every `every` steps, plus the last step when it is not one of them
    overhead = evaluations * evaluation / (max_steps * step)
    ev = default.eval
    print(f"settings: eval.every={every} eval.size={ev.size} eval.samples={ev.samples} eval.k={ev.k} "
          f"trainer.max_steps={max_steps}; {options.rounds} rounds of {options.steps} steps")  # fmt: skip
    print(f"step time (median of round medians): {step:.3f} s; evaluation (median of {len(timer.evals)}): "
          f"{evaluation:.3f} s = {evaluation / step:.2f} steps")  # fmt: skip
    print(f"evaluation overhead of a default run: {evaluations} evaluations x {evaluation:.3f} s / "
          f"({max_steps} steps x {step:.3f} s) = {100 * overhead:.1f} % (target <= {100 * TARGET:.0f} %)")  # fmt: skip


if __name__ == "__main__":
    main()
