"""Registered estimators through the real HarnessGRPOTrainer: `outcome` is trl's advantage exactly, the trainer
provides what an estimator needs (entropies), and a broken estimator fails loudly."""

import dataclasses

import pytest
import torch

from harness.config.estimators import Estimator
from harness.config.registry import ENTROPIES, Configured
from harness.training.build import build_trainer
from tests.conftest import parse_config
from tests.training.test_process_supervision import generate, generation_batch

pytestmark = pytest.mark.e2e


@dataclasses.dataclass(frozen=True, kw_only=True)
class NoParams:
    """(a test entry)"""


def probe(compute, **fields) -> Configured:
    return Configured(
        Estimator(name="probe", description="a test estimator", params=NoParams, compute=compute, **fields), NoParams()
    )


@pytest.fixture(scope="module")
def trainer(tmp_path_factory):
    trainer = build_trainer(
        parse_config("debug=fast", "logger=none", "advantage=outcome"), tmp_path_factory.mktemp("t"), []
    )
    trainer.model.train()
    return trainer


def test_outcome_is_trls_advantage_exactly(trainer):
    batch = generation_batch(trainer)
    configured = trainer.estimator
    assert configured.name == "outcome" and trainer.token_reward is None
    ours = generate(trainer, batch)
    ours_stats = trainer.last_advantages
    trainer.estimator = None  # trl's own advantage, on the same completions
    try:
        theirs = generate(trainer, batch)
    finally:
        trainer.estimator = configured
    assert torch.equal(ours["completion_ids"], theirs["completion_ids"])
    assert theirs["advantages"].abs().max() > 0.1, "the batch must carry a signal"
    assert ours["advantages"].shape == theirs["advantages"].shape == (len(batch),)  # trl's (B,): its metrics agree
    assert torch.equal(ours["advantages"], theirs["advantages"])
    assert torch.equal(ours_stats[0], trainer.last_advantages[0])


def test_an_estimator_that_needs_entropies_gets_the_sampling_policys(trainer):
    batch = generation_batch(trainer)
    configured = trainer.estimator
    trainer.estimator = probe(lambda b: b.entropies * b.mask, needs=frozenset({ENTROPIES}))
    try:
        output = generate(trainer, batch, seed=1)
    finally:
        trainer.estimator = configured
    ids = torch.cat([output["prompt_ids"], output["completion_ids"]], dim=1)
    attention = torch.cat([output["prompt_mask"], output["completion_mask"]], dim=1)
    length = output["completion_ids"].shape[1]
    with torch.no_grad():  # the entropy of the temperature-scaled next-token distribution, written out
        logits = trainer.model(input_ids=ids, attention_mask=attention).logits[:, -length - 1 : -1]
        logp = torch.log_softmax(logits.float() / trainer.temperature, dim=-1)
        expected = -(logp.exp() * logp).sum(-1) * output["completion_mask"]
    assert expected.max() > 0.1
    torch.testing.assert_close(output["advantages"], expected, rtol=1e-5, atol=1e-5)


def test_a_per_sequence_estimator_that_varies_along_a_row_is_an_error(trainer):
    configured = trainer.estimator
    trainer.estimator = probe(lambda b: torch.randn(b.mask.shape), per_sequence=True)
    try:
        with pytest.raises(ValueError, match="advantage.estimator=probe is declared per-sequence but its advantage"):
            generate(trainer, generation_batch(trainer))
        trainer.estimator = probe(lambda b: b.advantages)
        with pytest.raises(ValueError, match=r"advantage.estimator=probe returned shape \(16,\); expected \(N, T\)"):
            generate(trainer, generation_batch(trainer))
    finally:
        trainer.estimator = configured
