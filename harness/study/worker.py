"""The worker loop: check the budget -> ask -> compose the trial's config -> run_job(trial=...) -> tell.

A worker of several processes (torchrun, or a SLURM job of several tasks) is one worker: rank 0 runs the loop and
talks to the storage, and before each trial shares its overrides; the other ranks (`follow`) train the same trial.
"""

from __future__ import annotations

import math
import os
import random
import socket
import sys
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import optuna
from omegaconf import DictConfig
from optuna.trial import TrialState

from harness.config.schema import one_line
from harness.runtime import distributed, slurm, stop
from harness.study import finalists
from harness.study.backends import build_sampler
from harness.study.hydra_glue import fan_out, is_sweep_override
from harness.study.plan import Sweep, prepare
from harness.study.pruning import decision_due
from harness.study.results import report_best, reproduce_command
from harness.study.space import compose, suggest, trial_overrides
from harness.training.run_dir import window_mean

HOST = socket.gethostname()


class StudyStopped(RuntimeError):
    """The study's failure budget is spent."""


class DuplicateFinalist(RuntimeError):
    """Another trial already stands for this finalist run (harness/study/finalists.py)."""


def _never(previous: int, step: int) -> bool:
    return False


@dataclass
class Ledger:
    """Trial counts against the budget. A FAIL given back to the study (retried) does not count; its retry does."""

    finished: int
    running: int
    waiting: int
    failed: list

    @classmethod
    def of(cls, trials: list) -> Ledger:
        """Of the search trials (finalists are counted apart: harness/study/finalists.py)."""
        retried = {number for t in trials for number in t.system_attrs.get("retry_history", [])}
        counted = [t for t in finalists.search_trials(trials) if t.number not in retried]
        states = [t.state for t in counted]
        return cls(
            finished=sum(state.is_finished() for state in states),
            running=states.count(TrialState.RUNNING),
            waiting=states.count(TrialState.WAITING),
            failed=[t for t in counted if t.state == TrialState.FAIL],
        )


def run_worker(cfg: DictConfig, output_dir: Path) -> float:
    """Hydra entry (harness/run.py): one worker of the study chosen by `sweep=NAME`; returns the best value."""
    from hydra.core.hydra_config import HydraConfig

    hydra_cfg = HydraConfig.get()
    job_overrides = [o for o in hydra_cfg.overrides.task if not is_sweep_override(o)]
    distributed.init(cfg.trainer)
    if not distributed.is_main():
        return follow(hydra_cfg.job.config_name)
    best = math.nan
    try:
        sweep = prepare(cfg, job_overrides, hydra_cfg.job.config_name, fan_out(hydra_cfg))
        best = work(sweep)
        return best
    except StudyStopped as stopped:
        print(f"harness: error: {stopped}", file=sys.stderr, flush=True)
        raise SystemExit(1) from None
    finally:
        if distributed.world_size() > 1:
            try:
                distributed.share(("done", best))  # the other ranks return too
            except Exception:  # a lost rank: nobody left to tell
                pass


def follow(config_name: str) -> float:
    """A rank other than 0 of a multi-process worker: train each trial rank 0 shares, with rank 0's pruning
    decisions (no storage access here), until rank 0 is done; return its best value."""
    from harness.training.job import run_job

    while True:
        message = distributed.share(None)
        if message[0] == "done":
            return message[1]
        if message[0] == "trial":
            job = message[1]
            cfg = compose(job["overrides"], config_name)
            reporter = objective_reporter(None, cfg.objective.metric, cfg.objective.last_n, job["report_every"])
            # A trial on every rank, as on rank 0: transformers' checkpoint save runs a collective only without one.
            trial = optuna.trial.FixedTrial(job["params"], job["number"])
            run_job(cfg, Path(job["dir"]), job["group"], trial, run_id=job["run_id"], callbacks=[reporter])


