"""Across-task aggregation (harness/report/across.py) on hand-made runs: per-task min-max normalisation, the tasks as
strata, P(GSPO-token > baseline) as the mean of the per-task probabilities (counted here pair by pair)."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.report.across import across_tasks, normalised
from harness.report.groups import by_task
from harness.report.page import across_html
from harness.report.runs import Run


def run(task: str, level: str, reward: float, seed: int) -> Run:
    config = {
        "reward": {"name": task},
        "importance_sampling": {"level": level},
        "advantage": {"name": "process"},
        "seed": seed,
        "objective": {"last_n": 1},
    }
    return Run(Path(f"/runs/{task}-{level}-{seed}"), config, [{"step": 10, "reward": reward}])


RUNS = [
    # copy: rewards near 1; chain: near 0.3 (different scales, so they are normalised before pooling)
    *(run("copy", "sequence_token", r, s) for s, r in enumerate([0.9, 1.0, 0.8])),
    *(run("copy", "sequence", r, s) for s, r in enumerate([0.2, 0.3, 0.25])),
    *(run("chain", "sequence_token", r, s) for s, r in enumerate([0.38, 0.39, 0.30])),
    *(run("chain", "sequence", r, s) for s, r in enumerate([0.34, 0.35, 0.40])),
]


def test_scores_are_min_max_normalised_within_each_task():
    scores = normalised(by_task(RUNS))
    assert scores["sequence_token", "process"]["copy"] == pytest.approx([0.875, 1.0, 0.75])  # (x - 0.2) / 0.8
    assert scores["sequence", "process"]["chain"] == pytest.approx([0.4, 0.5, 1.0])  # (x - 0.3) / 0.1
    assert min(min(v) for by_task in scores.values() for v in by_task.values()) == 0.0


def pairwise(x: list[float], y: list[float]) -> float:
    return sum(1.0 if a > b else 0.5 if a == b else 0.0 for a in x for b in y) / (len(x) * len(y))


def test_probability_of_improvement_is_the_mean_over_tasks():
    across = across_tasks(by_task(RUNS))
    assert across.tasks == ["chain", "copy"]
    expected = (pairwise([0.9, 1.0, 0.8], [0.2, 0.3, 0.25]) + pairwise([0.38, 0.39, 0.30], [0.34, 0.35, 0.40])) / 2
    (sentence,) = across.improvements  # only GSPO ran as a baseline
    assert f"P(GSPO-token > GSPO) = {expected:.3g} [" in sentence and "across 2 task(s) (chain, copy)" in sentence
    arms = {(level, advantage): stats for level, advantage, stats in across.arms}
    assert arms["sequence_token", "process"].n == 6
    html = "".join(across_html(across))
    assert "Across tasks (chain, copy)" in html and "min-max" in html


def test_one_task_has_no_across_section():
    assert across_tasks(by_task([r for r in RUNS if r.task == "copy"])) is None


def with_heldout(runs: list[Run], heldout: dict[str, float]) -> list[Run]:
    """The runs with a held-out greedy reward at their last step, per task (the same for every run of a task)."""
    return [Run(r.path, r.config, [{**rec, "eval/greedy/reward": heldout[r.task]} for rec in r.records]) for r in runs]


def test_the_pooled_metric_is_held_out_only_when_every_run_of_every_task_evaluated():
    assert across_tasks(by_task(RUNS)).metric == "reward"
    evaluated = with_heldout(RUNS, {"copy": 0.5, "chain": 0.1})
    assert across_tasks(by_task(evaluated)).metric == "eval/greedy/reward"
    mixed = evaluated[:-1] + RUNS[-1:]  # one chain run without evaluation: no pooling of two metrics
    assert across_tasks(by_task(mixed)).metric == "reward"


def test_the_held_out_metric_is_what_gets_normalised():
    evaluated = [
        Run(r.path, r.config, [{**rec, "eval/greedy/reward": 1.0 - rec["reward"]} for rec in r.records]) for r in RUNS
    ]
    scores = across_tasks(by_task(evaluated)).scores
    # copy's held-out values are 1 - reward: the best training run is the worst held-out one
    assert scores["sequence_token", "process"]["copy"] == pytest.approx([0.125, 0.0, 0.25])


def test_the_cross_task_performance_profile_is_drawn_at_page_width(tmp_path):
    from PIL import Image

    from harness.report.figures import DPI, WIDTH, normalised_profiles

    across = across_tasks(by_task(RUNS))
    figure = normalised_profiles(across.scores, across.metric, tmp_path / "profiles.png")
    width, height = Image.open(figure.path).size
    assert abs(width - WIDTH * DPI) < 0.1 * WIDTH * DPI and height > 200
    assert "normalised per task" in figure.title and "reward" in figure.title
