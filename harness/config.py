"""The typed config: what each group's keys may hold, the rules between groups, and the metrics a run logs.

`parse(cfg)` turns a composed Hydra config into a `Run` of frozen dataclasses, or raises `ConfigError` with one line
naming the key and the allowed values. The build (harness/build.py) reads only the `Run`. Nothing heavy is imported:
`trainer` is checked against a table of trl's GRPOConfig fields (harness/trainer_fields.py).
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import json
import os
import tempfile
import typing
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from harness import trainer_fields
from harness.schema import ConfigError, convert, did_you_mean, doc, lookup, one_line, ranged
from harness.schema import parse as parse_section

CONF_DIR = Path(__file__).resolve().parent.parent / "conf"
SEED = {"ge": 0, "le": 2**32 - 1}  # numpy's seed range
Level = Literal["token", "sequence", "sequence_token"]
Estimator = Literal["outcome", "process"]
# cispo detaches its weight (sequence_token == sequence there) and vespo computes its own sequence weight (ignores
# the level): both are refused with sequence_token, so a sweep cannot produce a mislabelled arm.
LossType = Literal["grpo", "bnpo", "dr_grpo", "dapo", "luspo", "sapo", "cispo", "vespo"]
LEVEL_BLIND_LOSSES = ("cispo", "vespo")
LEVELS = typing.get_args(Level)  # in this order in the report: the baselines, then GSPO-token

# `${harness.conf:parallelism/zero3.json}`: a file shipped under conf/ as an absolute path, so that a preset naming it
# works from any working directory (and config.yaml records which file ran).
if not OmegaConf.has_resolver("harness.conf"):
    OmegaConf.register_new_resolver("harness.conf", lambda path: str(CONF_DIR / path))


# --- the groups --------------------------------------------------------------------------------------------------
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


def target(value, path: str) -> dict:
    """A Hydra `_target_` node: the callable must import and take every other key as an argument of its type."""
    if not isinstance(value, Mapping) or not isinstance(value.get("_target_"), str):
        raise ConfigError(f"{path}._target_ is required (a dotted path to a function)")
    module, _, name = value["_target_"].rpartition(".")
    try:
        function = getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError, ValueError):
        raise ConfigError(f"{path}._target_={value['_target_']} cannot be imported") from None
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


@dataclass(frozen=True, kw_only=True)
class ImportanceSampling:
    level: Level = doc(text="GRPO (token), GSPO (sequence) or GSPO-token (sequence_token)")
    epsilon: float = ranged(gt=0, doc="lower clip range")
    epsilon_high: float = ranged(gt=0, doc="upper clip range")
    loss_type: LossType = doc(text="trl's loss aggregation; cispo and vespo are refused with sequence_token")


@dataclass(frozen=True, kw_only=True)
class Advantage:
    name: str = doc(text="the option's name (run names)")
    estimator: Estimator = doc(text="one advantage per sequence (outcome) or per token (process)")
    gamma: float | None = ranged(None, gt=0, le=1, doc="process: discount along the sequence (required)")


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
class Stats:
    histogram_every: int = ranged(ge=0, doc="advantage histogram every N steps (0: never)")


# --- trainer: any GRPOConfig field, except those another group sets ----------------------------------------------
TRAINER_OWNERS = {  # GRPOConfig field -> the key that sets it (harness/build.py)
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
    if key not in fields:
        raise ConfigError(
            f"trainer.{key} is not a GRPOConfig field{did_you_mean(key, set(fields) - set(TRAINER_OWNERS))}"
        )
    return fields[key]


@dataclass(frozen=True, kw_only=True)
class Run:
    """One job: every group, parsed."""

    seed: int = ranged(**SEED, doc="seeds trl, the dataset and sampling")
    name: str = doc(text="run name: directory, wandb run")
    group: str | None = doc(text="wandb group (null: the multirun directory, or single)")
    model: Model
    reward: Reward
    importance_sampling: ImportanceSampling
    advantage: Advantage
    trainer: dict[str, Any] = doc(parser=parse_trainer, text="any GRPOConfig field")
    logger: Logger
    objective: Objective
    stats: Stats
    sweep: dict | None = doc(None, "a study (sweeps/NAME.yaml), checked by harness/study/plan.py")
    worker: int | None = ranged(None, ge=0, doc="a study worker's index")

    def trainer_value(self, key: str):
        """A GRPOConfig field as trl will see it: set here, or trl's default."""
        return self.trainer.get(key, trainer_fields.load()[key].default)


