"""Find and load the harness runs under the paths a user gives: run dirs, multirun dirs, sweep dirs.

A run directory is one holding the `config.yaml` that `harness.training.job.run_job` writes (the resolved config);
where it sits does not matter. Runs that cannot be used are skipped with a one-line warning, never silently.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from harness.training.run_dir import CONFIG_FILE, METRICS_FILE, SUMMARY_FILE, window_mean

# Never runs: wandb keeps its own config.yaml per run, the rest are model, trainer and report outputs.
SKIP_DIRS = {"wandb", "final_model", "initial_model", "trainer", "report"}


class ReportInputError(Exception):
    """Nothing usable to report on; the message is the one line the user sees."""


@dataclass
class Run:
    path: Path
    config: dict
    records: list[dict]  # metrics.jsonl records with a training reward or a held-out evaluation, in step order
    histograms: list[tuple[int, dict]] = field(default_factory=list)  # (step, {"counts", "edges"})

    @property
    def task(self) -> str:
        return str(self.config["reward"]["name"])

    @property
    def level(self) -> str:
        return str(self.config["importance_sampling"]["level"])

    @property
    def advantage(self) -> str:
        return str(self.config["advantage"]["name"])

    @property
    def seed(self):
        return self.config.get("seed")

    def series(self, metric: str) -> list[tuple[int, float]]:
        return [(r["step"], float(r[metric])) for r in self.records if isinstance(r.get(metric), (int, float))]

    def final(self, metric: str) -> float | None:
        """Mean of the metric over the run's last `objective.last_n` logs: the window the harness's objective uses."""
        values = [v for _, v in self.series(metric)]
        last_n = int(self.config.get("objective", {}).get("last_n", 3))
        return window_mean(values, last_n) if values else None


def find_run_dirs(path: Path, warnings: list[str]) -> list[Path]:
    if (path / CONFIG_FILE).exists():
        return [path]
    if (path / ".hydra").is_dir():  # a Hydra job dir without a run in it
        if not is_study_worker(path):  # a study's worker dir holds only logs: its trials are beside it
            warnings.append(f"skipping {path}: no {CONFIG_FILE} (the job failed before training started)")
        return []
    try:
        children = sorted((p for p in path.iterdir() if p.is_dir()), key=natural_order)
    except OSError as error:
        warnings.append(f"skipping {path}: cannot list it ({error.strerror or error})")
        return []
    found = []
    for child in children:
        if not child.name.startswith(".") and child.name not in SKIP_DIRS:
            found += find_run_dirs(child, warnings)
    return found


def natural_order(path: Path) -> list:
    """Hydra's job dirs in job order (2-..., 10-...), not character order (10-..., 2-...)."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", path.name)]


def is_study_worker(job_dir: Path) -> bool:
    hydra_config = job_dir / ".hydra" / CONFIG_FILE
    try:
        config = yaml.safe_load(hydra_config.read_text()) if hydra_config.is_file() else None
    except (OSError, ValueError, yaml.YAMLError):
        return False
    return isinstance(config, dict) and bool(config.get("sweep"))


# The keys the report reads from a run's config.yaml, and their types.
REQUIRED = {
    ("reward", "name"): str,
    ("importance_sampling", "level"): str,
    ("importance_sampling", "epsilon"): (int, float),
    ("importance_sampling", "epsilon_high"): (int, float),
    ("advantage", "name"): str,
}


def load_run(path: Path, warnings: list[str]) -> Run | None:
    """The run in `path`, or None with one warning saying why it is skipped: whatever its files contain (not YAML,
    not JSON, binary, a directory where a file belongs, unreadable), it never raises."""
    try:
        return _load_run(path, warnings)
    except (OSError, ValueError, TypeError, KeyError, AttributeError, yaml.YAMLError) as error:
        name = getattr(error, "filename", None) or ""
        what = f"{Path(name).name} " if name else ""
        reason = " ".join(str(getattr(error, "strerror", None) or error).split())[:200]
        warnings.append(f"skipping {path}: {what}unreadable ({type(error).__name__}: {reason})")
        return None


