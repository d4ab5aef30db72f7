"""The config groups as frozen dataclasses: what each group's keys may hold, with one-line descriptions (the generated
config reference reads them). `harness.config.validate.parse` builds a `Run` from a composed config; the build
(harness/training/build.py) reads only the `Run`.
"""

from __future__ import annotations

import inspect
import typing
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from omegaconf import OmegaConf

from harness.config import trainer_fields
from harness.config.estimators import ESTIMATORS
from harness.config.levels import LEVELS
from harness.config.options import CONF_DIR
from harness.config.registry import Configured
from harness.config.schema import SEED, ConfigError, convert, did_you_mean, doc, field_names, imported, ranged
from harness.config.trainer_args import parse_trainer

# cispo detaches its weight (sequence_token == sequence there) and vespo computes its own sequence weight (ignores
# the level): both are refused with the levels that declare `level_blind_refused`, so a sweep cannot produce a
# mislabelled arm.
LossType = Literal["grpo", "bnpo", "dr_grpo", "dapo", "luspo", "sapo", "cispo", "vespo"]
LEVEL_BLIND_LOSSES = ("cispo", "vespo")

# `${harness.conf:parallelism/zero3.json}`: a file shipped under conf/ as an absolute path, so that a preset naming it
# works from any working directory (and config.yaml records which file ran).
if not OmegaConf.has_resolver("harness.conf"):
    OmegaConf.register_new_resolver("harness.conf", lambda path: str(CONF_DIR / path))


@dataclass(frozen=True, kw_only=True)
class Model:
    """The policy and its tokenizer."""

    source: Literal["tiny", "local", "hub"] = doc(text="`tiny`: built in code; `local`: a saved directory; `hub`")
    path: str | None = doc(None, "local: a directory saved with `save_pretrained`; hub: a model id")
    dtype: Literal["auto", "bfloat16", "float16", "float32"] | None = doc(None, "local, hub: the weights' dtype")
    characters: str | None = doc(None, "tiny: the tokenizer's characters, one token each")
    hidden_size: int | None = ranged(None, gt=0, doc="tiny")
    intermediate_size: int | None = ranged(None, gt=0, doc="tiny")
    num_layers: int | None = ranged(None, gt=0, doc="tiny")
    num_heads: int | None = ranged(None, gt=0, doc="tiny; divides hidden_size")
    max_position_embeddings: int | None = ranged(None, gt=0, doc="tiny")
    init_seed: int | None = ranged(None, **SEED, doc="tiny: seed of the random init")


# Modules that held `_target_`s before the code was split into layer packages: a config naming the old path is told
# the new one.
MOVED_MODULES = {"harness.reward_models": "harness.tasks.reward_models", "harness.rewards": "harness.tasks.loading"}


def target(value, path: str) -> dict:
    """A Hydra `_target_` node: the callable must import and take every other key as an argument of its type."""
    if not isinstance(value, Mapping) or not isinstance(value.get("_target_"), str):
        raise ConfigError(f"{path}._target_ is required (a dotted path to a function)")
    module, _, name = value["_target_"].rpartition(".")
    try:
        function = imported(value["_target_"])
    except (ImportError, AttributeError, ValueError):
        moved = MOVED_MODULES.get(module)
        hint = f" (the module moved: use {moved}.{name})" if moved else ""
        raise ConfigError(f"{path}._target_={value['_target_']} cannot be imported{hint}") from None
    try:
        parameters = inspect.signature(function).parameters
        hints = typing.get_type_hints(function.__init__ if isinstance(function, type) else function)
    except (TypeError, ValueError, NameError):  # a builtin or unresolvable annotations: instantiation will tell
        return dict(value)
    takes_any = any(p.kind == p.VAR_KEYWORD for p in parameters.values())
    for key, arg in value.items():
        if key.startswith("_") and key.endswith("_"):
            continue  # Hydra's own keys (_partial_, _args_, ...)
        if key not in parameters and not takes_any:
            raise ConfigError(f"{path}.{key} is not an argument of {value['_target_']}{did_you_mean(key, parameters)}")
        if key in hints:
            convert(hints[key], arg, f"{path}.{key}")
    return dict(value)