def parse(cfg: DictConfig) -> Run:
    """The composed config as a `Run`, every key and value checked; cheap, imports nothing heavy."""
    if "hydra" in cfg:  # composed with Hydra's own node (harness/compose.py): not ours to check
        cfg = OmegaConf.masked_copy(cfg, [key for key in cfg if key != "hydra"])
    try:  # a missing value or a broken interpolation (`${oc.env:UNSET}`) names its key
        missing = sorted(OmegaConf.missing_keys(cfg))
        if missing:
            raise ConfigError(f"{missing[0]} is required but not set; give it on the command line ({missing[0]}=...)")
        container = OmegaConf.to_container(cfg, resolve=True)
    except OmegaConfBaseException as error:
        raise ConfigError(one_line(error)) from None
    for key in container:
        if key not in Run.__dataclass_fields__ and key in trainer_fields.load():
            raise ConfigError(f"{key} is not a config key; did you mean trainer.{key}?")
    run = parse_section(Run, container)
    check_rules(run)
    return run


# --- rules between keys --------------------------------------------------------------------------------------------
def check_rules(run: Run) -> None:
    sampling, reward = run.importance_sampling, run.reward
    if sampling.level == "sequence_token":
        allowed = [loss for loss in typing.get_args(LossType) if loss not in LEVEL_BLIND_LOSSES]
        require(
            sampling.loss_type not in LEVEL_BLIND_LOSSES,
            f"importance_sampling.loss_type={sampling.loss_type} ignores the importance-sampling level, so "
            f"sequence_token would silently equal sequence; allowed with sequence_token: {', '.join(allowed)}",
        )
        require(
            run.trainer.get("off_policy_mask_threshold") is None,
            "trainer.off_policy_mask_threshold is not supported with importance_sampling=sequence_token; set it to null",
        )
    if run.advantage.estimator == "process" and reward.token_function is None:
        with_tokens = [name for name in group_options("reward") if _has_token_function(name)]
        raise ConfigError(
            f"advantage={run.advantage.name} needs a token-level reward but reward={reward.name} has none "
            f"(reward.token_function is null); use advantage=outcome or reward={'/'.join(with_tokens)}"
        )
    token_target = (reward.token_function or {}).get("_target_", "")
    require(
        run.advantage.estimator == "process" or not token_target.startswith("harness.reward_models."),
        f"reward.token_function is a reward model ({token_target.rsplit('.', 1)[-1]}) but advantage="
        f"{run.advantage.name} does not use token rewards: it would be loaded and ignored; use advantage=process",
    )
    check_advantage(run.advantage)
    check_logger(run.logger)
    require(len(reward.functions) > 0, f"reward.functions is empty for reward={reward.name}; give at least one")
    check_model(run.model)
    check_generation_batch(run)
    check_logging(run)
    check_gpu_presets(run)
    require("/" not in run.name and run.name.strip(), f"name={run.name!r} must be non-empty and without '/'")
    check_metric(run, run.objective.metric, "objective.metric")


def require(condition: bool, message: str) -> None:
    if not condition:
        raise ConfigError(message)


def check_advantage(advantage: Advantage) -> None:
    if advantage.estimator == "process":
        require(advantage.gamma is not None, "advantage.gamma is required with advantage.estimator=process")
    else:
        require(advantage.gamma is None, "advantage.gamma only applies to advantage.estimator=process; remove it")


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
        not every > steps >= 1,
        f"trainer.logging_steps={every} with trainer.max_steps={steps}: the run would log nothing; "
        "make logging_steps <= max_steps",
    )


