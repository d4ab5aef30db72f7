"""A study file checked against the composed config, its storage opened and the study created or loaded."""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import optuna
from omegaconf import DictConfig, OmegaConf

from harness.config.compose import compose, no_pruning
from harness.config.levels import LEVELS
from harness.config.metrics import check_metric
from harness.config.schema import ConfigError, convert, doc, ranged
from harness.config.schema import parse as parse_section
from harness.config.validate import key_type
from harness.study.backends import build_pruner, build_sampler, open_storage
from harness.study.space import Param, check_keys, hydra_value, parse_space


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
    seed: int = 0  # the seed of the search trials' config (`seed` after the study base and command line)


def check_study(
    cfg: DictConfig, job_overrides: list[str], config_name: str = "config", command_line: list[str] | None = None
) -> tuple[dict, list[Param], list[str], optuna.pruners.BasePruner]:
    """The study file checked against the composed config, writing nothing: (spec, parameters, trial base, pruner).
    `command_line`: the job's overrides, sweep keys included (the preflight's), to tell dead settings it gave."""
    spec = _study_spec(cfg)
    check_dead_settings(spec, command_line)
    # A study chosen by an experiment preset (`experiment=tuned_comparison`): its trials are single runs of that preset.
    if any(o.lstrip("+~").startswith("experiment=") for o in job_overrides):
        job_overrides = [*job_overrides, "~sweep"]
    worker_type, bounds = key_type("worker")
    convert(worker_type, cfg.get("worker"), "worker", bounds)
    space = spec["space"]
    if spec["level_space"]:
        space = arm_space(spec, _level(spec, job_overrides, config_name))
    params = parse_space(space)
    finalists = spec["finalists"]
    if finalists["top"] > spec["n_trials"]:
        raise ConfigError(
            f"sweep.finalists.top={finalists['top']} is more than sweep.n_trials={spec['n_trials']}: "
            "finalists are chosen among the study's trials"
        )
    objective = spec["objective"]
    for run in check_keys(params, [*spec["base"], *job_overrides], config_name):
        check_metric(run, objective["metric"], "sweep.objective.metric")
    base = [
        *spec["base"],
        f"objective.metric={hydra_value(objective['metric'])}",
        f"objective.last_n={objective['last_n']}",
        *job_overrides,
    ]
    build_sampler(spec["sampler"], params, seed=0)
    return spec, params, base, build_pruner(spec["pruner"])


def check_arms(arms: dict[str, list[Param]]) -> None:
    """The studies of one multirun (a tuned comparison's arms) must share a parameter: the same key over the same
    range in every arm; otherwise their tuning budgets buy different things and the comparison says nothing."""
    if len(arms) < 2:
        return
    shared = set.intersection(*({_definition(p) for p in params} for params in arms.values()))
    if not shared:
        names = ", ".join(arms)
        raise ConfigError(
            f"tuned comparison: the arms' studies ({names}) share no parameter of sweep.space (the same key over the "
            "same range in every arm); give them one, e.g. sweep.space.lr"
        )


def _definition(param: Param) -> tuple:
    return param.key, param.kind, param.low, param.high, param.log, param.step, param.choices


def _level(spec: dict, job_overrides: list[str], config_name: str) -> str:
    try:
        return str(compose([*spec["base"], *job_overrides], config_name).importance_sampling.level)
    except ConfigError as error:
        raise ConfigError(f"sweep.base or command-line overrides do not compose: {error}") from None


def prepare(cfg: DictConfig, job_overrides: list[str], config_name: str = "config", workers: int = 1) -> Sweep:
    """Validate the study spec against the composed config, then open the storage and create or load the study."""
    spec, params, base, pruner = check_study(cfg, job_overrides, config_name)
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
        seed=int(compose(base, config_name).seed),
    )


@dataclass(frozen=True, kw_only=True)
class StudyObjective:
    metric: str = doc(text="a metric the trials log (checked against each trial's config)")
    last_n: int = ranged(ge=1, doc="mean over the last N logged values")
    direction: Literal["maximize", "minimize"]


