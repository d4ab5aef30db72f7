"""Optuna studies whose trials are harness runs: `python -m harness.run sweep=NAME` (see sweeps/README.md).

Each worker process loops: check the budget -> ask -> compose the trial's config -> `run_job(trial=...)` -> tell,
against a shared storage, so workers can be added or lost at any time and a rerun of the same command resumes.
`python -m harness.study show|best|dashboard STORAGE` inspects a study.

Heavy libraries (torch, transformers, trl) are imported only once a trial runs, so spec errors and the CLI stay fast.
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import os
import random
import re
import shlex
import socket
import sys
import time
import warnings
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import optuna
from hydra.errors import HydraException
from omegaconf import DictConfig, ListConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException
from optuna.trial import TrialState

from harness import slurm
from harness.config import ConfigError, config_groups, group_options, validate

JOURNAL_FILE = "study.journal"
BEST_FILE = "best.json"
SAMPLERS = ("tpe", "random", "cmaes", "gp", "grid")
PRUNERS = ("median", "percentile", "successive_halving", "hyperband", "none")
DIRECTIONS = ("maximize", "minimize")
PARAM_FIELDS = ("key", "type", "low", "high", "log", "step", "choices", "when")
STUDY_FIELDS = (
    "name", "dir", "base", "objective", "n_trials", "report_every", "sampler", "pruner", "storage",
    "max_failure_rate", "heartbeat_interval", "grace_period", "max_retry", "space",
)  # fmt: skip
HOST = socket.gethostname()
_ABSENT = object()


# --- search space ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Param:
    """One Optuna parameter: `label` is its name in the study, `key` the config key (or config group) it sets."""

    label: str
    key: str
    kind: str  # float | int | categorical | group
    low: float | None = None
    high: float | None = None
    log: bool = False
    step: float | None = None
    choices: tuple = ()
    when: dict = field(default_factory=dict)  # label -> allowed values: active only when all of them match

    def suggest(self, trial: optuna.Trial):
        if self.kind in ("categorical", "group"):
            return trial.suggest_categorical(self.label, list(self.choices))
        if self.kind == "int":
            return trial.suggest_int(self.label, int(self.low), int(self.high), step=int(self.step or 1), log=self.log)
        return trial.suggest_float(self.label, self.low, self.high, step=self.step, log=self.log)

    def active(self, values: dict) -> bool:
        return all(label in values and values[label] in allowed for label, allowed in self.when.items())

    def override(self, value) -> str:
        if self.kind == "group":
            return f"{self.key}={value}"
        return f"{self.key}={hydra_value(value)}"

    def grid(self) -> list:
        if self.choices:
            return list(self.choices)
        if self.kind == "int":
            return list(range(int(self.low), int(self.high) + 1, int(self.step or 1)))
        if self.step is None:
            raise ConfigError(f"sweep.space.{self.label}: sampler grid needs `choices` or a `step` for float ranges")
        count = round((self.high - self.low) / self.step)
        return [self.low + i * self.step for i in range(count + 1)]


def hydra_value(value) -> str:
    """A value as Hydra override syntax that parses back to exactly the same value."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value)  # the shortest string that round-trips
    if isinstance(value, int):
        return str(value)
    text = str(value)
    if re.fullmatch(r"[A-Za-z_][\w./-]*", text) and text.lower() not in ("true", "false", "null", "inf", "nan"):
        return text  # Hydra reads it back as this string
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def parse_space(space: dict) -> list[Param]:
    if not space:
        raise ConfigError("sweep.space is empty; give at least one parameter (see sweeps/README.md)")
    groups = set(config_groups())
    params: list[Param] = []
    for label, spec in space.items():
        params.append(_parse_param(str(label), spec, groups, {p.label: p for p in params}))
    _check_same_key(params)
    return params


def _parse_param(label: str, spec, groups: set[str], earlier: dict[str, Param]) -> Param:
    where = f"sweep.space.{label}"
    if not isinstance(spec, dict):
        raise ConfigError(f"{where} must be a mapping with low/high or choices, got {spec!r}")
    unknown = sorted(set(spec) - set(PARAM_FIELDS))
    if unknown:
        raise ConfigError(f"{where}.{unknown[0]} is not a parameter field; allowed: {', '.join(PARAM_FIELDS)}")
    key = str(spec.get("key", label))
    when = _parse_when(where, spec.get("when") or {}, earlier)
    if "choices" in spec:
        return _parse_choices(where, label, key, spec, groups, when)
    return _parse_range(where, label, key, spec, when)


