"""`adv/credit_corr` through the real HarnessGRPOTrainer: the rank correlation, within each completion, between the
advantages the loss sees and the process advantages of the task's reference token rewards (`reward.credit_reference`),
logged whatever the run trains on, also with `reward.token_function=null`. Checked against scipy's Spearman rho on a
process advantage written out in the test.
"""

import math

import pytest
import torch
from scipy.stats import spearmanr

from harness.training.build import build_trainer
from tests.conftest import parse_config
from tests.training.test_process_supervision import generate, generation_batch

pytestmark = pytest.mark.e2e


def reference_process_advantages(token_rewards, mask, group, to_the_end=True):
    """DeepSeekMath's process advantage, dense rewards, written as loops: normalise each group's token rewards by
    their mean and unbiased std (+1e-4), then sum the normalised rewards at and after each token (`to_the_end`;
    else each token keeps its own normalised reward: `adv/credit_corr_step`'s reference)."""
    out = torch.zeros_like(token_rewards, dtype=torch.float64)
    for start in range(0, token_rewards.shape[0], group):
        values = [
            float(token_rewards[i, t])
            for i in range(start, start + group)
            for t in range(token_rewards.shape[1])
            if mask[i, t]
        ]
        mean = sum(values) / len(values)
        std = math.sqrt(sum((v - mean) ** 2 for v in values) / max(len(values) - 1, 1))
        for i in range(start, start + group):
            running = 0.0
            for t in reversed(range(token_rewards.shape[1])):
                if mask[i, t]:
                    own = (float(token_rewards[i, t]) - mean) / (std + 1e-4)
                    running = running + own if to_the_end else own
                    out[i, t] = running
    return out


def expected_corr(advantages, reference, mask):
    rhos = []
    for a_row, r_row, m_row in zip(advantages.tolist(), reference.tolist(), mask.tolist()):
        a = [v for v, m in zip(a_row, m_row) if m]
        r = [v for v, m in zip(r_row, m_row) if m]
        if len(a) >= 2 and len(set(a)) > 1 and len(set(r)) > 1:
            rhos.append(spearmanr(a, r).statistic)
    return sum(rhos) / len(rhos), len(rhos)


def copy_rewards(trainer, output, batch):
    """The copy task's token rewards, written out: 1 where the token is the target's character at its position
    (then the end-of-sequence token)."""
    tokenizer = trainer.processing_class
    ids, mask = output["completion_ids"], output["completion_mask"]
    rewards = torch.zeros(ids.shape)
    for row, example in enumerate(batch):
        expected = [*example["target"], tokenizer.eos_token]
        tokens = tokenizer.convert_ids_to_tokens(ids[row][mask[row].bool()].tolist())
        for t, token in enumerate(tokens):
            rewards[row, t] = float(t < len(expected) and token == expected[t])
    return rewards


@pytest.mark.parametrize("advantage", ["ktae", "gtpo", "process"])
def test_credit_corr_is_spearman_against_the_tasks_process_advantage(tmp_path, advantage):
    token_function = [] if advantage == "process" else ["reward.token_function=null"]
    run = parse_config("reward=copy", *token_function, f"advantage={advantage}", "debug=fast", "logger=none")
    trainer = build_trainer(run, tmp_path, [])
    assert trainer.credit_reference is not None
    trainer.model.train()
    batch = generation_batch(trainer, prompts=8)
    trainer.metric_window.flush()
    output = generate(trainer, batch)
    logged = trainer.metric_window.flush()
    mask = output["completion_mask"].bool()
    rewards = copy_rewards(trainer, output, batch)
    for key, to_the_end in (("adv/credit_corr", True), ("adv/credit_corr_step", False)):
        reference = reference_process_advantages(rewards, mask, trainer.num_generations, to_the_end)
        expected, counted = expected_corr(output["advantages"], reference, mask)
        assert counted > 0
        assert logged[key] == pytest.approx(expected, abs=1e-6)
    if advantage == "process":  # trained on the reference itself: the credit is exactly right
        assert logged["adv/credit_corr"] == pytest.approx(1.0, abs=1e-9)


def test_outcome_advantage_has_no_within_sequence_ranking(tmp_path):
    """trl's advantage is constant along each completion: no completion counts, the key is not logged."""
    run = parse_config("reward=copy", "reward.token_function=null", "advantage=outcome", "debug=fast", "logger=none")
    trainer = build_trainer(run, tmp_path, [])
    trainer.model.train()
    trainer.metric_window.flush()
    generate(trainer, generation_batch(trainer, prompts=4))
    assert not {"adv/credit_corr", "adv/credit_corr_step"} & set(trainer.metric_window.flush())


def test_a_task_without_a_reference_logs_none(tmp_path):
    run = parse_config("reward=copy", "reward.credit_reference=null", "advantage=ktae", "reward.token_function=null",
                       "debug=fast", "logger=none")  # fmt: skip
    trainer = build_trainer(run, tmp_path, [])
    assert trainer.credit_reference is None


def test_monte_carlo_reference_credit_is_spearman_against_mc_values(tmp_path):
    """`stats.credit_mc_every`: any estimator (here ktae) against mc_value's advantages on the same completions. The
    reference is recomputed by the mc_value estimator itself in a second trainer with the same weights and seed: it
    samples the same completions and then, from the same random state, the same continuations."""
    common = ("reward=copy", "reward.token_function=null", "debug=fast", "logger=none")
    run = parse_config(*common, "advantage=ktae", "stats.credit_mc_every=1", "stats.credit_mc_rollouts=2",
                       "stats.credit_mc_tokens=2")  # fmt: skip
    trainer = build_trainer(run, tmp_path / "ktae", [])
    trainer.model.train()
    batch = generation_batch(trainer, prompts=4)
    trainer.metric_window.flush()
    output = generate(trainer, batch)
    logged = trainer.metric_window.flush()
    assert "mc/generations" not in logged  # the reference's cost is not the estimator's
    reference_run = parse_config(*common, "advantage=mc_value", "advantage.rollouts=2", "advantage.every=2")
    reference_trainer = build_trainer(reference_run, tmp_path / "mc", [])
    reference_trainer.model.load_state_dict(trainer.model.state_dict())
    reference_trainer.model.train()
    reference = generate(reference_trainer, batch)
    assert torch.equal(reference["completion_ids"], output["completion_ids"])
    mask = output["completion_mask"].bool()
    expected, counted = expected_corr(output["advantages"], reference["advantages"], mask)
    assert counted > 0
    assert logged["adv/credit_corr_mc"] == pytest.approx(expected, abs=1e-6)
