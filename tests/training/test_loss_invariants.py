"""GSPO-token against GSPO and GRPO through the real HarnessGRPOTrainer loss, on a hand-made batch."""

import pytest
import torch

from harness.training.build import build_trainer
from tests.conftest import parse_config

LOSS_TYPES = ["grpo", "bnpo", "dr_grpo", "dapo", "luspo", "sapo"]


@pytest.fixture(scope="module")
def trainers(tmp_path_factory):
    built = {}
    for level in ("token", "sequence", "sequence_token"):
        run = parse_config(f"importance_sampling={level}", "debug=fast", "logger=none", "advantage=outcome")
        trainer = build_trainer(run, tmp_path_factory.mktemp(level), [])
        trainer.model.double().train()  # float64: compare to 1e-6 without float32 rounding noise
        trainer.current_gradient_accumulation_steps = 1  # set by the training loop; we call the loss directly
        built[level] = trainer
    # All three start from the same initial weights (same init seed).
    params = [list(t.model.parameters()) for t in built.values()]
    assert all(torch.equal(a, b) for a, b in zip(params[0], params[1]))
    return built


def make_batch(trainer, per_token: bool, off_policy: bool = True, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    rows, prompt_len, length = 8, 3, 6
    vocab = trainer.model.config.vocab_size
    prompt_ids = torch.randint(4, vocab, (rows, prompt_len), generator=g)
    completion_ids = torch.randint(4, vocab, (rows, length), generator=g)
    lengths = torch.tensor([6, 5, 4, 3, 6, 2, 5, 1])
    completion_mask = (torch.arange(length) < lengths.unsqueeze(1)).long()
    batch = {
        "prompt_ids": prompt_ids,
        "prompt_mask": torch.ones_like(prompt_ids),
        "completion_ids": completion_ids,
        "completion_mask": completion_mask,
        "num_items_in_batch": completion_mask.sum(),
    }
    if per_token:
        batch["advantages"] = torch.randn(rows, length, generator=g, dtype=torch.float64) * completion_mask
    else:
        batch["advantages"] = torch.randn(rows, generator=g, dtype=torch.float64)
    if off_policy:
        ids = torch.cat([prompt_ids, completion_ids], 1)
        mask = torch.cat([batch["prompt_mask"], completion_mask], 1)
        with torch.no_grad():
            logps = trainer._get_per_token_logps_and_entropies(trainer.model, ids, mask, length)[0]
        # Sequence log-ratios around the GSPO clip range (3e-4 / 4e-4): some sequences clip, some do not.
        batch["old_per_token_logps"] = logps + 4e-4 * torch.randn(rows, length, generator=g, dtype=torch.float64)
    return batch


def loss_and_grad(trainer, loss_type, batch):
    trainer.loss_type = loss_type
    trainer.model.zero_grad()
    loss = trainer._compute_loss(trainer.model, dict(batch))
    loss.backward()
    grad = torch.cat([p.grad.flatten() for p in trainer.model.parameters() if p.grad is not None])
    return loss.detach(), grad


def relative(a, b):
    return ((a - b).norm() / b.norm().clamp(min=1e-30)).item()


@pytest.mark.parametrize("loss_type", LOSS_TYPES)
def test_gspo_token_equals_gspo_with_per_sequence_advantages(trainers, loss_type):
    batch = make_batch(trainers["sequence"], per_token=False)
    loss_seq, grad_seq = loss_and_grad(trainers["sequence"], loss_type, batch)
    loss_tok, grad_tok = loss_and_grad(trainers["sequence_token"], loss_type, batch)
    assert grad_seq.norm() > 0
    assert relative(loss_tok, loss_seq) <= 1e-6
    assert relative(grad_tok, grad_seq) <= 1e-6


@pytest.mark.parametrize("loss_type", LOSS_TYPES)
def test_gspo_token_differs_from_gspo_with_per_token_advantages(trainers, loss_type):
    batch = make_batch(trainers["sequence"], per_token=True, seed=1)
    _, grad_seq = loss_and_grad(trainers["sequence"], loss_type, batch)
    _, grad_tok = loss_and_grad(trainers["sequence_token"], loss_type, batch)
    assert relative(grad_tok, grad_seq) > 1e-2


def test_clipping_is_exercised(trainers):
    trainer = trainers["sequence_token"]
    loss_and_grad(trainer, "grpo", make_batch(trainer, per_token=False))
    stats = trainer.metric_window.flush()
    assert 0 < stats["clip/region_frac_seq"] < 1


@pytest.mark.parametrize("per_token", [False, True])
def test_on_policy_gspo_token_equals_grpo(trainers, per_token):
    batch = make_batch(trainers["token"], per_token=per_token, off_policy=False, seed=2)
    loss_a, grad_a = loss_and_grad(trainers["token"], "grpo", batch)
    loss_b, grad_b = loss_and_grad(trainers["sequence_token"], "grpo", batch)
    assert relative(loss_b, loss_a) <= 1e-6
    assert relative(grad_b, grad_a) <= 1e-6


def test_loss_leaves_the_buffered_batch_untouched(trainers):
    # trl reuses the buffered batch across iterations: re-basing old log-probs must not leak into it.
    batch = make_batch(trainers["sequence_token"], per_token=True, seed=3)
    old = batch["old_per_token_logps"].clone()
    trainers["sequence_token"]._compute_loss(trainers["sequence_token"].model, batch)
    assert torch.equal(batch["old_per_token_logps"], old)
