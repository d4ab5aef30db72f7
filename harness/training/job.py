"""One training job: validate -> build -> train -> statistics -> sinks, returning the objective.

`python -m harness.run` calls `run_job` once per Hydra job; Optuna workers call it once per trial.
"""

from __future__ import annotations

import json
import math
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path

from omegaconf import DictConfig, OmegaConf, open_dict

from harness.algorithms.noise_floor import run_noise_floor
from harness.config.schema import ConfigError
from harness.config.validate import parse
from harness.runtime import redact
from harness.training.run_dir import CONFIG_FILE, METRICS_FILE, SUMMARY_FILE, objective_value


def run_job(
    cfg: DictConfig,
    output_dir: Path,
    group: str,
    trial=None,
    run_id: str | None = None,
    callbacks: Sequence = (),
) -> float:
    """Train once and return the objective (mean of `objective.metric` over the last `objective.last_n` logs).

    Writes into `output_dir`: `config.yaml` (resolved), `metrics.jsonl`, `summary.json`, `initial_model/` (tiny),
    `final_model/` and the wandb run. `trial` is passed to `trainer.train(trial=...)`; `callbacks` are extra
    TrainerCallbacks (e.g. the Optuna reporter); `run_id` fixes the wandb run id so a restarted job resumes its run.
    """
    spec = parse(cfg)
    check_fresh(output_dir)
    from harness.runtime import distributed, stop
    from harness.runtime.slurm import resume_checkpoint
    from harness.training.build import build_trainer, effective_precision
    from harness.training.console import ProgressDisplay
    from harness.training.failures import RunFailed, building, clean_up, describe, log_traceback
    from harness.training.sinks import MetricsSink, wandb_run

    before = {p.name for p in output_dir.iterdir()} if output_dir.is_dir() else set()  # Hydra's files, a requeue's
    try:  # the build boundary (harness/training/failures.py): anything raised here is one line, exit 2, nothing left
        with building("the run directory", f"hydra.run.dir={output_dir}"):
            output_dir.mkdir(parents=True, exist_ok=True)
        with open_dict(cfg):
            cfg.group = group  # record the effective group in config.yaml and the wandb config
        sink = MetricsSink(output_dir / METRICS_FILE, histogram_every=cfg.stats.histogram_every)
        display = ProgressDisplay(label=output_dir.name)  # rank 0: a live line on a terminal, a line per log elsewhere
        stopper = stop.stop_callback()  # SIGINT/SIGTERM/SIGHUP, SLURM's preemption warning: stop at a step boundary
        with building("setting up the processes", trainer=spec.trainer):
            distributed.init(cfg.trainer)  # several ranks: collectives time out after trainer.ddp_timeout
        # Building checks the trainer fields and calls the rewards once before it writes anything.
        trainer = build_trainer(spec, output_dir, [sink, display, *callbacks, stopper])
        sink.trainer = trainer
        with open_dict(cfg):
            cfg.precision = effective_precision(trainer)
        # A requeued SLURM job continues from the checkpoint its previous attempt saved here (harness/runtime/slurm.py).
        main = trainer.accelerator.is_main_process  # rank 0 writes the run's files (the sink and wandb check it too)
        with building("the run directory", f"hydra.run.dir={output_dir}"):
            checkpoint, sink.records = resume_checkpoint(Path(trainer.args.output_dir), output_dir / METRICS_FILE, main)
            if main:
                (output_dir / CONFIG_FILE).write_text(redact.mask(OmegaConf.to_yaml(cfg, resolve=True)))
    except ConfigError:
        clean_up(output_dir, before)
        raise
    failure = None
    with stop.graceful(), wandb_run(cfg, output_dir, group, run_id) as run:
        sink.wandb_run = run
        try:  # the training boundary: user code or the environment failing from here on is RunFailed, exit 1
            trainer.train(trial=trial, resume_from_checkpoint=checkpoint)
            if stopper.stopped_at is not None:
                status = "interrupted"
            elif any(getattr(callback, "pruned", False) for callback in callbacks):
                status = "pruned"
            else:
                status = "finished"
            if status == "finished":  # pruned and interrupted runs exit checkpoint-free
                trainer.save_model(str(output_dir / "final_model"))
        except Exception as error:  # noqa: BLE001 - the boundary: whatever user code or the environment raised
            failure, status = error, "failed"
            shutil.rmtree(output_dir / "final_model", ignore_errors=True)  # a partial model is not a result
        finally:
            display.close()  # a failed step leaves no half-drawn line
        summary = summarize(sink.records, cfg, output_dir, run, status)
        summary["processes"] = trainer.accelerator.num_processes
        if failure is not None:
            summary["reason"] = describe(failure)
            summary["failed_after_step"] = trainer.state.global_step
        if run is not None:
            run.summary.update({"objective": summary["objective"], "status": status, "processes": summary["processes"]})
        if failure is not None:  # inside the wandb run: it finishes as failed (exit code 1)
            written = write_summary(output_dir, summary) if main else None
            logged = log_traceback(output_dir, failure)
            raise RunFailed(failure_line(cfg.name, summary, output_dir, written, logged)) from failure
    if main:
        (output_dir / SUMMARY_FILE).write_text(json.dumps(summary, indent=2) + "\n")
        print_summary(summary)
    if status == "interrupted":
        where = f"{cfg.name} stopped at step {stopper.stopped_at}; metrics, summary and wandb run are in {output_dir}"
        raise stop.Interrupted(stop.requested(), where)
    return distributed.share(summary["objective"])  # only rank 0 has the records: every rank returns its value


