"""`experiment=tuned_comparison` end to end at a tiny budget: one study per arm, each arm's finalists on the same
fresh seeds, then the report over the arms' winning finalist re-runs."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from harness.report.__main__ import main as report_main
from tests.study.test_study import journal_study, run

ARMS = ("token-process", "sequence-process", "sequence_token-process")


@pytest.mark.e2e
def test_tuned_comparison_end_to_end(tmp_path):
    root = tmp_path / "tuned"
    command = [
        sys.executable, "-m", "harness.run", "-m", "experiment=tuned_comparison", f"hydra.sweep.dir={root}",
        "logger=none", "debug=fast", "trainer.max_steps=4", "trainer.logging_steps=2", "sweep.report_every=2",
        "sweep.n_trials=2", "sweep.finalists.top=1", "sweep.finalists.seeds=2",
    ]  # fmt: skip
    result = run(command, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    winners = {}
    for arm in ARMS:
        best = json.loads((root / arm / "best.json").read_text())
        assert best["study"] == f"tuned_comparison-{arm}"
        study = journal_study(root / arm, best["study"])
        search = [t for t in study.trials if "finalist" not in t.user_attrs]
        assert len(search) == 2 and {t.user_attrs["seed"] for t in search} == {0}
        assert sorted(best["winner"]["seeds"]) == [1, 2]  # the same fresh seeds in every arm
        winners[arm] = best["winner"]
        # The same budget over the same learning-rate range; each level its own clip range.
        assert {"lr", "epsilon", "epsilon_high"} == set(best["params"])
    token_eps = winners["token-process"]["params"]["epsilon"]
    assert 0.1 <= token_eps <= 0.3 and winners["sequence-process"]["params"]["epsilon"] <= 3e-3
    html = (root / "report" / "report.html").read_text()
    assert "<h2>Tuned comparison</h2>" in html and "from 6 run(s)" in html  # 3 arms x the winner's 2 re-runs
    for arm in ARMS:
        assert f"tuned_comparison-{arm}" in html
    assert "P(GSPO-token &gt; GSPO) = " in html and "P(GSPO-token &gt; GRPO) = " in html
    assert "Performance profiles" in html and "IQM" in html
    for arm in ARMS:  # the report read the finalist runs, not the search trials
        for trial in json.loads((root / arm / "best.json").read_text())["finalists"]["ranked"][:1]:
            assert f"trial {trial['trial']}" in html


def test_report_finalists_needs_a_study(tmp_path, capsys):
    (tmp_path / "runs").mkdir()
    assert report_main([str(tmp_path / "runs"), "--finalists"]) == 2
    error = capsys.readouterr().err.strip().splitlines()
    assert len(error) == 1 and "no study journal under" in error[0]


def test_report_cli_lists_the_finalists_flag():
    out = subprocess.run([sys.executable, "-m", "harness.report", "--help"], capture_output=True, text=True, check=True)
    assert "--finalists" in out.stdout
