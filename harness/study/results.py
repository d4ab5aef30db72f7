"""The best trial and the command that reproduces it as a single run."""

from __future__ import annotations

import json
import math
import os
import shlex
from pathlib import Path

from optuna.trial import TrialState

from harness.config.options import app_searchpath_overrides
from harness.runtime import redact
from harness.study import finalists
from harness.study.plan import Sweep

BEST_FILE = "best.json"


def reproduce_command(overrides: list[str]) -> str:
    return redact.mask(" ".join(["python", "-m", "harness.run", *search_path_args(), *map(shlex.quote, overrides)]))


def search_path_args() -> list[str]:
    """The options that gave this Hydra app its config search path: the user's own config dir must come along."""
    from hydra.core.hydra_config import HydraConfig

    from harness.config.options import CONF_DIR

    if not HydraConfig.initialized():
        return []
    hydra = HydraConfig.get()
    args = []
    for source in hydra.runtime.config_sources:
        if source.provider == "command-line":
            args += ["--config-dir", shlex.quote(source.path)]
        elif source.provider == "main" and Path(source.path) != CONF_DIR:
            args += ["--config-path", shlex.quote(source.path)]
    return args + [shlex.quote(o) for o in app_searchpath_overrides()]


def report_best(sweep: Sweep) -> float:
    """Print the best trial and the single-run command that reproduces it; write both to <sweep dir>/best.json."""
    study = sweep.study
    trials = study.get_trials(deepcopy=False)
    counts = {state.name.lower(): sum(t.state == state for t in trials) for state in TrialState}
    summary = ", ".join(f"{n} {state}" for state, n in counts.items() if n)
    print(f"harness: study {sweep.name}: {len(trials)} trials ({summary})", flush=True)
    best = single_seed_best(trials, sweep.spec["objective"]["direction"])
    if best is None:
        print("  no completed trial yet", flush=True)
        return math.nan
    finals = sweep.spec["finalists"]
    seeds = finalists.fresh_seeds(trials, finals["seeds"], sweep.seed) if finals["top"] else []
    objective = sweep.spec["objective"]
    record = redact.masked(best_record(sweep.name, best, objective["metric"], trials, seeds, objective["direction"]))
    path = sweep.dir / BEST_FILE
    temporary = path.with_suffix(f".{os.getpid()}.tmp")  # workers may finish together: replace atomically
    temporary.write_text(json.dumps(record, indent=2) + "\n")
    os.replace(temporary, path)
    print(format_best(record) + f"\n  written to {path}", flush=True)
    winner = record.get("winner")
    return winner["mean"] if winner else best.value


def single_seed_best(trials: list, direction: str):
    """The best COMPLETE search trial (finalists' re-runs left out): one seed's result."""
    ranked = finalists.choose(trials, 1, direction)
    return ranked[0] if ranked else None


def best_record(
    name: str, trial, metric: str, trials: list | None = None, seeds: list | None = None, direction: str = "maximize"
) -> dict:
    """The single-seed best trial; with finalist trials in `trials`, also every finalist's re-runs on `seeds` and the
    winner by re-run mean (`winner`, null until one re-run finished)."""
    record = {
        "study": name,
        "trial": trial.number,
        "metric": metric,
        "value": trial.value,
        "seed": trial.user_attrs.get(finalists.SEED),
        "params": trial.params,
        "dir": trial.user_attrs.get("dir"),
        "command": trial.user_attrs.get("command"),
    }
    found = finalists.finalists(trials or [], direction)
    if found:
        entry = finalists.record(found, seeds or sorted({s for f in found for s in f.values}))
        record["finalists"] = entry
        winner = next((row for row in entry["ranked"] if row["values"]), None)
        record["winner"] = None if winner is None else {
            "trial": winner["trial"], "mean": winner["mean"], "ci95": winner["ci95"], "params": winner["params"],
            "seeds": [int(s) for s in winner["values"]],
            "command": _command_of(trials, winner["trial"]),
        }  # fmt: skip
    return record


def _command_of(trials: list, number: int):
    return next((t.user_attrs.get("command") for t in trials if t.number == number), None)


def format_best(record: dict) -> str:
    params = ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in record["params"].items())
    lines = [
        f"  single-seed best: trial {record['trial']}, {record['metric']}={record['value']:.4f}"
        + (f" (seed {record['seed']})" if record.get("seed") is not None else ""),
        f"  params: {params}",
        f"  run dir: {record['dir']}",
        f"  reproduce as a single run: {record['command']}",
    ]
    if record.get("finalists"):
        lines.append(finalists.format_finalists(record["finalists"], record["metric"], record["trial"]))
    return "\n".join(lines)
