"""What a person watches while a job trains: one progress display, printed by rank 0 only.

- On a terminal: one line that updates in place (tqdm) with step/max_steps, elapsed time, time left and the key
  metrics of the last log.
- Elsewhere (SLURM logs, CI, pipes), and when several jobs share one terminal (a multirun whose launcher runs
  `n_jobs` processes at once, `hydra/launcher=local`): a plain line per log, the same fields in the same order;
  jobs that share the terminal prefix their lines with their directory's name.

It also keeps third-party output off that display: transformers' own progress bars (model save and load) are turned
off, and `silence_known_warnings` drops exactly the known deprecation warnings trl 1.16 triggers every generation.
Everything else (warnings, errors, the run summary) is printed as before.
"""

from __future__ import annotations

import os
import sys
import time
import warnings
from typing import TextIO

from tqdm import tqdm
from transformers import TrainerCallback

# Shown after the times, most important first: a narrow terminal cuts the line from the right.
KEY_METRICS = ("reward", "clip/region_frac_token", "is_ratio/std", "adv/within_seq_std", "entropy")

_live: list[tqdm] = []  # the bar on screen, if any: other output goes around it (`note`)


def metrics_text(logs: dict) -> str:
    return " ".join(f"{key}={float(logs[key]):.4g}" for key in KEY_METRICS if key in logs)


EVAL_KEY = "eval/greedy/reward"  # in every held-out evaluation's record


def eval_text(step: int, max_steps: int, logs: dict) -> str:
    """`held-out step 50/600 | greedy/reward=0.41 ... pass@8=0.5 (1.2 s)` (a plain line; the live line shows the
    greedy reward as `held-out 0.41`)"""
    keys = [k for k in logs if k.startswith("eval/") and k != "eval/seconds"]
    values = " ".join(f"{k[5:]}={float(logs[k]):.4g}" for k in keys)
    return f"held-out step {step}/{max_steps} | {values} ({logs.get('eval/seconds', 0):.1f} s)"


def plain_line(step: int, max_steps: int, elapsed: float, remaining: float | None, logs: dict) -> str:
    """`step 10/600 elapsed 00:05 eta 04:55 | reward=0.03 ...` (times as tqdm formats them; `?` before a rate)."""
    eta = "?" if remaining is None else tqdm.format_interval(remaining)
    return f"step {step}/{max_steps} elapsed {tqdm.format_interval(elapsed)} eta {eta} | {metrics_text(logs)}"


