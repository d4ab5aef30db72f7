"""`experiment=credit_estimators`: GSPO-token vs GSPO under every outcome-only credit estimator, as a user runs it
(shrunk to 4 steps x 2 seeds: 16 real jobs), ending with a report that compares the arms per estimator and says how
right each estimator's credit is."""

import json
import re

import pytest
import yaml

from tests.conftest import run_cli

pytestmark = pytest.mark.e2e

ESTIMATORS = ("entropy_bonus", "gtpo", "ktae", "mc_value")


def test_credit_estimators_preset_compares_the_levels_under_each_estimator(tmp_path):
    result = run_cli("-m", "experiment=credit_estimators", "debug=fast", "logger=none", "seed=0,1",
                     f"hydra.sweep.dir={tmp_path}")  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    jobs = sorted(p for p in tmp_path.iterdir() if (p / "config.yaml").is_file())
    assert len(jobs) == len(ESTIMATORS) * 2 * 2
    arms = set()
    for job in jobs:
        config = yaml.safe_load((job / "config.yaml").read_text())
        assert config["reward"]["token_function"] is None  # trained on the sequence reward only
        assert config["reward"]["credit_reference"]  # ... and scored against the task's known credit
        arms.add((config["advantage"]["name"], config["importance_sampling"]["level"]))
        records = [json.loads(line) for line in (job / "metrics.jsonl").read_text().splitlines()]
        assert any("eval/greedy/reward" in r for r in records)
        if config["advantage"]["name"] == "mc_value":
            assert all(r["mc/generations"] > 0 for r in records if "reward" in r)
    assert arms == {(a, level) for a in ESTIMATORS for level in ("sequence", "sequence_token")}
    html = (tmp_path / "report" / "report.html").read_text()
    for estimator in ESTIMATORS:
        assert re.search(rf"With {estimator} advantage: GSPO-token (and GSPO|vs GSPO|&#x27;s)", html), estimator
    assert "The comparison rests on <code>eval/greedy/reward</code>" in html
    assert "credit rank corr" in html and "step credit rank corr" in html
