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


def finished_run(tmp_path_factory, name: str, *overrides: str) -> tuple[Path, subprocess.CompletedProcess]:
    run_dir = tmp_path_factory.mktemp(name) / "run"
    result = run_cli("debug=fast", "logger=none", *overrides, f"hydra.run.dir={run_dir}")
    assert result.returncode == 0, result.stderr[-3000:]
    return run_dir, result


@pytest.fixture(scope="session")
def default_run(tmp_path_factory):
    """`python -m harness.run debug=fast logger=none` run once (the CPU default: float32), its directory and process
    result, shared by the tests that read it. Do not write into it: copy it (tests/training/test_run_dirs.py)."""
    return finished_run(tmp_path_factory, "default_run")


@pytest.fixture(scope="session")
def bf16_run(tmp_path_factory):
    """The same run with `trainer.bf16=true` (bf16 autocast on the CPU), shared the same way."""
    return finished_run(tmp_path_factory, "bf16_run", "trainer.bf16=true")


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


def repository_files() -> set[str] | None:
    """The untracked and ignored files and directories of the checkout (`git status --porcelain --ignored`), without
    the caches Python and pytest keep; None outside a git checkout."""
    try:
        status = subprocess.run(
            ["git", "status", "--porcelain", "--ignored"], cwd=ROOT, capture_output=True, text=True, check=True
        ).stdout
    except (OSError, subprocess.CalledProcessError):
        return None
    caches = ("__pycache__", ".pytest_cache")
    new = (line for line in status.splitlines() if line.startswith(("??", "!!")))  # not edits of tracked files
    return {line[3:] for line in new if not any(cache in line for cache in caches)}


@pytest.fixture(scope="session", autouse=True)
def no_test_writes_into_the_repository():
    """Tests write under tmp_path only: a file appearing in the checkout (outputs/, multirun/, wandb/, studies/, a
    study file in sweeps/) fails the session."""
    before = repository_files()
    yield
    after = repository_files()
    if before is not None and after - before:
        pytest.fail(f"the tests wrote into the repository: {sorted(after - before)}", pytrace=False)


def pytest_collection_modifyitems(items):
    """Tiers by directory: everything under tests/cluster/ needs the local SLURM cluster; tests/faults/ is the
    fault-injection tier (`-m faults`)."""
    for item in items:
        top = item.path.relative_to(ROOT / "tests").parts[:1]
        if "cluster" in top:
            item.add_marker(pytest.mark.cluster)
        if "faults" in top:
            item.add_marker(pytest.mark.faults)
