"""Structured config of the `harness_slurm` launcher (registered when Hydra scans `hydra_plugins`).

Kept free of submitit imports: Hydra imports every plugin module on each start, `--cfg job` included.
"""

from dataclasses import dataclass

from hydra.core.config_store import ConfigStore

from hydra_plugins.hydra_submitit_launcher.config import SlurmQueueConf


@dataclass
class HarnessSlurmQueueConf(SlurmQueueConf):
    _target_: str = "hydra_plugins.harness_launcher.launcher.HarnessSlurmLauncher"
    # Seconds between `sacct` polls while jobs run: a cancelled or killed job is reported within about this long.
    poll_interval_s: float = 5.0
    # Seconds a job that left the queue without success may take for its result file to appear (slow NFS).
    result_grace_s: float = 3.0


ConfigStore.instance().store(
    group="hydra/launcher", name="harness_slurm", node=HarnessSlurmQueueConf, provider="harness"
)
