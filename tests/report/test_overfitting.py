"""The report flags a run trained on a deliberately tiny training set: one prompt (copy `aaaa`), judged on the
copy task's held-out prompts over `abcd`. Its training reward climbs while its held-out reward stays low."""

import pytest

from harness.report.build import build_report
from harness.report.heldout import GAP
from harness.report.runs import load_run
from tests.conftest import run_cli

pytestmark = pytest.mark.e2e

TINY_TRAINING_SET = (
    "debug=fast", "logger=none", "reward.dataset.alphabet=a", "reward.eval_dataset.alphabet=abcd",
    "trainer.max_steps=60", "trainer.logging_steps=5", "eval.every=20", "trainer.learning_rate=3e-3",
)  # fmt: skip
FLAG = "<h3>Held-out and training reward part ways</h3>"


def test_a_run_that_memorises_its_training_set_is_flagged(tmp_path, default_run):
    run_dir = tmp_path / "tiny"
    result = run_cli(*TINY_TRAINING_SET, f"hydra.run.dir={run_dir}")
    assert result.returncode == 0, result.stderr[-3000:]
    run = load_run(run_dir, [])
    assert run.config["reward"]["dataset"]["alphabet"] == "a"
    train, heldout = run.final("reward"), run.final("eval/sampled/reward")
    assert train - heldout >= GAP, (train, heldout)  # training reward high, held-out low
    html = build_report([run_dir], tmp_path / "report").html.read_text()
    assert FLAG in html
    assert f"training reward {train:.3f} but held-out sampled reward {heldout:.3f}" in html
    assert "memorisation" in html
    # A default run (copy over abcd, trained and judged on disjoint prompts) is not flagged.
    default_dir, _ = default_run
    assert FLAG not in build_report([default_dir], tmp_path / "default").html.read_text()
