"""Every config option composes and builds; every bad input fails early with one line, exit 2, nothing on disk."""

import json
import logging
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from hydra.core.global_hydra import GlobalHydra
from omegaconf.basecontainer import BaseContainer

from harness.config import dependent_fields, trainer_fields
from harness.config.compose import check_overrides
from harness.config.evaluation import TRAINER_EVAL_FIELDS
from harness.config.metrics import logged_metrics
from harness.config.options import CONF_DIR, config_groups, group_options
from harness.config.schema import ConfigError
from harness.config.trainer_args import TRAINER_OWNERS, TRAINER_RANGES
from harness.study.space import hydra_value
from harness.training.build import build_trainer, grpo_config
from harness.training.trainer import HarnessGRPOTrainer
from tests.config.test_gpu_presets import GPU_GROUPS
from tests.conftest import ROOT, parse_config, run_cli
from tests.in_process import run_in_process

# Presets for GPU users need the hub or a GPU, and a PRM needs a trained model (tests/tasks/test_reward_models.py builds one):
# they are checked as configs only.
CONFIG_ONLY = {
    ("model", "qwen2_5_0_5b_instruct"), ("reward", "gsm8k"), ("trainer", "gpu"), ("reward/token_function", "prm"),
    ("reward/token_function", "generative_prm"),
}  # fmt: skip
# Study files (the `sweep` group, a link to sweeps/) open a storage to validate: tests/study/test_study.py checks each one.
# GPU presets need trainer=gpu and packages this machine lacks: tests/config/test_gpu_presets.py checks each one.
# An experiment preset that runs studies (one per arm) is not a single run: tests/study/test_tuned_comparison.py.
STUDY_PRESETS = {("experiment", "tuned_comparison")}
OPTIONS = [
    (group, option)
    for group in config_groups()
    if group != "sweep" and group not in GPU_GROUPS
    for option in group_options(group)
    if (group, option) not in STUDY_PRESETS
]


def overrides_for(group: str, option: str, tiny_model_dir: Path) -> list[str]:
    extra = ["logger=none"] if group != "logger" else ["logger.mode=offline"] if option == "wandb" else []
    extra += [] if group == "debug" else ["debug=fast"]
    if (group, option) == ("model", "local"):
        extra.append(f"model.path={tiny_model_dir}")
    if (group, option) == ("reward", "gsm8k"):
        extra.append("advantage=outcome")  # gsm8k has no token-level reward
    if group == "reward/token_function":
        extra.append(f"reward.token_function.path={tiny_model_dir}")
    return [f"{group}={option}", *extra]


def test_options_cover_every_group():
    groups = {"model", "reward", "importance_sampling", "advantage", "trainer", "logger", "debug", "experiment"}
    assert groups <= {group for group, _ in OPTIONS}


@pytest.mark.parametrize(("group", "option"), OPTIONS, ids=[f"{g}={o}" for g, o in OPTIONS])
def test_option_composes_and_builds(group, option, tiny_model_dir, tmp_path):
    run = parse_config(*overrides_for(group, option, tiny_model_dir))
    if (group, option) in CONFIG_ONLY:
        if group != "trainer":
            grpo_config(run, tmp_path)  # GRPOConfig accepts every trainer field; nothing downloaded
        return
    trainer = build_trainer(run, tmp_path, [])
    assert isinstance(trainer, HarnessGRPOTrainer)
    assert trainer.level == run.importance_sampling.level
    assert (trainer.token_reward is not None) == (run.advantage.estimator == "process")


def test_trainer_field_table_matches_installed_trl():
    # harness/config/trainer_fields.json lets `--cfg job` check trainer keys without importing trl; regenerate it with
    # `python -m harness.config.trainer_fields` when trl changes.
    assert json.loads(json.dumps(trainer_fields.generate())) == json.loads(trainer_fields.TABLE.read_text())


def test_trainer_rules_name_real_fields():
    fields = trainer_fields.load()
    assert not (set(TRAINER_RANGES) | set(TRAINER_OWNERS)) - set(fields)
    assert not set(TRAINER_RANGES) & set(TRAINER_OWNERS)


