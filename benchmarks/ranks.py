"""Time per optimizer step of a 2-rank run (gloo, CPU) vs a 1-rank run on the same global batch.

The 1-rank run has `--batch` completions per device, each of the 2 ranks half of them: the same global batch of
prompts and generations per step. Runs alternate (1, 2, 2, 1, ...) so that machine noise hits both alike. Step time
is trainer's own `train_runtime / steps`, which leaves out imports and startup; the whole command's wall time is
printed too. Threads (OMP_NUM_THREADS): by default the cores are split over the ranks (same cores for both runs);
`--threads 1` gives every process one thread (2 ranks then use twice the cores: that measures scaling). Two ranks
run under torchrun; a SLURM job of 2 tasks sets up the same process group (harness/runtime/distributed.py).

    python benchmarks/ranks.py [--rounds 3] [--steps 40] [--batch 16] [--threads N]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def run(ranks: int, steps: int, batch: int, run_dir: Path, threads: int | None) -> tuple[float, float]:
    """(seconds per step, wall seconds of the whole command)."""
    overrides = [
        "logger=none", f"trainer.max_steps={steps}", f"trainer.logging_steps={steps}",
        f"trainer.per_device_train_batch_size={batch // ranks}", f"hydra.run.dir={run_dir}",
    ]  # fmt: skip
    launcher = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(ranks), "--master_port", "29561"]
    command = (launcher if ranks > 1 else [sys.executable]) + ["-m", "harness.run", *overrides]
    threads = str(threads or max(1, (os.cpu_count() or 1) // ranks))
    start = time.perf_counter()
    subprocess.run(command, cwd=ROOT, env={**os.environ, "OMP_NUM_THREADS": threads}, check=True, capture_output=True)
    wall = time.perf_counter() - start
    records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    runtime = next(r["train_runtime"] for r in records if "train_runtime" in r)
    return runtime / steps, wall


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--batch", type=int, default=16, help="global batch (completions per step); even")
    parser.add_argument("--threads", type=int, default=None, help="threads per process (default: cores / ranks)")
    args = parser.parse_args()
    times: dict[int, list[tuple[float, float]]] = {1: [], 2: []}
    with tempfile.TemporaryDirectory(prefix="ranks-") as tmp:
        for round_ in range(args.rounds):
            for ranks in (1, 2) if round_ % 2 == 0 else (2, 1):
                times[ranks].append(run(ranks, args.steps, args.batch, Path(tmp) / f"r{round_}-{ranks}", args.threads))
                step, wall = times[ranks][-1]
                print(f"round {round_}: {ranks} rank(s): {step * 1000:.1f} ms/step, command {wall:.1f}s", flush=True)
    step = {ranks: statistics.median(s for s, _ in runs) for ranks, runs in times.items()}
    wall = {ranks: statistics.median(w for _, w in runs) for ranks, runs in times.items()}
    threads = args.threads or "cores / ranks"
    print(
        f"global batch {args.batch}, {args.steps} steps, {os.cpu_count()} cores, threads per process {threads}, "
        f"median of {args.rounds} rounds"
    )
    print(f"time per step: 1 rank {step[1] * 1000:.1f} ms, 2 ranks {step[2] * 1000:.1f} ms")
    print(f"time per step ratio (2 ranks / 1 rank): {step[2] / step[1]:.2f}")
    print(f"whole command ratio (2 ranks / 1 rank): {wall[2] / wall[1]:.2f} ({wall[1]:.1f}s vs {wall[2]:.1f}s)")


if __name__ == "__main__":
    main()
