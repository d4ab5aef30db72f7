"""Anything raised while a job is built — by trl's and transformers' config objects, the tokenizer, the model, the
dataset, a reward's pre-flight call — is one line naming the cause and its key, exit 2, and no run directory left
(not even Hydra's `.hydra/` and `run.log`); what the typed config can tell is refused before Hydra starts."""

from __future__ import annotations

import json
import shutil

import pytest

from tests.conftest import run_cli
from tests.faults import the_line
from tests.in_process import run_in_process

# Found while the job is built (the real CLI, torch imported): (overrides, the line's expected part).
AT_BUILD = [
    ("logging_steps not whole", ["trainer.logging_steps=1.5"],
     "harness: error: trainer.logging_steps=1.5: trl's GRPOConfig refused the trainer settings: --logging_steps must "
     "be an integer if bigger than 1: 1.5"),
    ("reward raises on its pre-flight call", ["reward.functions.position_accuracy.fn._target_=tests.bad_rewards.raises_on_first_call"],
     "harness: error: reward.functions.position_accuracy (tests.bad_rewards.raises_on_first_call) raised RuntimeError "
     "on call 1: the scoring service is down"),
    ("token reward raises on its pre-flight call", ["reward.token_function._target_=tests.bad_rewards.token_raises_on_first_call"],
     "harness: error: reward.token_function (tests.bad_rewards.token_raises_on_first_call) raised KeyError on call 1"),
    ("dataset cannot fill one batch", ["trainer.per_device_train_batch_size=1000"],
     "harness: error: reward.dataset of reward=copy has 64 rows but one generation batch takes 500 distinct prompts "
     "(trainer.per_device_train_batch_size=1000 x 1 process(es) x trainer.steps_per_generation=2 = 2000 completions / "
     "trainer.num_generations=4): the run would train 0 steps"),
]  # fmt: skip


@pytest.mark.parametrize("overrides, line", [c[1:] for c in AT_BUILD], ids=[c[0] for c in AT_BUILD])
def test_a_job_that_cannot_be_built_is_one_line_and_leaves_nothing(tmp_path, overrides, line):
    run_dir = tmp_path / "run"
    # In this process (harness.run's own __main__, tests/in_process.py): torch is imported once for the table.
    result = run_in_process("debug=fast", "logger=none", *overrides, f"hydra.run.dir={run_dir}")
    assert result.returncode == 2, result.stderr[-3000:]
    assert the_line(result).startswith(line)
    assert not run_dir.exists()  # no .hydra/, run.log, initial_model/


@pytest.mark.parametrize(
    "damage, where",
    [
        ("{not json", "harness: error: model.path={}: loading the tokenizer: "),
        (json.dumps({"model_type": "no_such_architecture"}), "harness: error: model.path={}: loading the model: "),
    ],
    ids=["config.json not JSON", "config.json of an unknown architecture"],
)
def test_a_damaged_model_directory_is_one_line(tmp_path, tiny_model_dir, damage, where):
    model = tmp_path / "model"
    shutil.copytree(tiny_model_dir, model)
    (model / "config.json").write_text(damage)
    run_dir = tmp_path / "run"
    result = run_in_process(
        "debug=fast", "logger=none", "model=local", f"model.path={model}", f"hydra.run.dir={run_dir}"
    )
    assert result.returncode == 2, result.stderr[-3000:]
    assert the_line(result).startswith(where.format(model))
    assert not run_dir.exists()


def test_a_multirun_is_refused_before_its_first_job_when_a_later_job_cannot_be_built(tmp_path):
    # trl's GRPOConfig is built for every job before the first starts: job 1's setting fails the multirun at once.
    # Through a real process: the one case of this file that goes through the interpreter's own exit.
    sweep_dir = tmp_path / "multirun"
    result = run_cli(
        "-m", "debug=fast", "logger=none", "trainer.torch_empty_cache_steps=5,0", f"hydra.sweep.dir={sweep_dir}"
    )
    assert result.returncode == 2, result.stderr[-3000:]
    line = the_line(result)
    assert line.startswith("harness: error: job 1 (debug=fast logger=none trainer.torch_empty_cache_steps=0): "), line
    assert "`torch_empty_cache_steps` must be an integer bigger than 0, got 0" in line
    assert not sweep_dir.exists()