def optional_target(value, path: str) -> dict | None:
    return None if value is None else target(value, path)


@dataclass(frozen=True, kw_only=True)
class RewardFunction:
    fn: dict = doc(parser=target, text="the function (`_target_`, `_partial_: true`)")
    weight: float = doc(1.0, "its weight in the sequence reward (GRPOConfig.reward_weights)")


@dataclass(frozen=True, kw_only=True)
class Reward:
    """A task: dataset + named reward functions + an optional token-level reward."""

    name: str = doc(text="the task's name (run names, the report)")
    max_completion_length: int = ranged(gt=0, doc="tokens generated per completion")
    dataset: dict = doc(parser=target, text="`_target_` returning rows with a `prompt`")
    functions: dict[str, RewardFunction] = doc(text="NAME: {fn, weight}; at least one")
    token_function: dict | None = doc(None, parser=optional_target, text="per-token rewards (process advantages)")
    eval_dataset: dict | None = doc(
        None, parser=optional_target, text="held-out rows with a `prompt` (`_target_`); null: no evaluation"
    )
    accuracy: dict | None = doc(
        None, parser=optional_target, text="exact-match accuracy of a completion, 0 or 1 (`_target_`, `_partial_`)"
    )
    credit_reference: dict | None = doc(
        None,
        parser=optional_target,
        text="token rewards whose process advantages are the true credit: `adv/credit_corr` (never trained on)",
    )


def level_name(value, path: str) -> str:
    """A registered level's name (LEVELS.get refuses an unknown one in one line listing them)."""
    LEVELS.get(value)
    return value


@dataclass(frozen=True, kw_only=True)
class ImportanceSampling:
    level: str = doc(parser=level_name, registry=LEVELS, text="the importance ratio's level")
    epsilon: float = ranged(gt=0, doc="lower clip range")
    epsilon_high: float = ranged(gt=0, doc="upper clip range")
    loss_type: LossType = doc(text="trl's loss aggregation; cispo and vespo are refused with sequence_token")

    @property
    def entry(self):
        return LEVELS.get(self.level)


@dataclass(frozen=True, kw_only=True)
class Advantage:
    """The `advantage` group: its name, the estimator, and the estimator's own parameters as flat keys
    (`advantage.gamma`), parsed into the registered entry's params dataclass."""

    name: str = doc(text="the option's name (run names)")
    estimator: str = doc(registry=ESTIMATORS, text="the advantage estimator")
    params: Any = doc(None, params_of=ESTIMATORS, text="the estimator's parameters, as flat keys")

    FIXED = ("name", "estimator")

    @property
    def configured(self) -> Configured:
        return Configured(ESTIMATORS.get(self.estimator), self.params)

    @classmethod
    def key_field(cls, key: str):
        """(type, field) of `advantage.KEY` for a study's search space: a fixed key, or any estimator's parameter."""
        if key in cls.FIXED:
            return typing.get_type_hints(cls)[key], cls.__dataclass_fields__[key]
        owners, field = ESTIMATORS.param_field(key)
        if not owners:
            allowed = [*cls.FIXED, *(f for e in ESTIMATORS for f in field_names(e.params))]
            raise ConfigError(f"advantage.{key} is not a config key{did_you_mean(key, allowed)}")
        return typing.get_type_hints(owners[0].params)[key], field


