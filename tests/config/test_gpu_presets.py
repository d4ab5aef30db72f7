"""GPU presets, checked as configs (no GPU ran them): every option of conf/parallelism/ and conf/generation/ with
`trainer=gpu`, the DeepSpeed files as transformers fills them, the accelerate config files as `accelerate launch`
reads them, docs/slurm.md's commands for them, and what is refused (CPU, missing packages, presets that clash)."""

import inspect
import json
import re
import shlex
from pathlib import Path
from types import SimpleNamespace

import pytest

from harness.config import gpu, trainer_fields
from harness.config.gpu import FSDP_CONFIG_KEYS, GPU_FIELDS, VLLM_MODE_FIELDS
from harness.config.options import CONF_DIR, group_options
from harness.config.schema import ConfigError
from harness.runtime import distributed
from harness.training.build import grpo_config, grpo_kwargs
from tests.conftest import ROOT, parse_config

GPU_GROUPS = ("parallelism", "generation")
PRESETS = [(group, option) for group in GPU_GROUPS for option in group_options(group)]
SLURM_PAGE = ROOT / "docs" / "slurm.md"  # where the GPU preset commands are documented
ACCELERATE_FILES = sorted((ROOT / "accelerate_configs").glob("*.yaml"))
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
    monkeypatch.setattr(gpu, "installed", lambda module: True)


def gpu_run(*overrides: str):
    return parse_config(*overrides, "trainer=gpu", "logger=none")


def test_every_preset_has_its_expectation():
    assert {option for _, option in PRESETS} == set(EXPECTED)
    assert {path.stem for path in ACCELERATE_FILES} == {"zero2", "zero3", "fsdp"}


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


def launch_env(path: Path) -> dict[str, str]:
    """The environment `accelerate launch --config_file PATH -m harness.run` gives each process (nothing launched)."""
    from accelerate.commands.launch import _validate_launch_command, launch_command_parser
    from accelerate.utils.launch import prepare_deepspeed_cmd_env, prepare_multi_gpu_env

    parser = launch_command_parser()
    args, defaults, mixed_from_file = _validate_launch_command(
        parser.parse_args(["--config_file", str(path), "-m", "harness.run"])
    )
    if args.use_deepspeed:  # the fields accelerate then refuses to mix with a deepspeed_config_file
        fields = [*defaults.deepspeed_config, *(["mixed_precision"] if mixed_from_file else [])]
        args.deepspeed_fields_from_accelerate_config = ",".join(fields)
        env = prepare_deepspeed_cmd_env(args)[1]
    else:
        env = prepare_multi_gpu_env(args)
    return {key: value for key, value in env.items() if key.startswith(("ACCELERATE_", "FSDP_"))}


@pytest.mark.parametrize("path", ACCELERATE_FILES, ids=[p.name for p in ACCELERATE_FILES])
def test_accelerate_config_file(path, packages, monkeypatch, tmp_path):
    from accelerate.commands.config.config_args import ClusterConfig, load_config_from_file
    from accelerate.commands.launch import launch_command_parser
    from accelerate.utils import DeepSpeedPlugin, FullyShardedDataParallelPlugin

    monkeypatch.chdir(ROOT)  # deepspeed_config_file is relative to where accelerate is launched: the clone
    file = load_config_from_file(str(path))  # unknown top-level keys and distributed types refused
    assert isinstance(file, ClusterConfig) and not file.use_cpu
    # accelerate copies the nested keys onto its launch options without checking them: a typo would do nothing.
    options = {action.dest for action in launch_command_parser()._actions}
    nested = [*file.deepspeed_config, *(k if k.startswith("fsdp_") else f"fsdp_{k}" for k in file.fsdp_config)]
    assert set(nested) <= options, set(nested) - options
    run, deepspeed = gpu_run(f"parallelism={path.stem}"), path.stem.startswith("zero")
    preset = grpo_kwargs(run, tmp_path) if deepspeed else grpo_config(run, tmp_path, bf16=False)  # before the env
    for key, value in launch_env(path).items():
        monkeypatch.setenv(key, value)
    if deepspeed:  # the preset's DeepSpeed file, read the way transformers does
        plugin = DeepSpeedPlugin()
        assert Path(file.deepspeed_config["deepspeed_config_file"]).resolve() == Path(preset["deepspeed"])
        assert plugin.zero_stage == int(path.stem[-1]) and plugin.zero3_init_flag == (path.stem == "zero3")
    else:  # the preset's FSDP settings
        from_file = FullyShardedDataParallelPlugin()
        from_preset = FullyShardedDataParallelPlugin(**preset.fsdp_plugin_args)
        same = ("fsdp_version", "reshard_after_forward", "activation_checkpointing", "state_dict_type", "cpu_offload")
        assert {k: getattr(from_file, k) for k in same} == {k: getattr(from_preset, k) for k in same}
        assert from_file.auto_wrap_policy is from_preset.auto_wrap_policy
    # under this launch: the docs' commands pass; the CPU trainer and a second source of settings are refused
    for overrides in page_accelerate_overrides(path) or [["trainer=gpu"]]:
        parse_config(*overrides, "logger=none")
    with pytest.raises(ConfigError, match="runs on GPUs only, and trainer.use_cpu=true; add trainer=gpu"):
        parse_config("logger=none")
    clash = "under `accelerate launch` with an? (DeepSpeed|FSDP) config file: give one of the two, not both"
    with pytest.raises(ConfigError, match=clash):
        gpu_run("parallelism=fsdp" if path.stem.startswith("zero") else "parallelism=zero3")


