import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir

from harness.config import CONF_DIR

ROOT = Path(__file__).resolve().parent.parent
# Tests never talk to wandb's servers, whatever credentials the developer has.
os.environ["WANDB_MODE"] = "offline"
os.environ.setdefault("WANDB_SILENT", "true")


def compose_config(*overrides: str):
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return compose(config_name="config", overrides=list(overrides))


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

    cfg = compose_config()
    out = tmp_path_factory.mktemp("tiny")
    build_model(cfg.model, build_tokenizer(cfg.model), out)
    return out / "initial_model"