def parse_advantage(node, path: str) -> Advantage:
    """`advantage`: `estimator` looked up in the registry, the other keys parsed into its params dataclass."""
    if not isinstance(node, Mapping):
        raise ConfigError(f"{path} must be a mapping with keys {', '.join(Advantage.FIXED)} and the estimator's")
    for key in Advantage.FIXED:
        if key not in node:
            raise ConfigError(f"{path}.{key} is required but not set")
    name = convert(str, node["name"], f"{path}.name")
    entry = ESTIMATORS.get(node["estimator"])
    rest = {k: v for k, v in node.items() if k not in Advantage.FIXED}
    allowed = [*Advantage.FIXED, *field_names(entry.params)]
    for key in rest:
        if key in allowed:
            continue
        owners, _ = ESTIMATORS.param_field(key)
        where = f"{path}.{key}"
        if owners:
            raise ConfigError(
                f"{where} only applies to {path}.estimator={'/'.join(e.name for e in owners)}; remove it "
                f"({path}.estimator={node['estimator']} takes {', '.join(allowed)})"
            )
        raise ConfigError(f"{where} is not a key of {path}.estimator={node['estimator']}{did_you_mean(key, allowed)}")
    return Advantage(name=name, estimator=node["estimator"], params=entry.parse(rest, path))


@dataclass(frozen=True, kw_only=True)
class Logger:
    name: Literal["wandb", "none"] = doc(text="metrics.jsonl is always written; wandb on top")
    mode: Literal["auto", "online", "offline", "disabled"] | None = doc(None, "wandb: auto = online with credentials")
    project: str | None = doc(None, "wandb project")
    entity: str | None = doc(None, "wandb entity")
    tags: list[str] | None = doc(None, "wandb tags")


@dataclass(frozen=True, kw_only=True)
class Objective:
    metric: str = doc(text="a metric the run logs (checked)")
    last_n: int = ranged(ge=1, doc="mean over the last N logged values")


@dataclass(frozen=True, kw_only=True)
class Eval:
    """Held-out evaluation during training (harness/training/evaluation.py; rules in harness/config/evaluation.py)."""

    enabled: bool = doc(text="evaluate on reward.eval_dataset (off without one)")
    every: int = ranged(gt=0, doc="every N optimizer steps, and at the end of training")
    size: int = ranged(gt=0, doc="held-out prompts (at most the split's size)")
    samples: int = ranged(gt=0, doc="completions per prompt at the training temperature (mean@k, pass@k)")
    k: list[int] = doc(text="the k of pass@k and best_reward@k, each in [1, samples]")
    batch_size: int = ranged(gt=0, doc="prompts per generation call (each with `samples` completions)")


@dataclass(frozen=True, kw_only=True)
class Stats:
    histogram_every: int = ranged(ge=0, doc="advantage histogram every N steps (0: never)")
    credit_mc_every: int = ranged(
        0,
        ge=0,
        doc="every N-th generation, Monte-Carlo step advantages as a reference credit: adv/credit_corr_mc (0: never)",
    )
    credit_mc_rollouts: int = ranged(4, ge=1, doc="continuations per step prefix of that reference")
    credit_mc_tokens: int = ranged(1, ge=1, doc="that reference's steps: every N tokens")


@dataclass(frozen=True, kw_only=True)
class Run:
    """One job: every group, parsed."""

    seed: int = ranged(**SEED, doc="seeds trl, the dataset and sampling")
    name: str = doc(text="run name: directory, wandb run")
    group: str | None = doc(text="wandb group (null: the multirun directory, or single)")
    model: Model
    reward: Reward
    importance_sampling: ImportanceSampling
    advantage: Advantage = doc(parser=parse_advantage, text="the advantage estimator and its parameters")
    trainer: dict[str, Any] = doc(parser=parse_trainer, text="any GRPOConfig field")
    logger: Logger
    objective: Objective
    stats: Stats
    eval: Eval
    sweep: dict | None = doc(None, "a study (sweeps/NAME.yaml), checked by harness/study/plan.py")
    worker: int | None = ranged(None, ge=0, doc="a study worker's index")

    def trainer_value(self, key: str):
        """A GRPOConfig field as trl will see it: set here, or trl's default."""
        return self.trainer.get(key, trainer_fields.load()[key].default)