# --- GPU presets: DeepSpeed and FSDP (parallelism=...), trl's vLLM generation (generation=...) ---------------------
GPU_FIELDS = {  # trainer field -> the presets that set it
    "deepspeed": "parallelism=zero2 or zero3",
    "fsdp": "parallelism=fsdp",
    "use_vllm": "generation=vllm_colocate or vllm_server",
}
PACKAGES = {"deepspeed": ("deepspeed", "pip install deepspeed"), "use_vllm": ("vllm", "pip install 'trl[vllm]'")}
LAUNCHED = {"deepspeed": "a DeepSpeed", "fsdp": "an FSDP"}  # `accelerate launch --config_file` of either kind
# The fsdp_config keys transformers 5.23 reads (TrainingArguments._process_fsdp_args; `fsdp_` prefixes dropped):
# any other key is silently ignored there.
FSDP_CONFIG_KEYS = (
    "version", "reshard_after_forward", "cpu_offload", "activation_checkpointing", "cpu_ram_efficient_loading",
    "state_dict_type", "auto_wrap_policy", "transformer_layer_cls_to_wrap", "min_num_params", "xla", "xla_fsdp_v2",
    "xla_fsdp_settings", "xla_fsdp_grad_ckpt", "forward_prefetch", "backward_prefetch", "use_orig_params",
    "sync_module_states", "limit_all_gathers",
)  # fmt: skip
# vLLM fields trl 1.16 reads in one mode only (trl/generation/vllm_generation.py): in the other they do nothing.
VLLM_MODE_FIELDS = {
    "colocate": (
        "vllm_gpu_memory_utilization", "vllm_tensor_parallel_size", "vllm_max_model_length", "vllm_enable_sleep_mode",
        "vllm_model_impl",
    ),
    "server": (
        "vllm_server_base_url", "vllm_server_host", "vllm_server_port", "vllm_server_timeout", "vllm_group_port",
    ),
}  # fmt: skip
TRUE = ("true", "1", "yes", "y", "t", "on")  # what transformers' and accelerate's str_to_bool take as true


def check_gpu_presets(run: Run) -> None:
    """DeepSpeed, FSDP and vLLM (from the presets, trainer fields, or `accelerate launch --config_file`): refused where
    transformers or trl would crash on them once the model is built, or silently ignore them."""
    value = run.trainer_value
    used = [key for key in GPU_FIELDS if value(key)]
    sharding = [key for key in used if key != "use_vllm"]
    launched = [name for name in LAUNCHED if _env_true(f"ACCELERATE_USE_{name.upper()}")]
    require(
        len(sharding) < 2,
        "trainer.deepspeed and trainer.fsdp are both set, and each shards the model its own way; "
        "pick one of parallelism=zero2, zero3, fsdp",
    )
    if sharding and launched:
        raise ConfigError(
            f"trainer.{sharding[0]} ({GPU_FIELDS[sharding[0]]}) under `accelerate launch` with {LAUNCHED[launched[0]]} "
            "config file: give one of the two, not both"
        )
    gpu_only = [f"trainer.{key} ({GPU_FIELDS[key]})" for key in used]
    gpu_only += [f"`accelerate launch` with {LAUNCHED[name]} config file" for name in launched]
    if value("use_cpu") and gpu_only:
        raise ConfigError(f"{gpu_only[0]} runs on GPUs only, and trainer.use_cpu=true; add trainer=gpu")
    if "deepspeed" in used:
        deepspeed = value("deepspeed")
        config = json_file(deepspeed, "trainer.deepspeed") if isinstance(deepspeed, str) else deepspeed
        require("zero_optimization" in config, "trainer.deepspeed: the DeepSpeed config has no zero_optimization")
    fsdp_config = check_fsdp_config(run)
    fsdp_checkpoints = str(fsdp_config.get("activation_checkpointing")).lower() in TRUE or (
        "fsdp" in launched and _env_true("FSDP_ACTIVATION_CHECKPOINTING")  # set by accelerate launch
    )
    flag = "activation_checkpointing" if value("activation_checkpointing") is not None else "gradient_checkpointing"
    require(
        not (fsdp_checkpoints and value(flag)),
        f"FSDP's activation_checkpointing and trainer.{flag}=true both checkpoint activations (transformers refuses "
        f"the pair once the model is built); set trainer.{flag}=false",
    )
    check_vllm(run)
    for key in used:
        if key in PACKAGES:
            module, command = PACKAGES[key]
            require(
                installed(module),
                f"trainer.{key} ({GPU_FIELDS[key]}) needs the {module} package, which is not installed: {command}",
            )


