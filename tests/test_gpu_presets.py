"""GPU presets, checked as configs (no GPU ran them): every option of conf/parallelism/ and conf/generation/ with
`trainer=gpu`, the DeepSpeed files as transformers fills them, and what is refused (CPU, missing packages, presets
that clash)."""

import inspect
import json
import re
from pathlib import Path
from types import SimpleNamespace

import pytest

from harness import config, distributed, trainer_fields
from harness.build import grpo_config, grpo_kwargs
from harness.config import CONF_DIR, FSDP_CONFIG_KEYS, GPU_FIELDS, VLLM_MODE_FIELDS, ConfigError, group_options
from tests.conftest import parse_config

GPU_GROUPS = ("parallelism", "generation")
PRESETS = [(group, option) for group in GPU_GROUPS for option in group_options(group)]
# What each preset hands to GRPOConfig (among its arguments); a new preset needs a line here.
EXPECTED = {
    "zero2": {"deepspeed": str(CONF_DIR / "parallelism" / "zero2.json")},
    "zero3": {"deepspeed": str(CONF_DIR / "parallelism" / "zero3.json")},
    "fsdp": {"fsdp": True, "gradient_checkpointing": False},
    "vllm_colocate": {"use_vllm": True, "vllm_mode": "colocate"},
    "vllm_server": {"use_vllm": True, "vllm_mode": "server"},
}


@pytest.fixture
def packages(monkeypatch):
    """deepspeed and vllm count as installed: they are CUDA builds, not installed on this CPU machine."""
    monkeypatch.setattr(config, "installed", lambda module: True)


def gpu_run(*overrides: str):
    return parse_config(*overrides, "trainer=gpu", "logger=none")


def test_every_preset_has_its_expectation():
    assert {option for _, option in PRESETS} == set(EXPECTED)


@pytest.mark.parametrize(("group", "option"), PRESETS, ids=[f"{g}={o}" for g, o in PRESETS])
def test_preset_composes_with_the_gpu_trainer(group, option, packages, tmp_path):
    kwargs = grpo_kwargs(gpu_run(f"{group}={option}"), tmp_path)
    assert EXPECTED[option].items() <= kwargs.items()
    if "deepspeed" in kwargs:
        assert Path(kwargs["deepspeed"]).is_file()  # absolute: the preset works from any directory
        return  # transformers reads it with the deepspeed package: test_deepspeed_file_is_filled_by_transformers
    args = grpo_config(gpu_run(f"{group}={option}"), tmp_path, bf16=False)  # no GPU here for bf16
    assert {key: getattr(args, key) for key in EXPECTED[option]} == EXPECTED[option]


def test_fsdp_preset_is_a_valid_accelerate_plugin(packages, tmp_path):
    from accelerate.utils import FullyShardedDataParallelPlugin

    args = grpo_config(gpu_run("parallelism=fsdp"), tmp_path, bf16=False)
    plugin = FullyShardedDataParallelPlugin(**args.fsdp_plugin_args)  # as transformers' Trainer builds it
    assert (plugin.fsdp_version, plugin.reshard_after_forward, plugin.activation_checkpointing) == (2, True, True)
    assert plugin.state_dict_type.name == "FULL_STATE_DICT"


def trainer_deepspeed_config(path: str):
    """transformers' HfTrainerDeepSpeedConfig (fills a DeepSpeed config's "auto" values from the trainer's arguments)
    on accelerate's HfDeepSpeedConfig: transformers derives it from accelerate's only when deepspeed is installed, so
    its methods are borrowed here, unchanged."""
    from accelerate.utils.deepspeed import HfDeepSpeedConfig
    from transformers.integrations.deepspeed import HfTrainerDeepSpeedConfig

    methods = ("is_auto", "fill_match", "fill_only", "trainer_config_process", "trainer_config_finalize")
    filler = type("Filler", (HfDeepSpeedConfig,), {m: vars(HfTrainerDeepSpeedConfig)[m] for m in methods})
    config = filler(path)
    config._dtype, config.mismatches = None, []  # what HfTrainerDeepSpeedConfig.__init__ adds
    return config


