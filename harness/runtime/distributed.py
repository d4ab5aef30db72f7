"""Runs of several processes: torchrun, `accelerate launch`, or SLURM tasks (hydra.launcher.tasks_per_node/nodes).

Every launcher leaves the same torch.distributed variables (RANK, WORLD_SIZE, MASTER_ADDR, ...); accelerate builds
the process group from them. The SLURM launcher exports them from submitit's job environment (`from_slurm_tasks`).
Rank 0 writes the run's files and the wandb run; every rank returns what rank 0 decided (`share`).
"""

from __future__ import annotations

import os
import re
from datetime import timedelta

from harness.config.schema import ConfigError

DEFAULT_TIMEOUT_S = 1800  # transformers' ddp_timeout default
TASK_KEYS = ("hydra.launcher.nodes", "hydra.launcher.tasks_per_node")


def check_task_counts(overrides: list[str]) -> None:
    """Refuse a task count SLURM would reject only after submission (0, -1) or Hydra with a multi-line report."""
    for override in overrides:
        key, _, value = override.partition("=")
        if key in TASK_KEYS and not re.fullmatch(r"[1-9][0-9]*", value):
            raise ConfigError(f"{key}={value} must be a whole number >= 1 (ranks per job: nodes x tasks_per_node)")


def world_size() -> int:
    return int(os.environ.get("WORLD_SIZE", "1"))


def is_main() -> bool:
    return int(os.environ.get("RANK", "0")) == 0


def from_slurm_tasks() -> None:
    """In a SLURM job of several tasks, make each task one rank as torchrun would: RANK, LOCAL_RANK, WORLD_SIZE,
    LOCAL_WORLD_SIZE, MASTER_ADDR (the first node) and MASTER_PORT (derived from the job id unless set), by
    submitit's own helper. Must run before accelerate or transformers look at the environment. One task: nothing."""
    from submitit import JobEnvironment
    from submitit.helpers import TorchDistributedEnvironment

    if JobEnvironment().num_tasks > 1:
        # CUDA_VISIBLE_DEVICES stays as SLURM set it: accelerate picks cuda:LOCAL_RANK among the node's GPUs.
        TorchDistributedEnvironment().export(set_cuda_visible_devices=False, overwrite=True)


def init(trainer_cfg) -> None:
    """Start the process group now (accelerate's PartialState, reused by the trainer), with `trainer.ddp_timeout`
    on every collective: transformers passes that timeout only to GPU process groups, and without it a rank whose
    peer hangs waits 30 minutes. A no-op in a single process or once started (FSDP in a single process refused)."""
    import torch.distributed
    from accelerate import PartialState

    check_sharded(trainer_cfg)
    if world_size() <= 1 or torch.distributed.is_initialized():
        return
    timeout = timedelta(seconds=trainer_cfg.get("ddp_timeout", DEFAULT_TIMEOUT_S))
    PartialState(cpu=bool(trainer_cfg.get("use_cpu", False)), timeout=timeout)


def close() -> None:
    """At the end of a multi-process run's processes, once it succeeded: wait for every rank, then end the process
    group, as torch asks of every program. A rank that exits right after the last collective, with the group alive,
    can abort its peer in gloo's teardown (SIGABRT, "terminate called without an active exception": 13 of 30 exits
    of a bare 2-rank script, 0 of 30 with this). Not after a failure: a lost rank would hold the others in the
    barrier until the collective timeout."""
    if world_size() <= 1:
        return
    import torch.distributed as dist

    if dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


def check_sharded(trainer_cfg) -> None:
    """FSDP shards across the processes of a launcher (LOCAL_RANK set): in one plain process accelerate ignores it
    and trains the whole model on one GPU. Checked in the job: the command that submits SLURM jobs has no LOCAL_RANK."""
    if trainer_cfg.get("fsdp") and "LOCAL_RANK" not in os.environ:
        raise ConfigError(
            "trainer.fsdp (parallelism=fsdp) shards across the ranks of a multi-process launch, and this run is one "
            "plain process; use hydra.launcher.tasks_per_node, torchrun or accelerate launch"
        )


def agree(flags: list[int], device) -> list[int]:
    """The element-wise max of small integer flags over all ranks (one tiny all-reduce; identity in one process):
    a decision one rank takes (stop, prune) becomes every rank's, at the same step."""
    if world_size() <= 1:
        return flags
    import torch
    import torch.distributed as dist

    values = torch.tensor(flags, device=device)
    dist.all_reduce(values, op=dist.ReduceOp.MAX)
    return [int(v) for v in values.tolist()]


def share(value):
    """Rank 0's `value` on every rank (identity in a single process)."""
    if world_size() <= 1:
        return value
    from accelerate.utils import broadcast_object_list

    return broadcast_object_list([value], from_process=0)[0]
