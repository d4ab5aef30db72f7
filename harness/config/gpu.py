"""GPU presets: DeepSpeed and FSDP (`parallelism=...`), trl's vLLM generation (`generation=...`), refused where
transformers or trl would crash on them once the model is built, or silently ignore them."""

from __future__ import annotations

import importlib.util
import json
import os
from pathlib import Path

from harness.config import trainer_fields
from harness.config.groups import Run
from harness.config.schema import ConfigError, did_you_mean, require

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