def work(sweep: Sweep) -> float:
    """Run trials until the budget is spent; then print and write the best trial."""
    study = sweep.study
    print(f"harness: study {sweep.name} (worker {sweep.worker}) in {sweep.dir}", flush=True)
    with stop.graceful():  # SIGINT/SIGTERM: the running trial stops at a step boundary and goes back to the study
        _resume_requeued_trial(sweep)
        while True:
            stop.raise_if_requested(f"study {sweep.name} (worker {sweep.worker}) stopped between trials")
            # Several ranks: they must all be there before a trial is asked for (a lost rank fails here, not a trial),
            # and the other ranks' wait for the next trial never reaches the collective timeout.
            distributed.share(("next", None))
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                optuna.storages.fail_stale_trials(study)  # RDB: heartbeat-stale trials -> FAIL + retry
            # One read of the trial list per trial (it is the costly call at scale; see benchmarks/storage_load.py),
            # again only when a lost trial was given back.
            trials = study.get_trials(deepcopy=False)
            if _fail_dead_local_trials(sweep, trials):  # journal: trials whose local worker process is gone
                trials = study.get_trials(deepcopy=False)
            ledger = Ledger.of(trials)
            _check_failures(ledger, sweep)
            if ledger.waiting or ledger.finished + ledger.running < sweep.spec["n_trials"]:
                study.sampler = build_sampler(sweep.spec["sampler"], sweep.params, _trial_seed(sweep, len(trials)))
                # One ask -> objective -> tell; Optuna adds the heartbeat thread (RDB) and pops WAITING retries first.
                study.optimize(lambda trial: objective(sweep, trial), n_trials=1, catch=(Exception,))
            elif ledger.running and sweep.heartbeats:
                # Only running trials are left: wait, so that one lost with its worker is given back and run here.
                stop.wait(sweep.spec["heartbeat_interval"])
            elif not ledger.running and _finalists_due(sweep, trials):
                study.sampler = build_sampler(sweep.spec["sampler"], sweep.params, _trial_seed(sweep, len(trials)))
                study.optimize(lambda trial: objective(sweep, trial), n_trials=1, catch=(Exception,))
            elif sweep.heartbeats and _finalists_running(trials):
                stop.wait(sweep.spec["heartbeat_interval"])
            else:
                break
    return report_best(sweep)


def _finalists_due(sweep: Sweep, trials: list) -> bool:
    """The search is over: enqueue the finalist runs no trial stands for yet; whether one is waiting to run."""
    top, seeds = sweep.spec["finalists"]["top"], sweep.spec["finalists"]["seeds"]
    if not top:
        return False
    direction = sweep.spec["objective"]["direction"]
    runs = finalists.missing(trials, top, seeds, direction, sweep.seed)
    if runs:
        finalists.enqueue(sweep.study, runs)
        numbers = sorted({source.number for source, _ in runs})
        print(f"harness: study {sweep.name}: {len(runs)} finalist run(s) of trial(s) {numbers} enqueued", flush=True)
        return True
    return any(t.state == TrialState.WAITING for t in trials if finalists.is_finalist(t))


def _finalists_running(trials: list) -> bool:
    return any(t.state == TrialState.RUNNING for t in trials if finalists.is_finalist(t))


def _resume_requeued_trial(sweep: Sweep) -> None:
    """A requeued SLURM worker first finishes the trial it was running when preempted, from the trial's checkpoint
    (same number, directory and wandb run; the parameters are read back from the storage)."""
    job = slurm.job_key()
    for frozen in sweep.study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        owner = frozen.user_attrs.get("worker") or {}
        if job is None or owner.get("slurm_job") != job or owner.get("trial") != frozen.number:
            continue
        print(f"harness: resuming trial {frozen.number} after a requeue of SLURM job {job}", flush=True)
        trial = optuna.trial.Trial(sweep.study, frozen._trial_id)
        try:
            value = objective(sweep, trial)
        except optuna.TrialPruned:
            sweep.study.tell(trial, state=TrialState.PRUNED)
        except Exception:
            sweep.study.tell(trial, state=TrialState.FAIL)
        else:
            sweep.study.tell(trial, value)


def _trial_seed(sweep: Sweep, count: int) -> int | None:
    """A fresh seed per trial from (seed, worker, `count` trials so far): reproducible for one worker, distinct
    across workers, and a resumed worker does not replay the proposals of its first run."""
    seed = sweep.spec["sampler"].get("seed")
    if seed is None:
        return None
    return random.Random(f"{seed}-{sweep.worker}-{count}").getrandbits(31)


