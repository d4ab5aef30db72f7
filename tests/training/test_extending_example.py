"""docs/extending.md's toy estimator, exactly the files the page shows, through the real CLI: an own module registers
`toy`, an own YAML picks it (`advantage.estimator=toy_credit.toy`), and the user's own test passes."""

import json
import os
import subprocess
import sys

import pytest

from tests.conftest import ROOT, run_cli

pytestmark = pytest.mark.e2e

EXAMPLE = ROOT / "docs" / "examples" / "toy_estimator"
FILES = ["toy_credit.py", "conf/advantage/toy.yaml", "test_toy_credit.py"]  # at most three files for the user


def example_env() -> dict:
    """The example's directory on the path (where the user's module lives); no bytecode written into the repo."""
    path = os.pathsep.join([str(EXAMPLE), str(ROOT), os.environ.get("PYTHONPATH", "")])
    return {"PYTHONPATH": path, "PYTHONDONTWRITEBYTECODE": "1"}


def test_the_example_is_three_files():
    files = sorted(p.relative_to(EXAMPLE).as_posix() for p in EXAMPLE.rglob("*") if p.is_file())
    assert files == sorted(FILES)
    page = (ROOT / "docs" / "extending.md").read_text()
    for name in ("toy_credit.py", "conf/advantage/toy.yaml"):
        assert f'--8<-- "docs/examples/toy_estimator/{name}"' in page


def test_the_toy_estimator_trains_with_per_token_advantages(tmp_path):
    result = run_cli(
        "--config-dir", str(EXAMPLE / "conf"), "advantage=toy", "debug=fast", "logger=none",
        f"hydra.run.dir={tmp_path}", env=example_env(),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["steps"] == 4 and summary["name"] == "copy-sequence_token-toy-s0"
    records = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    spreads = [r["adv/within_seq_std"] for r in records if "adv/within_seq_std" in r]
    assert spreads and max(spreads) > 0, "the ramp makes advantages vary within sequences"
    assert "toy_credit.toy" in (tmp_path / "config.yaml").read_text()


def test_the_users_own_test_passes():
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(EXAMPLE / "test_toy_credit.py")]
    result = subprocess.run(
        command, cwd=EXAMPLE, env={**os.environ, **example_env()}, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    assert "3 passed" in result.stdout


def test_an_own_module_that_does_not_import_is_one_line(tmp_path):
    result = run_cli(
        "--config-dir", str(EXAMPLE / "conf"), "advantage=toy", "advantage.estimator=toy_credits.toy",
        "logger=none", f"hydra.run.dir={tmp_path}", env=example_env(),
    )  # fmt: skip
    assert result.returncode == 2
    assert result.stderr.strip() == (
        "harness: error: advantage.estimator=toy_credits.toy: cannot import toy_credits (No module named 'toy_credits')"
    )
