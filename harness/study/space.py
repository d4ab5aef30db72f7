"""The search space of a study file: parameters, their checks, suggestion and the trial's config."""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass, field

import optuna
from omegaconf import DictConfig, ListConfig, OmegaConf

from harness.config.compose import compose
from harness.config.groups import Run
from harness.config.options import app_group_options, config_groups
from harness.config.schema import ConfigError
from harness.config.validate import check_value, key_type, parse

PARAM_FIELDS = ("key", "type", "low", "high", "log", "step", "choices", "when")
_ABSENT = object()


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
        allowed = app_group_options(key)
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
def check_keys(params: list[Param], base: list[str], config_name: str) -> list[Run]:
    """Compose every combination of group choices; check each active parameter's key, bounds and choices against
    the schema of that config. Returns the parsed configs."""
    groups = [p for p in params if p.kind == "group"]
    runs = []
    for combination in itertools.product(*(p.choices for p in groups)):
        choices = {p.label: choice for p, choice in zip(groups, combination)}
        overrides = [p.override(choice) for p, choice in zip(groups, combination)]
        try:
            cfg = compose(base + overrides, config_name)
        except ConfigError as error:
            raise ConfigError(f"sweep.base or command-line overrides do not compose: {error}") from None
        runs.append(parse(cfg))
        context = f" (with {' '.join(overrides)})" if overrides else ""
        for param in params:
            if param.kind != "group" and all(choices.get(k, v[0]) in v for k, v in param.when.items()):
                _check_param(param, cfg, context)
    return runs


def _check_param(param: Param, cfg: DictConfig, context: str) -> None:
    where = f"sweep.space.{param.label}"
    try:
        key_type(param.key)
    except ConfigError as error:
        raise ConfigError(f"{where}.key={param.key}: {error}{context}") from None
    value = OmegaConf.select(cfg, param.key, default=_ABSENT)
    if value is _ABSENT and not param.key.startswith("trainer."):  # any GRPOConfig field may be added
        raise ConfigError(f"{where}.key={param.key} is not a key of this config{context}")
    if isinstance(value, (DictConfig, ListConfig)):
        raise ConfigError(f"{where}.key={param.key} is a config section, not a value{context}")
    checked = [("choices", choice) for choice in param.choices] or [("low", param.low), ("high", param.high)]
    for bound, item in checked:
        check_value(param.key, item, f"{where}.{bound}={item!r}")