# Refused before Hydra starts (the typed config mirrors trl's and transformers' rules; dead settings; duplicates;
# the key Hydra would advise a `+` for), through harness.run's own __main__: (overrides, the line).
BEFORE_HYDRA = [
    (["trainer.bf16=true", "trainer.fp16=true"], "trainer.bf16=true and trainer.fp16=true: at most one of them"),
    (["trainer.steps_per_generation=3", "trainer.generation_batch_size=16"],
     "trainer.steps_per_generation and trainer.generation_batch_size cannot both be set"),
    (["trainer.use_liger_kernel=true"], "trainer.use_liger_kernel=true needs liger-kernel, which is not installed"),
    (["trainer.save_steps=1"], "trainer.save_steps=1 has no effect with trainer.save_strategy=no"),
    (["trainer.vllm_mode=colocate"], "trainer.vllm_mode=colocate has no effect with trainer.use_vllm=false"),
    (["trainer.top_entropy_quantile=1.5"], "trainer.top_entropy_quantile=1.5 must be a finite number in [0, 1]"),
    (["trainer.resume_from_checkpoint=outputs/x"], "trainer.resume_from_checkpoint=outputs/x has no effect: "),
    (["sweep=smoke", "sweep.heartbeat_interval=5"],
     "sweep.heartbeat_interval=5 has no effect with a journal file (sweep.storage=null)"),
    (["sweep=smoke", "sweep.hold_connection=true"], "sweep.hold_connection=true has no effect with a journal file"),
    (["sweep=smoke", "sweep.grace_period=30"], "sweep.grace_period=30 has no effect with a journal file"),
    (["sweep=smoke", "sweep.pruner.name=none", "+sweep.pruner.n_warmup_steps=4"],
     "sweep.pruner.n_warmup_steps=4 has no effect with sweep.pruner.name=none"),
    (["sweep=smoke", "sweep.pruner.name=none", "sweep.pruner.n_warmup_steps=4"],  # no "+" advice from Hydra
     "sweep.pruner.n_warmup_steps=4 has no effect with sweep.pruner.name=none"),
    (["-m", "seed=0,0"], "the multirun runs the same job twice: job 0 (debug=fast logger=none seed=0) and job 1"),
    (["-m", "trainer.temperature=1,1.0"], "the multirun runs the same job twice: job 0 (debug=fast logger=none "
     "trainer.temperature=1) and job 1 (debug=fast logger=none trainer.temperature=1.0)"),
    (["-m", "sweep=smoke", "worker=0,0"], "the multirun runs the same job twice"),
    (["logger=none", "logger.project=x"], "logger.project only applies to logger=wandb; remove it"),
    (["advantage=outcome", "advantage.gamma=0.9"], "advantage.gamma only applies to advantage.estimator=process"),
    (["model=local", "model.path=.", "model.hidden_size=3"], "model.hidden_size only applies to model.source=tiny"),
]  # fmt: skip


@pytest.mark.parametrize("overrides, message", BEFORE_HYDRA, ids=[" ".join(c[0]) for c in BEFORE_HYDRA])
def test_refused_before_hydra_starts(tmp_path, overrides, message):
    flags = [o for o in overrides if o == "-m"]
    rest = [o for o in overrides if o != "-m"]
    args = [*flags, "debug=fast", "logger=none", *rest, f"hydra.run.dir={tmp_path}/run"]
    if "sweep=smoke" in rest:
        args = [*flags, "logger=none", *rest, f"sweep.dir={tmp_path}/study"]
    result = run_in_process(*args, cwd=tmp_path)
    assert result.returncode == 2, result.stderr[-3000:]
    line = the_line(result)
    assert message in line and "+" + message.split("=")[0] not in line, line
    assert "To append to your config" not in line
    assert list(tmp_path.iterdir()) == []


def test_a_used_directory_names_the_setting_that_chose_it(tmp_path):
    # A sweep dir with an earlier multirun: refused before Hydra overwrites its multirun.yaml.
    used = tmp_path / "used"
    used.mkdir()
    (used / "multirun.yaml").write_text("hydra: {}\n")
    result = run_in_process("-m", "debug=fast", "logger=none", "seed=0,1", f"hydra.sweep.dir={used}", cwd=tmp_path)
    assert result.returncode == 2
    assert "choose another hydra.sweep.dir" in the_line(result)
    # A job directory of the sweep holds a run (no multirun.yaml): the job refuses it, naming hydra.sweep.dir.
    (used / "multirun.yaml").unlink()
    job = used / "0-copy-sequence_token-process-s0"
    job.mkdir()
    (job / "metrics.jsonl").write_text('{"step": 2, "reward": 0.5}\n')
    result = run_in_process("-m", "debug=fast", "logger=none", "seed=0", f"hydra.sweep.dir={used}")
    assert result.returncode == 2, result.stderr[-3000:]
    line = the_line(result)
    assert (
        line
        == f"harness: error: {job} already holds a run (metrics.jsonl); choose another hydra.sweep.dir or move it away"
    )
    assert (job / "metrics.jsonl").read_text() == '{"step": 2, "reward": 0.5}\n'  # the earlier run untouched
