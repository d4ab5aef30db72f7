"""A study file checked against the composed config, its storage opened and the study created or loaded."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import optuna
from omegaconf import DictConfig, OmegaConf

from harness.config import ConfigError
from harness.study.backends import build_pruner, build_sampler, open_storage
from harness.study.space import Param, check_keys, hydra_value, parse_space

DIRECTIONS = ("maximize", "minimize")
STUDY_FIELDS = (
    "name", "dir", "base", "objective", "n_trials", "report_every", "sampler", "pruner", "storage",
    "max_failure_rate", "heartbeat_interval", "grace_period", "max_retry", "space",
)  # fmt: skip


@dataclass
class Sweep:
    """Everything a worker needs, checked before the first trial."""

    name: str
    spec: dict
    params: list[Param]
    base: list[str]  # overrides of every trial: study base, objective, command line
    dir: Path
    config_name: str
    worker: int
    storage: optuna.storages.BaseStorage
    study: optuna.Study
    heartbeats: bool  # RDB storage: lost trials come back through heartbeats; journal: through dead local pids


def prepare(cfg: DictConfig, job_overrides: list[str], config_name: str = "config", workers: int = 1) -> Sweep:
    """Validate the study spec against the composed config, then open the storage and create or load the study."""
    spec = _study_spec(cfg)
    params = parse_space(spec["space"])
    objective = spec["objective"]
    base = [
        *spec["base"],
        f"objective.metric={hydra_value(objective['metric'])}",
        f"objective.last_n={objective['last_n']}",
        *job_overrides,
    ]
    check_keys(params, base, config_name)
    build_sampler(spec["sampler"], params, seed=0)
    pruner = build_pruner(spec["pruner"])
    worker = cfg.get("worker", 0)
    sweep_dir = Path(spec["dir"]).resolve()
    storage = open_storage(spec, sweep_dir, max(workers, worker + 1))
    study = _create_or_load(spec, storage, pruner, sweep_dir)
    return Sweep(
        name=spec["name"],
        spec=spec,
        params=params,
        base=base,
        dir=sweep_dir,
        config_name=config_name,
        worker=worker,
        storage=storage,
        study=study,
        heartbeats=isinstance(storage, optuna.storages.RDBStorage),  # always opened with heartbeats
    )


def _study_spec(cfg: DictConfig) -> dict:
    spec = OmegaConf.to_container(cfg.sweep, resolve=True)
    unknown = sorted(set(spec) - set(STUDY_FIELDS))
    if unknown:
        raise ConfigError(f"sweep.{unknown[0]} is not a study field; allowed: {', '.join(STUDY_FIELDS)}")
    name = spec.get("name")
    if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z0-9_-]+", name):
        raise ConfigError(f"sweep.name={name!r} must be letters, digits, _ or - (it names the study and wandb runs)")
    _check_int(spec, "n_trials", low=1)
    _check_int(spec, "report_every", low=1)
    _check_int(spec, "max_retry", low=0)
    _check_int(spec, "heartbeat_interval", low=1)
    if spec.get("grace_period") is not None:
        _check_int(spec, "grace_period", low=1)
    rate = spec.get("max_failure_rate")
    if not isinstance(rate, (int, float)) or isinstance(rate, bool) or not 0 <= rate <= 1:
        raise ConfigError(f"sweep.max_failure_rate={rate!r} must be a number in [0, 1]")
    if not isinstance(spec.get("base"), list):
        raise ConfigError(
            f"sweep.base={spec.get('base')!r} must be a list of overrides, e.g. [importance_sampling=token]"
        )
    objective = spec.get("objective") or {}
    if objective.get("direction") not in DIRECTIONS:
        raise ConfigError(f"sweep.objective.direction={objective.get('direction')!r}; allowed: {', '.join(DIRECTIONS)}")
    if not isinstance(objective.get("metric"), str):
        raise ConfigError(f"sweep.objective.metric={objective.get('metric')!r} must be a metric name, e.g. reward")
    _check_int(objective, "last_n", low=1, where="sweep.objective")
    return spec


def _check_int(spec: dict, key: str, low: int, where: str = "sweep") -> None:
    value = spec.get(key)
    if not isinstance(value, int) or isinstance(value, bool) or value < low:
        raise ConfigError(f"{where}.{key}={value!r} must be an integer >= {low}")


def _create_or_load(spec: dict, storage, pruner, sweep_dir: Path) -> optuna.Study:
    name, direction = spec["name"], spec["objective"]["direction"]
    existing = {s.study_name: s for s in storage.get_all_studies()}
    if name in existing:
        stored = existing[name].direction.name.lower()
        if stored != direction:
            raise ConfigError(f"sweep.objective.direction={direction} but study {name} in storage is {stored}")
    elif any(sweep_dir.glob("trial-*")):
        raise ConfigError(
            f"{sweep_dir} holds trial directories but the storage has no study {name}; "
            "move them away or set sweep.dir elsewhere"
        )
    study = optuna.create_study(
        study_name=name, storage=storage, direction=direction, pruner=pruner, load_if_exists=True
    )
    if "metric" not in study.user_attrs:  # for `python -m harness.study best`
        study.set_user_attr("metric", spec["objective"]["metric"])
    return study
