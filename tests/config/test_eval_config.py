"""The `eval` group's refusals (one line, exit 2, nothing left behind) and the GRPOConfig evaluation fields."""

import pytest

from harness.config import trainer_fields
from harness.config.evaluation import TRAINER_EVAL_FIELDS, evaluates
from harness.config.metrics import logged_metrics
from harness.config.schema import ConfigError
from harness.training.build import grpo_kwargs
from tests.config.test_config import assert_refused, refuse
from tests.conftest import parse_config
from tests.in_process import run_in_process

BAD_EVAL = [
    ("size-0", ["eval.size=0"], "eval.size=0 must be an integer > 0"),
    ("size-negative", ["eval.size=-3"], "eval.size=-3 must be an integer > 0"),
    ("size-above-split", ["eval.size=30"], "eval.size=30 is larger than the held-out split of reward=copy (29 "),
    ("size-above-addition", ["reward=addition", "eval.size=5000"], "held-out split of reward=addition (1243 "),
    ("k-above-samples", ["eval.samples=4"], "eval.k[2]=8 must be in [1, eval.samples=4]"),
    ("k-zero", ["eval.k=[0,2]"], "eval.k[0]=0 must be in [1, eval.samples=8]"),
    ("k-not-a-list", ["eval.k=4"], "eval.k=4 must be a list"),
    ("k-repeated", ["eval.k=[2,2]"], "eval.k=[2, 2] repeats a value"),
    ("k-string", ["eval.k=[a]"], "eval.k[0]='a' must be an integer"),
    ("samples-0", ["eval.samples=0"], "eval.samples=0 must be an integer > 0"),
    ("every-0", ["eval.every=0"], "eval.every=0 must be an integer > 0"),
    ("enabled-not-bool", ["eval.enabled=maybe"], "eval.enabled='maybe' must be true or false"),
    ("typo", ["+eval.evry=3"], "eval.evry is not a config key"),
    ("objective-eval-off", ["eval.enabled=false", "objective.metric=eval/greedy/reward"],
     "objective.metric=eval/greedy/reward is a held-out metric but evaluation is off (eval.enabled=false)"),
    ("objective-no-split", ["reward.eval_dataset=null", "objective.metric=eval/pass@4"],
     "objective.metric=eval/pass@4 is a held-out metric but reward=copy has no reward.eval_dataset"),
    ("objective-k-not-drawn", ["objective.metric=eval/pass@3"], "objective.metric='eval/pass@3' is not a metric"),
    ("trainer-eval-strategy", ["trainer.eval_strategy=steps"], "trainer.eval_strategy is set by eval (eval.enabled"),
    ("trainer-eval-steps", ["trainer.eval_steps=5"], "trainer.eval_steps is set by eval (eval.every=N)"),
    ("trainer-eval-batch", ["trainer.per_device_eval_batch_size=4"], "set by eval (eval.batch_size=N"),
    ("trainer-eval-on-start", ["trainer.eval_on_start=true"], "trainer.eval_on_start belongs to transformers'"),
    ("trainer-eval-accumulation", ["trainer.eval_accumulation_steps=2"], "trainer.eval_accumulation_steps belongs"),
]  # fmt: skip


@pytest.mark.parametrize(("overrides", "message"), [c[1:] for c in BAD_EVAL], ids=[c[0] for c in BAD_EVAL])
def test_bad_eval_input_fails_early_with_one_line(overrides, message, tmp_path):
    assert_refused(refuse(run_in_process, overrides, tmp_path), message, tmp_path)


def test_eval_dataset_without_prompt_is_refused_before_the_model_is_built(tmp_path):
    overrides = ["reward.eval_dataset._target_=tests.eval_datasets.rows_without_prompt"]
    assert_refused(refuse(run_in_process, overrides, tmp_path), "reward.eval_dataset (tests.eval_datasets", tmp_path)


def test_every_eval_field_of_grpoconfig_is_handled():
    fields = trainer_fields.load()
    assert set(TRAINER_EVAL_FIELDS) <= set(fields)
    # every GRPOConfig field about evaluation is in the table (do_eval, eval_*, *_eval, *_eval_*, best model)
    about_eval = {name for name in fields if "eval" in name.split("_") or name.startswith("eval_")}
    assert about_eval <= set(TRAINER_EVAL_FIELDS), about_eval - set(TRAINER_EVAL_FIELDS)
    for name in TRAINER_EVAL_FIELDS:
        with pytest.raises(ConfigError, match=f"trainer.{name} "):
            parse_config(f"trainer.{name}={fields[name].default!r}".replace("'", ""))


def test_evaluation_sets_transformers_schedule(tmp_path):
    on, off = parse_config("eval.every=7"), parse_config("eval.enabled=false")
    assert evaluates(on) and not evaluates(off)
    assert grpo_kwargs(on, tmp_path).items() >= {"eval_strategy": "steps", "eval_steps": 7}.items()
    assert grpo_kwargs(off, tmp_path)["eval_strategy"] == "no"
    assert {"eval/greedy/reward", "eval/pass@1", "eval/pass@4", "eval/pass@8"} <= logged_metrics(on)
    assert not any(key.startswith("eval/") for key in logged_metrics(off))
