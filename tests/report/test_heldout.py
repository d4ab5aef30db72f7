"""The held-out side of the report: the metric the comparison rests on and the divergence flags, on hand-made runs
(tests/report/test_report.py and tests/training/test_overfitting.py check them on real runs)."""

from pathlib import Path

from harness.report.heldout import DROP, GAP, divergence, heldout_metrics, primary_metric
from harness.report.runs import Run

CONFIG = {"reward": {"name": "copy"}, "importance_sampling": {"level": "token"}, "advantage": {"name": "outcome"},
          "objective": {"last_n": 3}, "seed": 0}  # fmt: skip


def run(train: list[float], heldout: dict[int, float], sampled: float | None = None) -> Run:
    records = [{"step": 10 * (i + 1), "reward": r} for i, r in enumerate(train)]
    for record in records:
        if record["step"] in heldout:
            record["eval/greedy/reward"] = heldout[record["step"]]
            record["eval/sampled/reward"] = record["reward"] if sampled is None else sampled
            record["eval/pass@4"] = 0.5
    return Run(Path("run"), CONFIG, records)


def test_the_comparison_rests_on_the_heldout_metric_only_when_every_run_evaluated():
    evaluated, plain = run([0.1, 0.2], {20: 0.3}), run([0.1, 0.2], {})
    assert primary_metric([evaluated]) == "eval/greedy/reward"
    assert primary_metric([evaluated, plain]) == "reward"
    assert [key for key, _ in heldout_metrics([evaluated])] == ["eval/greedy/reward", "eval/sampled/reward",
                                                                 "eval/pass@4"]  # fmt: skip


def test_training_reward_far_above_the_heldout_sampled_reward_is_flagged():
    assert divergence(run([0.5, 0.9, 0.9, 0.9], {40: 0.2}, sampled=0.9 - GAP - 0.01)).startswith("training reward")
    assert divergence(run([0.5, 0.9, 0.9, 0.9], {40: 0.2}, sampled=0.9 - GAP + 0.01)) is None


def test_heldout_falling_while_training_rises_is_flagged():
    falling = run([0.2, 0.3, 0.4, 0.6, 0.8], {20: 0.5, 50: 0.5 - DROP - 0.01})
    assert "fell from 0.500 (step 20)" in divergence(falling)
    assert divergence(run([0.2, 0.3, 0.4, 0.6, 0.8], {20: 0.5, 50: 0.5 - DROP + 0.01})) is None  # within noise
    assert divergence(run([0.8, 0.8, 0.8, 0.8, 0.8], {20: 0.5, 50: 0.3})) is None  # training did not rise
    assert divergence(run([0.2, 0.3, 0.4, 0.6, 0.8], {20: 0.3, 50: 0.6})) is None  # both rose