def _config_problem(config) -> str | None:
    if not isinstance(config, dict):
        return "is not a mapping"
    for (group, key), kind in REQUIRED.items():
        node = config.get(group)
        if not isinstance(node, dict) or not isinstance(node.get(key), kind) or isinstance(node.get(key), bool):
            return f"has no valid {group}.{key}"
    objective = config.get("objective", {})
    if not isinstance(objective, dict) or not isinstance(objective.get("last_n", 3), int):
        return "has no valid objective.last_n"
    return None


def _load_run(path: Path, warnings: list[str]) -> Run | None:
    for name in (CONFIG_FILE, METRICS_FILE, SUMMARY_FILE):  # a FIFO would block the read, a device never end
        if (path / name).exists() and not (path / name).is_file():
            warnings.append(f"skipping {path}: {name} is not a regular file")
            return None
    try:
        config = yaml.safe_load((path / CONFIG_FILE).read_text())
    except (yaml.YAMLError, UnicodeDecodeError) as error:
        warnings.append(f"skipping {path}: {CONFIG_FILE} is not valid YAML ({' '.join(str(error).split())[:160]})")
        return None
    problem = _config_problem(config)
    if problem is not None:
        warnings.append(f"skipping {path}: {CONFIG_FILE} is not a harness run config (it {problem})")
        return None
    metrics = path / METRICS_FILE
    if not metrics.is_file():
        warnings.append(f"skipping {path}: no {METRICS_FILE} (the run failed or has not logged yet)")
        return None
    records, histograms, bad_lines = [], [], 0
    for line in metrics.read_text(errors="replace").splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:  # e.g. the last line of a killed run
            bad_lines += 1
            continue
        if not isinstance(record, dict) or not isinstance(record.get("step"), int) or isinstance(record["step"], bool):
            bad_lines += 1  # valid JSON, but not a record of a logging step
            continue
        if "adv/histogram" in record:
            histograms.append((record["step"], record["adv/histogram"]))
        if "reward" in record or "eval/greedy/reward" in record:
            records.append(record)
    if bad_lines:
        warnings.append(f"{path}: ignored {bad_lines} unreadable line(s) in {METRICS_FILE}")
    if not any("reward" in record for record in records):
        warnings.append(f"skipping {path}: {METRICS_FILE} has no training records")
        return None
    status = _status(path / SUMMARY_FILE)
    if status is None:  # run_job writes it last
        warnings.append(
            f"{path}: no readable {SUMMARY_FILE} (unfinished or killed): using its {len(records)} logged step(s)"
        )
    elif status == "interrupted":
        # Its last logs are not a final window; a study reran the trial under another number.
        warnings.append(f"skipping {path}: interrupted by a signal after {len(records)} logged step(s)")
        return None
    elif status == "failed":
        warnings.append(f"skipping {path}: failed after {len(records)} logged step(s) (its {SUMMARY_FILE} says why)")
        return None
    return Run(path, config, sorted(records, key=lambda r: r["step"]), histograms)


def _status(path: Path) -> str | None:
    """summary.json's status; None when there is no readable summary (missing, not JSON, not a mapping)."""
    try:
        summary = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return str(summary.get("status")) if isinstance(summary, dict) else None


def load_runs(paths: list[Path]) -> tuple[list[Run], list[str]]:
    """All usable runs under `paths` plus the warnings for what was skipped; raises when nothing is usable."""
    warnings: list[str] = []
    run_dirs: list[Path] = []
    for path in paths:
        if not path.is_dir():
            raise ReportInputError(f"{path} is not a directory")
        run_dirs += find_run_dirs(path, warnings)
    if not run_dirs:
        where = ", ".join(str(p) for p in paths)
        raise ReportInputError(f"no harness runs found under {where} (expected run directories with {CONFIG_FILE})")
    runs = [run for run in (load_run(d.resolve(), warnings) for d in dict.fromkeys(run_dirs)) if run is not None]
    if not runs:
        raise ReportInputError(
            f"none of the {len(run_dirs)} run(s) found has training metrics; last one: {warnings[-1]}"
        )
    return runs, warnings
