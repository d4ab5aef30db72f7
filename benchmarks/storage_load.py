"""How many workers a study's storage takes: N simulated workers against the real journal file and PostgreSQL.

Each worker is a process doing what a harness worker does per trial, with the harness's own storage code and the
shipped study settings (conf/sweep/_study.yaml, the pruner of sweeps/gspo_token_lr_eps.yaml), minus the training:

    scan   the worker loop's per-trial reads (stale-trial check with heartbeats, one read of the trial list)
    ask    study.optimize(n_trials=1) up to the objective: create the trial, start the heartbeat thread
    suggest  the study's three parameters
    report trial.report every `report_every` steps, the steps paced at --step-ms (the tiny model's CPU step)
    prune  trial.should_prune(), only where the pruner can decide (harness/study/pruning.py)
    tell   the objective's return until optimize() returns (state, value, heartbeat thread joined)

Printed per storage and N: operations per second, reports per second against those offered, p50/p99 latency per
operation in milliseconds, and errors. A storage "degrades" at an N where any p99 passes 1 s, reports fall below 90 %
of those offered, or operations fail.

    python benchmarks/storage_load.py [--workers 8 64 256] [--seconds 30] [--step-ms 30] [--storages journal postgresql]
                                      [--hold-connection]   # sweep.hold_connection=true
"""

from __future__ import annotations

import argparse
import multiprocessing
import random
import statistics
import tempfile
import time
import warnings
from collections import Counter, defaultdict
from pathlib import Path

import optuna
import sqlalchemy
from omegaconf import OmegaConf

from harness.study.backends import build_pruner, open_storage, with_driver
from harness.study.pruning import decision_due

ROOT = Path(__file__).resolve().parent.parent
POSTGRES = "postgresql://postgres@127.0.0.1:5432"
DATABASE = "harness_storage_load"
STUDY = "storage_load"
OPS = ("scan", "ask", "suggest", "report", "prune", "tell")
SLOW_P99 = 1.0  # seconds


def shipped_spec(storage: str | None) -> dict:
    """The storage-related keys of the shipped study settings, as a worker's `sweep` spec."""
    shared = OmegaConf.to_container(OmegaConf.load(ROOT / "conf/sweep/_study.yaml").sweep)
    study = OmegaConf.to_container(OmegaConf.load(ROOT / "sweeps/gspo_token_lr_eps.yaml").sweep)
    keys = ("heartbeat_interval", "grace_period", "max_retry", "report_every", "hold_connection")
    spec = {key: shared[key] for key in keys}
    spec |= {"report_every": study.get("report_every", spec["report_every"]), "pruner": study["pruner"]}
    return spec | {"storage": storage}


class Clock:
    """Latencies per operation, kept only inside the measured window."""

    def __init__(self, window: tuple[float, float]):
        self.window = window
        self.latencies: dict[str, list[float]] = defaultdict(list)
        self.errors: Counter = Counter()

    def record(self, op: str, started: float) -> None:
        now = time.perf_counter()
        if self.window[0] <= started and now <= self.window[1]:
            self.latencies[op].append(now - started)

    def timed(self, op: str, call, *args, **kwargs):
        started = time.perf_counter()
        result = call(*args, **kwargs)
        self.record(op, started)
        return result


def describe(error: BaseException) -> str:
    """The error's type and the database's own words (`FATAL: sorry, too many clients already`), on one line."""
    text = " ".join(str(error).split())
    cause = error.__cause__ or error.__context__
    if "FATAL:" not in text and cause is not None:
        text = " ".join(str(cause).split())
    reason = text.partition("FATAL:")[2].partition("(Background")[0].strip() if "FATAL:" in text else text[:60]
    return f"{type(error).__name__} ({reason})"


def run_worker(index: int, spec: dict, sweep_dir: Path, workers: int, window, step_s: float, max_steps: int, out):
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    warnings.simplefilter("ignore")
    clock = Clock(window)
    rng = random.Random(index)
    due = decision_due(spec["pruner"])
    every = spec["report_every"]
    try:
        storage = open_storage(spec, sweep_dir, workers)
        study = optuna.load_study(
            study_name=STUDY, storage=storage, sampler=optuna.samplers.RandomSampler(index),
            pruner=build_pruner(spec["pruner"]),
        )  # fmt: skip
    except Exception as error:
        clock.errors[f"open: {describe(error)}"] += 1
        out.put((dict(clock.latencies), clock.errors))
        return
    time.sleep(max(0.0, window[0] - time.perf_counter() - rng.random() * 2))  # start staggered, as workers do

    def objective(trial: optuna.Trial) -> float:
        clock.record("ask", called)
        clock.timed("suggest", lambda: [trial.suggest_float(p, 1e-4, 1e-2, log=True) for p in ("lr", "eps", "eps_hi")])
        quality, asked_at, value = rng.random(), 0, 0.0
        for step in range(every, max_steps + 1, every):
            if time.perf_counter() > window[1]:
                break
            time.sleep(every * step_s)
            value = quality * (step / max_steps) ** 0.5 + rng.gauss(0, 0.02)
            clock.timed("report", trial.report, value, step)
            if due(asked_at, step):
                asked_at = step
                if clock.timed("prune", trial.should_prune):
                    objective.returned = time.perf_counter()
                    raise optuna.TrialPruned()
        objective.returned = time.perf_counter()
        return value

    while time.perf_counter() < window[1]:
        try:
            started = time.perf_counter()
            optuna.storages.fail_stale_trials(study)
            study.get_trials(deepcopy=False)
            clock.record("scan", started)
            called = time.perf_counter()
            objective.returned = None
            study.optimize(objective, n_trials=1, catch=())
            if objective.returned is not None:
                clock.record("tell", objective.returned)
        except Exception as error:  # a storage error: counted, and the worker goes on as the harness's would
            clock.errors[describe(error)] += 1
            time.sleep(1)
    out.put((dict(clock.latencies), clock.errors))