def test_fsdp_under_accelerate_launch_refuses_the_trainers_checkpointing(packages, monkeypatch):
    for key, value in launch_env(ROOT / "accelerate_configs" / "fsdp.yaml").items():
        monkeypatch.setenv(key, value)
    with pytest.raises(ConfigError, match="set trainer.gradient_checkpointing=false"):
        gpu_run()


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
    monkeypatch.setattr(gpu, "installed", lambda module: False)
    with pytest.raises(ConfigError, match=re.escape(message)):
        gpu_run(*overrides)
    gpu_run("parallelism=fsdp")  # FSDP is torch's own


def test_installed_finds_modules_without_importing_them():
    assert gpu.installed("json") and not gpu.installed("harness_no_such_module")


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


# --- the docs' commands for these presets (docs/slurm.md) -----------------------------------------------------------
def page_commands(program: str) -> list[list[str]]:
    """docs/slurm.md's shell commands that start with `program` (continuation lines joined), as argument lists."""
    text = SLURM_PAGE.read_text().replace("\\\n", " ")
    lines = [line.split(" # ")[0] for line in text.splitlines()]
    return [shlex.split(line)[len(program.split()) :] for line in lines if line.startswith(program + " ")]


def job_overrides(args: list[str]) -> list[str]:
    """A command line's overrides of the job config (what `parse` checks): launcher, study and flags left out."""
    return [arg for arg in args if "=" in arg and not arg.startswith(("-", "hydra", "sweep", "worker"))]


def page_accelerate_overrides(path: Path) -> list[list[str]]:
    """The job overrides of docs/slurm.md's `accelerate launch` commands with the config file `path`."""
    config_file = ["--config_file", f"accelerate_configs/{path.name}"]
    return [job_overrides(args) for args in page_commands("accelerate launch") if args[:2] == config_file]


GPU_COMMANDS = [
    args for args in page_commands("python -m harness.run") if any(arg.startswith(GPU_GROUPS) for arg in args)
]


def test_docs_show_a_command_for_each_preset():
    shown = {arg for args in GPU_COMMANDS for arg in args}
    assert {f"{group}={option}" for group, option in PRESETS if option != "zero2"} <= shown
    assert page_accelerate_overrides(ROOT / "accelerate_configs/zero3.yaml")
    assert page_accelerate_overrides(ROOT / "accelerate_configs/fsdp.yaml")


@pytest.mark.parametrize("args", GPU_COMMANDS, ids=[" ".join(job_overrides(a)) for a in GPU_COMMANDS])
def test_docs_gpu_command_passes_the_config_checks(args, packages):
    from hydra.core.override_parser.overrides_parser import OverridesParser

    parse_config(*job_overrides(args), "logger=none")
    launcher = OverridesParser.create().parse_overrides([arg for arg in args if arg.startswith("hydra")])
    setup = [line for o in launcher if o.key_or_group == "hydra.launcher.setup" for line in o.value()]
    # a vLLM server without a host of its own is started by the job's setup lines (a list Hydra parses), in the
    # background, on a GPU the ranks leave free
    in_job = "generation=vllm_server" in args and not any(a.startswith("trainer.vllm_server_host=") for a in args)
    assert in_job == any(re.fullmatch(r"CUDA_VISIBLE_DEVICES=\d+ trl vllm-serve .*&", line) for line in setup)


def test_docs_vllm_serve_commands_parse():
    from trl.scripts.vllm_serve import make_parser

    text = SLURM_PAGE.read_text()
    commands = [shlex.split(found) for found in re.findall(r"trl vllm-serve ([^&\"'\n]*)", text)]
    assert len(commands) >= 2  # in the job's setup, and on a node of its own
    for args in commands:
        (script,) = make_parser(prog="trl vllm-serve").parse_args_into_dataclasses(args=args)  # unknown flags fail
        assert script.model == "Qwen/Qwen2.5-0.5B-Instruct"  # the model the page's trials train
