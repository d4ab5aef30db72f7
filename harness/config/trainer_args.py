"""`trainer`: any field of trl's GRPOConfig, typed from its field table, except those another group sets; the
ranges and choices trl itself checks too late (it accepts the value, then crashes or trains on nothing)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal

from harness.config import trainer_fields
from harness.config.evaluation import TRAINER_EVAL_FIELDS, trainer_eval_refusal
from harness.config.schema import SEED, ConfigError, convert, did_you_mean

TRAINER_OWNERS = {  # GRPOConfig field -> the key that sets it (harness/training/build.py)
    "importance_sampling_level": "importance_sampling.level",
    "epsilon": "importance_sampling.epsilon",
    "epsilon_high": "importance_sampling.epsilon_high",
    "loss_type": "importance_sampling.loss_type",
    "max_completion_length": "reward.max_completion_length",
    "reward_weights": "reward.functions.NAME.weight",
    "seed": "seed",
    "report_to": "logger.name",
    "output_dir": "hydra.run.dir",
}
POSITIVE = {"gt": 0}
TRAINER_RANGES = {  # trl accepts these values and then crashes or trains on nothing
    "learning_rate": POSITIVE,
    "temperature": POSITIVE,
    "beta": {"ge": 0},
    "per_device_train_batch_size": POSITIVE,
    "gradient_accumulation_steps": POSITIVE,
    "steps_per_generation": POSITIVE,
    "generation_batch_size": POSITIVE,
    "max_steps": POSITIVE,
    "num_generations": {"ge": 2},
    "num_iterations": POSITIVE,
    "logging_steps": POSITIVE,
    "save_steps": POSITIVE,
    "top_p": {"gt": 0, "le": 1},
    "top_k": {"ge": 0},
    "min_p": {"ge": 0, "le": 1},
    "repetition_penalty": POSITIVE,
    "weight_decay": {"ge": 0},
    "max_grad_norm": {"ge": 0},
    "warmup_steps": {"ge": 0},
    "data_seed": SEED,
    "vllm_gpu_memory_utilization": {"gt": 0, "le": 1},
    "vllm_tensor_parallel_size": POSITIVE,
    "top_entropy_quantile": {"ge": 0, "le": 1},  # the kept share of tokens (trl: "Range: [0.0-1.0]")
    "entropy_coef": {"ge": 0},
    "dataloader_num_workers": {"ge": 0},
    "num_completions_to_print": {"ge": 0},
}


# String fields trl checks only once training runs (scale_rewards: in the first generation). `fsdp` is typed `str`
# for transformers' command line but means on/off: its strings (`full_shard`, ...) are deprecated.
TRAINER_CHOICES = {
    "scale_rewards": ("group", "batch", "none", True, False),
    "multi_objective_aggregation": ("sum_then_normalize", "normalize_then_sum"),
    "vllm_mode": ("server", "colocate"),
    "vllm_importance_sampling_mode": ("token_truncate", "token_mask", "sequence_truncate", "sequence_mask"),
    "fsdp": (True, False, None),
}


def parse_trainer(node, path: str) -> dict:
    if not isinstance(node, Mapping):
        raise ConfigError(f"{path} must be a mapping of GRPOConfig fields")
    for key, value in node.items():
        convert(trainer_type(key), value, f"trainer.{key}", TRAINER_RANGES.get(key))
    return dict(node)


def trainer_type(key: str):
    """The type `trainer.KEY` is checked against: its choices, else the GRPOConfig field's type."""
    field = trainer_field(key)
    return Literal[TRAINER_CHOICES[key]] if key in TRAINER_CHOICES else field.type()


def trainer_field(key: str) -> trainer_fields.TrainerField:
    """The GRPOConfig field `trainer.KEY`, refused when another group sets it or trl has no such field."""
    fields = trainer_fields.load()
    if key in TRAINER_OWNERS:
        owner = TRAINER_OWNERS[key]
        raise ConfigError(f"trainer.{key} is set by {owner.split('.')[0]} ({owner}=...); set it there")
    if key in TRAINER_EVAL_FIELDS:
        raise trainer_eval_refusal(key)
    if key not in fields:
        allowed = set(fields) - set(TRAINER_OWNERS) - set(TRAINER_EVAL_FIELDS)
        raise ConfigError(f"trainer.{key} is not a GRPOConfig field{did_you_mean(key, allowed)}")
    return fields[key]
