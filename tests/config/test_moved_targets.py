"""`_target_` paths of modules that moved when the code was split into layer packages: a config naming the old path
is refused with the new one, and the new one works."""

import re

import pytest

from harness.config.schema import ConfigError
from tests.conftest import parse_config

PRM = ["reward/token_function=prm", "reward.token_function.path=/nowhere", "advantage=process"]


def test_an_old_target_path_is_refused_with_the_new_one():
    old = "harness.reward_models.ProcessRewardModel"
    message = (
        f"_target_={old} cannot be imported (the module moved: use harness.tasks.reward_models.ProcessRewardModel)"
    )
    with pytest.raises(ConfigError, match=re.escape(message)):
        parse_config(*PRM, f"reward.token_function._target_={old}")


def test_the_shipped_prm_option_names_the_new_path():
    run = parse_config(*PRM)
    assert run.reward.token_function["_target_"].startswith("harness.tasks.reward_models.")
