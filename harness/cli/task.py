"""The job wrapper Hydra calls once per job: one run (`run_job`) or a study worker, with one-line errors and the
exit code that tells the shell what happened (1: failed after training started, 2: bad config or a job that could
not be built, 129/130/143: stopped by SIGHUP/SIGINT/SIGTERM)."""

from __future__ import annotations

import sys
from pathlib import Path

from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig

from harness.config.schema import ConfigError
from harness.runtime import redact, stop
from harness.runtime.slurm import run_id


def run_task(cfg: DictConfig) -> float:
    """Run the job Hydra composed and return its objective."""
    from harness.training.failures import RunFailed
    from harness.training.job import fail, run_job

    # Again: a launcher may run this job in a process that did not start through __main__.
    stop.install()
    redact.mask_logs()
    hydra_cfg = HydraConfig.get()
    output_dir = Path(hydra_cfg.runtime.output_dir)
    _mask_saved_configs(hydra_cfg)
    group = cfg.group
    if group is None:
        multirun = hydra_cfg.mode == RunMode.MULTIRUN
        group = f"multirun-{Path(hydra_cfg.sweep.dir).name}" if multirun else "single"
    try:
        if cfg.get("sweep") is not None:  # an Optuna worker: loops ask -> run_job -> tell (harness/study/)
            from harness.study import run_worker

            return run_worker(cfg, output_dir)
        objective = run_job(cfg, output_dir, group, run_id=run_id(cfg.name, output_dir))  # requeued: same wandb run
        stop.raise_if_requested(f"{cfg.name} finished its steps")  # the signal came after the last step
        return objective
    except ConfigError as error:
        fail(error, output_dir, Path(hydra_cfg.sweep.dir) if hydra_cfg.mode == RunMode.MULTIRUN else None)
    except RunFailed as error:  # training started: the run's files are kept, the traceback is in its run.log
        print(f"harness: error: {redact.mask(str(error))}", file=sys.stderr, flush=True)
        raise SystemExit(error.exit_code) from None
    except stop.Interrupted as interrupted:  # everything is saved; the exit code tells the shell which signal
        print(f"harness: {interrupted}", file=sys.stderr, flush=True)
        raise SystemExit(interrupted.exit_code) from None


def _mask_saved_configs(hydra_cfg) -> None:
    """Hydra saved the job's config, overrides and its own config (and a multirun's overrides) before calling the
    job: mask the URL passwords they hold (harness/runtime/redact.py), and in the command line, which wandb records."""
    redact.mask_argv()
    files = []
    if hydra_cfg.output_subdir is not None:
        saved = Path(hydra_cfg.runtime.output_dir) / hydra_cfg.output_subdir
        files += [saved / name for name in ("config.yaml", "hydra.yaml", "overrides.yaml")]
    if hydra_cfg.mode == RunMode.MULTIRUN:
        files.append(Path(hydra_cfg.sweep.dir) / "multirun.yaml")
    redact.mask_files(*files)