def prepare(kind: str, tmp: Path) -> tuple[str | None, Path]:
    """A fresh, empty storage of `kind` with the study created: (sweep.storage, sweep dir)."""
    sweep_dir = tmp / f"{kind}-{time.monotonic_ns()}"
    url = None
    if kind == "postgresql":
        admin = sqlalchemy.create_engine(with_driver(f"{POSTGRES}/postgres"), isolation_level="AUTOCOMMIT")
        with admin.connect() as connection:
            connection.exec_driver_sql(f"DROP DATABASE IF EXISTS {DATABASE} WITH (FORCE)")
            connection.exec_driver_sql(f"CREATE DATABASE {DATABASE}")
        admin.dispose()
        url = f"{POSTGRES}/{DATABASE}"
    storage = open_storage(shipped_spec(url), sweep_dir, 1)
    optuna.create_study(study_name=STUDY, storage=storage, direction="maximize")
    if hasattr(storage, "engine"):
        storage.engine.dispose()  # the workers are forked: none may inherit an open connection
    return url, sweep_dir


def measure(kind: str, workers: int, seconds: float, step_s: float, max_steps: int, tmp: Path, hold: bool) -> dict:
    url, sweep_dir = prepare(kind, tmp)
    spec = shipped_spec(url) | {"hold_connection": hold}
    context = multiprocessing.get_context("fork")
    out = context.Queue()
    start = time.perf_counter() + 3 + workers * 0.01  # every worker is up before the window opens
    window = (start, start + seconds)
    processes = [
        context.Process(target=run_worker, args=(i, spec, sweep_dir, workers, window, step_s, max_steps, out))
        for i in range(workers)
    ]
    for process in processes:
        process.start()
    latencies, errors = defaultdict(list), Counter()
    for _ in processes:
        worker_latencies, worker_errors = out.get()
        for op, values in worker_latencies.items():
            latencies[op].extend(values)
        errors.update(worker_errors)
    for process in processes:
        process.join()
    ops = sum(len(values) for values in latencies.values())
    offered = workers / (spec["report_every"] * step_s)
    return {
        "ops/s": ops / seconds,
        "reports/s": len(latencies["report"]) / seconds,
        "offered": offered,
        "latencies": latencies,
        "errors": errors,
        "trials": len(latencies["tell"]),
    }


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1] if len(values) > 1 else values[0]


def degraded(result: dict) -> list[str]:
    why = []
    slow = [op for op in OPS if percentile(result["latencies"][op], 99) > SLOW_P99]
    if slow:
        why.append(f"p99 > {SLOW_P99:.0f} s: {', '.join(slow)}")
    if result["reports/s"] < 0.9 * result["offered"]:
        why.append(f"reports {result['reports/s']:.0f}/s of {result['offered']:.0f}/s offered")
    if result["errors"]:
        why.append("errors: " + ", ".join(f"{name} x{count}" for name, count in result["errors"].items()))
    return why


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--workers", type=int, nargs="+", default=[8, 64, 256])
    parser.add_argument("--storages", nargs="+", default=["journal", "postgresql"], choices=["journal", "postgresql"])
    parser.add_argument("--seconds", type=float, default=30.0, help="measured window per storage and N")
    parser.add_argument("--step-ms", type=float, default=30.0, help="simulated optimizer step time")
    parser.add_argument("--max-steps", type=int, default=600)
    parser.add_argument("--hold-connection", action="store_true", help="sweep.hold_connection=true (PostgreSQL)")
    args = parser.parse_args()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    spec = shipped_spec(None)
    print(f"workers report every {spec['report_every']} steps of {args.step_ms:.0f} ms, {args.max_steps} steps per "
          f"trial, pruner {spec['pruner']}, heartbeat every {spec['heartbeat_interval']} s, "
          f"PostgreSQL: {'connections held per worker' if args.hold_connection else 'a connection per call'}; {args.seconds:.0f} s "
          "measured per row; latencies p50/p99 in ms")  # fmt: skip
    header = f"{'storage':11s} {'N':>4s} {'ops/s':>7s} {'reports/s':>13s} {'trials':>6s} " + " ".join(
        f"{op:>13s}" for op in OPS
    )
    print(header)
    with tempfile.TemporaryDirectory(prefix="storage-load-") as tmp:
        for kind in args.storages:
            for workers in args.workers:
                result = measure(
                    kind, workers, args.seconds, args.step_ms / 1000, args.max_steps, Path(tmp), args.hold_connection
                )
                cells = " ".join(
                    f"{1000 * percentile(result['latencies'][op], 50):6.1f}/{1000 * percentile(result['latencies'][op], 99):<6.0f}"
                    for op in OPS
                )  # fmt: skip
                reports = f"{result['reports/s']:.0f}/{result['offered']:.0f}"
                print(f"{kind:11s} {workers:4d} {result['ops/s']:7.0f} {reports:>13s} {result['trials']:6d} {cells}")
                why = degraded(result)
                if why:
                    print(f"{'':17s}degraded: {'; '.join(why)}", flush=True)


if __name__ == "__main__":
    main()