def test_every_grpo_field_is_set_without_plus(tmp_path):
    # All fields at once, each at trl's default (max_steps=-1 means "epochs", refused here; use_cpu=false wants a GPU;
    # the fields that are dead without their switch, harness/config/dependent_fields.py, are refused set alone).
    dead = {*dependent_fields.RULES, *dependent_fields.ALWAYS_DEAD}
    fields = {
        name: field.default
        for name, field in trainer_fields.load().items()
        if name not in {*TRAINER_OWNERS, *dead}
        and name not in TRAINER_EVAL_FIELDS  # refused: tests/config/test_eval_config.py
        and field.default is not None
        and name not in ("max_steps", "use_cpu")
    }
    run = parse_config("logger=none", *(f"trainer.{name}={hydra_value(value)}" for name, value in fields.items()))
    assert fields.items() <= run.trainer.items()
    args = grpo_config(run, tmp_path)  # the real GRPOConfig takes them all
    changed = {name for name, value in fields.items() if getattr(args, name) not in (value, type(value)(value))}
    changed -= {name for name in changed if getattr(getattr(args, name), "value", None) == fields[name]}  # enums
    assert changed == {"dataloader_pin_memory", "debug", "pad_to_multiple_of"}  # rewritten by trl's __post_init__


def test_sweep_syntax_is_checked_per_option():
    check_overrides(["importance_sampling=token,sequence_token", "seed=0,1", "advantage=glob(*,exclude=outcome)"])
    with pytest.raises(ConfigError, match="importance_sampling=seq is not an option; allowed: sequence, "):
        check_overrides(["importance_sampling=token,seq"])


def test_logged_metrics_follow_the_rewards():
    names = logged_metrics(parse_config("reward=addition", "trainer.beta=0.04"))
    assert {"rewards/exact_match/mean", "rewards/position_accuracy/std", "kl", "adv/within_seq_std"} <= names
    assert "kl" not in logged_metrics(parse_config())  # beta 0: trl logs no KL


def test_config_tree_has_no_orphans():
    # Every YAML under conf/ belongs to a group the tests above iterate over (or is the root config).
    for path in CONF_DIR.rglob("*.yaml"):
        if CONF_DIR / "hydra" in path.parents:
            continue  # Hydra's own groups (launchers): composed in tests/cluster/test_slurm.py
        assert path.parent == CONF_DIR or path.parent.relative_to(CONF_DIR).as_posix() in config_groups(), path