def _parse_choices(where, label, key, spec, groups, when) -> Param:
    choices = spec["choices"]
    if spec.get("type", "categorical") != "categorical" or {"low", "high", "log", "step"} & set(spec):
        raise ConfigError(f"{where}: `choices` cannot be combined with type/low/high/log/step")
    if not isinstance(choices, list) or not choices:
        raise ConfigError(f"{where}.choices is empty; give at least one value")
    if key in groups:
        allowed = group_options(key)
        for choice in choices:
            if choice not in allowed:
                raise ConfigError(
                    f"{where}.choices: {choice!r} is not an option of {key}; allowed: {', '.join(allowed)}"
                )
        return Param(label, key, "group", choices=tuple(choices), when=when)
    for choice in choices:
        if not (choice is None or isinstance(choice, (str, int, float, bool))):
            raise ConfigError(f"{where}.choices: {choice!r} is not a scalar (str, int, float, bool or null)")
    return Param(label, key, "categorical", choices=tuple(choices), when=when)


def _parse_range(where, label, key, spec, when) -> Param:
    kind = spec.get("type", "float")
    if kind not in ("float", "int"):
        raise ConfigError(f"{where}.type={kind!r}; allowed: float, int (or give `choices`)")
    bounds = {}
    for bound in ("low", "high"):
        value = spec.get(bound)
        number = isinstance(value, int) if kind == "int" else isinstance(value, (int, float))
        if not number or isinstance(value, bool):
            raise ConfigError(f"{where}.{bound}={value!r} must be {'an integer' if kind == 'int' else 'a number'}")
        bounds[bound] = value
    low, high = bounds["low"], bounds["high"]
    log, step = spec.get("log", False), spec.get("step")
    if low > high:
        raise ConfigError(f"{where}: low={low} > high={high}")
    if not isinstance(log, bool):
        raise ConfigError(f"{where}.log={log!r} must be true or false")
    if log and low <= 0:
        raise ConfigError(f"{where}: log=true needs low > 0, got low={low}")
    if step is not None and (log or isinstance(step, bool) or not isinstance(step, (int, float)) or step <= 0):
        raise ConfigError(f"{where}.step={step!r} must be a positive number and cannot be combined with log=true")
    cast = int if kind == "int" else float
    return Param(label, key, kind, cast(low), cast(high), log, step, when=when)


def _parse_when(where: str, when, earlier: dict[str, Param]) -> dict:
    if not isinstance(when, dict):
        raise ConfigError(f"{where}.when must map parameter labels to values, e.g. {{level: [sequence, token]}}")
    parsed = {}
    for label, values in when.items():
        parent = earlier.get(label)
        if parent is None or parent.kind not in ("categorical", "group"):
            choosers = [p.label for p in earlier.values() if p.choices] or ["none"]
            raise ConfigError(
                f"{where}.when.{label}: not a parameter with choices defined above; allowed: {', '.join(choosers)}"
            )
        values = tuple(values) if isinstance(values, list) else (values,)
        for value in values:
            if value not in parent.choices:
                raise ConfigError(
                    f"{where}.when.{label}: {value!r} is not a choice of {label}; "
                    f"allowed: {', '.join(map(str, parent.choices))}"
                )
        parsed[label] = values
    return parsed


def _check_same_key(params: list[Param]) -> None:
    """Two parameters may set the same key only if no trial can activate both (disjoint `when` values)."""
    for a, b in itertools.combinations(params, 2):
        if a.key != b.key:
            continue
        shared = set(a.when) & set(b.when)
        if not any(not set(a.when[label]) & set(b.when[label]) for label in shared):
            raise ConfigError(
                f"sweep.space.{a.label} and sweep.space.{b.label} both set {a.key} in the same trial; "
                f"give them disjoint `when` values"
            )


def suggest(params: list[Param], trial: optuna.Trial) -> dict:
    """The trial's values by label; conditional parameters are suggested only when their `when` holds."""
    values: dict = {}
    for param in params:
        if param.active(values):
            values[param.label] = param.suggest(trial)
    return values


