"""A multirun's jobs as Hydra's basic sweeper splits them: the preset's params and the command line's, one job per
combination, glob(...) over the options the checks see, at most MAX_CHECKED_JOBS composed up front."""

import itertools

import pytest

from harness.config.compose import MAX_CHECKED_JOBS, jobs
from harness.config.options import group_options
from harness.config.schema import ConfigError


def as_set(job_lists):
    return {frozenset(job) for job in job_lists}


def test_preset_params_and_command_line_multiply():
    preset = {"seed": "0,1", "importance_sampling": "token,sequence"}
    command_line = ["importance_sampling=sequence_token", "advantage=glob(*,exclude=outcome)", "logger=none"]
    expected = [
        {f"seed={seed}", "importance_sampling=sequence_token", f"advantage={advantage}", "logger=none"}
        for seed, advantage in itertools.product((0, 1), set(group_options("advantage")) - {"outcome"})
    ]  # the command line's importance_sampling replaces the preset's; glob over conf/advantage without outcome
    assert as_set(jobs(command_line, True, preset)) == as_set(expected)


def test_glob_lists_the_options_the_checks_see():
    def options_of(group):
        return {"model": ["tiny", "local"]}.get(group, [])  # e.g. a --config-dir's options, `_` includes left out

    found = jobs(["model=glob(*)", "+trainer.beta=0.0,0.04"], True, {}, options_of)
    assert as_set(found) == as_set(
        [{f"model={m}", f"+trainer.beta={b}"} for m in ("tiny", "local") for b in (0.0, 0.04)]
    )


def test_only_the_first_jobs_are_checked_up_front():
    found = jobs(["seed=range(100)", "trainer.learning_rate=0.001,0.002"], True, {})
    assert len(found) == MAX_CHECKED_JOBS
    assert found[:2] == [["seed=0", "trainer.learning_rate=0.001"], ["seed=0", "trainer.learning_rate=0.002"]]


def test_a_single_run_is_one_job_and_an_empty_sweep_is_refused():
    assert jobs(["seed=0,1"], False, {"seed": "5,6"}) == [["seed=0,1"]]
    with pytest.raises(ConfigError, match="has no jobs: a sweep has no values"):
        jobs(["seed=glob(*)"], True, {})
    with pytest.raises(ConfigError, match="hydra.sweeper.params: BasicSweeper does not support sweep type"):
        jobs(["seed=0"], True, {"trainer.learning_rate": "interval(0.1,0.2)"})