def _check_failures(ledger: Ledger, sweep: Sweep) -> None:
    allowed = sweep.spec["max_failure_rate"] * sweep.spec["n_trials"]
    if len(ledger.failed) > allowed:
        last = ledger.failed[-1]
        reason = last.user_attrs.get("fail_reason", "no reason recorded")
        raise StudyStopped(
            f"study {sweep.name} stopped: {len(ledger.failed)} of {sweep.spec['n_trials']} trials failed, more than "
            f"sweep.max_failure_rate={sweep.spec['max_failure_rate']}; last (trial {last.number}): {reason}"
        )


def _fail_dead_local_trials(sweep: Sweep, trials: list) -> bool:
    """Journal storage has no heartbeats: a RUNNING trial whose worker process on this host is gone is lost.
    Whether one was given back."""
    if sweep.heartbeats:
        return False
    lost_any = False
    for trial in (t for t in trials if t.state == TrialState.RUNNING):
        owner = trial.user_attrs.get("worker") or {}
        # `trial` guards against attributes a retried trial inherited from the trial it retries.
        if owner.get("trial") != trial.number:
            continue
        if owner.get("slurm_job"):  # a requeued SLURM worker resumes its trial: lost only once its job is gone
            if slurm.job_alive(owner["slurm_job"]):
                continue
        elif owner.get("host") != HOST or _alive(owner.get("pid"), owner.get("started")):
            continue
        lost = f"SLURM job {owner['slurm_job']} ended" if owner.get("slurm_job") else f"worker pid {owner['pid']} died"
        # Optuna has no public trial id; storage calls need it.
        _give_back(sweep, trial._trial_id, f"{lost} (host {owner.get('host')})", sweep.spec["max_retry"])
        lost_any = True
    return lost_any


def _give_back(sweep: Sweep, trial_id: int, reason: str, max_retry: int | None) -> None:
    """FAIL the trial with `reason` and enqueue its retry (same parameters) unless it was retried already; the
    Ledger then counts the retry, not the FAIL. `max_retry=None`: retry whatever the history (not the trial's fault).
    """
    sweep.storage.set_trial_user_attr(trial_id, "fail_reason", reason)
    try:
        sweep.storage.set_trial_state_values(trial_id, TrialState.FAIL)
    except optuna.exceptions.UpdateFinishedTrialError:
        return  # another worker got there first
    failed = sweep.storage.get_trial(trial_id)
    if any(failed.number in t.system_attrs.get("retry_history", []) for t in sweep.study.get_trials(deepcopy=False)):
        return
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry)(sweep.study, failed)