def trial_overrides(params: list[Param], values: dict) -> list[str]:
    # Group choices first: a value under a group (importance_sampling.epsilon) applies to the chosen option.
    ordered = sorted((p for p in params if p.label in values), key=lambda p: p.kind != "group")
    return [param.override(values[param.label]) for param in ordered]


# --- config composition -----------------------------------------------------------------------------------------
def compose(overrides: list[str], config_name: str = "config") -> DictConfig:
    """The job config for `overrides`, composed by Hydra exactly as `python -m harness.run OVERRIDES` would."""
    from hydra import compose as hydra_compose

    return hydra_compose(config_name=config_name, overrides=overrides)


def check_keys(params: list[Param], base: list[str], config_name: str) -> None:
    """Compose every combination of group choices and check each active parameter's key exists in it."""
    groups = [p for p in params if p.kind == "group"]
    for combination in itertools.product(*(p.choices for p in groups)):
        choices = {p.label: choice for p, choice in zip(groups, combination)}
        overrides = [p.override(choice) for p, choice in zip(groups, combination)]
        try:
            cfg = compose(base + overrides, config_name)
        except (HydraException, OmegaConfBaseException) as error:  # Hydra's own message names the bad override
            raise ConfigError(f"sweep.base or command-line overrides do not compose: {_one_line(error)}") from None
        validate(cfg)
        context = f" (with {' '.join(overrides)})" if overrides else ""
        for param in params:
            if param.kind == "group" or not all(choices.get(k, v[0]) in v for k, v in param.when.items()):
                continue
            value = OmegaConf.select(cfg, param.key, default=_ABSENT)
            if value is _ABSENT:
                hint = _close_key(cfg, param.key)
                raise ConfigError(f"sweep.space.{param.label}.key={param.key} is not a config key{context}{hint}")
            if isinstance(value, (DictConfig, ListConfig)):
                raise ConfigError(
                    f"sweep.space.{param.label}.key={param.key} is a config section, not a value{context}"
                )


def _close_key(cfg: DictConfig, key: str) -> str:
    import difflib

    keys = list(_leaf_keys(OmegaConf.to_container(cfg, resolve=False)))
    close = difflib.get_close_matches(key, keys, n=1)
    return f"; did you mean {close[0]}?" if close else ""


def _leaf_keys(node, prefix: str = "") -> Iterable[str]:
    for key, value in node.items():
        if isinstance(value, dict):
            yield from _leaf_keys(value, f"{prefix}{key}.")
        else:
            yield f"{prefix}{key}"


# --- samplers, pruners, storage ----------------------------------------------------------------------------------
def build_sampler(spec: dict, params: list[Param], seed: int | None) -> optuna.samplers.BaseSampler:
    name, kwargs = _named(spec, "sampler", SAMPLERS)
    kwargs.pop("seed", None)
    samplers = optuna.samplers
    if name == "cmaes":
        _require_module("cmaes", "sweep.sampler.name=cmaes")
    if name == "gp":
        _require_module("scipy", "sweep.sampler.name=gp")
    if name == "grid":
        kwargs["search_space"] = {p.label: p.grid() for p in params}
    factory = {
        "tpe": samplers.TPESampler,
        "random": samplers.RandomSampler,
        "cmaes": samplers.CmaEsSampler,
        "gp": samplers.GPSampler,
        "grid": samplers.GridSampler,
    }[name]
    try:
        return factory(seed=seed, **kwargs)
    except (TypeError, ValueError) as error:
        raise ConfigError(f"sweep.sampler ({name}): {_one_line(error)}") from None


def build_pruner(spec: dict) -> optuna.pruners.BasePruner:
    name, kwargs = _named(spec, "pruner", PRUNERS)
    pruners = optuna.pruners
    if name == "none":
        return pruners.NopPruner()  # ignores the options of the pruner it replaces (`sweep.pruner.name=none`)
    factory = {
        "median": pruners.MedianPruner,
        "percentile": pruners.PercentilePruner,
        "successive_halving": pruners.SuccessiveHalvingPruner,
        "hyperband": pruners.HyperbandPruner,
    }[name]
    try:
        return factory(**kwargs)
    except (TypeError, ValueError) as error:
        raise ConfigError(f"sweep.pruner ({name}): {_one_line(error)}") from None


