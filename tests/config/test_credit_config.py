"""Outcome-only tasks are first-class: the credit estimators compose with a task that has no token reward."""

import pytest

from harness.config.registry import ENTROPIES, TOKEN_REWARDS
from harness.training.build import grpo_config
from tests.conftest import parse_config

CREDIT = ["entropy_bonus", "gtpo", "ktae"]


@pytest.mark.parametrize("name", CREDIT)
@pytest.mark.parametrize("task", [["reward=gsm8k"], ["reward=copy", "reward.token_function=null"]])
def test_outcome_only_task_accepts_the_credit_estimators(task, name, tmp_path):
    run = parse_config(*task, f"advantage={name}", "logger=none")
    assert run.reward.token_function is None
    assert run.advantage.configured.name == name
    assert TOKEN_REWARDS not in run.advantage.configured.needs
    assert (ENTROPIES in run.advantage.configured.needs) == (name != "ktae")
    grpo_config(run, tmp_path)  # trl accepts the run's fields; nothing downloaded


def test_paper_defaults_are_the_yaml_defaults():
    params = {name: parse_config(f"advantage={name}", "logger=none").advantage.configured.kwargs() for name in CREDIT}
    assert params["entropy_bonus"] == {"alpha": 0.4, "kappa": 2.0}
    assert params["gtpo"] == {"alpha1": 1.0, "alpha2": 0.1, "normalisation": "polarity"}
    assert params["ktae"] == {"h1": 1.0, "h2": 1.0, "h3": 1.0, "bm25_k1": 1.2, "bm25_b": 0.75}