# --- the bad-input table: what a hostile user types --------------------------------------------------------------
# Each case runs `python -m harness.run` in-process (tests/in_process.py); the cases in THROUGH_THE_CLI also run in a
# process of their own. (id, overrides, text the single error line must contain). {tmp}: a fresh directory; {empty}:
# an empty directory; {conf}: the user's own config directory, given with --config-dir, whose sweep/ holds the study
# files {study} and {study_list} (contents in STUDY_FILES).
BAD_INPUTS = [
    # Hydra's own errors
    ("unknown option", ["importance_sampling=gspo"], "importance_sampling=gspo is not an option; allowed: sequence"),
    ("unknown option in a sweep", ["-m", "importance_sampling=token,gspo"], "importance_sampling=gspo is not an option"),
    ("group set to null", ["trainer=null"], "trainer=null is not an option; allowed: default, gpu"),
    ("opt-in group set to null", ["debug=null"], "debug=null is not an option (it is off unless chosen); allowed: fast"),
    ("unset environment variable", ["seed=${{oc.env:HARNESS_TEST_UNSET}}"], "Environment variable 'HARNESS_TEST_UNSET' not found\"; full_key: seed"),
    ("broken interpolation", ["name=${{nope}}"], "Interpolation key 'nope' not found; full_key: name"),
    ("empty run dir", ["hydra.run.dir="], "hydra.run.dir='.': give a directory of its own"),
    ("generations null", ["trainer.num_generations=null"], "trainer.num_generations=None; give the group size"),
    ("unknown group", ["foo=bar"], "foo is not a config group or key"),
    ("unknown hydra option", ["hydra/launcher=nope"], "hydra/launcher"),
    ("override syntax", ["trainer.learning_rate=["], "cannot parse override 'trainer.learning_rate=['"),
    ("unbalanced quote", ["name='abc"], "cannot parse override \"name='abc\""),
    ("unknown option preset", ["debug=slow"], "debug=slow is not an option; allowed: fast"),
    ("unknown flag", ["--foo"], "--foo is not an option of python -m harness.run"),
    ("two modes", ["-m", "--cfg", "job", "seed=0,1"], "only one of --run, --multirun (-m) and --cfg can be given"),
    ("key not in option", ["advantage=outcome", "advantage.gamma=0.5"], "advantage.gamma only applies to advantage.estimator=process; remove it"),
    # unknown keys, everywhere, with a did-you-mean
    ("top-level trainer field", ["+learning_rate=1e-3"], "learning_rate is not a config key; did you mean trainer.learning_rate?"),
    ("top-level without +", ["learning_rate=1e-3"], "did you mean trainer.learning_rate?"),
    ("reward weight typo", ["+reward.functions.position_accuracy.wieght=2"], "reward.functions.position_accuracy.wieght is not a config key; did you mean weight?"),
    ("trainer typo with +", ["+trainer.lerning_rate=1"], "trainer.lerning_rate is not a GRPOConfig field; did you mean learning_rate?"),
    ("trainer typo", ["trainer.learning_rat=1"], "trainer.learning_rat is not a GRPOConfig field; did you mean learning_rate?"),
    ("model key typo", ["+model.hidden=32"], "model.hidden is not a config key"),
    ("objective typo", ["+objective.metrc=reward"], "objective.metrc is not a config key; did you mean metric?"),
    ("dataset argument typo", ["+reward.dataset.sizee=3"], "reward.dataset.sizee is not an argument of harness.tasks.strings.copy_dataset; did you mean size?"),
    ("dataset target", ["reward.dataset._target_=harness.tasks.strings.nope"], "reward.dataset._target_=harness.tasks.strings.nope cannot be imported"),
    ("nested group option", ["reward/token_function=prmm"], "reward/token_function=prmm is not an option; allowed: generative_prm, prm"),
    ("reward model path missing", ["reward/token_function=prm"], "reward.token_function.path is required but not set"),
    ("reward model argument", ["reward/token_function=prm", "reward.token_function.path={empty}", "+reward.token_function.batch=3"], "reward.token_function.batch is not an argument of harness.tasks.reward_models.ProcessRewardModel; did you mean batch_size?"),
    ("reward model argument type", ["reward/token_function=prm", "reward.token_function.path={empty}", "reward.token_function.batch_size=abc"], "reward.token_function.batch_size='abc' must be an integer"),
    ("reward target", ["reward.functions.position_accuracy.fn._target_=nowhere.fn"], "reward.functions.position_accuracy.fn._target_=nowhere.fn cannot be imported"),
    # keys another group owns
    ("trainer.epsilon", ["trainer.epsilon=0.5"], "trainer.epsilon is set by importance_sampling (importance_sampling.epsilon=...)"),
    ("trainer.epsilon_high", ["+trainer.epsilon_high=0.5"], "trainer.epsilon_high is set by importance_sampling"),
    ("trainer.loss_type", ["trainer.loss_type=dapo"], "trainer.loss_type is set by importance_sampling"),
    ("trainer.level", ["+trainer.importance_sampling_level=sequence"], "trainer.importance_sampling_level is set by importance_sampling"),
    ("trainer.max_completion_length", ["+trainer.max_completion_length=2"], "trainer.max_completion_length is set by reward"),
    ("trainer.seed", ["trainer.seed=3"], "trainer.seed is set by seed"),
    ("trainer.report_to", ["trainer.report_to=wandb"], "trainer.report_to is set by logger"),
    ("trainer.output_dir", ["trainer.output_dir=/tmp/x"], "trainer.output_dir is set by hydra"),
    ("trainer.reward_weights", ["trainer.reward_weights=[1.0]"], "trainer.reward_weights is set by reward"),
    # NaN, inf, wrong types, out of range
    ("weight nan", ["reward.functions.position_accuracy.weight=nan"], "reward.functions.position_accuracy.weight=nan must be a finite number"),
    ("weight inf", ["reward.functions.position_accuracy.weight=inf"], "reward.functions.position_accuracy.weight=inf"),
    ("weight text", ["reward.functions.position_accuracy.weight=abc"], "reward.functions.position_accuracy.weight='abc'"),
    ("lr inf", ["trainer.learning_rate=inf"], "trainer.learning_rate=inf must be a finite number > 0"),
    ("lr nan", ["trainer.learning_rate=nan"], "trainer.learning_rate=nan"),
    ("lr zero", ["trainer.learning_rate=0"], "trainer.learning_rate=0 must be a finite number > 0"),
    ("lr negative", ["trainer.learning_rate=-1e-3"], "trainer.learning_rate=-0.001"),
    ("lr text", ["trainer.learning_rate=abc"], "trainer.learning_rate='abc'"),
    ("bool text", ["trainer.bf16=maybe"], "trainer.bf16='maybe' must be true or false"),
    ("enum value", ["trainer.save_strategy=sometimes"], "trainer.save_strategy='sometimes'; allowed: no, steps, epoch, best"),
    ("scheduler", ["trainer.lr_scheduler_type=cosine_annealing"], "trainer.lr_scheduler_type='cosine_annealing'"),
    ("mapping field", ["trainer.generation_kwargs=5"], "trainer.generation_kwargs=5 must be a mapping or a string"),
    ("temperature zero", ["trainer.temperature=0"], "trainer.temperature=0 must be a finite number > 0"),
    ("temperature negative", ["trainer.temperature=-1"], "trainer.temperature=-1"),
    ("beta negative", ["trainer.beta=-0.5"], "trainer.beta=-0.5 must be a finite number >= 0"),
    ("PRM ignored by outcome", ["reward/token_function=prm", "reward.token_function.path=/tmp", "advantage=outcome"],
     "reward.token_function is a reward model (ProcessRewardModel) but advantage=outcome does not use token rewards"),
    ("scale_rewards typo", ["trainer.scale_rewards=grup"], "trainer.scale_rewards='grup'; allowed: group, batch, none"),
    ("top_p", ["trainer.top_p=1.5"], "trainer.top_p=1.5 must be a finite number in (0, 1]"),
    ("batch negative", ["trainer.per_device_train_batch_size=-2"], "trainer.per_device_train_batch_size=-2 must be an integer > 0"),
    ("batch float", ["trainer.per_device_train_batch_size=2.5"], "trainer.per_device_train_batch_size=2.5"),
    ("steps zero", ["trainer.max_steps=0"], "trainer.max_steps=0 must be an integer > 0"),
    ("one generation", ["trainer.num_generations=1"], "trainer.num_generations=1 must be an integer >= 2"),
    ("generations divide", ["trainer.num_generations=5"], "trainer.num_generations=5 does not divide the generation batch of 64"),
    ("seed negative", ["seed=-1"], "seed=-1 must be an integer in [0, 4294967295]"),
    ("seed text", ["seed=abc"], "seed='abc' must be an integer"),
    ("seed too big", ["seed=4294967296"], "seed=4294967296"),
    ("seed float", ["seed=1.5"], "seed=1.5"),
    ("seed in a multirun", ["-m", "seed=0,-1"], "seed=-1"),
    ("seed in a range sweep", ["-m", "seed=range(-1,1)"], "seed=-1"),
    ("interval sweep", ["-m", "trainer.learning_rate=interval(0.1,0.2)"], "trainer.learning_rate=interval(0.1,0.2): Can only enumerate"),
    ("epsilon nan", ["importance_sampling.epsilon=nan"], "importance_sampling.epsilon=nan"),
    ("epsilon zero", ["importance_sampling.epsilon=0"], "importance_sampling.epsilon=0 must be a finite number > 0"),
    ("epsilon_high negative", ["importance_sampling.epsilon_high=-1"], "importance_sampling.epsilon_high=-1"),
    ("unknown level", ["importance_sampling.level=seq"], "importance_sampling.level='seq'; allowed: token, sequence"),
    ("unknown loss", ["importance_sampling.loss_type=ppo"], "importance_sampling.loss_type='ppo'; allowed: grpo"),
    ("level-blind loss", ["importance_sampling.loss_type=cispo"], "loss_type=cispo ignores the importance-sampling"),
    ("off-policy mask", ["+trainer.off_policy_mask_threshold=0.5"], "trainer.off_policy_mask_threshold is not supported"),
    ("gamma text", ["advantage=discounted", "advantage.gamma=abc"], "advantage.gamma='abc' must be a finite number in (0, 1]"),
    ("gamma zero", ["advantage=discounted", "advantage.gamma=0"], "advantage.gamma=0"),
    ("gamma above one", ["advantage=discounted", "advantage.gamma=1.5"], "advantage.gamma=1.5"),
    ("gamma with outcome", ["advantage=outcome", "+advantage.gamma=0.5"], "advantage.gamma only applies to advantage.estimator=process"),
    ("unknown estimator", ["advantage.estimator=td"], "advantage.estimator='td'; allowed: outcome, process, entropy_bonus, gtpo, ktae, mc_value"),
    ("mc_value without boundaries", ["advantage=mc_value", "advantage.every=null"], "mc_value needs step boundaries: set exactly one of advantage.separator"),
    ("mc_value two boundaries", ["advantage=mc_value", "advantage.separator=x"], "advantage.every (an integer >= 1); both set"),
    ("mc_value K", ["advantage=mc_value", "advantage.rollouts=0"], "advantage.rollouts=0 must be an integer >= 1"),
    ("mc_value separator", ["advantage=mc_value", "advantage.every=null", "advantage.separator='§'"], "advantage.separator='§' is not a token sequence of the model's tokenizer"),
    ("mc_value with vllm", ["advantage=mc_value", "generation=vllm_colocate"], "trainer.use_vllm=true (generation=vllm_*) is not supported with it"),
    ("entropy_bonus kappa", ["advantage=entropy_bonus", "advantage.kappa=1"], "advantage.kappa=1 must be a finite number > 1"),
    ("entropy_bonus alpha", ["advantage=entropy_bonus", "advantage.alpha=-0.1"], "advantage.alpha=-0.1 must be a finite number >= 0"),
    ("gtpo normalisation", ["advantage=gtpo", "advantage.normalisation=batch"], "advantage.normalisation='batch'; allowed: polarity, outcome"),
    ("ktae bm25_b", ["advantage=ktae", "advantage.bm25_b=2"], "advantage.bm25_b=2 must be a finite number in [0, 1]"),
    ("kappa with outcome", ["advantage=outcome", "+advantage.kappa=2"], "advantage.kappa only applies to advantage.estimator=entropy_bonus"),
    ("process without token reward", ["reward=gsm8k"], "advantage=process needs a token-level reward"),
    ("last_n text", ["objective.last_n=abc"], "objective.last_n='abc' must be an integer >= 1"),
    ("last_n zero", ["objective.last_n=0"], "objective.last_n=0"),
    ("metric typo", ["objective.metric=rewrd"], "objective.metric='rewrd' is not a metric this run logs; did you mean reward?"),
    ("metric of another reward", ["objective.metric=rewards/exact_match/mean"], "objective.metric='rewards/exact_match/mean' is not a metric"),
    ("kl without beta", ["objective.metric=kl"], "objective.metric='kl' is not a metric"),
    ("histogram negative", ["stats.histogram_every=-1"], "stats.histogram_every=-1 must be an integer >= 0"),
    ("wandb mode", ["logger=wandb", "logger.mode=sometimes"], "logger.mode='sometimes'; allowed: auto, online"),
    ("wandb key without wandb", ["+logger.mode=online"], "logger.mode only applies to logger=wandb"),
    ("empty name", ["name="], "name=''"),
    ("name with slash", ["name=a/b"], "name='a/b'"),
    ("dataset size text", ["reward.dataset.size=abc"], "reward.dataset.size='abc' must be an integer"),
    ("completion length", ["reward.max_completion_length=0"], "reward.max_completion_length=0 must be an integer > 0"),
    ("model path missing", ["model=local"], "model.path is required"),
    ("model path absent", ["model=local", "model.path={tmp}/nowhere"], "model.path={tmp}/nowhere is not a directory"),
    ("model dir empty", ["model=local", "model.path={empty}"], "model.path={empty} has no config.json"),
    ("tiny key on local", ["model=local", "model.path={empty}", "+model.hidden_size=8"], "model.hidden_size only applies to model.source=tiny"),
    ("dtype with tiny", ["+model.dtype=bfloat16"], "model.dtype only applies to model.source=local or hub"),
    ("never logs", ["trainer.max_steps=5", "trainer.logging_steps=10"], "trainer.logging_steps=10 with trainer.max_steps=5: the run would log nothing"),
    ("logging off", ["+trainer.logging_strategy=no"], "the run would log nothing"),
    ("heads", ["model.num_heads=3"], "model.num_heads=3 must divide model.hidden_size=64"),
    ("hidden zero", ["model.hidden_size=0"], "model.hidden_size=0 must be an integer > 0"),
    ("dtype", ["model=local", "model.path={empty}", "model.dtype=float8"], "model.dtype='float8'; allowed: auto"),
    ("read-only run dir", ["hydra.run.dir=/proc/harness-test/run"], "hydra.run.dir=/proc/harness-test/run is not writable"),
    ("read-only sweep dir", ["-m", "seed=0,1", "hydra.sweep.dir=/proc/harness-test"], "hydra.sweep.dir=/proc/harness-test is not writable"),
    # study files and search spaces
    ("unknown study", ["sweep=nope"], "sweep=nope is not an option"),
    ("study yaml syntax", ["--config-dir", "{conf}", "sweep={study}"], "{study}"),
    ("study list for mapping", ["--config-dir", "{conf}", "sweep={study_list}"], "In 'sweep/{study_list}': ConfigTypeError raised while composing config: Cannot merge DictConfig with ListConfig"),
    ("space as list", ["sweep=smoke", "sweep.space=[1,2]"], "Error merging override sweep.space=[1,2]"),
    ("space as list, replaced", ["sweep=smoke", "~sweep.space", "+sweep.space=[1,2]"], "sweep.space must be a mapping, got [1, 2]"),
    ("space bound zero", ["sweep=smoke", "sweep.space.lr.log=false", "sweep.space.lr.low=0"], "sweep.space.lr.low=0.0: trainer.learning_rate=0.0 must be a finite number > 0"),
    ("space bound nan", ["sweep=smoke", "sweep.space.epsilon.high=nan"], "sweep.space.epsilon.high=nan: importance_sampling.epsilon=nan"),
    ("space bound inf", ["sweep=smoke", "sweep.space.lr.high=inf"], "sweep.space.lr.high=inf"),
    ("space choice", ["sweep=smoke", "+sweep.space.beta={{key:trainer.beta,choices:[0.0,-1.0]}}"], "sweep.space.beta.choices=-1.0: trainer.beta=-1.0 must be a finite number >= 0"),
    ("space owned key", ["sweep=smoke", "+sweep.space.eps={{key:trainer.epsilon,low:0.1,high:0.2}}"], "sweep.space.eps.key=trainer.epsilon: trainer.epsilon is set by importance_sampling"),
    ("worker index", ["sweep=smoke", "worker=-1"], "worker=-1 must be an integer >= 0"),
    ("worker text", ["sweep=smoke", "worker=abc"], "worker='abc' must be an integer >= 0"),
    ("finalists above the budget", ["sweep=smoke", "sweep.finalists.top=7"], "sweep.finalists.top=7 is more than sweep.n_trials=6"),
    ("finalists on no seed", ["sweep=smoke", "sweep.finalists.top=2", "sweep.finalists.seeds=0"], "sweep.finalists.seeds=0 must be an integer >= 1"),
    ("finalists negative", ["sweep=smoke", "sweep.finalists.top=-1"], "sweep.finalists.top=-1 must be an integer >= 0"),
    ("tuned arms share no parameter", ["-m", "experiment=tuned_comparison", "~sweep.space.lr"], "tuned comparison: the arms' studies (tuned_comparison-token-process, tuned_comparison-sequence-process, tuned_comparison-sequence_token-process) share no parameter of sweep.space"),
    ("study name", ["sweep=smoke", "sweep.name=a/b"], "sweep.name='a/b' must be letters, digits, _ or -"),
    ("study budget", ["sweep=smoke", "sweep.n_trials=abc"], "sweep.n_trials='abc' must be an integer >= 1"),
    ("space choice of an own option", ["--config-dir", "examples/reverse/conf", "sweep=reverse_lr", "+sweep.space.task={{key:reward,choices:[copy,reversee]}}"], "sweep.space.task.choices: 'reversee' is not an option of reward; allowed: addition, chain, copy, gsm8k, reverse"),
    ("password in a bad override", ["sweep=smoke", "sweep.storag=postgresql://u:secret@h/db"], "Could not override 'sweep.storag'. To append to your config use +sweep.storag=postgresql://u:***@h/db"),
    ("study metric", ["sweep=smoke", "sweep.objective.metric=rewrd"], "sweep.objective.metric='rewrd' is not a metric this run logs; did you mean reward?"),
    # GPU presets (DeepSpeed, FSDP, vLLM): refused on the CPU trainer, in clashing pairs, and where they would do nothing
    ("zero2 on CPU", ["parallelism=zero2"], "trainer.deepspeed (parallelism=zero2 or zero3) runs on GPUs only, and trainer.use_cpu=true; add trainer=gpu"),
    ("zero3 on CPU", ["parallelism=zero3"], "trainer.deepspeed (parallelism=zero2 or zero3) runs on GPUs only, and trainer.use_cpu=true; add trainer=gpu"),
    ("fsdp on CPU", ["parallelism=fsdp"], "trainer.fsdp (parallelism=fsdp) runs on GPUs only, and trainer.use_cpu=true; add trainer=gpu"),
    ("vllm colocate on CPU", ["generation=vllm_colocate"], "trainer.use_vllm (generation=vllm_colocate or vllm_server) runs on GPUs only, and trainer.use_cpu=true; add trainer=gpu"),
    ("vllm server on CPU", ["generation=vllm_server", "debug=fast"], "trainer.use_vllm (generation=vllm_colocate or vllm_server) runs on GPUs only"),
    ("gpu trainer back on CPU", ["trainer=gpu", "parallelism=fsdp", "trainer.use_cpu=true"], "trainer.fsdp (parallelism=fsdp) runs on GPUs only"),
    ("deepspeed and fsdp", ["trainer=gpu", "parallelism=zero3", "trainer.fsdp=true"], "trainer.deepspeed and trainer.fsdp are both set"),
    ("fsdp legacy string", ["trainer.fsdp=full_shard"], "trainer.fsdp='full_shard'; allowed: True, False, None"),
    ("fsdp_config without fsdp", ["trainer=gpu", "trainer.fsdp_config={{version:2}}"], "trainer.fsdp_config only applies with trainer.fsdp=true"),
    ("fsdp_config typo", ["trainer=gpu", "parallelism=fsdp", "trainer.fsdp_config.reshard_after_forwad=false"], "trainer.fsdp_config.reshard_after_forwad is not a setting transformers reads; did you mean reshard_after_forward?"),
    ("fsdp checkpointing twice", ["trainer=gpu", "parallelism=fsdp", "trainer.gradient_checkpointing=true"], "FSDP's activation_checkpointing and trainer.gradient_checkpointing=true both checkpoint activations"),
    ("deepspeed file missing", ["trainer=gpu", "trainer.deepspeed={tmp}/nowhere.json"], "trainer.deepspeed={tmp}/nowhere.json cannot be read (No such file or directory)"),
    ("vllm field without vllm", ["trainer.vllm_server_port=9000"], "trainer.vllm_server_port only applies with trainer.use_vllm=true"),
    ("vllm server field with colocate", ["trainer=gpu", "generation=vllm_colocate", "trainer.vllm_server_port=9000"], "trainer.vllm_server_port only applies to trainer.vllm_mode=server, not colocate"),
    ("vllm colocate field with server", ["trainer=gpu", "generation=vllm_server", "trainer.vllm_gpu_memory_utilization=0.5"], "trainer.vllm_gpu_memory_utilization only applies to trainer.vllm_mode=colocate, not server; remove it (the server's own settings are `trl vllm-serve` options)"),
    ("vllm memory share", ["trainer=gpu", "generation=vllm_colocate", "trainer.vllm_gpu_memory_utilization=1.5"], "trainer.vllm_gpu_memory_utilization=1.5 must be a finite number in (0, 1]"),
    ("unknown gpu preset", ["parallelism=zero1"], "parallelism=zero1 is not an option; allowed: fsdp, zero2, zero3"),
]  # fmt: skip
STUDY_FILES = {
    "study": "# @package _global_\ndefaults:\n  - _study\n  - _self_\nsweep:\n  space: {lr: {key: trainer.learning_rate\n",
    "study_list": "# @package _global_\ndefaults:\n  - _study\n  - _self_\nsweep:\n  space:\n    - trainer.learning_rate\n",
}
# Found only once the job runs (datasets and rewards are instantiated before the model is built).
JOB_TIME = [
    ("empty dataset", ["reward.dataset.size=0"], "reward.dataset (harness.tasks.strings.copy_dataset) is empty"),
    ("reward count", ["reward.functions.position_accuracy.fn._target_=tests.bad_rewards.wrong_count"], "reward.functions.position_accuracy (tests.bad_rewards.wrong_count) returned 3 values for 2 completions on call 1"),
    ("reward NaN", ["reward.functions.position_accuracy.fn._target_=tests.bad_rewards.nan_reward"], "reward.functions.position_accuracy (tests.bad_rewards.nan_reward) returned nan for completion 0 on call 1"),
]  # fmt: skip