def _named(spec, what: str, allowed: tuple) -> tuple[str, dict]:
    spec = dict(spec or {})
    name = spec.pop("name", None)
    if name not in allowed:
        raise ConfigError(f"sweep.{what}.name={name!r}; allowed: {', '.join(allowed)}")
    return name, spec


def _require_module(module: str, what: str) -> None:
    import importlib.util

    if importlib.util.find_spec(module) is None:
        raise ConfigError(f"{what} needs the `{module}` package: pip install {module}")


def open_storage(spec: dict, sweep_dir: Path, workers: int) -> optuna.storages.BaseStorage:
    """Journal file (default, in the sweep dir) or an SQLAlchemy URL; checked reachable before anything is written."""
    url = spec["storage"]
    if url is None or "://" not in str(url):
        path = sweep_dir / JOURNAL_FILE if url is None else Path(url).resolve()
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise ConfigError(f"sweep.storage: cannot create {path.parent}: {error.strerror}") from None
        if not os.access(path.parent, os.W_OK):
            raise ConfigError(f"sweep.storage: {path.parent} is not writable")
        from optuna.storages.journal import JournalFileBackend, JournalStorage

        return JournalStorage(JournalFileBackend(str(path)))
    if str(url).startswith("sqlite") and workers > 1:
        raise ConfigError(
            f"sweep.storage={url}: SQLite locks under concurrent workers ({workers} here); "
            "use the default journal file (sweep.storage=null) or PostgreSQL"
        )
    _probe(url)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return optuna.storages.RDBStorage(
            _with_driver(url),
            engine_kwargs=_engine_kwargs(url),
            heartbeat_interval=spec["heartbeat_interval"],
            grace_period=spec["grace_period"],
            heartbeat_stale_trial_callback=optuna.storages.RetryHeartbeatStaleTrialCallback(spec["max_retry"]),
        )


def _with_driver(url: str) -> str:
    """SQLAlchemy 2.1 reads postgresql:// as psycopg 3; use psycopg2 (the harness's dependency) when that is absent."""
    import importlib.util

    if url.startswith("postgresql://") and importlib.util.find_spec("psycopg") is None:
        return "postgresql+psycopg2://" + url.removeprefix("postgresql://")
    return url


def _engine_kwargs(url: str) -> dict:
    return {"connect_args": {"connect_timeout": 5}} if url.startswith("postgres") else {}


def _probe(url: str) -> None:
    import sqlalchemy

    try:
        engine = sqlalchemy.create_engine(_with_driver(url), **_engine_kwargs(url))
        with engine.connect():
            pass
        engine.dispose()
    except (sqlalchemy.exc.SQLAlchemyError, ImportError) as error:  # ImportError: the URL's driver is missing
        raise ConfigError(f"sweep.storage={_redact(url)} is unreachable: {_one_line(error)}") from None


def _redact(url: str) -> str:
    return re.sub(r"://([^:/@]+):[^@]+@", r"://\1:***@", str(url))


# --- the study plan -------------------------------------------------------------------------------------------
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


# --- the worker loop ------------------------------------------------------------------------------------------
class StudyStopped(RuntimeError):
    """The study's failure budget is spent."""


@dataclass
class Ledger:
    """Trial counts against the budget. A FAIL given back to the study (retried) does not count; its retry does."""

    finished: int
    running: int
    waiting: int
    failed: list

    @classmethod
    def of(cls, trials: list) -> Ledger:
        retried = {number for t in trials for number in t.system_attrs.get("retry_history", [])}
        counted = [t for t in trials if t.number not in retried]
        states = [t.state for t in counted]
        return cls(
            finished=sum(state.is_finished() for state in states),
            running=states.count(TrialState.RUNNING),
            waiting=states.count(TrialState.WAITING),
            failed=[t for t in counted if t.state == TrialState.FAIL],
        )


