"""Surviving SLURM preemption and time limits: checkpoint on the warning signal, requeue, resume.

Jobs start through submitit (`hydra/launcher=slurm`), whose own handler of SLURM's warning signal (USR2, sent
`signal_delay_s` before the time limit, by a preempting scheduler, or by `scancel --signal=USR2`) requeues the job
and exits on the spot. Here the signal only sets a flag: the trainer finishes its optimizer step, saves a full
checkpoint, unwinds (finishing the wandb run), and only then submitit's handler requeues. The requeued job re-runs
the same Hydra job in the same output directory; `resume_checkpoint` finds the checkpoint there, and the wandb run id
derived from that directory (`run_id`) continues the same run."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

from harness.runtime import stop
from harness.runtime.stop import Preempted  # noqa: F401  (raised once the checkpoint is saved; re-exported for callers)

REQUEUE_WAIT_S = 60  # how long ranks other than 0 wait for rank 0's requeue to end them


@contextlib.contextmanager
def requeue_on_preemption() -> Iterator[None]:
    """Around one Hydra job run by submitit (hydra_plugins/harness_launcher): the warning signal only asks the
    training loop to checkpoint and stop (harness/runtime/stop.py); `Preempted` then hands over to submitit's own
    handler, which stores the resubmission, runs `scontrol requeue` and exits. Requeueing last matters: SLURM terminates
    every process of the job when it requeues, wandb's service process included, so the run must be finished by then."""
    from submitit import JobEnvironment

    signum = JobEnvironment._usr_sig()
    submitit_handler = signal.getsignal(signum)
    signal.signal(signum, _flag)
    try:
        yield
    except Preempted:
        # Exits; or raises when submitit will not requeue (too many time-outs): the job fails, checkpoint on disk.
        submitit_handler(signum, None)
        if JobEnvironment().global_rank != 0:  # only rank 0 requeues; the requeue ends every task of the job
            time.sleep(REQUEUE_WAIT_S)  # a rank exiting first could end the job step before rank 0 requeues it
        raise  # a handler that returned must not turn the preemption into a success
    finally:
        stop.reset()
        signal.signal(signum, submitit_handler)


def _flag(signum, frame) -> None:
    stop.say(1, f"harness: got {signal.Signals(signum).name}: checkpoint at the end of this step, then requeue")
    stop.request(signum, checkpoint=True)


def requeued() -> bool:
    """Whether this is a SLURM job restarted by a requeue (its directory holds the earlier attempt's run)."""
    return int(os.environ.get("SLURM_RESTART_COUNT", "0")) > 0


def resume_checkpoint(trainer_dir: Path, metrics_file: Path, main: bool = True) -> tuple[str | None, list[dict]]:
    """In a requeued SLURM job: the latest complete checkpoint of the earlier attempts (None: start over) and the
    metric records up to it. Anywhere else: (None, []) — a run never picks up a checkpoint it did not write.

    Records logged after the checkpoint are dropped from `metrics_file` by the `main` process (the others of a
    multi-process job only need the checkpoint): the resumed run logs those steps again.
    """
    if not requeued():
        return None, []
    # transformers writes trainer_state.json last: a checkpoint without it was cut short by a kill.
    complete = [path for path in trainer_dir.glob("checkpoint-*") if (path / "trainer_state.json").is_file()]
    latest = max(complete, key=_checkpoint_step, default=None)
    checkpoint, step = (str(latest), _checkpoint_step(latest)) if latest else (None, 0)
    if not main:
        return checkpoint, []
    lines = metrics_file.read_text().splitlines() if metrics_file.is_file() else []
    kept = [record for record in map(json.loads, lines) if record["step"] <= step]
    if lines:
        metrics_file.write_text("".join(json.dumps(r) + "\n" for r in kept))
    return checkpoint, kept


def _checkpoint_step(path: Path) -> int:
    return int(path.name.removeprefix("checkpoint-"))


def run_id(name: str, output_dir: Path) -> str:
    """A wandb run id fixed by the job's output directory, so a requeued job resumes its run instead of a new one."""
    digest = hashlib.sha1(str(output_dir.resolve()).encode()).hexdigest()[:8]
    return f"{re.sub(r'[^A-Za-z0-9_.-]', '-', name)[:100]}-{digest}"  # characters wandb accepts in an id


def job_key() -> str | None:
    """This process's SLURM job (`JOBID`, or `ARRAYID_TASK` in an array); a requeued job keeps it."""
    if "SLURM_ARRAY_JOB_ID" in os.environ:
        return f"{os.environ['SLURM_ARRAY_JOB_ID']}_{os.environ['SLURM_ARRAY_TASK_ID']}"
    return os.environ.get("SLURM_JOB_ID")


def job_alive(key: str) -> bool:
    """Whether a SLURM job is still queued or running (a requeued job counts); True when SLURM cannot be asked."""
    try:
        done = subprocess.run(["squeue", "-h", "-j", key, "-o", "%T"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return True  # never take work away from a job we cannot see
    if done.returncode != 0:  # squeue fails on ids it has forgotten, and when the controller is unreachable
        return "Invalid job id" not in done.stderr
    return bool(done.stdout.strip())
