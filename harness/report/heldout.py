"""Held-out metrics in the report: which metric the comparison rests on, the held-out figure and table rows, and
the flag on runs whose held-out metric and training reward part ways.

The comparison rests on `HELDOUT` (the greedy reward on the task's held-out prompts, docs/evaluation.md) when every
run of the task evaluated, else on the training reward, and every finding names its metric. A run is flagged when

- its training reward is at least `GAP` above its held-out sampled reward over the final window (`eval/sampled/
  reward` is the training reward's own definition, the same reward at the same temperature, on prompts never
  trained on: a gap is memorisation), or
- its held-out greedy reward fell by at least `DROP` from its best evaluation while its training reward rose by at
  least `DROP` since that evaluation (overfitting, or a collapse to one answer).

`GAP` and `DROP` (0.1 and 0.05, in reward units on the [0, 1] rewards of the embedded tasks) are this module's
choices: about twice the spread of a held-out score between neighbouring evaluations of a healthy default run.
"""

from __future__ import annotations

from harness.report.groups import Condition
from harness.report.runs import Run

HELDOUT = "eval/greedy/reward"
SAMPLED = "eval/sampled/reward"
TRAINING = "reward"
GAP = 0.1
DROP = 0.05

FIGURE = (
    "heldout", "Held-out metrics over steps",
    ("The greedy reward and accuracy on held-out prompts (never trained on), and pass@k from samples at the training "
     "temperature; mean across seeds with a 95% confidence band. The comparison above rests on the greedy reward."),
)  # fmt: skip


def primary_metric(runs: list[Run]) -> str:
    """The metric the task's comparison rests on: held-out when every run evaluated, else the training reward."""
    return HELDOUT if runs and all(run.series(HELDOUT) for run in runs) else TRAINING


def heldout_metrics(runs: list[Run]) -> list[tuple[str, str]]:
    """(key, label) of the held-out metrics every run logged, in a fixed order: greedy, sampled, pass@k."""
    common = set.intersection(*({k for r in run.records for k in r if k.startswith("eval/")} for run in runs))
    fixed = ["eval/greedy/reward", "eval/greedy/accuracy", "eval/sampled/reward", "eval/sampled/accuracy"]
    at_k = sorted((k for k in common if k.startswith("eval/pass@")), key=lambda k: int(k.rpartition("@")[2]))
    return [(k, f"held-out {k[5:]}") for k in fixed + at_k if k in common]


def divergence(run: Run) -> str | None:
    """Why `run` is flagged (one sentence), or None."""
    train, heldout = run.final(TRAINING), run.series(HELDOUT)
    sampled = run.final(SAMPLED)
    if train is not None and sampled is not None and train - sampled >= GAP:
        return (
            f"training reward {train:.3f} but held-out sampled reward {sampled:.3f} (gap {train - sampled:.3f} "
            f">= {GAP}): it scores on the prompts it trained on, not on new ones (memorisation)"
        )
    if len(heldout) < 2:
        return None
    best_step, best = max(heldout, key=lambda sv: sv[1])
    last_step, last = heldout[-1]
    before = [v for s, v in run.series(TRAINING) if s <= best_step][-3:]
    after = [v for s, v in run.series(TRAINING) if s <= last_step][-3:]
    if not before or not after:
        return None
    rise = sum(after) / len(after) - sum(before) / len(before)
    if best - last >= DROP and rise >= DROP:
        return (
            f"held-out greedy reward fell from {best:.3f} (step {best_step}) to {last:.3f} (step {last_step}) while "
            f"its training reward rose by {rise:.3f}: overfitting or a collapse to one answer"
        )
    return None


def divergence_notes(groups: dict[Condition, list[Run]]) -> list[str]:
    notes = []
    for condition, runs in groups.items():
        for run in runs:
            why = divergence(run)
            if why is not None:
                notes.append(f"{condition.label} seed {run.seed} ({run.path.name}): {why}.")
    return notes