def run_worker(cfg: DictConfig, output_dir: Path) -> float:
    """Hydra entry (harness/run.py): one worker of the study chosen by `sweep=NAME`; returns the best value."""
    from hydra.core.hydra_config import HydraConfig

    hydra_cfg = HydraConfig.get()
    job_overrides = [o for o in hydra_cfg.overrides.task if not _is_sweep_override(o)]
    sweep = prepare(cfg, job_overrides, hydra_cfg.job.config_name, _fan_out(hydra_cfg))
    try:
        return work(sweep)
    except StudyStopped as stop:
        print(f"harness: error: {stop}", file=sys.stderr, flush=True)
        raise SystemExit(1)


def work(sweep: Sweep) -> float:
    """Run trials until the budget is spent; then print and write the best trial."""
    study = sweep.study
    print(f"harness: study {sweep.name} (worker {sweep.worker}) in {sweep.dir}", flush=True)
    _resume_requeued_trial(sweep)
    while True:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            optuna.storages.fail_stale_trials(study)  # RDB: heartbeat-stale trials -> FAIL + retry
        _fail_dead_local_trials(sweep)  # journal: trials whose local worker process is gone -> FAIL + retry
        ledger = Ledger.of(study.get_trials(deepcopy=False))
        _check_failures(ledger, sweep)
        if ledger.waiting or ledger.finished + ledger.running < sweep.spec["n_trials"]:
            study.sampler = build_sampler(sweep.spec["sampler"], sweep.params, _trial_seed(sweep, study))
            # One ask -> objective -> tell; Optuna adds the heartbeat thread (RDB) and pops WAITING retries first.
            study.optimize(lambda trial: objective(sweep, trial), n_trials=1, catch=(Exception,))
        elif ledger.running and sweep.heartbeats:
            # Only running trials are left: wait, so that one lost with its worker is given back and run here.
            time.sleep(sweep.spec["heartbeat_interval"])
        else:
            break
    return report_best(sweep)


def _resume_requeued_trial(sweep: Sweep) -> None:
    """A requeued SLURM worker first finishes the trial it was running when preempted, from the trial's checkpoint
    (same number, directory and wandb run; the parameters are read back from the storage)."""
    job = slurm.job_key()
    for frozen in sweep.study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        owner = frozen.user_attrs.get("worker") or {}
        if job is None or owner.get("slurm_job") != job or owner.get("trial") != frozen.number:
            continue
        print(f"harness: resuming trial {frozen.number} after a requeue of SLURM job {job}", flush=True)
        trial = optuna.trial.Trial(sweep.study, frozen._trial_id)
        try:
            value = objective(sweep, trial)
        except optuna.TrialPruned:
            sweep.study.tell(trial, state=TrialState.PRUNED)
        except Exception:
            sweep.study.tell(trial, state=TrialState.FAIL)
        else:
            sweep.study.tell(trial, value)


def _trial_seed(sweep: Sweep, study: optuna.Study) -> int | None:
    """A fresh seed per trial from (seed, worker, trials so far): reproducible for one worker, distinct across
    workers, and a resumed worker does not replay the proposals of its first run."""
    seed = sweep.spec["sampler"].get("seed")
    if seed is None:
        return None
    count = len(study.get_trials(deepcopy=False))
    return random.Random(f"{seed}-{sweep.worker}-{count}").getrandbits(31)


def _check_failures(ledger: Ledger, sweep: Sweep) -> None:
    allowed = sweep.spec["max_failure_rate"] * sweep.spec["n_trials"]
    if len(ledger.failed) > allowed:
        last = ledger.failed[-1]
        reason = last.user_attrs.get("fail_reason", "no reason recorded")
        raise StudyStopped(
            f"study {sweep.name} stopped: {len(ledger.failed)} of {sweep.spec['n_trials']} trials failed, more than "
            f"sweep.max_failure_rate={sweep.spec['max_failure_rate']}; last (trial {last.number}): {reason}"
        )


