"""Optuna studies whose trials are harness runs: `python -m harness.run sweep=NAME` (see sweeps/README.md).

Each worker process loops: check the budget -> ask -> compose the trial's config -> `run_job(trial=...)` -> tell,
against a shared storage, so workers can be added or lost at any time and a rerun of the same command resumes.
`python -m harness.study show|best|dashboard STORAGE` inspects a study.

Heavy libraries (torch, transformers, trl) are imported only once a trial runs, so spec errors and the CLI stay fast.

Modules, in the order a worker uses them: `space` (parameters, suggestion, the trial's config), `backends`
(samplers, pruners, storages), `plan` (a checked study file with its storage and study), `worker` (the loop and the
pruning reporter), `finalists` (the best configurations re-run on fresh seeds once the budget is spent), `results`
(best trial, winner by re-run mean, reproducing command), `hydra_glue` (overrides, fan-out); `__main__` is the CLI.

May import: `harness.training` (a trial is a `run_job`) and the layers below it.
"""

from harness.study.backends import JOURNAL_FILE
from harness.study.plan import prepare
from harness.study.results import reproduce_command
from harness.study.space import parse_space, suggest, trial_overrides
from harness.study.worker import Ledger, run_worker

__all__ = [
    "JOURNAL_FILE", "Ledger", "parse_space", "prepare", "reproduce_command", "run_worker", "suggest", "trial_overrides",
]  # fmt: skip
