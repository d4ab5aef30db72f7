"""The dead-settings table (harness/config/dependent_fields.py) against the installed trl: every field that trl's own
help text ties to another field in a conditional sentence, and every field of a switch's family, is covered; the
table's rules refuse a dependent field whose switch is off and accept it when it is on."""

from __future__ import annotations

import dataclasses
import re

import pytest

from harness.config import dependent_fields as dead
from harness.config import trainer_fields
from harness.config.schema import ConfigError
from tests.conftest import parse_config

CONDITIONAL = re.compile(r"\b(only|ignored|if|when|unless|requires?|applies|no effect|enabled|disabled)\b", re.I)
# A switch and the fields named after it: `vllm_*` means nothing without use_vllm, `save_*` without a save strategy.
FAMILIES = (
    "vllm_", "save_", "hub_", "eval_", "torch_compile_", "ref_model_", "fsdp_", "gradient_checkpointing_",
    "activation_checkpointing_", "liger_", "dataloader_", "trackio_", "sapo_", "vespo_", "entropy_coef_", "logging_",
    "log_completions_", "transformers_continuous_batching_",
)  # fmt: skip
COVERED = {**dead.RULES, **dead.ALWAYS_DEAD, **dead.ELSEWHERE, **dead.REVIEWED}


def dependent_by_trl() -> set[str]:
    """GRPOConfig fields whose effect trl and transformers tie to another setting: their help text names another
    field in a conditional sentence, or their name puts them in a switch's family."""
    from trl import GRPOConfig

    fields = [f.name for f in dataclasses.fields(GRPOConfig)]
    found = {name for name in fields if name.startswith(FAMILIES)}
    for f in dataclasses.fields(GRPOConfig):
        for sentence in re.split(r"(?<=[.;])\s+", " ".join(str(f.metadata.get("help", "")).split())):
            if CONDITIONAL.search(sentence) and any(
                re.search(rf"(?<![A-Za-z0-9_]){other}(?![A-Za-z0-9_])", sentence) for other in fields if other != f.name
            ):
                found.add(f.name)
    return found


def test_every_field_trl_ties_to_another_setting_is_covered():
    # A trl upgrade that adds such a field fails here: put it in RULES (refused when dead), ALWAYS_DEAD, ELSEWHERE or
    # REVIEWED (with the reason it is not refused).
    missing = sorted(dependent_by_trl() - set(COVERED))
    assert not missing, f"GRPOConfig fields tied to another setting but not in dependent_fields: {missing}"


def test_the_table_names_real_fields_once():
    fields = trainer_fields.load()
    tables = [dead.RULES, dead.ALWAYS_DEAD, dead.ELSEWHERE, dead.REVIEWED]
    assert sum(map(len, tables)) == len(COVERED), "a field is in two of the tables"
    assert set(COVERED) <= set(fields), sorted(set(COVERED) - set(fields))
    for name, needs in dead.RULES.items():
        assert "." in needs.key or needs.key in fields, (name, needs.key)


# (a dependent setting, its switch's value that makes it count, the message when the switch is off)
CASES = [
    ("trainer.save_steps=1", "trainer.save_strategy=steps",
     "trainer.save_steps=1 has no effect with trainer.save_strategy=no: it applies only when trainer.save_strategy "
     "is steps; remove it (~trainer.save_steps drops a preset's value) or change trainer.save_strategy"),
    ("trainer.vllm_mode=colocate", None,
     "trainer.vllm_mode=colocate has no effect with trainer.use_vllm=false: it applies only when trainer.use_vllm "
     "is true"),
    ("trainer.ref_model_sync_steps=4", "trainer.beta=0.1 trainer.sync_ref_model=true",
     "trainer.ref_model_sync_steps=4 has no effect with trainer.sync_ref_model=false"),
    ("trainer.sync_ref_model=true", "trainer.beta=0.1", "trainer.sync_ref_model=true has no effect with trainer.beta=0.0"),
    ("trainer.delta=2.0", "importance_sampling.loss_type=dapo",
     "trainer.delta=2.0 has no effect with importance_sampling.loss_type=sapo"),
    ("trainer.entropy_target=0.5", "trainer.use_adaptive_entropy=true",
     "trainer.entropy_target=0.5 has no effect with trainer.use_adaptive_entropy=false"),
    ("trainer.dataloader_prefetch_factor=2", "trainer.dataloader_num_workers=1",
     "trainer.dataloader_prefetch_factor=2 has no effect with trainer.dataloader_num_workers=0"),
    ("trainer.multi_objective_aggregation=normalize_then_sum", None,
     "trainer.multi_objective_aggregation=normalize_then_sum has no effect with 1 reward function(s)"),
    ("trainer.logging_strategy=epoch", None, "trainer.logging_steps=2 has no effect with trainer.logging_strategy=epoch"),
    ("trainer.resume_from_checkpoint=/tmp/x", None, "trainer.resume_from_checkpoint=/tmp/x has no effect: "),
    ("trainer.num_train_epochs=3", None, "trainer.num_train_epochs=3 has no effect: trainer.max_steps"),
    ("trainer.run_name=x", None, "trainer.run_name=x has no effect: "),
]  # fmt: skip


@pytest.mark.parametrize("setting, switch, message", CASES, ids=[c[0] for c in CASES])
def test_a_dead_setting_is_refused_and_a_live_one_accepted(setting, switch, message):
    extra = ["importance_sampling.loss_type=sapo"] if "delta" in setting else []
    with pytest.raises(ConfigError, match="^" + re.escape(message)):
        parse_config("debug=fast", *extra, *setting.split())
    if switch is not None:
        parse_config("debug=fast", *setting.split(), *switch.split())


def test_the_shipped_defaults_hold_no_dead_setting():
    parse_config()
    parse_config("debug=fast")
    parse_config("debug=fast", "trainer.logging_strategy=epoch", "~trainer.logging_steps")
