"""Every config option composes and builds; every bad input fails early with one line."""

from pathlib import Path

import pytest

from harness.build import build_trainer, grpo_config
from harness.config import CONF_DIR, ConfigError, config_groups, group_options, validate
from harness.options import check_group_overrides
from harness.trainer import HarnessGRPOTrainer
from tests.conftest import compose_config, run_cli

# Presets for GPU users: they need the hub or a GPU, so they are checked as configs only.
HUB_PRESETS = {("model", "qwen2_5_0_5b_instruct"), ("reward", "gsm8k"), ("trainer", "gpu")}
# Study files (the `sweep` group, a link to sweeps/) open a storage to validate: tests/test_study.py checks each one.
OPTIONS = [(group, option) for group in config_groups() if group != "sweep" for option in group_options(group)]


def overrides_for(group: str, option: str, tiny_model_dir: Path) -> list[str]:
    extra = ["logger=none"] if group != "logger" else ["logger.mode=offline"] if option == "wandb" else []
    extra += [] if group == "debug" else ["debug=fast"]
    if (group, option) == ("model", "local"):
        extra.append(f"model.path={tiny_model_dir}")
    if (group, option) == ("reward", "gsm8k"):
        extra.append("advantage=outcome")  # gsm8k has no token-level reward
    return [f"{group}={option}", *extra]


def test_options_cover_every_group():
    groups = {"model", "reward", "importance_sampling", "advantage", "trainer", "logger", "debug", "experiment"}
    assert groups <= {group for group, _ in OPTIONS}


@pytest.mark.parametrize(("group", "option"), OPTIONS, ids=[f"{g}={o}" for g, o in OPTIONS])
def test_option_composes_and_builds(group, option, tiny_model_dir, tmp_path):
    cfg = compose_config(*overrides_for(group, option, tiny_model_dir))
    validate(cfg)
    if (group, option) in HUB_PRESETS:
        if group != "trainer":
            grpo_config(cfg, tmp_path)  # GRPOConfig accepts every trainer field; nothing downloaded
        return
    trainer = build_trainer(cfg, tmp_path, [])
    assert isinstance(trainer, HarnessGRPOTrainer)
    assert trainer.level == cfg.importance_sampling.level
    assert (trainer.token_reward is not None) == (cfg.advantage.estimator == "process")


def test_sweep_syntax_is_checked_per_option():
    check_group_overrides(["importance_sampling=token,sequence_token", "seed=0,1"])
    with pytest.raises(ConfigError, match="importance_sampling=seq is not an option; allowed: sequence, "):
        check_group_overrides(["importance_sampling=token,seq"])


def test_unknown_trainer_field_is_named(tmp_path):
    cfg = compose_config("+trainer.learning_rat=0.1", "logger=none")
    with pytest.raises(
        ConfigError, match=r"trainer.learning_rat is not a GRPOConfig field; did you mean learning_rate"
    ):
        grpo_config(cfg, tmp_path)


BAD_INPUTS = {
    "unknown group option": (
        ["importance_sampling=gspo"],
        "importance_sampling=gspo is not an option; allowed: sequence",
    ),
    "unknown level": (["importance_sampling.level=seq"], "importance_sampling.level='seq'; allowed: token, sequence"),
    "process without token reward": (["reward=gsm8k"], "advantage=process needs a token-level reward"),
    "level-blind loss": (["importance_sampling.loss_type=cispo"], "loss_type=cispo ignores the importance-sampling"),
    "learning rate": (["trainer.learning_rate=0"], "trainer.learning_rate=0 must be a positive number"),
    "batch size": (["trainer.per_device_train_batch_size=-2"], "per_device_train_batch_size=-2 must be a positive"),
    "generations": (
        ["trainer.num_generations=5"],
        "trainer.num_generations=5 does not divide the generation batch of 64",
    ),
    "missing local path": (["model=local"], "model.path is required"),
    "unknown trainer field": (["+trainer.lerning_rate=1"], "trainer.lerning_rate is not a GRPOConfig field"),
    "reward count": (
        ["reward.functions.position_accuracy.fn._target_=tests.bad_rewards.wrong_count"],
        "reward.functions.position_accuracy returned 3 values for 2 completions",
    ),
    "reward NaN": (
        ["reward.functions.position_accuracy.fn._target_=tests.bad_rewards.nan_reward"],
        "reward.functions.position_accuracy returned nan for completion 0",
    ),
}


@pytest.mark.e2e
@pytest.mark.parametrize("case", list(BAD_INPUTS))
def test_bad_input_fails_early_with_one_line(case, tmp_path):
    overrides, message = BAD_INPUTS[case]
    run_dir = tmp_path / "run"
    result = run_cli(*overrides, "logger=none", f"hydra.run.dir={run_dir}")
    assert result.returncode == 2, result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("harness: error:")]
    assert len(errors) == 1 and message in errors[0], result.stderr
    assert "Traceback" not in result.stderr
    assert not run_dir.exists(), "nothing may be left behind by a refused config"
    assert not (run_dir / "initial_model").exists()


def test_config_tree_has_no_orphans():
    # Every YAML under conf/ belongs to a group the tests above iterate over (or is the root config).
    for path in CONF_DIR.rglob("*.yaml"):
        if CONF_DIR / "hydra" in path.parents:
            continue  # Hydra's own groups (launchers): composed in tests/test_slurm.py
        group = path.parent.relative_to(CONF_DIR).as_posix()
        assert path.parent == CONF_DIR or group in config_groups() or group in NESTED_GROUPS, path


# Nested groups, built by the tests named here.
NESTED_GROUPS = {"reward/token_function": "tests/test_reward_models.py (a PRM built in the test)"}