# One of each kind of refusal through the real CLI: the exit code, stderr, and the imports of a fresh process.
THROUGH_THE_CLI = {
    "unknown option", "unknown flag", "trainer typo", "lr zero", "weight nan", "override syntax", "study yaml syntax",
    "seed in a multirun", "password in a bad override",
}  # fmt: skip
HEAVY = {"torch", "trl", "transformers"}  # a refusal comes before any of them is imported


@pytest.fixture(scope="module")
def user_conf(tmp_path_factory):
    """A user's config directory (`--config-dir`) with broken study files in its sweep/ group; the names to format
    the table with."""
    conf = tmp_path_factory.mktemp("user_conf")
    names = {key: f"zz_test_{key}" for key in STUDY_FILES}
    (conf / "sweep").mkdir()
    for key, name in names.items():
        (conf / "sweep" / f"{name}.yaml").write_text(STUDY_FILES[key])
    return {"conf": conf, **names}


def case_values(tmp_path: Path, user_conf: dict) -> dict:
    (tmp_path / "empty").mkdir()
    return {"tmp": tmp_path, "empty": tmp_path / "empty", **user_conf}


def refuse(run, overrides: list[str], tmp_path: Path, **kwargs) -> subprocess.CompletedProcess:
    """`python -m harness.run OVERRIDES` by `run` (in-process or the real CLI), its outputs under `tmp_path`."""
    run_dir, sweep_dir = tmp_path / "run", tmp_path / "study"
    if any(o.startswith("sweep=") for o in overrides):
        where = [f"sweep.dir={sweep_dir}"]  # a study's run dir is sweep.dir/worker-N
    else:
        where = [f"hydra.run.dir={run_dir}", f"hydra.sweep.dir={tmp_path / 'multi'}"]
    return run("logger=none", *where, *overrides, **kwargs)  # the case's own overrides last: they win


