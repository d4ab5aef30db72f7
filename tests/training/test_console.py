"""What a person sees while a job trains (harness/training/console.py): a plain line per log with elapsed time and
time left when the output is not a terminal, one live line on a terminal, plain lines with the job's name when
parallel jobs share a terminal; no third-party deprecation warnings or model save/load bars. And `metrics.jsonl`
holds one record per step."""

from __future__ import annotations

import fcntl
import json
import os
import re
import select
import struct
import subprocess
import sys
import termios
import time
import warnings

import pytest
from transformers import TrainerControl, TrainerState

from harness.config.validate import parse
from harness.training.console import silence_known_warnings
from harness.training.model import build_char_tokenizer, build_tiny_model
from harness.training.run_dir import objective_value
from harness.training.sinks import MetricsSink
from tests.conftest import ROOT, compose_config

TIME = r"(\d+:)?\d\d:\d\d"
PLAIN = re.compile(rf"^step (\d+)/4 elapsed {TIME} eta ({TIME}|\?) \| reward=\S+ clip/region_frac_token=\S+ ")
NOISE = ("FutureWarning", "warnings.warn(", "Writing model shards", "Loading weights")
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def run_on_terminal(*args: str, columns: int = 100, timeout: float = 600) -> tuple[int, str]:
    """`python -m harness.run ARGS` with stdout and stderr on a pseudo-terminal `columns` wide: (exit code, output)."""
    leader, follower = os.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 40, columns, 0, 0))
    env = {**os.environ, "TERM": "xterm", "COLUMNS": str(columns)}
    process = subprocess.Popen(
        [sys.executable, "-m", "harness.run", *args], cwd=ROOT, env=env, stdout=follower, stderr=follower
    )
    os.close(follower)
    chunks, deadline = [], time.monotonic() + timeout
    while time.monotonic() < deadline:
        if select.select([leader], [], [], 1)[0]:
            try:
                chunk = os.read(leader, 65536)
            except OSError:  # EIO: every writer closed the terminal
                break
            if not chunk:
                break
            chunks.append(chunk)
        elif process.poll() is not None:
            break
    os.close(leader)
    return process.wait(timeout=60), b"".join(chunks).decode(errors="replace").replace("\r\n", "\n")


@pytest.mark.e2e
def test_plain_output_has_a_line_per_log_with_times_and_no_third_party_noise(default_run):
    run_dir, result = default_run  # debug=fast logger=none, output captured (not a terminal)
    lines = result.stdout.splitlines()
    progress = [line for line in lines if line.startswith("step ")]
    assert [int(PLAIN.match(line)[1]) for line in progress] == [2, 4], result.stdout
    evaluation = [line for line in lines if line.startswith("held-out step ")]  # debug=fast: once, at the last step
    assert len(evaluation) == 1 and evaluation[0].startswith("held-out step 4/4 | greedy/reward="), result.stdout
    summary = lines.index("harness: copy-sequence_token-process-s0 finished 4 steps")  # print_summary's lines stay
    # the last log line and the last evaluation's line come right before them
    assert lines[summary - len(progress) - 1 : summary] == progress + evaluation
    for noise in NOISE:
        assert noise not in result.stdout + result.stderr, noise
    assert "\r" not in result.stdout
    # One record per logging step, in step order; trl's end-of-train keys are part of the last one.
    records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == [2, 4]
    assert "train_runtime" in records[-1] and "reward" in records[-1]


@pytest.mark.e2e
def test_terminal_shows_one_live_line_that_fits_its_width(tmp_path):
    code, output = run_on_terminal("debug=fast", "logger=none", f"hydra.run.dir={tmp_path}", columns=100)
    assert code == 0, output[-3000:]
    lines = output.split("\n")
    (live,) = [line for line in lines if "step " in line and "\r" in line]  # the bar, redrawn in place, then ended
    frames = [ANSI.sub("", frame) for frame in live.split("\r") if frame.strip()]
    assert all(len(frame) <= 100 for frame in frames), frames  # a wrapped line could not be redrawn in place
    assert re.match(rf"step 4/4 .* elapsed {TIME} eta {TIME} \| reward=", frames[-1]), frames[-1]
    assert not any(PLAIN.match(line) for line in lines)  # no plain lines besides the live one
    assert lines[lines.index(live) + 1] == "harness: copy-sequence_token-process-s0 finished 4 steps"
    for noise in NOISE:
        assert noise not in output, noise


