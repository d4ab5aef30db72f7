"""Find and load the harness runs under the paths a user gives: run dirs, multirun dirs, sweep dirs.

A run directory is one holding the `config.yaml` that `harness.training.job.run_job` writes (the resolved config);
where it sits does not matter. Runs that cannot be used are skipped with a one-line warning, never silently.
"""

from __future__ import annotations

import json
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
    if (path / CONFIG_FILE).is_file():
        return [path]
    if (path / ".hydra").is_dir():  # a Hydra job dir without a run in it
        if not is_study_worker(path):  # a study's worker dir holds only logs: its trials are beside it
            warnings.append(f"skipping {path}: no {CONFIG_FILE} (the job failed before training started)")
        return []
    found = []
    for child in sorted(p for p in path.iterdir() if p.is_dir()):
        if not child.name.startswith(".") and child.name not in SKIP_DIRS:
            found += find_run_dirs(child, warnings)
    return found


def is_study_worker(job_dir: Path) -> bool:
    hydra_config = job_dir / ".hydra" / CONFIG_FILE
    return hydra_config.is_file() and bool((yaml.safe_load(hydra_config.read_text()) or {}).get("sweep"))


def load_run(path: Path, warnings: list[str]) -> Run | None:
    config = yaml.safe_load((path / CONFIG_FILE).read_text()) or {}
    if not all(isinstance(config.get(key), dict) for key in ("reward", "importance_sampling", "advantage")):
        warnings.append(f"skipping {path}: {CONFIG_FILE} is not a harness run config")
        return None
    metrics = path / METRICS_FILE
    if not metrics.is_file():
        warnings.append(f"skipping {path}: no {METRICS_FILE} (the run failed or has not logged yet)")
        return None
    records, histograms, bad_lines = [], [], 0
    for line in metrics.read_text().splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:  # e.g. the last line of a killed run
            bad_lines += 1
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
    if not (path / SUMMARY_FILE).is_file():  # run_job writes it last
        warnings.append(f"{path}: no {SUMMARY_FILE} (unfinished or killed): using its {len(records)} logged step(s)")
    elif json.loads((path / SUMMARY_FILE).read_text()).get("status") == "interrupted":
        # Its last logs are not a final window; a study reran the trial under another number.
        warnings.append(f"skipping {path}: interrupted by a signal after {len(records)} logged step(s)")
        return None
    return Run(path, config, sorted(records, key=lambda r: r["step"]), histograms)


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
