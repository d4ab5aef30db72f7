"""`python -m harness.run [overrides]`: one training run, or a multirun with `-m`.

The command: `harness.cli.preflight` checks every job before Hydra starts, Hydra composes and launches, and
`harness.cli.task` runs each job. Kept light on purpose: torch and trl are imported only inside the job, so
`--cfg job`, `--help` and every refusal of a bad value stay fast.
"""

from __future__ import annotations

import sys

import hydra
from omegaconf import DictConfig

from harness.cli.preflight import check_command_line
from harness.cli.task import run_task
from harness.config.schema import ConfigError
from harness.runtime import distributed, redact, stop


@hydra.main(config_path="../conf", config_name="config", version_base="1.3")
def main(cfg: DictConfig) -> float:
    return run_task(cfg)


if __name__ == "__main__":
    stop.install()  # a signal before the job starts exits at once, with one line instead of a traceback
    redact.mask_logs()  # before Hydra logs the overrides of a multirun's jobs
    try:
        sys.argv[1:] = check_command_line(sys.argv[1:])  # every job composed and checked before Hydra writes anything
    except ConfigError as error:
        print(f"harness: error: {redact.mask(str(error))}", file=sys.stderr)  # a storage URL's password, say
        raise SystemExit(2) from None
    main()  # exits here unless every job succeeded
    distributed.close()