@dataclass(frozen=True, kw_only=True)
class StudyFinalists:
    top: int = ranged(ge=0, doc="once the budget is spent, re-run the best `top` configurations (0: none)")
    seeds: int = ranged(ge=1, doc="fresh seeds per finalist: the smallest seeds no search trial used")


@dataclass(frozen=True, kw_only=True)
class Study:
    """A study file's `sweep:` node (conf/sweep/_study.yaml holds the defaults; sweeps/README.md the meanings)."""

    name: str
    dir: str
    base: list[str]
    objective: StudyObjective
    n_trials: int = ranged(ge=1)
    report_every: int = ranged(ge=1)
    sampler: dict[str, Any]  # name + the sampler's arguments: checked by building it (backends.py)
    pruner: dict[str, Any]
    storage: str | None
    max_failure_rate: float = ranged(ge=0, le=1)
    hold_connection: bool  # RDB storage: keep connections open per worker (false: one per storage call)
    heartbeat_interval: int = ranged(ge=1)
    grace_period: int | None = ranged(ge=1)
    max_retry: int = ranged(ge=0)
    space: dict[str, Any]  # parameters: parse_space
    level_space: dict[str, Any]  # importance_sampling.level -> parameters added to `space` for a study at that level
    finalists: StudyFinalists


def arm_space(spec: dict, level: str) -> dict:
    """The study's parameters for a study whose config is at `level`: `space` plus `level_space[level]`."""
    unknown = sorted(set(spec["level_space"]) - set(LEVELS.names()))
    if unknown:
        raise ConfigError(
            f"sweep.level_space.{unknown[0]} is not an importance_sampling.level; allowed: {', '.join(LEVELS.names())}"
        )
    extra = spec["level_space"].get(level) or {}
    chooses_level = any(str(p.get("key", label)) == "importance_sampling" for label, p in spec["space"].items())
    if spec["level_space"] and chooses_level:
        raise ConfigError("sweep.level_space needs the level fixed by the study, but sweep.space also chooses it")
    clash = sorted(set(extra) & set(spec["space"]))
    if clash:
        raise ConfigError(f"sweep.level_space.{level}.{clash[0]} is also in sweep.space; give it one place")
    return {**spec["space"], **extra}


RDB_ONLY = ("heartbeat_interval", "grace_period", "hold_connection")  # read only by an RDB storage (backends.py)


def check_dead_settings(spec: dict, command_line: list[str] | None) -> None:
    """Refuse study settings that would be accepted and do nothing: an RDB storage's settings with a journal file,
    and a pruner's arguments with `pruner.name: none` (unless the command line turned a study file's pruner off
    with `sweep.pruner.name=none`: its arguments then stay in the file, as documented in sweeps/README.md)."""
    from harness.config.options import CONF_DIR

    if spec["storage"] is None or "://" not in str(spec["storage"]):
        defaults = OmegaConf.load(CONF_DIR / "sweep" / "_study.yaml").sweep
        for key in RDB_ONLY:
            if spec[key] != defaults.get(key):
                shown = str(spec[key]).lower() if isinstance(spec[key], bool) else spec[key]
                raise ConfigError(
                    f"sweep.{key}={shown} has no effect with a journal file (sweep.storage="
                    f"{spec['storage'] or 'null'}): it applies only to a database storage; remove it"
                )
    pruner = dict(spec["pruner"] or {})
    if pruner.pop("name", None) == "none" and pruner and command_line is not None:
        given = [o.partition("=")[0].lstrip("+") for o in command_line if o.lstrip("+").startswith("sweep.pruner.")]
        from_command_line = [key for key in pruner if f"sweep.pruner.{key}" in given]
        if from_command_line or "sweep.pruner.name" not in given:
            key = (from_command_line or sorted(pruner))[0]
            raise ConfigError(no_pruning(f"sweep.pruner.{key}", pruner[key]))


def _study_spec(cfg: DictConfig) -> dict:
    spec = dataclasses.asdict(parse_section(Study, OmegaConf.to_container(cfg.sweep, resolve=True), "sweep"))
    if not re.fullmatch(r"[A-Za-z0-9_-]+", spec["name"]):
        raise ConfigError(
            f"sweep.name={spec['name']!r} must be letters, digits, _ or - (it names the study and wandb runs)"
        )
    return spec


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