def check_fsdp_config(run: Run) -> dict:
    """`trainer.fsdp_config` (a mapping or a JSON file) with its `fsdp_` prefixes dropped, as transformers reads it."""
    config = run.trainer_value("fsdp_config")
    if config is None:
        return {}
    require(bool(run.trainer_value("fsdp")), "trainer.fsdp_config only applies with trainer.fsdp=true; remove it")
    config = json_file(config, "trainer.fsdp_config") if isinstance(config, str) else config
    for key in config:
        name = key.removeprefix("fsdp_")
        require(
            name in FSDP_CONFIG_KEYS,
            f"trainer.fsdp_config.{key} is not a setting transformers reads{did_you_mean(name, FSDP_CONFIG_KEYS)}",
        )
    return {key.removeprefix("fsdp_"): value for key, value in config.items()}


def check_vllm(run: Run) -> None:
    """vLLM fields that would do nothing (vLLM off, or the other mode's), and a tensor-parallel size that does not
    divide the ranks (known inside the job, where WORLD_SIZE is set)."""
    value = run.trainer_value
    if not value("use_vllm"):
        for key in run.trainer:
            require(
                not (key.startswith("vllm_") and _changed(run, key)),
                f"trainer.{key} only applies with trainer.use_vllm=true ({GPU_FIELDS['use_vllm']}); remove it",
            )
        return
    mode = value("vllm_mode")
    other = "server" if mode == "colocate" else "colocate"
    where = " (the server's own settings are `trl vllm-serve` options)" if mode == "server" else ""
    for key in VLLM_MODE_FIELDS[other]:
        require(
            not _changed(run, key),
            f"trainer.{key} only applies to trainer.vllm_mode={other}, not {mode}; remove it{where}",
        )
    size, ranks = value("vllm_tensor_parallel_size"), os.environ.get("WORLD_SIZE")
    if mode == "colocate" and ranks is not None:
        require(
            int(ranks) % size == 0,
            f"trainer.vllm_tensor_parallel_size={size} must divide the {ranks} ranks of this run",
        )


def _changed(run: Run, key: str) -> bool:
    """`trainer.KEY` is set here to something other than trl's default (a default does nothing either way)."""
    return key in run.trainer and run.trainer[key] != trainer_fields.load()[key].default


def _env_true(name: str) -> bool:
    return os.environ.get(name, "").lower() in TRUE


def installed(module: str) -> bool:
    """Whether `module` can be imported, without importing it (deepspeed and vllm take seconds)."""
    return importlib.util.find_spec(module) is not None


def json_file(path: str, key: str) -> dict:
    """A JSON config file a trainer field names (DeepSpeed, FSDP), read as transformers will read it."""
    try:
        content = json.loads(Path(path).read_text())
    except OSError as error:
        raise ConfigError(f"{key}={path} cannot be read ({error.strerror})") from None
    except ValueError as error:
        raise ConfigError(f"{key}={path} is not valid JSON ({error})") from None
    require(isinstance(content, dict), f"{key}={path} must hold a JSON object")
    return content


def check_writable(path: Path, key: str) -> None:
    """Refuse an output directory that cannot be created or written, before anything is written."""
    require(str(path) not in ("", "."), f"{key}={str(path)!r}: give a directory of its own")
    existing = path.resolve()
    while not existing.exists():
        existing = existing.parent
    require(existing.is_dir(), f"{key}={path}: {existing} is a file, not a directory")
    try:
        tempfile.TemporaryDirectory(dir=existing).cleanup()  # as root, os.access says yes to read-only mounts
    except OSError as error:
        raise ConfigError(f"{key}={path} is not writable ({error.strerror}: {existing})") from None


