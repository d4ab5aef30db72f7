"""Process supervision and precision through the real HarnessGRPOTrainer: sparse step rewards, the outcome
invariant, and the importance ratio's noise floor."""

import json

import pytest
import torch

from harness.training.build import build_trainer
from tests.algorithms.test_advantages import deepseekmath_reference
from tests.conftest import parse_config, run_cli

pytestmark = pytest.mark.e2e


def generation_batch(trainer, prompts: int = 4) -> list[dict]:
    """Dataset rows the way trl's sampler hands them over: each prompt num_generations times in a row."""
    rows = [trainer.train_dataset[i] for i in range(prompts)]
    return [row for row in rows for _ in range(trainer.num_generations)]


def generate(trainer, batch, seed: int = 0) -> dict:
    torch.manual_seed(seed)  # the same completions for every call with the same seed
    return trainer._generate_and_score_completions(batch)


def test_reward_on_the_final_token_gives_trls_outcome_advantage(tmp_path):
    run = parse_config(
        "debug=fast", "logger=none", "reward.token_function._target_=tests.rewards_for_tests.outcome_on_last_token"
    )
    trainer = build_trainer(run, tmp_path, [])
    trainer.model.train()
    batch = generation_batch(trainer)
    process = generate(trainer, batch)
    trainer.token_reward = None  # trl's own advantage, on the same completions
    outcome = generate(trainer, batch)
    assert torch.equal(process["completion_ids"], outcome["completion_ids"])
    mask = process["completion_mask"].bool()
    assert outcome["advantages"].abs().max() > 0.1, "the batch must carry a signal"
    expected = outcome["advantages"].unsqueeze(1).expand_as(mask)
    assert (process["advantages"][mask] - expected[mask]).abs().max() <= 1e-6
    # Exactly constant along each sequence, so GSPO-token computes GSPO's gradient (tests/training/test_loss_invariants.py).
    advantages = process["advantages"]
    assert torch.equal(advantages[mask], advantages[:, :1].expand_as(advantages)[mask])


def test_chain_step_rewards_match_deepseekmath_through_the_trainer(tmp_path):
    trainer = build_trainer(parse_config("reward=chain", "debug=fast", "logger=none"), tmp_path, [])
    trainer.model.train()
    batch = generation_batch(trainer)
    output = generate(trainer, batch, seed=3)
    ids, mask = output["completion_ids"], output["completion_mask"]
    tokens = [
        trainer.processing_class.convert_ids_to_tokens(row[: int(n)].tolist()) for row, n in zip(ids, mask.sum(1))
    ]
    rows = trainer.token_reward(
        prompts=[r["prompt"] for r in batch],
        tokens=tokens,
        target=[r["target"] for r in batch],
        eos_token=trainer.processing_class.eos_token,
        completion_ids=None,
    )
    steps = [[(t, v) for t, v in enumerate(row) if v is not None] for row in rows]
    assert sum(map(bool, steps)) >= 4, "the random policy must end some steps"
    expected = deepseekmath_reference(steps, ids.shape[1], trainer.num_generations).float() * mask
    assert (output["advantages"] - expected).abs().max() <= 1e-5


def noise_maxima(run_dir) -> tuple[float, float]:
    records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    noisy = [r for r in records if "is_ratio/noise_token_max" in r]
    assert noisy, "the noise floor is logged with the other statistics"
    return max(r["is_ratio/noise_token_max"] for r in noisy), max(r["is_ratio/noise_seq_max"] for r in noisy)


def test_cpu_default_computes_in_float32_with_a_noise_floor_of_zero(default_run):
    run_dir, result = default_run  # debug=fast logger=none
    token, sequence = noise_maxima(run_dir)
    assert token <= 1e-6 and sequence <= 1e-6
    assert "harness: warning" not in result.stderr
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["precision"] == {"autocast": "none", "weights": "float32", "lm_head": "float32"}
    assert summary["noise_floor"] == {"token_max": token, "seq_max": sequence}
    assert "ratio noise floor" in result.stdout and "epsilon 0.0003/0.0004" in result.stdout
    assert "autocast: none" in (run_dir / "config.yaml").read_text()


def test_bf16_raises_the_noise_floor_to_the_clip_range_and_warns_once(bf16_run):
    run_dir, result = bf16_run  # debug=fast logger=none trainer.bf16=true
    token, sequence = noise_maxima(run_dir)
    assert token > 3e-4, "bf16 log-probs are off by more than GSPO's clip range"
    assert sequence > 3e-5
    warnings = [line for line in result.stderr.splitlines() if line.startswith("harness: warning")]
    assert len(warnings) == 1, result.stderr
    assert "importance_sampling=sequence_token" in warnings[0] and "epsilon=0.0003" in warnings[0]
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["precision"]["autocast"] == "bf16"


def run_on_isa(isa: str, run_dir, *overrides: str) -> list[dict]:
    """A short default run with torch and oneDNN limited to `isa` (AVX2: a CPU without bf16 or AVX-512)."""
    env = {"ATEN_CPU_CAPABILITY": isa.lower(), "ONEDNN_MAX_CPU_ISA": "AVX2" if isa == "AVX2" else "ALL"}
    result = run_cli("logger=none", "trainer.max_steps=30", *overrides, f"hydra.run.dir={run_dir}", env=env)
    assert result.returncode == 0, result.stderr[-2000:]
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines() if '"reward"' in line]


@pytest.mark.skipif(torch.backends.cpu.get_cpu_capability() != "AVX512", reason="needs an AVX-512 CPU to compare")
def test_float32_default_gives_the_same_numbers_with_and_without_bf16_hardware(tmp_path):
    native, avx2 = run_on_isa("AVX512", tmp_path / "native"), run_on_isa("AVX2", tmp_path / "avx2")
    for a, b in zip(native, avx2, strict=True):
        assert a["reward"] == b["reward"] and a["clip/region_frac_token"] == b["clip/region_frac_token"]
        assert a["loss"] == pytest.approx(b["loss"], rel=1e-5)
