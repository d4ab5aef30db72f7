"""The rules between keys: combinations that trl would accept and then crash on, ignore, or train on nothing with."""

from __future__ import annotations

import importlib
import importlib.util
import os
import typing
from pathlib import Path

from omegaconf import OmegaConf

from harness.config.estimators import ESTIMATORS
from harness.config.evaluation import check_eval
from harness.config.gpu import check_gpu_presets
from harness.config.groups import LEVEL_BLIND_LOSSES, Logger, LossType, Model, Run
from harness.config.metrics import check_metric
from harness.config.options import CONF_DIR, group_options
from harness.config.registry import GENERATIONS, TOKEN_REWARDS
from harness.config.schema import ConfigError, imported, require


def check_rules(run: Run) -> None:
    check_level(run)
    check_needs(run)
    check_logger(run.logger)
    require(len(run.reward.functions) > 0, f"reward.functions is empty for reward={run.reward.name}; give at least one")
    check_model(run.model)
    check_generation_batch(run)
    check_logging(run)
    check_gpu_presets(run)  # before the generic dead-settings table: the presets' own messages are more specific
    check_eval(run)
    check_upstream_rules(run)
    require("/" not in run.name and run.name.strip(), f"name={run.name!r} must be non-empty and without '/'")
    check_metric(run, run.objective.metric, "objective.metric")


def check_level(run: Run) -> None:
    sampling = run.importance_sampling
    level = sampling.entry
    if level.level_blind_refused:
        allowed = [loss for loss in typing.get_args(LossType) if loss not in LEVEL_BLIND_LOSSES]
        require(
            sampling.loss_type not in LEVEL_BLIND_LOSSES,
            f"importance_sampling.loss_type={sampling.loss_type} ignores the importance-sampling level, so "
            f"{sampling.level} would silently equal another level; allowed with {sampling.level}: {', '.join(allowed)}",
        )
    if level.rebase_old_logps is not None:
        require(
            run.trainer.get("off_policy_mask_threshold") is None,
            f"trainer.off_policy_mask_threshold is not supported with importance_sampling={sampling.level}; "
            "set it to null",
        )


def check_needs(run: Run) -> None:
    """What the estimator needs from the run, the run provides; and a reward model is not loaded for nothing."""
    advantage, reward = run.advantage, run.reward
    needs = advantage.configured.needs
    if TOKEN_REWARDS in needs and reward.token_function is None:
        with_tokens = [name for name in group_options("reward") if _has_token_function(name)]
        without = [name for name in group_options("advantage") if TOKEN_REWARDS not in _option_needs(name)]
        raise ConfigError(
            f"advantage={advantage.name} needs a token-level reward but reward={reward.name} has none "
            f"(reward.token_function is null); use advantage={'/'.join(without)} or reward={'/'.join(with_tokens)}"
        )
    require(
        GENERATIONS not in needs or not run.trainer_value("use_vllm"),
        f"advantage={advantage.name} samples its Monte-Carlo continuations with transformers' generate; "
        "trainer.use_vllm=true (generation=vllm_*) is not supported with it: drop the generation option",
    )
    if TOKEN_REWARDS not in needs and reward.token_function is not None:
        token_target = reward.token_function["_target_"]
        require(
            not getattr(imported(token_target), "is_reward_model", False),
            f"reward.token_function is a reward model ({token_target.rsplit('.', 1)[-1]}) but advantage="
            f"{advantage.name} does not use token rewards: it would be loaded and ignored; use advantage="
            f"{'/'.join(name for name in group_options('advantage') if TOKEN_REWARDS in _option_needs(name))}",
        )


def check_logger(logger: Logger) -> None:
    for key in ("mode", "project"):
        if logger.name == "wandb":
            require(getattr(logger, key) is not None, f"logger.{key} is required with logger=wandb")
        else:
            require(getattr(logger, key) is None, f"logger.{key} only applies to logger=wandb; remove it")


TINY_ONLY = (
    "characters", "hidden_size", "intermediate_size", "num_layers", "num_heads", "max_position_embeddings", "init_seed"
)  # fmt: skip