def shares_terminal() -> bool:
    """Whether other jobs of this launch write to the same terminal at the same time: a Hydra multirun whose launcher
    runs several jobs in parallel processes (the joblib launcher's `n_jobs`; hydra/launcher=local sets 2)."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    if not HydraConfig.initialized():
        return False
    hydra_cfg = HydraConfig.get()
    return hydra_cfg.mode == RunMode.MULTIRUN and hydra_cfg.launcher.get("n_jobs", 1) != 1


def can_update_in_place(stream: TextIO) -> bool:
    """A terminal that understands carriage returns, with no other job writing to it."""
    try:
        tty = stream.isatty()
    except (AttributeError, ValueError):  # a closed or replaced stream
        return False
    return tty and os.environ.get("TERM") != "dumb" and not shares_terminal()


class _Bar(tqdm):
    """tqdm with the metrics as a field of its own (tqdm's `postfix` comes with a leading comma)."""

    metrics = ""

    @property
    def format_dict(self):
        return {**super().format_dict, "metrics": self.metrics}


BAR_FORMAT = "step {n_fmt}/{total_fmt} {bar:12} elapsed {elapsed} eta {remaining}{metrics}"


class ProgressDisplay(TrainerCallback):
    """The progress display of one job (see the module docstring). `live=None` decides from the stream; `label`
    prefixes plain lines (None: the directory name when the terminal is shared, else nothing)."""

    def __init__(self, label: str | None = None, live: bool | None = None, stream: TextIO | None = None):
        self.stream = stream or sys.stdout
        self.live = can_update_in_place(self.stream) if live is None else live
        self.prefix = f"[{label}] " if label is not None and shares_terminal() else ""
        self.bar: _Bar | None = None
        self.train_metrics = self.eval_metrics = ""  # the live line's fields
        self.started = time.monotonic()
        self.first_step = 0

    def on_train_begin(self, args, state, control, **kwargs):
        if not state.is_world_process_zero:
            return
        self.started, self.first_step = time.monotonic(), state.global_step  # a resumed run counts from its checkpoint
        if self.live:
            self.bar = _Bar(
                total=state.max_steps,
                initial=state.global_step,
                file=self.stream,
                dynamic_ncols=True,  # follows the terminal's width; a line never wraps (tqdm trims it)
                bar_format=BAR_FORMAT,
                mininterval=0.5,
            )
            _live.append(self.bar)

    def on_step_end(self, args, state, control, **kwargs):
        if self.bar is not None:
            self.bar.update(state.global_step - self.bar.n)

    def on_log(self, args, state, control, logs=None, **kwargs):
        if state.is_world_process_zero and logs and EVAL_KEY in logs:
            if self.bar is not None:  # the live line shows the last evaluation after the training metrics
                self.eval_metrics = f" | held-out {logs[EVAL_KEY]:.4g}"
                self.bar.metrics = self.train_metrics + self.eval_metrics
                self.bar.refresh()
                return
            self.stream.write(self.prefix + eval_text(state.global_step, state.max_steps, logs) + "\n")
            self.stream.flush()
            return
        if not state.is_world_process_zero or not logs or "reward" not in logs:
            return  # trl's end-of-train record (train_runtime, ...) has no reward: the summary follows it
        if self.bar is not None:
            self.train_metrics = " | " + metrics_text(logs)
            self.bar.metrics = self.train_metrics + self.eval_metrics
            self.bar.refresh()
            return
        elapsed = time.monotonic() - self.started
        done = state.global_step - self.first_step
        remaining = (state.max_steps - state.global_step) * elapsed / done if done > 0 else None
        line = self.prefix + plain_line(state.global_step, state.max_steps, elapsed, remaining, logs)
        self.stream.write(line + "\n")  # one write: lines of jobs sharing the terminal never interleave
        self.stream.flush()

    def on_train_end(self, args, state, control, **kwargs):
        self.close()

    def close(self) -> None:
        """End the live line (it stays on screen with its last values); also on an exception out of training."""
        if self.bar is not None:
            self.bar.close()
            _live.remove(self.bar)
            self.bar = None


def note(line: str, file: TextIO | None = None) -> None:
    """Print one line of the harness's own (a warning) during training without breaking the live line."""
    file = file or sys.stderr
    if _live:
        tqdm.write(line, file=file)  # clears the bar, writes, draws the bar again below
    else:
        print(line, file=file, flush=True)


# trl 1.16 asks for transformers' deprecated `gradient_checkpointing*` aliases around every generation
# (trl.models.utils: `_unwrap_model_for_generation`, `disable_gradient_checkpointing`).
DEPRECATED_CHECKPOINTING = r"`(is_)?gradient_checkpointing(_enable|_disable)?` is deprecated"
# (message, category, module that warns)
KNOWN_WARNINGS = ((DEPRECATED_CHECKPOINTING, FutureWarning, r"transformers\.modeling_utils"),)


def silence_known_warnings() -> None:
    """Ignore exactly KNOWN_WARNINGS (message, category and the module that warns), process-wide; each trainer
    calls it again, which keeps one copy of each filter.

    Not a `catch_warnings` around each generation: every change of the warning filters resets Python's
    shown-once registry, so any other warning would then print again at every step.
    """
    for message, category, module in KNOWN_WARNINGS:
        warnings.filterwarnings("ignore", message=message, category=category, module=module)


def hide_transformers_bars() -> None:
    """No "Writing model shards" / "Loading weights" bars: transformers' own bars are created disabled. Downloads
    from the Hub keep theirs (huggingface_hub draws those)."""
    from transformers.utils import logging

    logging.set_tqdm_hook(lambda factory, args, kwargs: factory(*args, **{**kwargs, "disable": True}))
