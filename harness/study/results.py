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
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    print(f"harness: study {sweep.name}: {len(trials)} trials ({summary})", flush=True)
    if not complete:
        print("  no completed trial yet", flush=True)
        return math.nan
    best = study.best_trial
    record = redact.masked(best_record(sweep.name, best, sweep.spec["objective"]["metric"]))
    path = sweep.dir / BEST_FILE
    temporary = path.with_suffix(f".{os.getpid()}.tmp")  # workers may finish together: replace atomically
    temporary.write_text(json.dumps(record, indent=2) + "\n")
    os.replace(temporary, path)
    print(format_best(record) + f"\n  written to {path}", flush=True)
    return best.value


def best_record(name: str, trial, metric: str) -> dict:
    return {
        "study": name,
        "trial": trial.number,
        "metric": metric,
        "value": trial.value,
        "params": trial.params,
        "dir": trial.user_attrs.get("dir"),
        "command": trial.user_attrs.get("command"),
    }


def format_best(record: dict) -> str:
    params = ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in record["params"].items())
    return "\n".join(
        [
            f"  best: trial {record['trial']}, {record['metric']}={record['value']:.4f}",
            f"  params: {params}",
            f"  run dir: {record['dir']}",
            f"  reproduce as a single run: {record['command']}",
        ]
    )
