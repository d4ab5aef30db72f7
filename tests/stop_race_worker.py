"""Run as 2 ranks under torchrun: SLURM's warning signal landing on one rank just after the step's stop agreement
(its all-reduce) must not stop that rank alone; both ranks stop, with a checkpoint, at the next step.

The signal is real (SIGUSR2 to this process, handled by harness/slurm.py's handler); only its moment is chosen, by
sending it from inside the all-reduce wrapper once the real all-reduce has returned, where CI once hit it by chance.
"""

import os
import signal
import tempfile

import torch.distributed as dist
from accelerate import PartialState
from transformers import TrainerControl, TrainerState, TrainingArguments

from harness import slurm, stop


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
    args = TrainingArguments(output_dir=tempfile.mkdtemp(), use_cpu=True, report_to=[])
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


if __name__ == "__main__":
    main()