def _fail_dead_local_trials(sweep: Sweep) -> None:
    """Journal storage has no heartbeats: a RUNNING trial whose worker process on this host is gone is lost."""
    if sweep.heartbeats:
        return
    for trial in sweep.study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        owner = trial.user_attrs.get("worker") or {}
        # `trial` guards against attributes a retried trial inherited from the trial it retries.
        if owner.get("trial") != trial.number:
            continue
        if owner.get("slurm_job"):  # a requeued SLURM worker resumes its trial: lost only once its job is gone
            if slurm.job_alive(owner["slurm_job"]):
                continue
        elif owner.get("host") != HOST or _alive(owner.get("pid")):
            continue
        trial_id = trial._trial_id  # Optuna has no public trial id; storage calls need it
        sweep.storage.set_trial_user_attr(trial_id, "fail_reason", f"worker pid {owner['pid']} on {HOST} died")
        try:
            sweep.storage.set_trial_state_values(trial_id, TrialState.FAIL)
        except optuna.exceptions.UpdateFinishedTrialError:
            continue  # another worker got there first
        if not any(trial.number in t.system_attrs.get("retry_history", []) for t in sweep.study.get_trials()):
            retry = optuna.storages.RetryHeartbeatStaleTrialCallback(sweep.spec["max_retry"])
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                retry(sweep.study, sweep.storage.get_trial(trial_id))


def _alive(pid) -> bool:
    if not isinstance(pid, int):
        return True  # unknown owner: never take a trial away from it
    if pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    return True


def objective(sweep: Sweep, trial: optuna.Trial) -> float:
    """One trial: compose its config, train with `trial` (reporting and pruning), return the objective."""
    owner = {"host": HOST, "pid": os.getpid(), "trial": trial.number, "slurm_job": slurm.job_key()}
    trial.set_user_attr("worker", owner)
    try:
        return _train_trial(sweep, trial)
    except (optuna.TrialPruned, slurm.Preempted):  # preempted: the requeued worker resumes the trial
        raise
    except BaseException as error:  # kept on the trial; Optuna marks it FAIL and the study goes on
        trial.set_user_attr("fail_reason", f"{type(error).__name__}: {_one_line(error)}")
        raise


def _train_trial(sweep: Sweep, trial: optuna.Trial) -> float:
    from harness.train import run_job

    values = suggest(sweep.params, trial)
    overrides = [*sweep.base, *trial_overrides(sweep.params, values), f"name={sweep.name}-t{trial.number:04d}"]
    trial_dir = sweep.dir / f"trial-{trial.number:04d}"
    trial.set_user_attr("dir", str(trial_dir))
    trial.set_user_attr("command", reproduce_command(overrides))
    cfg = compose(overrides, sweep.config_name)
    reporter = objective_reporter(trial, cfg.objective.metric, cfg.objective.last_n, sweep.spec["report_every"])
    value = run_job(
        cfg, trial_dir, sweep.name, trial=trial, run_id=f"{sweep.name}-{trial.number}", callbacks=[reporter]
    )
    if reporter.pruned:
        trial.set_user_attr("pruned_at", reporter.pruned_at)
        raise optuna.TrialPruned(f"pruned at step {reporter.pruned_at}")
    if not math.isfinite(value):
        raise ValueError(f"objective {cfg.objective.metric} is {value}: no finite value was logged")
    return value


