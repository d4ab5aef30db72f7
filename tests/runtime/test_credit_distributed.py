"""Two CPU processes under torchrun: every credit estimator, with a prompt's group straddling the ranks, gives the
single-process result (tests/credit_distributed_worker.py)."""

import pytest

from tests.runtime.test_distributed import torchrun

pytestmark = pytest.mark.e2e


def test_credit_estimators_across_ranks_match_single_process(tmp_path):
    result = torchrun("-m", "tests.credit_distributed_worker", str(tmp_path))
    assert result.returncode == 0, result.stderr[-4000:]
    for rank in (0, 1):
        for name in ("entropy_bonus", "gtpo", "ktae", "mc_value"):
            assert f"rank {rank}: {name} across ranks matches the single-process result" in result.stdout
