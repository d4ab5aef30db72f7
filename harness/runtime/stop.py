"""Stopping a job without losing it: SIGINT/SIGTERM/SIGHUP, and SLURM's preemption warning (harness/runtime/slurm.py).

A signal only records a stop request. Training stops at the end of the current optimizer step; the job then writes
its metrics, summary.json (`status: interrupted`) and finishes its wandb run, and the process exits 128 + the signal
number (130 for SIGINT, 143 for SIGTERM, 129 for SIGHUP: a closed terminal or SSH session) with one line on stderr.
A second signal, or a signal outside a job (while Hydra composes, while torch imports), exits at once: there is
nothing to save yet, or the user insists.
"""

from __future__ import annotations

import contextlib
import os
import signal
import stat
import threading
import time
from collections.abc import Iterator

SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)  # SIGHUP: the terminal or SSH session closed
_state: dict = {"jobs": 0}  # "jobs": running jobs that can stop cleanly; "signum", "checkpoint": the request


class Interrupted(BaseException):
    """Raised once the interrupted job has written everything, to unwind to the entry point (harness/run.py), which
    prints it and exits with `exit_code`. Not an Exception, so that neither Hydra's job runner nor Optuna's trial
    loop records it as a failure on the way."""

    def __init__(self, signum: int, message: str):
        self.signal_name = signal.Signals(signum).name
        super().__init__(f"interrupted by {self.signal_name}: {message}")
        self.signum = signum
        self.exit_code = 128 + signum


class Preempted(BaseException):
    """Raised once the checkpoint is saved after SLURM's warning signal (harness/runtime/slurm.py). Not an Exception, so
    that neither Hydra's job runner nor an Optuna worker's trial loop records the job or trial as failed."""


def install() -> None:
    """Handle SIGINT, SIGTERM and SIGHUP here, unless something else already does: submitit ignores SIGTERM in SLURM
    jobs (the scheduler sends it around a requeue) and must keep doing so, and `nohup` ignores SIGHUP."""
    if threading.current_thread() is not threading.main_thread():
        return  # only the main thread may set handlers (e.g. a joblib worker thread)
    for signum in SIGNALS:
        if signal.getsignal(signum) in (signal.SIG_DFL, signal.default_int_handler, _on_signal):
            signal.signal(signum, _on_signal)


def _on_signal(signum: int, frame) -> None:
    name = signal.Signals(signum).name
    if signum == signal.SIGHUP:
        _detach_from_terminal()
    if not _state["jobs"] or "signum" in _state:
        say(2, f"harness: {name}: exiting now")
        os._exit(128 + signum)  # at once: no unwinding through a trainer mid-step
    request(signum)
    say(1, f"harness: got {name}: stopping after this optimizer step (send it again to exit now)")


def say(fd: int, line: str) -> None:
    """Write from a signal handler: straight to the file descriptor, since `print` may be mid-write on the same
    buffered stream in the interrupted code (a reentrant write raises). On a terminal the line first clears the one
    the cursor is on (the live progress line and the `^C` echoed after it); the progress line is drawn again below."""
    try:
        clear = "\r\x1b[K" if os.isatty(fd) else ""
        os.write(fd, (clear + line + "\n").encode())
    except OSError:  # a terminal that is gone (EIO after SIGHUP), a closed pipe: the files tell the story
        pass


def _detach_from_terminal() -> None:
    """After SIGHUP the terminal is gone and writing to it fails (EIO): stdout and stderr that were that terminal go
    to /dev/null instead, as under `nohup`, so that finishing the step and writing the run's files cannot fail on
    a progress line."""
    devnull = None
    for fd in (1, 2):
        try:
            if not stat.S_ISCHR(os.fstat(fd).st_mode):  # a terminal (a hung-up one answers isatty with no)
                continue
            devnull = os.open(os.devnull, os.O_WRONLY) if devnull is None else devnull
            os.dup2(devnull, fd)
        except OSError:
            continue


def request(signum: int, checkpoint: bool = False) -> None:
    """Ask the running job to stop at the next step boundary (`checkpoint`: save one first, for a requeue)."""
    _state.setdefault("signum", signum)
    _state["checkpoint"] = _state.get("checkpoint", False) or checkpoint


def requested() -> int | None:
    """The signal that asked to stop, if any."""
    return _state.get("signum")


def exit_code() -> int:
    """What the process will exit with if it stops now: 0, or 128 + the stop signal. A preemption does not count:
    that job ends through its requeue (harness/runtime/slurm.py), or completes when it came after the last step."""
    return 0 if "signum" not in _state or _state["checkpoint"] else 128 + _state["signum"]


def reset() -> None:
    _state.clear()
    _state["jobs"] = 0


@contextlib.contextmanager
def graceful() -> Iterator[None]:
    """Inside, a first signal stops at the next step boundary instead of exiting at once."""
    _state["jobs"] += 1
    try:
        yield
    finally:
        _state["jobs"] -= 1


def wait(seconds: float) -> None:
    """Sleep, but only until a stop is requested: `time.sleep` resumes after a signal handler returns."""
    deadline = time.monotonic() + seconds
    while "signum" not in _state and time.monotonic() < deadline:
        time.sleep(min(0.2, deadline - time.monotonic()))


def raise_if_requested(what: str) -> None:
    """At a safe point between units of work (e.g. trials): unwind with the exit code of the stop signal."""
    if exit_code():
        raise Interrupted(_state["signum"], what)


def stop_callback():
    """A TrainerCallback that stops training at the end of an optimizer step once a stop was requested (saving a
    checkpoint first on preemption), and records the step as `stopped_at`. Built here so that importing this module
    stays light."""
    from transformers import TrainerCallback

    class StopAtStepEnd(TrainerCallback):
        stopped_at: int | None = None
        checkpoint = False  # the agreed request asked for a checkpoint (preemption)

        def on_step_end(self, args, state, control, **kwargs):
            agreed = _agreed(args)
            if agreed is None or state.global_step >= state.max_steps:
                return  # no request, or the last step: the run is complete anyway
            self.stopped_at = state.global_step
            _, self.checkpoint = agreed
            control.should_training_stop = True
            control.should_log = True  # the steps since the last log are logged, not lost
            if self.checkpoint:  # a complete optimizer step: nothing half-applied in the checkpoint
                control.should_save = True  # saved even with save_strategy "no"

        def on_save(self, args, state, control, **kwargs):
            if self.stopped_at is not None and self.checkpoint:
                raise Preempted(f"checkpoint saved at step {state.global_step}")

    return StopAtStepEnd()


def _agreed(args) -> tuple[int, bool] | None:
    """The stop request (signal, checkpoint) as every process of a distributed run sees it: a rank that stopped
    alone would leave the others waiting in a collective. One tiny all-reduce per optimizer step. The decision is the
    all-reduce's result only: a signal landing on one rank after the all-reduce waits for the next step's, since
    reading the local request again would stop that rank alone."""
    flags = [_state.get("signum", 0), int(_state.get("checkpoint", False))]
    if args.world_size > 1:
        from harness.runtime.distributed import agree

        flags = agree(flags, args.device)
    signum, checkpoint = flags
    if not signum:
        return None
    request(signum, checkpoint=bool(checkpoint))  # another rank's request becomes this one's (exit code, summary)
    return signum, bool(checkpoint)