def objective_reporter(trial: optuna.Trial, metric: str, last_n: int, every: int):
    """A TrainerCallback reporting the objective (mean of `metric` over the last `last_n` logs) to the trial every
    `every` optimizer steps, and stopping training when the pruner says so.

    transformers reports to a trial only inside `hyperparameter_search`, which TRL trainers cannot use; the class is
    built here so that transformers is imported only once a trial runs.
    """
    from transformers import TrainerCallback

    class ObjectiveReporter(TrainerCallback):
        pruned_at: int | None = None

        def __init__(self):
            self.values: list[float] = []
            self.next_report = every

        @property
        def pruned(self) -> bool:
            return self.pruned_at is not None

        def on_log(self, args, state, control, logs=None, **kwargs):
            value = (logs or {}).get(metric)
            if not state.is_world_process_zero or not isinstance(value, (int, float)) or not math.isfinite(value):
                return
            self.values.append(float(value))
            if state.global_step < self.next_report:
                return
            self.next_report = (state.global_step // every + 1) * every
            window = self.values[-last_n:]
            trial.report(sum(window) / len(window), state.global_step)
            if trial.should_prune():
                self.pruned_at = state.global_step
                control.should_training_stop = True  # train() returns normally: the wandb run finishes cleanly

    return ObjectiveReporter()


# --- results --------------------------------------------------------------------------------------------------
def reproduce_command(overrides: list[str]) -> str:
    return " ".join(["python", "-m", "harness.run", *map(shlex.quote, overrides)])


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
    record = best_record(sweep.name, best, sweep.spec["objective"]["metric"])
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


# --- Hydra plumbing -------------------------------------------------------------------------------------------
def _override_key(override: str) -> str:
    return override.lstrip("+~").partition("=")[0]


def _is_sweep_override(override: str) -> bool:
    key = _override_key(override)
    return key in ("sweep", "worker") or key.startswith("sweep.")


def _fan_out(hydra_cfg) -> int:
    """How many workers this launch starts: the number of values of `worker=` in the multirun's overrides."""
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.types import RunMode

    if hydra_cfg.mode != RunMode.MULTIRUN:
        return 1
    multirun = Path(hydra_cfg.sweep.dir) / "multirun.yaml"
    if not multirun.is_file():
        return 1
    task = OmegaConf.load(multirun).hydra.overrides.task
    for override in OverridesParser.create().parse_overrides([o for o in task if _override_key(o) == "worker"]):
        return len(list(override.sweep_string_iterator())) if override.is_sweep_override() else 1
    return 1


def _one_line(error: BaseException) -> str:
    text = str(error).strip() or type(error).__name__
    return text.splitlines()[0]


# --- CLI: python -m harness.study show|best|dashboard STORAGE ------------------------------------------------------
def load_storage(target: str):
    """A sweep directory, a journal file, or an SQLAlchemy URL."""
    if "://" in target:
        _probe(target)
        return optuna.storages.RDBStorage(_with_driver(target), engine_kwargs=_engine_kwargs(target))
    path = Path(target)
    if path.is_dir():
        path = path / JOURNAL_FILE
    if not path.is_file():
        raise ConfigError(f"{target}: no journal file here (expected a sweep dir, a {JOURNAL_FILE} or a URL)")
    from optuna.storages.journal import JournalFileBackend, JournalStorage

    return JournalStorage(JournalFileBackend(str(path)))


def load_study(storage, name: str | None) -> optuna.Study:
    names = [s.study_name for s in storage.get_all_studies()]
    if name is None and len(names) == 1:
        name = names[0]
    if name not in names:
        raise ConfigError(f"--study={name!r}; studies in this storage: {', '.join(names) or 'none'}")
    return optuna.load_study(study_name=name, storage=storage)


def trials_table(study: optuna.Study) -> str:
    rows = [("trial", "state", "value", "last step", "params", "note")]
    for t in study.get_trials(deepcopy=False):
        value = "" if t.value is None else f"{t.value:.4f}"
        step = str(max(t.intermediate_values)) if t.intermediate_values else ""
        params = " ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in t.params.items())
        note = t.user_attrs.get("fail_reason", "")
        if "failed_trial" in t.system_attrs:
            note = f"retry of trial {t.system_attrs['failed_trial']}"
        rows.append((str(t.number), t.state.name, value, step, params, note))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(row, widths)) + "  " + row[-1] for row in rows)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m harness.study", description="Inspect an Optuna study.")
    parser.add_argument("command", choices=("show", "best", "dashboard"))
    parser.add_argument("storage", help="sweep directory, journal file, or SQLAlchemy URL")
    parser.add_argument("--study", default=None, help="study name (needed when the storage holds several)")
    parser.add_argument("--port", type=int, default=8080, help="dashboard port (bound to 127.0.0.1)")
    args = parser.parse_args(argv)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        storage = load_storage(args.storage)
        study = load_study(storage, args.study)
    except ConfigError as error:
        print(f"harness: error: {error}", file=sys.stderr)
        raise SystemExit(2)
    if args.command == "show":
        print(trials_table(study))
    elif args.command == "best":
        complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
        if not complete:
            print(f"harness: study {study.study_name} has no completed trial yet", file=sys.stderr)
            raise SystemExit(1)
        metric = study.user_attrs.get("metric", "objective")
        print(format_best(best_record(study.study_name, study.best_trial, metric)))
    else:
        from optuna_dashboard import run_server

        print(f"harness: optuna-dashboard on http://127.0.0.1:{args.port} (Ctrl-C to stop)", flush=True)
        run_server(storage, host="127.0.0.1", port=args.port)


if __name__ == "__main__":
    main()