# --- metrics a run logs (what `objective.metric` and `sweep.objective.metric` may name) ---------------------------
TRL_METRICS = (  # trl 1.16 GRPOTrainer and transformers' Trainer, on this harness's path (no vLLM, no tools)
    "reward", "reward_std", "frac_reward_zero_std", "entropy", "num_tokens", "step_time",
    "completions/mean_length", "completions/min_length", "completions/max_length", "completions/clipped_ratio",
    "completions/mean_terminated_length", "completions/min_terminated_length", "completions/max_terminated_length",
    "clip_ratio/low_mean", "clip_ratio/low_min", "clip_ratio/high_mean", "clip_ratio/high_max",
    "clip_ratio/region_mean", "loss", "grad_norm", "learning_rate", "epoch",
    "train_loss", "train_runtime", "train_samples_per_second", "train_steps_per_second", "total_flos",  # at the end
)  # fmt: skip
HARNESS_METRICS = (  # harness/stats.py, README's metrics glossary
    "adv/mean_token", "adv/mean_seq", "adv/std", "adv/min", "adv/max", "adv/abs_mean", "adv/frac_pos",
    "adv/frac_neg", "adv/frac_zero", "adv/within_seq_std",
    "clip/low_frac_token", "clip/high_frac_token", "clip/region_frac_token", "clip/low_frac_seq",
    "clip/high_frac_seq", "clip/region_frac_seq", "clip/any_frac_seq",
    "is_ratio/mean", "is_ratio/std", "is_ratio/min", "is_ratio/max", "is_ratio/ess",
    "is_ratio/noise_token_max", "is_ratio/noise_token_rms", "is_ratio/noise_seq_max", "is_ratio/noise_seq_rms",
)  # fmt: skip


def logged_metrics(run: Run) -> set[str]:
    names = set(TRL_METRICS) | set(HARNESS_METRICS)
    names |= {f"rewards/{name}/{stat}" for name in run.reward.functions for stat in ("mean", "std")}
    if run.trainer_value("beta") != 0:
        names.add("kl")
    if run.importance_sampling.loss_type == "cispo":
        names.add("cispo_clip_ratio")
    if run.importance_sampling.loss_type == "vespo":
        names.add("vespo/phi_seq_mean")
    return names


def check_metric(run: Run, metric: str, key: str) -> None:
    names = logged_metrics(run)
    require(metric in names, f"{key}={metric!r} is not a metric this run logs{did_you_mean(metric, names)}")


def key_type(key: str) -> tuple[Any, dict | None]:
    """(type, numeric bounds) of the config key `key`, a dotted path; Any below a free-form (`_target_`) node."""
    parts = key.split(".")
    if parts[0] == "trainer" and len(parts) == 2:
        return trainer_type(parts[1]), TRAINER_RANGES.get(parts[1])
    tp, f = lookup(Run, parts)
    return tp, f.metadata.get("bounds") if f is not None else None


def check_value(key: str, value, where: str) -> None:
    """`value` checked as if set at `key` (a search-space bound or choice); the error starts with `where`."""
    try:
        tp, bounds = key_type(key)
        convert(tp, value, key, bounds)
    except ConfigError as error:
        raise ConfigError(f"{where}: {error}") from None


# --- config groups -------------------------------------------------------------------------------------------------
def group_options(group: str) -> list[str]:
    """The options of a config group; files starting with `_` are shared includes, not options."""
    return sorted(p.stem for p in (CONF_DIR / group).glob("[!_]*.yaml"))


def default_options() -> dict[str, str | None]:
    """The option each group starts from (conf/config.yaml's defaults list); null for the opt-in groups."""
    chosen = {}
    for entry in OmegaConf.to_container(OmegaConf.load(CONF_DIR / "config.yaml"))["defaults"]:
        if isinstance(entry, dict):
            chosen.update(entry)
    return chosen


def config_groups() -> list[str]:
    """The config groups, nested ones as paths (`reward/token_function`); Hydra's own (`hydra/launcher`) left out."""
    groups = (p.relative_to(CONF_DIR) for p in CONF_DIR.rglob("*") if p.is_dir())
    return sorted(str(group) for group in groups if group.parts[0] != "hydra")


def _has_token_function(option: str) -> bool:
    return OmegaConf.load(CONF_DIR / "reward" / f"{option}.yaml").get("token_function") is not None