@pytest.mark.e2e
def test_parallel_jobs_on_one_terminal_print_plain_lines_with_their_names(tmp_path):
    code, output = run_on_terminal(
        "-m", "seed=0,1", "hydra/launcher=local", "debug=fast", "logger=none", f"hydra.sweep.dir={tmp_path}"
    )
    assert code == 0, output[-3000:]
    assert "\r" not in output  # two live lines redrawn by two processes would overwrite each other
    for job in ("0-copy-sequence_token-process-s0", "1-copy-sequence_token-process-s1"):
        prefix = f"[{job}] "
        ours = [line.removeprefix(prefix) for line in output.split("\n") if line.startswith(prefix)]
        steps = [line for line in ours if not line.startswith("held-out step ")]  # and one evaluation at the end
        assert [int(PLAIN.match(line)[1]) for line in steps] == [2, 4], output[-3000:]
        assert len(ours) == len(steps) + 1


def log(sink: MetricsSink, step: int, logs: dict) -> None:
    state = TrainerState(global_step=step, max_steps=5)
    sink.on_log(None, state, TrainerControl(), logs=logs)  # the sink reads the state and the logs only


def test_end_of_train_record_joins_the_last_step_and_the_objective_is_unchanged(tmp_path):
    path = tmp_path / "metrics.jsonl"
    sink = MetricsSink(path)
    end = {"train_runtime": 3.5, "train_loss": 0.25, "epoch": 0.5}
    log(sink, 2, {"reward": 0.1, "loss": 1.0})
    log(sink, 4, {"reward": 0.3, "loss": 2.0})
    before = path.read_bytes()
    log(sink, 4, end)  # what transformers logs after the last step, with its number
    lines = path.read_text().splitlines()
    assert [json.loads(line) for line in lines] == [
        {"step": 2, "reward": 0.1, "loss": 1.0},
        {"step": 4, "reward": 0.3, "loss": 2.0, **end},
    ]
    assert path.read_bytes().startswith(before.splitlines(keepends=True)[0])  # earlier lines stay where they were
    assert sink.records == [json.loads(line) for line in lines]
    separate = [{"step": 2, "reward": 0.1, "loss": 1.0}, {"step": 4, "reward": 0.3, "loss": 2.0}, {"step": 4, **end}]
    for metric in ("reward", "loss", "train_runtime", "train_loss"):
        for last_n in (1, 3):
            assert objective_value(sink.records, metric, last_n) == objective_value(separate, metric, last_n)
    # A run that stops between logging steps: the end record is a step of its own, still in order.
    log(sink, 5, end)
    assert [json.loads(line)["step"] for line in path.read_text().splitlines()] == [2, 4, 5]


def test_only_the_known_warnings_are_silenced():
    model = build_tiny_model(build_char_tokenizer(), parse(compose_config()).model)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        silence_known_warnings()
        model.gradient_checkpointing_enable()  # what trl calls around each generation: silenced
        assert model.is_gradient_checkpointing
        model.gradient_checkpointing_disable()
        # The same message from elsewhere, another message or another category from transformers: still shown.
        warnings.warn("`gradient_checkpointing_enable` is deprecated", FutureWarning, stacklevel=1)
        other, source = "`save_pretrained` is deprecated", ("modeling_utils.py", 1, "transformers.modeling_utils")
        warnings.warn_explicit(other, FutureWarning, *source)
        warnings.warn_explicit("`is_gradient_checkpointing` is deprecated", UserWarning, *source)
    assert [(type(w.message), str(w.message)) for w in caught] == [
        (FutureWarning, "`gradient_checkpointing_enable` is deprecated"),
        (FutureWarning, other),
        (UserWarning, "`is_gradient_checkpointing` is deprecated"),
    ]
