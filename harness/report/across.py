"""Aggregates across tasks, when a report spans several: each arm (level x advantage) as one score per run, the
tasks as strata of the stratified bootstrap (harness/report/aggregates.py; Agarwal et al. 2021's aggregate over a
runs x tasks matrix).

Scores are normalised per task before they are pooled, because the tasks' rewards are on different scales (a copy
task near 1, a sorting task near 0.3): min-max over every run of that task in the report, (x - min) / (max - min), so
0 is the task's worst run and 1 its best. This depends on which runs the report holds (add an arm and the scale moves);
there is no human or random baseline to normalise against here, as there is for Atari.
"""

from __future__ import annotations

from dataclasses import dataclass

from harness.report.aggregates import Aggregates, Interval, aggregates, probability_of_improvement
from harness.report.findings import BASELINES, GSPO_TOKEN
from harness.report.groups import LEVEL_LABELS, final_values, level_rank
from harness.report.heldout import primary_metric
from harness.report.runs import Run


@dataclass
class AcrossTasks:
    tasks: list[str]
    metric: str  # what is normalised: held-out when every run of every task evaluated (heldout.primary_metric)
    arms: list[tuple[str, str, Aggregates]]  # (level, advantage, aggregates over the tasks it ran on)
    improvements: list[str]  # plain sentences: P(GSPO-token > baseline) across tasks
    scores: dict[tuple[str, str], dict[str, list[float]]]  # (level, advantage) -> task -> normalised final scores


def normalised(tasks: dict[str, list[Run]], metric: str = "reward") -> dict[tuple[str, str], dict[str, list[float]]]:
    """(level, advantage) -> task -> the runs' final scores, min-max normalised within the task."""
    scores: dict[tuple[str, str], dict[str, list[float]]] = {}
    for task, runs in tasks.items():
        finals = {id(run): final_values([run], metric) for run in runs}
        values = [v for vs in finals.values() for v in vs]
        if not values:
            continue
        low, high = min(values), max(values)
        span = high - low
        for run in runs:
            for value in finals[id(run)]:
                score = (value - low) / span if span > 0 else 0.5
                scores.setdefault((run.level, run.advantage), {}).setdefault(task, []).append(score)
    return scores


def across_tasks(tasks: dict[str, list[Run]]) -> AcrossTasks | None:
    """The arms pooled over tasks on the metric every task's comparison can rest on: the held-out greedy reward
    when every run evaluated, else the training reward (one metric for all tasks, or the pooling mixes them)."""
    if len(tasks) < 2:
        return None
    metric = primary_metric([run for runs in tasks.values() for run in runs])
    scores = normalised(tasks, metric)
    arms = [
        (level, advantage, aggregates(list(by_task.values())))
        for (level, advantage), by_task in sorted(scores.items(), key=lambda kv: (kv[0][1], level_rank(kv[0][0])))
    ]
    sentences = []
    for advantage in sorted({a for _, a in scores}):
        ours = scores.get((GSPO_TOKEN, advantage), {})
        for baseline in BASELINES:
            theirs = scores.get((baseline, advantage), {})
            shared = sorted(set(ours) & set(theirs))
            if not shared:
                continue
            p: Interval = probability_of_improvement([ours[t] for t in shared], [theirs[t] for t in shared])
            name = LEVEL_LABELS[baseline].split(" ")[0]
            sentences.append(
                f"With {advantage} advantage, across {len(shared)} task(s) ({', '.join(shared)}): "
                f"P(GSPO-token > {name}) = {p} (mean over tasks of the per-task probability, 95% stratified "
                "bootstrap CI)."
            )
    return AcrossTasks(sorted(tasks), metric, arms, sentences, scores)
