import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from harness.config.compose import compose
from harness.config.validate import parse

ROOT = Path(__file__).resolve().parent.parent
PG = "postgresql://postgres@127.0.0.1:5432"  # the local server CI starts (trust auth)
# Tests never talk to wandb's servers, whatever credentials the developer has.
os.environ["WANDB_MODE"] = "offline"
os.environ.setdefault("WANDB_SILENT", "true")


def compose_config(*overrides: str):
    """The composed config of `python -m harness.run OVERRIDES` (trainer fields without `+`, errors in one line)."""
    return compose(list(overrides))


def parse_config(*overrides: str):
    """The parsed config (`harness.config.groups.Run`) the build takes."""
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
    from harness.training.job import wandb_command

    (run_dir,) = (job_dir / "wandb").glob("offline-run-*")
    inspect = [wandb_command(), "leet", "inspect", "--summary", "--json", str(run_dir)]
    return json.loads(subprocess.run(inspect, capture_output=True, text=True, check=True).stdout)


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory):
    """A tiny model saved with save_pretrained: what `model=local model.path=...` points at."""
    from harness.training.model import build_model, build_tokenizer

    model = parse_config().model
    out = tmp_path_factory.mktemp("tiny")
    build_model(model, build_tokenizer(model), out)
    return out / "initial_model"


@pytest.fixture
def postgres_url():
    """A fresh database on the local PostgreSQL server, dropped afterwards."""
    import psycopg2

    name = f"harness_test_{uuid.uuid4().hex[:12]}"
    try:
        admin = psycopg2.connect(f"{PG}/postgres", connect_timeout=3)
    except psycopg2.OperationalError as error:
        pytest.skip(f"PostgreSQL at {PG} unreachable: {error}")
    admin.autocommit = True
    admin.cursor().execute(f"CREATE DATABASE {name}")
    try:
        yield f"{PG}/{name}"
    finally:
        admin.cursor().execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        admin.close()


def pytest_collection_modifyitems(items):
    """Tiers by directory: everything under tests/cluster/ needs the local SLURM cluster."""
    for item in items:
        if "cluster" in item.path.relative_to(ROOT / "tests").parts[:1]:
            item.add_marker(pytest.mark.cluster)
