"""The own-task example (examples/reverse) through Hydra's extension points, exactly as docs/tasks.md runs it."""

import json

import pytest

from tests.cluster.test_slurm import cluster
from tests.conftest import ROOT, run_cli
from tests.in_process import run_in_process

pytestmark = pytest.mark.e2e

EXAMPLE = ROOT / "examples" / "reverse"


def example(*args: str, run=run_cli):
    """`python -m harness.run ARGS` from the example's directory, where its module lives (`run`: in a process of its
    own, or `run_in_process`)."""
    return run(*args, "debug=fast", "logger=none", cwd=EXAMPLE)


@pytest.mark.parametrize("where", [["--config-dir", "conf"], ["hydra.searchpath=[file://conf]"]])
def test_single_run_of_an_own_task(where, tmp_path):
    result = example(*where, "reward=reverse", f"hydra.run.dir={tmp_path}")
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["name"] == "reverse-sequence_token-process-s0" and summary["steps"] == 4


def test_an_unknown_option_lists_the_packages_and_the_users_options(tmp_path):
    result = example("--config-dir", "conf", "reward=nope", f"hydra.run.dir={tmp_path}", run=run_in_process)
    assert result.returncode == 2
    assert (
        result.stderr.strip()
        == "harness: error: reward=nope is not an option; allowed: addition, chain, copy, gsm8k, reverse"
    )
    result = example("--config-dir", "missing", "reward=reverse", run=run_in_process)
    assert result.returncode == 2 and result.stderr.strip() == "harness: error: --config-dir missing: no such directory"


@pytest.mark.parametrize("launcher", ["basic", "local"])
def test_two_job_multirun_of_an_own_task(launcher, tmp_path):
    result = example("-m", "--config-dir", "conf", "reward=reverse", "seed=0,1", f"hydra/launcher={launcher}",
                     f"hydra.sweep.dir={tmp_path}")  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    assert sorted(p.name for p in tmp_path.glob("*/summary.json") for p in [p.parent]) == [
        "0-reverse-sequence_token-process-s0", "1-reverse-sequence_token-process-s1",
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("where", "kept"),
    [(["--config-dir", "conf"], f"--config-dir {EXAMPLE / 'conf'}"),
     (["hydra.searchpath=[file://conf]"], "'hydra.searchpath=[file://conf]'")],
)  # fmt: skip
def test_two_trial_study_of_an_own_task(where, kept, tmp_path):
    # The study's base sets trainer.max_steps=40, which debug=fast does not override: 4 steps a trial are enough here.
    result = example(*where, "sweep=reverse_lr", "sweep.n_trials=2", "trainer.max_steps=4", f"sweep.dir={tmp_path}")
    assert result.returncode == 0, result.stderr[-3000:]
    best = json.loads((tmp_path / "best.json").read_text())
    assert best["command"].startswith(f"python -m harness.run {kept} reward=reverse"), best["command"]
    assert len(list(tmp_path.glob("trial-*/summary.json"))) == 2


@cluster
def test_slurm_job_imports_the_users_module(tmp_path):
    result = example(
        "-m", "--config-dir", "conf", "reward=reverse", "hydra/launcher=slurm", f"hydra.sweep.dir={tmp_path}"
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert (tmp_path / "0-reverse-sequence_token-process-s0" / "summary.json").is_file()
