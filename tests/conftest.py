import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from harness.compose import compose
from harness.config import parse

ROOT = Path(__file__).resolve().parent.parent
# Tests never talk to wandb's servers, whatever credentials the developer has.
os.environ["WANDB_MODE"] = "offline"
os.environ.setdefault("WANDB_SILENT", "true")


def compose_config(*overrides: str):
    """The composed config of `python -m harness.run OVERRIDES` (trainer fields without `+`, errors in one line)."""
    return compose(list(overrides))


def parse_config(*overrides: str):
    """The parsed config (`harness.config.Run`) the build takes."""
    return parse(compose_config(*overrides))


def run_cli(*args: str, cwd: Path = ROOT, env: dict | None = None, timeout: float = 600):
    """`python -m harness.run ARGS` as a user would run it."""
    return subprocess.run(
        [sys.executable, "-m", "harness.run", *args],
        cwd=cwd,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def wandb_summary(job_dir: Path) -> dict:
    """The job's one offline wandb run as wandb's own tooling reads it back: config, summary, state, exit code."""
    from harness.train import wandb_command

    (run_dir,) = (job_dir / "wandb").glob("offline-run-*")
    inspect = [wandb_command(), "leet", "inspect", "--summary", "--json", str(run_dir)]
    return json.loads(subprocess.run(inspect, capture_output=True, text=True, check=True).stdout)


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory):
    """A tiny model saved with save_pretrained: what `model=local model.path=...` points at."""
    from harness.model import build_model, build_tokenizer

    model = parse_config().model
    out = tmp_path_factory.mktemp("tiny")
    build_model(model, build_tokenizer(model), out)
    return out / "initial_model"
