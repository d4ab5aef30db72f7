"""Validate a composed config before anything heavy is imported or built.

Every check raises `ConfigError` with one line naming the offending key or value and the allowed values.
"""

from __future__ import annotations

import difflib
import os
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

CONF_DIR = Path(__file__).resolve().parent.parent / "conf"
LEVELS = ("token", "sequence", "sequence_token")
ESTIMATORS = ("outcome", "process")
# Loss types whose weight reacts to the level. cispo detaches its weight (sequence_token == sequence there) and
# vespo computes its own sequence weight (ignores the level): both are refused with sequence_token.
LOSS_TYPES = ("grpo", "bnpo", "dr_grpo", "dapo", "luspo", "sapo", "cispo", "vespo")
LEVEL_BLIND_LOSSES = ("cispo", "vespo")
MODEL_SOURCES = ("tiny", "local", "hub")
LOGGERS = ("wandb", "none")
WANDB_MODES = ("auto", "online", "offline", "disabled")


class ConfigError(ValueError):
    """A bad config value: the message is one line for the user."""


def group_options(group: str) -> list[str]:
    """The options of a config group; files starting with `_` are shared includes, not options."""
    return sorted(p.stem for p in (CONF_DIR / group).glob("[!_]*.yaml"))


def config_groups() -> list[str]:
    return sorted(p.name for p in CONF_DIR.iterdir() if p.is_dir() and p.name != "hydra")


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise ConfigError(message)


def _positive(cfg: DictConfig, key: str, integer: bool = True) -> None:
    value = OmegaConf.select(cfg, key)
    if value is None:
        return
    kind = "integer" if integer else "number"
    ok = isinstance(value, int) if integer else isinstance(value, (int, float))
    _require(ok and not isinstance(value, bool) and value > 0, f"{key}={value!r} must be a positive {kind}")


def validate(cfg: DictConfig) -> None:
    """Check the composed config; cheap, imports nothing heavy."""
    missing = sorted(OmegaConf.missing_keys(cfg))
    if missing:
        raise ConfigError(f"{missing[0]} is required but not set (e.g. `model=local model.path=/path/to/model`)")

    sampling = cfg.importance_sampling
    _require(sampling.level in LEVELS, f"importance_sampling.level={sampling.level!r}; allowed: {', '.join(LEVELS)}")
    _require(
        sampling.loss_type in LOSS_TYPES,
        f"importance_sampling.loss_type={sampling.loss_type!r}; allowed: {', '.join(LOSS_TYPES)}",
    )
    if sampling.level == "sequence_token":
        allowed = [loss for loss in LOSS_TYPES if loss not in LEVEL_BLIND_LOSSES]
        _require(
            sampling.loss_type not in LEVEL_BLIND_LOSSES,
            f"importance_sampling.loss_type={sampling.loss_type} ignores the importance-sampling level, so "
            f"sequence_token would silently equal sequence; allowed with sequence_token: {', '.join(allowed)}",
        )
        _require(
            cfg.trainer.get("off_policy_mask_threshold") is None,
            "trainer.off_policy_mask_threshold is not supported with importance_sampling=sequence_token; set it to null",
        )
    _positive(cfg, "importance_sampling.epsilon", integer=False)
    _positive(cfg, "importance_sampling.epsilon_high", integer=False)

    advantage = cfg.advantage
    _require(
        advantage.estimator in ESTIMATORS,
        f"advantage.estimator={advantage.estimator!r}; allowed: {', '.join(ESTIMATORS)}",
    )
    if advantage.estimator == "process":
        if cfg.reward.get("token_function") is None:
            with_tokens = [name for name in group_options("reward") if _has_token_function(name)]
            raise ConfigError(
                f"advantage={advantage.name} needs a token-level reward but reward={cfg.reward.name} has none "
                f"(reward.token_function is null); use advantage=outcome or reward={'/'.join(with_tokens)}"
            )
        gamma = advantage.get("gamma", 1.0)
        _require(0 < gamma <= 1, f"advantage.gamma={gamma!r} must be in (0, 1]")

    _require(
        cfg.model.source in MODEL_SOURCES, f"model.source={cfg.model.source!r}; allowed: {', '.join(MODEL_SOURCES)}"
    )
    if cfg.model.source == "local":
        _require(Path(cfg.model.path).is_dir(), f"model.path={cfg.model.path} is not a directory")

    functions = cfg.reward.get("functions") or {}
    _require(len(functions) > 0, f"reward.functions is empty for reward={cfg.reward.name}; give at least one")
    for name, spec in functions.items():
        _require("fn" in spec and "_target_" in spec.fn, f"reward.functions.{name}.fn._target_ is required")
        weight = spec.get("weight", 1.0)
        _require(isinstance(weight, (int, float)), f"reward.functions.{name}.weight={weight!r} must be a number")

    trainer = cfg.trainer
    _positive(cfg, "trainer.learning_rate", integer=False)
    for key in ("per_device_train_batch_size", "gradient_accumulation_steps", "steps_per_generation", "max_steps"):
        _positive(cfg, f"trainer.{key}")
    _positive(cfg, "reward.max_completion_length")
    generations = trainer.get("num_generations", 8)
    _require(isinstance(generations, int) and generations >= 2, f"trainer.num_generations={generations!r} must be >= 2")
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    generation_batch = trainer.get("generation_batch_size") or (
        trainer.per_device_train_batch_size * world_size * trainer.get("steps_per_generation", 1)
    )
    _require(
        generation_batch % generations == 0,
        f"trainer.num_generations={generations} does not divide the generation batch of {generation_batch} "
        f"(per_device_train_batch_size x processes x steps_per_generation); pick a divisor of {generation_batch}",
    )

    _require(cfg.logger.name in LOGGERS, f"logger.name={cfg.logger.name!r}; allowed: {', '.join(LOGGERS)}")
    if cfg.logger.name == "wandb":
        _require(cfg.logger.mode in WANDB_MODES, f"logger.mode={cfg.logger.mode!r}; allowed: {', '.join(WANDB_MODES)}")
    every = cfg.stats.histogram_every
    _require(isinstance(every, int) and every >= 0, f"stats.histogram_every={every!r} must be an integer >= 0")
    _require(cfg.objective.last_n >= 1, f"objective.last_n={cfg.objective.last_n!r} must be >= 1")


def check_grpo_fields(trainer: DictConfig, fields: set[str]) -> None:
    """Refuse trainer keys that GRPOConfig does not have (checked once trl is imported)."""
    for key in trainer:
        if key not in fields:
            close = difflib.get_close_matches(key, fields, n=3)
            hint = f"; did you mean {', '.join(close)}?" if close else ""
            raise ConfigError(f"trainer.{key} is not a GRPOConfig field{hint}")


def _has_token_function(option: str) -> bool:
    return OmegaConf.load(CONF_DIR / "reward" / f"{option}.yaml").get("token_function") is not None
