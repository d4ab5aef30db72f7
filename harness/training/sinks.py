"""Where metrics go: a local JSONL file in the run directory (always) and a wandb run (when `logger=wandb`)."""

from __future__ import annotations

import contextlib
import json
import math
import os
import socket
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

from omegaconf import DictConfig, OmegaConf
from transformers import TrainerCallback

from harness.runtime import redact
from harness.runtime.distributed import is_main

HISTOGRAM_BINS = 64  # wandb accepts at most 512


class MetricsSink(TrainerCallback):
    """Writes one record per logging step to `metrics.jsonl` (flushed per line) and to the active wandb run, on
    rank 0. The progress display is harness.training.console's."""

    def __init__(self, path: Path, wandb_run=None, histogram_every: int = 0):
        self.path = path
        self.wandb_run = wandb_run
        self.histogram_every = histogram_every
        self.records: list[dict] = []
        self.trainer = None  # set by the builder: the source of advantage histograms

    def on_log(self, args, state, control, logs=None, **kwargs):
        if not state.is_world_process_zero or not logs:
            return
        step = state.global_step
        values = {k: float(v) for k, v in logs.items() if isinstance(v, (int, float)) and math.isfinite(v)}
        histogram = None
        if self.records and self.records[-1]["step"] == step:
            # transformers' end-of-train record (train_runtime, train_loss, ...) comes with the last step's number
            self._merge_into_last(values)
        else:
            histogram = self._histogram(step)
            record = {"step": step, **values} | ({} if histogram is None else {"adv/histogram": histogram})
            self._append((json.dumps(record) + "\n").encode())
            self.records.append(record)  # after the write: the records are what the file holds
        if self.wandb_run is not None:
            scalars = dict(values)
            if histogram is not None:
                import wandb

                edges, counts = histogram["edges"], histogram["counts"]
                scalars["adv/histogram"] = wandb.Histogram(np_histogram=(counts, edges))
            self.wandb_run.log(scalars, step=step)

    def _merge_into_last(self, values: dict) -> None:
        """Add the keys of `values` the last record lacks (`epoch` it has already) and rewrite the file's last line
        in place (the lines before it stay where they are, so a reader following the file keeps its place)."""
        last = self.records[-1]
        for key, value in values.items():
            last.setdefault(key, value)
        data = self.path.read_bytes()
        start = data.rstrip(b"\n").rfind(b"\n") + 1
        line = (json.dumps(last) + "\n").encode()
        fd = os.open(self.path, os.O_WRONLY)
        try:
            try:
                _write_all(fd, line, start)
                os.ftruncate(fd, start + len(line))
            except OSError as error:  # a full disk: the record as it was (its blocks are allocated), then the error
                error.filename = error.filename or str(self.path)
                _write_all(fd, data[start:], start)
                os.ftruncate(fd, len(data))
                raise
        finally:
            os.close(fd)

    def _append(self, line: bytes) -> None:
        """Append one record line, or nothing: a write cut short by a full disk is truncated away, so that every
        line of the file stays a complete record, and the error goes on to the job's failure boundary."""
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666)
        try:
            size = os.fstat(fd).st_size
            try:
                _write_all(fd, line)
            except OSError as error:
                error.filename = error.filename or str(self.path)  # os.write names no file
                os.ftruncate(fd, size)
                raise
        finally:
            os.close(fd)

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


def _write_all(fd: int, data: bytes, offset: int | None = None) -> None:
    """Write all of `data` (at `offset`, or appending), however many calls the kernel takes; OSError as it comes."""
    view = memoryview(data)
    while view:
        written = os.write(fd, view) if offset is None else os.pwrite(fd, view, offset)
        view = view[written:]
        if offset is not None:
            offset += written


PROBE_TIMEOUT_S = 3.0  # wandb itself waits 90 s for its server, then fails the run


def wandb_mode(cfg: DictConfig) -> str:
    """`auto` is online only when credentials are configured (env key or `wandb login`'s netrc entry) and the
    server answers within PROBE_TIMEOUT_S; otherwise offline, said in one line when credentials were there."""
    if cfg.mode != "auto":
        return cfg.mode
    if os.environ.get("WANDB_MODE"):
        return os.environ["WANDB_MODE"]
    netrc = Path(os.environ.get("NETRC", Path.home() / ".netrc"))
    logged_in = netrc.is_file() and "api.wandb.ai" in netrc.read_text(errors="ignore")
    if not (os.environ.get("WANDB_API_KEY") or logged_in):
        return "offline"
    url = os.environ.get("WANDB_BASE_URL") or "https://api.wandb.ai"
    problem = unreachable(url)
    if problem is None:
        return "online"
    print(f"harness: wandb server {url} unreachable ({problem}): logging offline, `wandb sync` later", file=sys.stderr)
    return "offline"


def unreachable(url: str) -> str | None:
    """Why no TCP connection to `url` (or to the proxy the environment sets for it) opens within PROBE_TIMEOUT_S;
    None when one does. Name resolution counts against the time too: it runs in a thread that is not waited for."""
    import urllib.parse
    import urllib.request

    try:
        target = urllib.parse.urlsplit(url)
        proxy = urllib.request.getproxies().get(target.scheme)
        if proxy and not urllib.request.proxy_bypass(target.hostname or ""):
            target = urllib.parse.urlsplit(proxy if "://" in proxy else f"http://{proxy}")
        address = (target.hostname, target.port or (443 if target.scheme == "https" else 80))
    except ValueError as error:  # e.g. a port out of range
        return str(error)
    if not address[0]:
        return "no host in the URL"
    outcome: list[str | None] = []

    def connect() -> None:
        try:
            socket.create_connection(address, timeout=PROBE_TIMEOUT_S).close()
            outcome.append(None)
        except OSError as error:
            outcome.append(error.strerror or str(error) or type(error).__name__)

    probe = threading.Thread(target=connect, daemon=True)
    probe.start()
    probe.join(PROBE_TIMEOUT_S)
    return outcome[0] if outcome else f"no answer within {PROBE_TIMEOUT_S:g} s"


@contextlib.contextmanager
def wandb_run(cfg: DictConfig, output_dir: Path, group: str, run_id: str | None = None) -> Iterator:
    """One wandb run for one job, finished on every exit path (exit code 1 on an exception, 128 + signal when a
    signal stopped it)."""
    if cfg.logger.name != "wandb" or not is_main():
        yield None
        return
    import wandb

    config = redact.masked(OmegaConf.to_container(cfg, resolve=True))
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
        # No history/summary panel and sync hints at the end: the harness prints its summary with wandb's commands
        # (harness.training.job.print_summary). WANDB_QUIET=false brings them back.
        settings=None if "WANDB_QUIET" in os.environ else wandb.Settings(quiet=True),
    )
    try:
        yield run
    except BaseException:
        run.finish(exit_code=1)
        raise
    from harness.runtime import stop

    run.finish(exit_code=stop.exit_code())  # stopped by a signal: recorded as failed, with the process's exit code
