"""Where metrics go: a local JSONL file in the run directory (always) and a wandb run (when `logger=wandb`)."""

from __future__ import annotations

import contextlib
import json
import math
import os
from collections.abc import Iterator
from pathlib import Path

from omegaconf import DictConfig, OmegaConf
from transformers import TrainerCallback

HISTOGRAM_BINS = 64  # wandb accepts at most 512


class MetricsSink(TrainerCallback):
    """Writes every log record to `metrics.jsonl` (flushed per line) and to the active wandb run, on rank 0."""

    def __init__(self, path: Path, wandb_run=None, histogram_every: int = 0, console: bool = True):
        self.path = path
        self.console = console
        self.wandb_run = wandb_run
        self.histogram_every = histogram_every
        self.records: list[dict] = []
        self.trainer = None  # set by the builder: the source of advantage histograms

    def on_log(self, args, state, control, logs=None, **kwargs):
        if not state.is_world_process_zero or not logs:
            return
        record = {"step": state.global_step}
        record.update({k: float(v) for k, v in logs.items() if isinstance(v, (int, float)) and math.isfinite(v)})
        histogram = self._histogram(state.global_step)
        if histogram is not None:
            record["adv/histogram"] = histogram
        self.records.append(record)
        if self.console and "reward" in record:
            print(_progress_line(record, state.max_steps), flush=True)
        with self.path.open("a") as f:
            f.write(json.dumps(record) + "\n")
        if self.wandb_run is not None:
            scalars = {k: v for k, v in record.items() if k != "adv/histogram"}
            if histogram is not None:
                import wandb

                edges, counts = histogram["edges"], histogram["counts"]
                scalars["adv/histogram"] = wandb.Histogram(np_histogram=(counts, edges))
            self.wandb_run.log(scalars, step=state.global_step)

    def _histogram(self, step: int) -> dict | None:
        if not self.histogram_every or step % self.histogram_every or self.trainer is None:
            return None
        if self.trainer.last_advantages is None:
            return None
        import torch

        advantages, mask = self.trainer.last_advantages
        if advantages.dim() == 1:
            advantages = advantages.unsqueeze(1).expand_as(mask)
        values = advantages[mask.bool()].float().cpu()
        if values.numel() == 0:
            return None
        low, high = values.min().item(), values.max().item()
        if low == high:
            low, high = low - 0.5, high + 0.5
        counts, edges = torch.histogram(values, bins=HISTOGRAM_BINS, range=(low, high))
        return {"counts": counts.tolist(), "edges": edges.tolist()}


PROGRESS_KEYS = ("reward", "clip/region_frac_token", "is_ratio/std", "adv/within_seq_std", "entropy")


def _progress_line(record: dict, max_steps: int) -> str:
    """A compact console line per log (replaces transformers' dict printing)."""
    values = " ".join(f"{key}={record[key]:.4g}" for key in PROGRESS_KEYS if key in record)
    return f"step {record['step']}/{max_steps} {values}"


def wandb_mode(cfg: DictConfig) -> str:
    """`auto` is online only when credentials are configured (env key or `wandb login`'s netrc entry)."""
    if cfg.mode != "auto":
        return cfg.mode
    if os.environ.get("WANDB_MODE"):
        return os.environ["WANDB_MODE"]
    netrc = Path(os.environ.get("NETRC", Path.home() / ".netrc"))
    logged_in = netrc.is_file() and "api.wandb.ai" in netrc.read_text(errors="ignore")
    return "online" if os.environ.get("WANDB_API_KEY") or logged_in else "offline"


@contextlib.contextmanager
def wandb_run(cfg: DictConfig, output_dir: Path, group: str, run_id: str | None = None) -> Iterator:
    """One wandb run for one job, finished on every exit path (exit code 1 on an exception, 128 + signal when a
    signal stopped it)."""
    if cfg.logger.name != "wandb" or not _is_main_process():
        yield None
        return
    import wandb

    config = OmegaConf.to_container(cfg, resolve=True)
    run = wandb.init(
        project=cfg.logger.project,
        entity=cfg.logger.entity,
        name=cfg.name,
        group=group,
        job_type=cfg.importance_sampling.level,
        tags=list(cfg.logger.tags),
        config=config,
        dir=str(output_dir),
        mode=wandb_mode(cfg.logger),
        id=run_id,
        resume="allow" if run_id else None,
        reinit="create_new",
    )
    try:
        yield run
    except BaseException:
        run.finish(exit_code=1)
        raise
    from harness import stop

    run.finish(exit_code=stop.exit_code())  # stopped by a signal: recorded as failed, with the process's exit code


def _is_main_process() -> bool:
    return int(os.environ.get("RANK", "0")) == 0
