"""A run directory holds one run: a second run into it is refused before anything is built or overwritten, except
a requeued SLURM job, which resumes its own run there (harness/runtime/slurm.py)."""

from __future__ import annotations

import shutil

import pytest

from harness.config.schema import ConfigError
from harness.training.job import check_fresh
from tests.in_process import run_in_process


def refusal(run_dir) -> str:
    return (
        f"harness: error: {run_dir} already holds a run (metrics.jsonl); choose another hydra.run.dir or move it away"
    )


@pytest.mark.e2e
def test_second_run_into_a_fixed_directory_is_refused(default_run, tmp_path):
    run_dir = tmp_path / "run"
    shutil.copytree(default_run[0], run_dir)  # a finished `debug=fast logger=none` run, as it left its directory
    before = {path: path.read_bytes() for path in run_dir.rglob("*") if path.is_file()}

    again = run_in_process("debug=fast", "logger=none", "seed=1", f"hydra.run.dir={run_dir}")
    assert again.returncode == 2 and again.stderr.strip() == refusal(run_dir)
    # Spelled through an interpolation, the directory is known only inside the job: still refused, before the
    # build (Hydra has rewritten its own .hydra/ copies by then).
    spelled = run_in_process(
        "debug=fast", "logger=none", "hydra.run.dir=${oc.env:RUN_DIR}", env={"RUN_DIR": str(run_dir)}
    )
    assert spelled.returncode == 2 and spelled.stderr.strip().splitlines()[-1] == refusal(run_dir)
    after = {path: path.read_bytes() for path in run_dir.rglob("*") if path.is_file()}
    assert {p: b for p, b in after.items() if ".hydra" not in p.parts} == {
        p: b for p, b in before.items() if ".hydra" not in p.parts
    }  # metrics, summary, config and models untouched
    assert [p for p in after if ".hydra" in p.parts] == [p for p in before if ".hydra" in p.parts]


def test_requeued_slurm_job_may_resume_in_its_directory(tmp_path, monkeypatch):
    (tmp_path / "metrics.jsonl").write_text('{"step": 2, "reward": 0.5}\n')
    monkeypatch.delenv("SLURM_RESTART_COUNT", raising=False)
    with pytest.raises(ConfigError, match="already holds a run"):
        check_fresh(tmp_path)
    monkeypatch.setenv("SLURM_RESTART_COUNT", "1")
    check_fresh(tmp_path)
    check_fresh(tmp_path / "new")  # an empty or new directory is always fine