def assert_refused(result: subprocess.CompletedProcess, message: str, tmp_path: Path) -> None:
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2, result.stderr[-3000:]
    assert len(lines) == 1 and lines[0].startswith("harness: error: ") and message in lines[0], result.stderr[-3000:]
    assert "Traceback" not in result.stderr
    assert not any(p.name not in ("empty",) for p in tmp_path.iterdir()), "a refused config leaves nothing behind"


@pytest.mark.parametrize(("overrides", "message"), [c[1:] for c in BAD_INPUTS], ids=[c[0] for c in BAD_INPUTS])
def test_bad_input_fails_early_with_one_line(overrides, message, tmp_path, user_conf):
    values = case_values(tmp_path, user_conf)
    result = refuse(run_in_process, [o.format(**values) for o in overrides], tmp_path)
    assert_refused(result, message.format(**values), tmp_path)


CLI_CASES = [c for c in BAD_INPUTS if c[0] in THROUGH_THE_CLI]


@pytest.mark.parametrize(("overrides", "message"), [c[1:] for c in CLI_CASES], ids=[c[0] for c in CLI_CASES])
def test_bad_input_through_the_cli_exits_2_with_one_line(overrides, message, tmp_path, user_conf):
    # A ConfigError becomes exit code 2 and one stderr line in a real process, which never imports torch.
    values = case_values(tmp_path, user_conf)
    result = refuse(run_cli, [o.format(**values) for o in overrides], tmp_path, env={"PYTHONPROFILEIMPORTTIME": "1"})
    imported, stderr = import_times(result.stderr)
    assert_refused(
        subprocess.CompletedProcess(result.args, result.returncode, "", stderr), message.format(**values), tmp_path
    )
    assert "harness.cli.preflight" in imported and not HEAVY & imported


