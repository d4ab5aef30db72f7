"""The credit estimators (entropy_bonus, gtpo, ktae) through the real HarnessGRPOTrainer on an outcome-only task
(`reward=copy reward.token_function=null`): shaping off is trl's advantage exactly, shaping on makes GSPO-token's
gradient differ from GSPO's, the entropies come from trl's own old-log-prob pass when it runs, and a tiny run trains.
"""

import math

import pytest
import torch

from harness.config.metrics import logged_metrics
from harness.config.validate import parse
from harness.training.build import build_trainer
from harness.training.job import run_job
from tests.conftest import compose_config, parse_config
from tests.training.test_loss_invariants import loss_and_grad, relative
from tests.training.test_process_supervision import generate, generation_batch
from tests.training.test_runs import read_metrics, weights

pytestmark = pytest.mark.e2e

OUTCOME_ONLY = ("reward=copy", "reward.token_function=null", "debug=fast", "logger=none")
# The tiny random policy's entropy is near log(vocab) on every token: at alpha = 0.4 the clip |A|/kappa binds
# everywhere, the bonus is a per-sequence constant and GSPO-token computes GSPO's gradient exactly (measured: relative
# difference 0). At alpha = 0.05 the clip does not bind, but the entropy barely varies: spread ~4e-4, gradient
# difference ~3e-4, against ~2e-7 with the shaping off.
SHAPING_ON = {"entropy_bonus": ["advantage.alpha=0.05"], "gtpo": [], "ktae": [], "mc_value": ["advantage.rollouts=2"]}
SHAPING_OFF = {
    "entropy_bonus": ["advantage.alpha=0"],
    "gtpo": ["advantage.alpha2=0", "advantage.normalisation=outcome"],
    "ktae": ["advantage.h1=0", "advantage.h2=0"],
}


def configured(name: str, *overrides: str):
    return parse_config(*OUTCOME_ONLY, f"advantage={name}", *overrides).advantage.configured


@pytest.fixture(scope="module")
def trainers(tmp_path_factory):
    built = {}
    for level in ("sequence", "sequence_token"):
        run = parse_config(*OUTCOME_ONLY, "advantage=outcome", f"importance_sampling={level}")
        trainer = build_trainer(run, tmp_path_factory.mktemp(level), [])
        trainer.model.train()
        trainer.current_gradient_accumulation_steps = 1  # set by the training loop; we call the loss directly
        built[level] = trainer
    return built


def with_estimator(trainer, estimator, batch, seed=0):
    kept = trainer.estimator
    trainer.estimator = estimator
    try:
        return generate(trainer, batch, seed)
    finally:
        trainer.estimator = kept


@pytest.mark.parametrize("name", list(SHAPING_OFF))
def test_shaping_off_is_trls_outcome_advantage_exactly(trainers, name):
    trainer = trainers["sequence_token"]
    batch = generation_batch(trainer, prompts=8)
    ours = with_estimator(trainer, configured(name, *SHAPING_OFF[name]), batch)
    theirs = with_estimator(trainer, None, batch)
    assert torch.equal(ours["completion_ids"], theirs["completion_ids"])
    assert theirs["advantages"].abs().max() > 0.1, "the batch must carry a signal"
    mask = ours["completion_mask"].float()
    assert torch.equal(ours["advantages"], theirs["advantages"].unsqueeze(1) * mask)