def autos(node, where="") -> list[str]:
    """The keys of a DeepSpeed config still holding "auto"."""
    if isinstance(node, dict):
        return [key for k, v in node.items() for key in autos(v, f"{where}{k}.")]
    return [where[:-1]] if node == "auto" else []


@pytest.mark.parametrize("option", ["zero2", "zero3"])
def test_deepspeed_file_is_filled_by_transformers(option, packages, tmp_path):
    run = gpu_run(f"parallelism={option}")
    path = grpo_kwargs(run, tmp_path)["deepspeed"]
    assert autos(json.loads(Path(path).read_text()))  # the file leaves the trainer's values to transformers
    args = grpo_config(run, tmp_path, deepspeed=None, bf16=False)
    args.bf16 = run.trainer["bf16"]  # what the GPU would run with
    ds = trainer_deepspeed_config(path)
    ds.trainer_config_process(args)
    ds.trainer_config_finalize(args, SimpleNamespace(config=SimpleNamespace(hidden_size=896)), args.max_steps)
    assert autos(ds.config) == [] and ds.mismatches == []
    assert ds.get_value("zero_optimization.stage") == int(option[-1])
    assert ds.config["train_micro_batch_size_per_gpu"] == run.trainer["per_device_train_batch_size"]
    assert ds.config["gradient_accumulation_steps"] == run.trainer["gradient_accumulation_steps"]
    assert ds.config["bf16"]["enabled"] is True
    if option == "zero3":  # final_model/ is gathered into one checkpoint
        assert ds.get_value("zero_optimization.stage3_gather_16bit_weights_on_model_save") is True


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["parallelism=zero3"], "trainer.deepspeed (parallelism=zero2 or zero3) needs the deepspeed package, which "
         "is not installed: pip install deepspeed"),
        (["generation=vllm_server"], "trainer.use_vllm (generation=vllm_colocate or vllm_server) needs the vllm "
         "package, which is not installed: pip install 'trl[vllm]'"),
    ],
)  # fmt: skip
def test_a_missing_package_is_named(overrides, message, monkeypatch):
    monkeypatch.setattr(config, "installed", lambda module: False)
    with pytest.raises(ConfigError, match=re.escape(message)):
        gpu_run(*overrides)
    gpu_run("parallelism=fsdp")  # FSDP is torch's own


def test_installed_finds_modules_without_importing_them():
    assert config.installed("json") and not config.installed("harness_no_such_module")


def test_colocated_tensor_parallel_size_divides_the_ranks(packages, monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "4")
    gpu_run("generation=vllm_colocate", "trainer.vllm_tensor_parallel_size=2")
    monkeypatch.setenv("WORLD_SIZE", "3")
    with pytest.raises(ConfigError, match="trainer.vllm_tensor_parallel_size=2 must divide the 3 ranks of this run"):
        gpu_run("generation=vllm_colocate", "trainer.vllm_tensor_parallel_size=2")


def test_fsdp_in_one_plain_process_is_refused(monkeypatch):
    # accelerate shards only under a launcher (LOCAL_RANK set); checked inside the job, before the model is built
    monkeypatch.delenv("LOCAL_RANK", raising=False)
    with pytest.raises(ConfigError, match="trainer.fsdp .* this run is one plain process"):
        distributed.check_sharded({"fsdp": True})
    distributed.check_sharded({"fsdp": False})
    monkeypatch.setenv("LOCAL_RANK", "0")
    distributed.check_sharded({"fsdp": True})


def test_rule_tables_name_what_the_libraries_read():
    from transformers import TrainingArguments

    fields = trainer_fields.load()
    assert set(GPU_FIELDS) | {key for keys in VLLM_MODE_FIELDS.values() for key in keys} <= set(fields)
    source = inspect.getsource(TrainingArguments._process_fsdp_args)
    assert [key for key in FSDP_CONFIG_KEYS if f'"{key}"' not in source] == []