def import_times(stderr: str) -> tuple[set[str], str]:
    """The modules `python -X importtime` reported on stderr, and the rest of stderr."""
    imports = [line for line in stderr.splitlines() if line.startswith("import time:")]
    rest = [line for line in stderr.splitlines() if not line.startswith("import time:")]
    return {line.rpartition("|")[2].strip() for line in imports}, "\n".join(rest)


@pytest.mark.parametrize(("overrides", "message"), [c[1:] for c in JOB_TIME], ids=[c[0] for c in JOB_TIME])
def test_bad_input_found_by_the_job_fails_with_one_line(overrides, message, tmp_path):
    assert_refused(refuse(run_in_process, overrides, tmp_path), message, tmp_path)
    assert not (tmp_path / "run" / "initial_model").exists()


def test_in_process_runs_leave_no_global_state(tmp_path):
    # A job-time refusal has run all of it: preflight, Hydra's run (logging, HydraConfig), the job (signal handlers).
    state = [sys.argv[:], os.getcwd(), dict(os.environ), signal.getsignal(signal.SIGINT), logging.getLogRecordFactory()]
    root = logging.getLogger()
    handlers, resolvers = root.handlers[:], set(BaseContainer._resolvers)
    result = refuse(run_in_process, JOB_TIME[0][1], tmp_path, env={"HARNESS_TEST_VARIABLE": "1"})
    assert result.returncode == 2 and JOB_TIME[0][2] in result.stderr
    assert [
        sys.argv,
        os.getcwd(),
        dict(os.environ),
        signal.getsignal(signal.SIGINT),
        logging.getLogRecordFactory(),
    ] == state
    assert root.handlers == handlers and set(BaseContainer._resolvers) == resolvers
    assert not GlobalHydra.instance().is_initialized()