def write_summary(output_dir: Path, summary: dict) -> str | None:
    """Write summary.json; None when it was written, else why not (a full disk)."""
    try:
        (output_dir / SUMMARY_FILE).write_text(json.dumps(summary, indent=2) + "\n")
    except OSError as error:
        (output_dir / SUMMARY_FILE).unlink(missing_ok=True)  # a half-written summary would read as a result
        return error.strerror or type(error).__name__
    return None


def failure_line(name: str, summary: dict, output_dir: Path, summary_problem: str | None, logged: bool) -> str:
    """The one line of a run that failed after training started: what failed, and what is kept where."""
    kept = [f"{METRICS_FILE} (every logged step)"]
    kept.append(SUMMARY_FILE if summary_problem is None else f"no {SUMMARY_FILE} ({summary_problem})")
    if logged:
        kept.append("the traceback in run.log")
    return (
        f"{name} failed after step {summary['failed_after_step']}: {summary['reason']}; "
        f"kept in {output_dir}: {', '.join(kept)}"
    )


def check_fresh(output_dir: Path, key: str | None = None) -> None:
    """Refuse a run directory that already holds a run: appending would mix two runs' steps in one metrics file.
    A requeued SLURM job is the exception: it resumes its own run there (harness/runtime/slurm.py). `key`: the
    setting that chose the directory (default: hydra.sweep.dir in a multirun's job, else hydra.run.dir)."""
    from harness.runtime.slurm import requeued

    held = [name for name in (METRICS_FILE, SUMMARY_FILE, CONFIG_FILE) if (output_dir / name).exists()]
    if held and not requeued():  # summary.json alone: a run that failed before it logged
        key = key or _dir_key()
        raise ConfigError(f"{output_dir} already holds a run ({held[0]}); choose another {key} or move it away")


def _dir_key() -> str:
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    multirun = HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN
    return "hydra.sweep.dir" if multirun else "hydra.run.dir"


def summarize(records: list[dict], cfg: DictConfig, output_dir: Path, run, status: str = "finished") -> dict:
    train = [r for r in records if "reward" in r]
    window = cfg.objective.last_n
    first = train[:window]
    summary = {
        "name": cfg.name,
        "status": status,  # finished, pruned (Optuna), interrupted (SIGINT/SIGTERM/SIGHUP) or failed (+ "reason")
        "steps": max((r["step"] for r in records), default=0),
        "objective_metric": cfg.objective.metric,
        "objective": objective_value(records, cfg.objective.metric, window),
        "reward_first": sum(r["reward"] for r in first) / len(first) if first else math.nan,
        "reward_last": objective_value(records, "reward", window),
        "clip": {k: v for k, v in (train[-1] if train else {}).items() if k.startswith("clip/") and "frac" in k},
        "eval": last_eval(records),
        "noise_floor": run_noise_floor(records),
        "epsilon": [cfg.importance_sampling.epsilon, cfg.importance_sampling.epsilon_high],
        "precision": OmegaConf.to_container(cfg.precision),
        "output_dir": str(output_dir),
        "metrics_file": str(output_dir / METRICS_FILE),
    }
    if run is not None:
        summary["wandb_dir"] = str(Path(run.dir).parent)
        summary["wandb_mode"] = run.settings.mode
    return summary