def check_model(model: Model) -> None:
    if model.source == "tiny":
        for key in TINY_ONLY:
            require(getattr(model, key) is not None, f"model.{key} is required with model.source=tiny")
        require(
            model.dtype is None, "model.dtype only applies to model.source=local or hub (tiny is float32); remove it"
        )
        require(
            model.hidden_size % model.num_heads == 0,
            f"model.num_heads={model.num_heads} must divide model.hidden_size={model.hidden_size}",
        )
        require(len(set(model.characters)) == len(model.characters), "model.characters has repeated characters")
        return
    for key in TINY_ONLY:
        require(getattr(model, key) is None, f"model.{key} only applies to model.source=tiny; remove it")
    for key in ("path", "dtype"):
        require(bool(getattr(model, key)), f"model.{key} is required with model.source={model.source}")
    if model.source == "local":
        path = Path(model.path)
        require(path.is_dir(), f"model.path={model.path} is not a directory")
        require(
            (path / "config.json").is_file(),
            f"model.path={model.path} has no config.json: not a model saved with save_pretrained",
        )


def check_generation_batch(run: Run) -> None:
    generations = run.trainer_value("num_generations")
    require(generations is not None, "trainer.num_generations=None; give the group size (an integer >= 2)")
    batch = run.trainer_value("per_device_train_batch_size") * int(os.environ.get("WORLD_SIZE", "1"))
    steps = run.trainer_value("steps_per_generation") or run.trainer_value("gradient_accumulation_steps")
    generation_batch = run.trainer_value("generation_batch_size") or batch * steps
    require(
        generation_batch % generations == 0,
        f"trainer.num_generations={generations} does not divide the generation batch of {generation_batch} "
        f"(per_device_train_batch_size x processes x steps_per_generation); pick a divisor of {generation_batch}",
    )


def check_logging(run: Run) -> None:
    """A run that never logs has no objective (NaN) and nothing to compare."""
    every, steps = run.trainer_value("logging_steps"), run.trainer_value("max_steps")
    require(run.trainer_value("logging_strategy") != "no", "trainer.logging_strategy=no: the run would log nothing")
    require(
        run.trainer_value("logging_strategy") != "steps" or not every > steps >= 1,
        f"trainer.logging_steps={every} with trainer.max_steps={steps}: the run would log nothing; "
        "make logging_steps <= max_steps",
    )


# Optional packages a trainer switch needs (trl raises only once training starts, after the model is built).
OPTIONAL_PACKAGES = {"use_liger_kernel": ("liger_kernel", "liger-kernel")}


def check_upstream_rules(run: Run) -> None:
    """trl's and transformers' own cross-field rules, refused here before anything is built (they would raise while
    the job is built, one job of a sweep at a time), and dead settings (harness/config/dependent_fields.py)."""
    from harness.config import dependent_fields

    value = run.trainer_value
    require(
        not (value("bf16") and value("fp16")),
        "trainer.bf16=true and trainer.fp16=true: at most one of them can be true (transformers); set one to false",
    )
    both = [key for key in ("steps_per_generation", "generation_batch_size") if run.trainer.get(key) is not None]
    require(
        len(both) < 2,
        "trainer.steps_per_generation and trainer.generation_batch_size cannot both be set (trl: one defines the "
        "other); set one of them to null",
    )
    for switch, (module, package) in OPTIONAL_PACKAGES.items():
        if value(switch) and importlib.util.find_spec(module) is None:
            raise ConfigError(f"trainer.{switch}=true needs {package}, which is not installed (pip install {package})")
    dependent_fields.check(run)


def _option_needs(option: str) -> frozenset[str]:
    """The needs of an advantage option's estimator (empty if it is an own module's, not imported yet)."""
    estimator = OmegaConf.load(CONF_DIR / "advantage" / f"{option}.yaml").get("estimator", "")
    entry = ESTIMATORS.find(str(estimator))
    return entry.needs if entry is not None else frozenset()


def _has_token_function(option: str) -> bool:
    return OmegaConf.load(CONF_DIR / "reward" / f"{option}.yaml").get("token_function") is not None