@pytest.mark.e2e
def test_bad_input_found_by_the_job_through_the_cli(tmp_path):
    # Hydra has created the run directory and started the job (torch imported) when the reward returns NaN.
    (_, overrides, message), *_ = [c for c in JOB_TIME if c[0] == "reward NaN"]
    assert_refused(refuse(run_cli, overrides, tmp_path), message, tmp_path)


def test_bad_input_table_is_large_enough():
    assert len(BAD_INPUTS) + len(JOB_TIME) >= 50
    assert len({c[0] for c in BAD_INPUTS + JOB_TIME}) == len(BAD_INPUTS) + len(JOB_TIME)
    assert len(CLI_CASES) == len(THROUGH_THE_CLI)  # every case named there exists


def test_cfg_job_accepts_any_grpo_field():
    # Through the real CLI, which imports no torch for `--cfg job`.
    result = run_cli(
        "--cfg", "job", "trainer.bf16=false", "trainer.cast_lm_head_to_fp32=true", env={"PYTHONPROFILEIMPORTTIME": "1"}
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "bf16: false" in result.stdout and "cast_lm_head_to_fp32: true" in result.stdout
    imported, _ = import_times(result.stderr)
    assert "hydra" in imported and not HEAVY & imported


def test_checking_a_command_line_imports_no_torch():
    # `--cfg job` and every refusal above stay fast: the typed layer reads trl's fields from a table.
    code = (
        "import sys; from harness.cli.preflight import preflight; preflight(['trainer.bf16=false']); "
        "heavy = {'torch', 'trl', 'transformers'} & set(sys.modules); assert not heavy, heavy"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