def last_eval(records: list[dict]) -> dict:
    """The last held-out evaluation: its step and `eval/...` values ({} when the run did not evaluate)."""
    evaluated = [r for r in records if "eval/greedy/reward" in r]
    if not evaluated:
        return {}
    return {"step": evaluated[-1]["step"]} | {k: v for k, v in evaluated[-1].items() if k.startswith("eval/")}


def eval_line(ev: dict) -> str:
    """`held-out (step 600): greedy reward 0.812, accuracy 0.458; sampled reward 0.701, accuracy 0.31; pass@1 ...`"""
    greedy = f"greedy reward {ev['eval/greedy/reward']:.3f}"
    sampled = f"sampled reward {ev['eval/sampled/reward']:.3f}"
    if "eval/greedy/accuracy" in ev:
        greedy += f", accuracy {ev['eval/greedy/accuracy']:.3f}"
        sampled += f", accuracy {ev['eval/sampled/accuracy']:.3f}"
    family = "eval/pass@" if "eval/greedy/accuracy" in ev else "eval/best_reward@"  # pass@k needs an accuracy
    at_k = [f"{k[5:]} {v:.3f}" for k, v in ev.items() if k.startswith(family)]
    return f"held-out (step {ev['step']}): {greedy}; {sampled}; {', '.join(at_k)}"


def print_summary(s: dict) -> None:
    lines = [
        f"harness: {s['name']} finished {s['steps']} steps"
        if s["status"] == "finished"
        else f"harness: {s['name']} {s['status']} at step {s['steps']}",
        f"  reward: {s['reward_first']:.3f} (first logs) -> {s['reward_last']:.3f} (last logs)",
        f"  objective ({s['objective_metric']}, last logs): {s['objective']:.4f}",
    ]
    if s.get("eval"):
        lines.append(f"  {eval_line(s['eval'])}")
    if s["clip"]:
        lines.append("  clip fractions (last log): " + ", ".join(f"{k[5:]}={v:.4f}" for k, v in s["clip"].items()))
    if s["noise_floor"]:
        noise, precision = s["noise_floor"], s["precision"]
        lines.append(
            f"  ratio noise floor (max |log w| where w should be 1): token {noise['token_max']:.2g}, "
            f"sequence {noise['seq_max']:.2g}; clip range epsilon {s['epsilon'][0]:g}/{s['epsilon'][1]:g}; "
            f"precision: autocast {precision['autocast']}, weights {precision['weights']}"
        )
    lines.append(f"  outputs: {s['output_dir']}  (metrics: {s['metrics_file']})")
    if "wandb_dir" in s:
        wandb = wandb_command()
        lines.append(f"  wandb ({s['wandb_mode']}): view with `{wandb} leet {s['wandb_dir']}`")
        if s["wandb_mode"] == "offline":
            lines.append(f"  upload later with `{wandb} sync {s['wandb_dir']}`")
    print("\n".join(lines), flush=True)


def wandb_command() -> str:
    """`wandb` when it is on PATH, else the one next to this Python (a venv used without activating it)."""
    beside = Path(sys.executable).with_name("wandb")
    return "wandb" if shutil.which("wandb") == str(beside) or not beside.exists() else str(beside)


def fail(error: ConfigError, output_dir: Path | None = None, sweep_dir: Path | None = None) -> None:
    """Print the one-line error, drop a job directory that holds only Hydra's own files (and a multirun's
    `sweep_dir` left holding only its multirun.yaml), exit 2."""
    for directory, hydra_files in ((output_dir, {".hydra"}), (sweep_dir, {"multirun.yaml"})):
        if directory is not None and directory.is_dir():
            leftovers = {p.name for p in directory.iterdir()} - hydra_files
            if all(name.endswith(".log") for name in leftovers):
                shutil.rmtree(directory, ignore_errors=True)  # the other ranks of the job may be removing it too
    print(f"harness: error: {error}", file=sys.stderr, flush=True)
    raise SystemExit(2)