def process_start(pid: int) -> int | None:
    """When process `pid` started (clock ticks since boot, /proc/PID/stat field 22), None where there is no /proc.
    PID and start time together name one process: a PID alone may since belong to another one."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return int(stat.rpartition(")")[2].split()[19])  # fields after the command name, which may hold spaces


def _alive(pid, started: int | None = None) -> bool:
    """Whether the process that ran a trial still runs: its PID exists and, when its start time was recorded,
    the process with that PID started then (PIDs are reused)."""
    if not isinstance(pid, int):
        return True  # unknown owner: never take a trial away from it
    if pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    return started is None or process_start(pid) in (started, None)


def objective(sweep: Sweep, trial: optuna.Trial) -> float:
    """One trial: compose its config, train with `trial` (reporting and pruning), return the objective."""
    pid = os.getpid()
    owner = {
        "host": HOST,
        "pid": pid,
        "started": process_start(pid),
        "trial": trial.number,
        "slurm_job": slurm.job_key(),
    }
    trial.set_user_attr("worker", owner)
    try:
        return _train_trial(sweep, trial)
    except (optuna.TrialPruned, stop.Preempted):  # preempted: the requeued worker resumes the trial
        raise
    except stop.Interrupted as interrupted:  # not the trial's fault: it goes back to the study, uncounted
        _give_back(sweep, trial._trial_id, f"worker interrupted by {interrupted.signal_name}", max_retry=None)
        raise stop.Interrupted(
            interrupted.signum,
            f"study {sweep.name} (worker {sweep.worker}) stopped; trial {trial.number} goes back to the study: "
            "run the same command to finish",
        ) from None
    except BaseException as error:  # kept on the trial; Optuna marks it FAIL and the study goes on
        trial.set_user_attr("fail_reason", f"{type(error).__name__}: {one_line(error)}")
        raise


def _train_trial(sweep: Sweep, trial: optuna.Trial) -> float:
    from harness.training.job import run_job

    finalist = trial.user_attrs.get(finalists.FINALIST)
    if finalist is not None:
        key = (int(finalist["of"]), int(finalist["seed"]))
        first = finalists.duplicate_of(trial.number, key, sweep.study.get_trials(deepcopy=False))
        if first is not None:  # two workers enqueued the same finalist run at once: the lower number runs it
            trial.set_user_attr(finalists.DUPLICATE, first)
            raise DuplicateFinalist(f"finalist run of trial {key[0]} on seed {key[1]} is trial {first}")
    values = suggest(sweep.params, trial)
    # The seed is explicit in every trial's overrides (and its reproducing command); a finalist's is a fresh one.
    seed = finalist["seed"] if finalist else sweep.seed
    base, seeds = sweep.base, []
    if not any(p.key == "seed" for p in sweep.params):  # one `seed=`: the command line's, if any, replaced
        base, seeds = [o for o in sweep.base if o.lstrip("+").partition("=")[0] != "seed"], [f"seed={seed}"]
    overrides = [*base, *seeds, *trial_overrides(sweep.params, values), f"name={sweep.name}-t{trial.number:04d}"]
    trial_dir = sweep.dir / f"trial-{trial.number:04d}"
    trial.set_user_attr("dir", str(trial_dir))
    trial.set_user_attr("command", reproduce_command(overrides))
    job = {"overrides": overrides, "dir": str(trial_dir), "group": sweep.name, "run_id": f"{sweep.name}-{trial.number}"}
    shared = {"params": trial.params, "number": trial.number, "report_every": sweep.spec["report_every"]}
    distributed.share(("trial", job | shared))  # the other ranks train it too
    cfg = compose(overrides, sweep.config_name)
    trial.set_user_attr(finalists.SEED, int(cfg.seed))
    reporter = objective_reporter(
        trial,
        cfg.objective.metric,
        cfg.objective.last_n,
        sweep.spec["report_every"],
        _never if finalist else decision_due(sweep.spec["pruner"]),  # a finalist's re-run is measured, never pruned
    )
    value = run_job(cfg, trial_dir, sweep.name, trial=trial, run_id=job["run_id"], callbacks=[reporter])
    if reporter.pruned:
        trial.set_user_attr("pruned_at", reporter.pruned_at)
        raise optuna.TrialPruned(f"pruned at step {reporter.pruned_at}")
    if not math.isfinite(value):
        raise ValueError(f"objective {cfg.objective.metric} is {value}: no finite value was logged")
    return value


def objective_reporter(
    trial: optuna.Trial | None, metric: str, last_n: int, every: int, due: Callable[[int, int], bool] | None = None
):
    """A TrainerCallback reporting the objective (mean of `metric` over the last `last_n` logs) to the trial every
    `every` optimizer steps, and stopping training when the pruner says so; the pruner is asked only where
    `due(last asked, step)` (harness/study/pruning.py). In a multi-process trial rank 0 holds the trial (the others
    pass None) and its decision is agreed at each log, so that every rank stops at that step.

    transformers reports to a trial only inside `hyperparameter_search`, which TRL trainers cannot use; the class is
    built here so that transformers is imported only once a trial runs.
    """
    from transformers import TrainerCallback

    class ObjectiveReporter(TrainerCallback):
        pruned_at: int | None = None

        def __init__(self):
            self.values: list[float] = []
            self.next_report = every
            self.asked_at = 0  # step of the last pruner call

        @property
        def pruned(self) -> bool:
            return self.pruned_at is not None

        def on_log(self, args, state, control, logs=None, **kwargs):
            value = (logs or {}).get(metric)
            prune = trial is not None and state.is_world_process_zero and self._report(value, state.global_step)
            # Every rank logs at the same steps: one all-reduce there makes rank 0's decision theirs.
            (prune,) = distributed.agree([int(prune)], args.device)
            if prune:
                self.pruned_at = state.global_step
                control.should_training_stop = True  # train() returns normally: the wandb run finishes cleanly

        def _report(self, value, step: int) -> bool:
            """Report when due; whether the pruner says stop."""
            if not isinstance(value, (int, float)) or not math.isfinite(value):
                return False
            self.values.append(float(value))
            if step < self.next_report:
                return False
            self.next_report = (step // every + 1) * every
            trial.report(window_mean(self.values, last_n), step)
            if due is not None and not due(self.asked_at, step):
                return False
            self.asked_at = step
            return trial.should_prune()

    return ObjectiveReporter()
