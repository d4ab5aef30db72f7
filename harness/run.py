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

from harness.config import ConfigError
from harness.options import check_group_overrides


@hydra.main(config_path="../conf", config_name="config", version_base="1.3")
def main(cfg: DictConfig) -> float:
    from harness.slurm import run_id
    from harness.train import fail, run_job

    hydra_cfg = HydraConfig.get()
    output_dir = Path(hydra_cfg.runtime.output_dir)
    group = cfg.group
    if group is None:
        multirun = hydra_cfg.mode == RunMode.MULTIRUN
        group = f"multirun-{Path(hydra_cfg.sweep.dir).name}" if multirun else "single"
    try:
        if cfg.get("sweep") is not None:  # an Optuna worker: loops ask -> run_job -> tell (harness/study/)
            from harness.study import run_worker

            return run_worker(cfg, output_dir)
        return run_job(cfg, output_dir, group, run_id=run_id(cfg.name, output_dir))  # requeued: same wandb run
    except ConfigError as error:
        fail(error, output_dir)


if __name__ == "__main__":
    try:
        check_group_overrides(sys.argv[1:])
    except ConfigError as error:
        print(f"harness: error: {error}", file=sys.stderr)
        raise SystemExit(2)
    main()