@pytest.mark.parametrize("name", list(SHAPING_ON))
def test_shaping_on_makes_gspo_token_differ_from_gspo(trainers, name):
    batch = generation_batch(trainers["sequence_token"], prompts=8)
    output = with_estimator(trainers["sequence_token"], configured(name, *SHAPING_ON[name]), batch)
    advantages, mask = output["advantages"], output["completion_mask"].bool()
    assert advantages.shape == mask.shape
    spread = [row[valid].std(unbiased=False).item() for row, valid in zip(advantages, mask)]
    assert max(spread) > 1e-4, "advantages must vary within some sequence"
    _, grad_seq = loss_and_grad(trainers["sequence"], "grpo", output)
    _, grad_tok = loss_and_grad(trainers["sequence_token"], "grpo", output)
    assert grad_seq.norm() > 0
    assert relative(grad_tok, grad_seq) > 1e-4
    if name not in SHAPING_OFF:  # mc_value has no shaping to switch off
        return
    # The same completions with the shaping off: one advantage per sequence, GSPO-token computes GSPO's gradient.
    off = with_estimator(trainers["sequence_token"], configured(name, *SHAPING_OFF[name]), batch)
    _, grad_seq = loss_and_grad(trainers["sequence"], "grpo", off)
    _, grad_tok = loss_and_grad(trainers["sequence_token"], "grpo", off)
    assert relative(grad_tok, grad_seq) <= 1e-5


def forward_calls(trainer, estimator, batch) -> tuple[int, dict]:
    calls = []
    handle = trainer.model.register_forward_pre_hook(lambda module, args: calls.append(1))
    try:
        output = with_estimator(trainer, estimator, batch)
    finally:
        handle.remove()
    return len(calls), output


def test_entropies_come_from_trls_old_logprob_pass_without_an_extra_forward(trainers):
    trainer = trainers["sequence_token"]
    assert trainer._trl_scores_old_logps()  # debug=fast: steps_per_generation 2 > gradient_accumulation_steps 1
    batch = generation_batch(trainer, prompts=8)
    baseline, _ = forward_calls(trainer, None, batch)
    with_entropies, output = forward_calls(trainer, configured("gtpo"), batch)
    assert with_entropies == baseline
    assert output["advantages"].abs().max() > 0


def test_on_policy_runs_pay_one_extra_forward_for_the_same_entropies(tmp_path):
    run = parse_config(*OUTCOME_ONLY, "advantage=outcome", "trainer.steps_per_generation=1")
    trainer = build_trainer(run, tmp_path, [])
    trainer.model.train()
    assert not trainer._trl_scores_old_logps()
    batch = generation_batch(trainer, prompts=2)
    probe = configured("entropy_bonus")
    seen = {}
    original = trainer._sampling_entropies

    def record(output):
        seen["entropies"] = original(output)
        return seen["entropies"]

    trainer._sampling_entropies = record
    baseline, _ = forward_calls(trainer, None, batch)
    extra, output = forward_calls(trainer, probe, batch)
    assert extra > baseline
    ids = torch.cat([output["prompt_ids"], output["completion_ids"]], dim=1)
    attention = torch.cat([output["prompt_mask"], output["completion_mask"]], dim=1)
    length = output["completion_ids"].shape[1]
    with torch.no_grad():  # the entropy of the temperature-scaled next-token distribution, written out
        logits = trainer.model(input_ids=ids, attention_mask=attention).logits[:, -length - 1 : -1]
        logp = torch.log_softmax(logits.float() / trainer.temperature, dim=-1)
        expected = -(logp.exp() * logp).sum(-1)
    mask = output["completion_mask"].bool()
    torch.testing.assert_close(seen["entropies"][mask], expected[mask], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("name", list(SHAPING_ON))
def test_tiny_outcome_only_run_trains_with_per_token_credit(name, tmp_path):
    cfg = compose_config(*OUTCOME_ONLY, f"advantage={name}", "importance_sampling=sequence_token", *SHAPING_ON[name])
    metrics = logged_metrics(parse(cfg))
    objective = run_job(cfg, tmp_path, group="test")
    assert math.isfinite(objective)
    before, after = weights(tmp_path / "initial_model"), weights(tmp_path / "final_model")
    assert any(not torch.equal(before[k], after[k]) for k in before), "no parameter changed"
    records = [r for r in read_metrics(tmp_path) if "reward" in r]
    assert any(r["adv/within_seq_std"] > 0 for r in records), "GSPO-token equals GSPO without within-sequence spread"
    logged = set().union(*map(set, read_metrics(tmp_path))) - {"step", "adv/histogram"}
    assert logged == metrics
