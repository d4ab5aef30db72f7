"""Run as 2 ranks under torchrun: SLURM's warning signal landing on one rank just after the step's stop agreement
(its all-reduce) must not stop that rank alone; both ranks stop, with a checkpoint, at the next step.

The signal is real (SIGUSR2 to this process, handled by harness/runtime/slurm.py's handler); only its moment is chosen, by
sending it from inside the all-reduce wrapper once the real all-reduce has returned, where CI once hit it by chance.
"""

import os
import signal
from types import SimpleNamespace

import torch
import torch.distributed as dist
from accelerate import PartialState
from transformers import TrainerControl, TrainerState

from harness.runtime import distributed, slurm, stop


def main() -> None:
    PartialState(cpu=True)  # the gloo process group, as a CPU trainer starts it
    rank = dist.get_rank()
    signal.signal(signal.SIGUSR2, slurm._flag)
    all_reduce = dist.all_reduce

    def all_reduce_then_signal(*args, **kwargs):
        done = all_reduce(*args, **kwargs)
        if rank == 1 and stop.requested() is None:
            os.kill(os.getpid(), signal.SIGUSR2)  # handled before the next line of the caller runs
        return done

    dist.all_reduce = all_reduce_then_signal
    # The two TrainingArguments fields the callback reads. A real TrainingArguments here makes about 1 exit in 12
    # abort in torch's teardown (SIGABRT after both ranks passed), which the harness's own runs do not show.
    args = SimpleNamespace(world_size=dist.get_world_size(), device=torch.device("cpu"))
    callback = stop.stop_callback()
    decisions = []
    for step in (1, 2):
        control = TrainerControl()
        callback.on_step_end(args, TrainerState(global_step=step, max_steps=10), control)
        decisions.append((step, control.should_training_stop, control.should_save))
    everyone = [None, None]
    dist.all_gather_object(everyone, decisions)
    # Step 1: the signal came after the agreement, so nobody stops; step 2: everybody stops and checkpoints.
    assert everyone[0] == everyone[1] == [(1, False, False), (2, True, True)], everyone
    print(f"rank {rank}: stopped with the other rank at step 2", flush=True)
    distributed.close()  # as the harness ends its processes


if __name__ == "__main__":
    main()
