"""`python -m harness.run [overrides]`: one training run, or a multirun with `-m`.

Kept light on purpose: torch and trl are imported only inside the job, so `--cfg job` and `--help` stay fast.
"""

from __future__ import annotations

import sys
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig

from harness import distributed
from harness.compose import preflight
from harness.config import ConfigError


@hydra.main(config_path="../conf", config_name="config", version_base="1.3")
def main(cfg: DictConfig) -> float:
    from harness import redact, stop

    # Again: a launcher may run this job in a process that did not start through __main__.
    stop.install()
    redact.mask_logs()
    from harness.slurm import run_id
    from harness.train import fail, run_job

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
        fail(error, output_dir)
    except stop.Interrupted as interrupted:  # everything is saved; the exit code tells the shell which signal
        print(f"harness: {interrupted}", file=sys.stderr, flush=True)
        raise SystemExit(interrupted.exit_code)


def _mask_saved_configs(hydra_cfg) -> None:
    """Hydra saved the job's config, overrides and its own config (and a multirun's overrides) before calling the
    job: mask the URL passwords they hold (harness/redact.py), and in the command line, which wandb records."""
    from harness import redact

    redact.mask_argv()
    files = []
    if hydra_cfg.output_subdir is not None:
        saved = Path(hydra_cfg.runtime.output_dir) / hydra_cfg.output_subdir
        files += [saved / name for name in ("config.yaml", "hydra.yaml", "overrides.yaml")]
    if hydra_cfg.mode == RunMode.MULTIRUN:
        files.append(Path(hydra_cfg.sweep.dir) / "multirun.yaml")
    redact.mask_files(*files)


def _literal_run_dir(args: list[str]) -> Path | None:
    """`hydra.run.dir=DIR` given literally on a single run's command line (interpolations are Hydra's to resolve)."""
    if "-m" in args or "--multirun" in args:
        return None
    values = [arg.partition("=")[2] for arg in args if arg.startswith("hydra.run.dir=")]
    return Path(values[-1]) if values and "${" not in values[-1] else None


if __name__ == "__main__":
    from harness import redact, stop

    stop.install()  # a signal before the job starts exits at once, with one line instead of a traceback
    redact.mask_logs()  # before Hydra logs the overrides of a multirun's jobs
    try:
        distributed.check_task_counts(sys.argv[1:])
        sys.argv[1:] = preflight(sys.argv[1:])  # every job composed and checked before Hydra writes anything
        fixed_dir = _literal_run_dir(sys.argv[1:])
        if fixed_dir is not None:  # before Hydra overwrites the existing run's .hydra/ files
            from harness.train import check_fresh

            check_fresh(fixed_dir)
    except ConfigError as error:
        print(f"harness: error: {redact.mask(str(error))}", file=sys.stderr)  # a storage URL's password, say
        raise SystemExit(2)
    main()  # exits here unless every job succeeded
    distributed.close()
