"""`mc_value` (VinePPO) through the real HarnessGRPOTrainer: K continuations of every step prefix in one batched
`generate` call per generation step, scored by the task's reward, A = V(s_next) - V(s) (+R on the last step).

Near-greedy sampling (temperature 1e-4) makes every continuation the greedy one, so the test can recompute each
value independently: one greedy `generate` per prefix, decoded and scored by the copy task's reward written out.
"""

import math

import pytest
import torch

from harness.config.metrics import logged_metrics
from harness.config.validate import parse
from harness.training.build import build_trainer
from harness.training.job import run_job
from tests.conftest import compose_config, parse_config
from tests.training.test_process_supervision import generate, generation_batch
from tests.training.test_runs import read_metrics

pytestmark = pytest.mark.e2e

OUTCOME_ONLY = ("reward=copy", "reward.token_function=null", "debug=fast", "logger=none")


def position_accuracy(text: str, goal: str) -> float:
    return (sum(a == b for a, b in zip(text, goal)) + (len(text) == len(goal))) / (len(goal) + 1)


def greedy_value(trainer, prompt_ids: list[int], prefix: list[int], goal: str) -> float:
    tokenizer = trainer.processing_class
    budget = trainer.max_completion_length - len(prefix)
    with torch.no_grad():
        out = trainer.model.generate(
            input_ids=torch.tensor([prompt_ids + prefix]),
            attention_mask=torch.ones(1, len(prompt_ids) + len(prefix), dtype=torch.long),
            do_sample=False,
            max_new_tokens=budget,
            pad_token_id=tokenizer.pad_token_id,
            eos_token_id=tokenizer.eos_token_id,
        )
    continuation = out[0, len(prompt_ids) + len(prefix) :].tolist()
    if tokenizer.eos_token_id in continuation:
        continuation = continuation[: continuation.index(tokenizer.eos_token_id) + 1]
    text = tokenizer.decode(prefix + continuation, skip_special_tokens=True)
    return position_accuracy(text, goal)


def test_step_values_are_the_mean_reward_of_continuations_from_each_prefix(tmp_path):
    run = parse_config(*OUTCOME_ONLY, "advantage=mc_value", "advantage.rollouts=3", "advantage.every=2",
                       "trainer.temperature=1e-4")  # fmt: skip
    trainer = build_trainer(run, tmp_path, [])
    trainer.model.train()
    batch = generation_batch(trainer, prompts=4)
    calls = []
    original = trainer.model.generate

    def counted(*args, **kwargs):
        calls.append(kwargs["input_ids"].shape[0])
        return original(*args, **kwargs)

    trainer.model.generate = counted
    trainer.metric_window.flush()
    output = generate(trainer, batch)
    trainer.model.generate = original
    logged = trainer.metric_window.flush()
    # trl's own generation, then exactly one batched call for all Monte-Carlo continuations.
    assert len(calls) == 2
    ids, mask = output["completion_ids"], output["completion_mask"].bool()
    advantages = output["advantages"]
    prefixes = set()
    for row, example in enumerate(batch):
        prompt_ids = output["prompt_ids"][row][output["prompt_mask"][row].bool()].tolist()
        tokens = ids[row][mask[row]].tolist()
        steps = math.ceil(len(tokens) / 2)
        values = []
        for step in range(steps):
            prefixes.add((row // trainer.num_generations, tuple(tokens[: 2 * step])))
            values.append(greedy_value(trainer, prompt_ids, tokens[: 2 * step], example["target"]))
        reward = position_accuracy(trainer.processing_class.decode(tokens, skip_special_tokens=True), example["target"])
        for t in range(len(tokens)):
            step = t // 2
            after = values[step + 1] if step + 1 < steps else reward
            assert advantages[row, t].item() == pytest.approx(after - values[step], abs=1e-6), (row, t)
        assert torch.all(advantages[row][~mask[row]] == 0)
    assert calls[1] == len(prefixes) * 3  # K continuations per distinct prefix of a group
    assert logged["mc/generations"] == len(prefixes) * 3


def test_separator_boundaries_on_the_chain_task(tmp_path):
    run = parse_config("reward=chain", "reward.token_function=null", "debug=fast", "logger=none",
                       "advantage=mc_value", "advantage.rollouts=2", "advantage.every=null",
                       "advantage.separator='|'")  # fmt: skip
    trainer = build_trainer(run, tmp_path, [])
    assert trainer.step_separator == trainer.processing_class("|", add_special_tokens=False)["input_ids"]
    trainer.model.train()
    output = generate(trainer, generation_batch(trainer, prompts=2))
    ids, mask = output["completion_ids"], output["completion_mask"].bool()
    bar = trainer.step_separator[0]
    for row in range(ids.shape[0]):
        tokens, values = ids[row][mask[row]].tolist(), output["advantages"][row][mask[row]].tolist()
        step_of = [sum(token == bar for token in tokens[:t]) for t in range(len(tokens))]
        for t in range(1, len(tokens)):  # constant within a step (the separator closes its step)
            if step_of[t] == step_of[t - 1]:
                assert values[t] == values[t - 1]


def test_tiny_mc_value_run_trains_and_logs_its_cost(tmp_path):
    cfg = compose_config(*OUTCOME_ONLY, "advantage=mc_value", "advantage.rollouts=2",
                         "importance_sampling=sequence_token")  # fmt: skip
    expected = {"mc/generations", "adv/credit_corr", "adv/credit_corr_step"}
    metrics = logged_metrics(parse(cfg))  # before run_job records the effective group and precision in cfg
    assert expected <= metrics
    objective = run_job(cfg, tmp_path, group="test")
    assert math.isfinite(objective)
    records = [r for r in read_metrics(tmp_path) if "reward" in r]
    assert all(r["mc/generations"] > 0 for r in records)
    logged = set().union(*map(set, read_metrics(tmp_path))) - {"step", "adv/histogram"}
    assert logged == metrics
