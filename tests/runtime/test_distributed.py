"""Two CPU processes under torchrun: per-token advantages equal the single-process ones; a full run completes."""

import contextlib
import json
import os
import subprocess
import sys
import time

import pytest

from tests.conftest import ROOT

pytestmark = pytest.mark.e2e


def torchrun(*args: str, timeout: float = 600):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", "29533", *args],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout,
    )  # fmt: skip


def torchrun_in_background(tmp_path, port: int, *overrides: str):
    """`harness.run OVERRIDES` as 2 ranks under torchrun, in a session of their own: (agent, run dir, stderr file)."""
    run_dir, err = tmp_path / "run", tmp_path / "stderr"
    command = [
        sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", str(port),
        "-m", "harness.run", *overrides, f"hydra.run.dir={run_dir}",
    ]  # fmt: skip
    with err.open("w") as stderr:
        agent = subprocess.Popen(
            command, cwd=ROOT, env={**os.environ, "OMP_NUM_THREADS": "1"}, stdout=subprocess.DEVNULL, stderr=stderr,
            start_new_session=True,
        )  # fmt: skip
    return agent, run_dir, err


def wait_for_logs(agent, metrics, err, lines: int) -> None:
    """Until `metrics` holds `lines` records; fails at once if the run ended."""
    deadline = time.monotonic() + 300
    while not (metrics.is_file() and len(metrics.read_text().splitlines()) >= lines):
        assert agent.poll() is None and time.monotonic() < deadline, err.read_text()[-3000:]
        time.sleep(0.2)


def test_two_process_process_advantages_match_single_process(tmp_path):
    result = torchrun("-m", "tests.distributed_worker", str(tmp_path))
    assert result.returncode == 0, result.stderr[-4000:]
    for rank in (0, 1):
        assert f"rank {rank}: per-token advantages match" in result.stdout
        assert f"rank {rank}: ratio and clip metrics match" in result.stdout


def test_a_signal_just_after_the_stop_agreement_waits_for_the_next_step_on_every_rank():
    """Found by CI: the warning signal reached one rank between the step's stop all-reduce and its read of the
    result; that rank stopped alone and the other waited in the next forward until the collective timeout."""
    result = torchrun("-m", "tests.stop_race_worker", timeout=300)
    assert result.returncode == 0, result.stderr[-4000:]
    for rank in (0, 1):
        assert f"rank {rank}: stopped with the other rank at step 2" in result.stdout


def test_two_process_training_run(tmp_path):
    result = torchrun(
        "-m", "harness.run", "debug=fast", "logger.mode=offline", "trainer.per_device_train_batch_size=6",
        "trainer.num_generations=4", f"hydra.run.dir={tmp_path}",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-4000:]
    records = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records if "reward" in r] == [2, 4]  # written once, by rank 0
    assert len(list((tmp_path / "wandb").glob("offline-run-*"))) == 1
    assert "clip/region_frac_seq" in records[0] and "adv/within_seq_std" in records[0]


def test_sigterm_to_one_rank_stops_every_rank_at_the_same_step(tmp_path):
    """SIGTERM to one rank only (as `kill PID` or a node-local signal does): a rank that stopped alone would leave
    the other waiting in a collective. The ranks agree on the stop (harness/runtime/stop.py), end at the same step, and the
    run is saved."""
    import re
    import signal

    import psutil

    agent, run_dir, err = torchrun_in_background(
        tmp_path, 29534, "debug=fast", "logger.mode=offline", "trainer.per_device_train_batch_size=6",
        "trainer.num_generations=4", "trainer.max_steps=300",
    )  # fmt: skip
    metrics = run_dir / "metrics.jsonl"
    try:
        wait_for_logs(agent, metrics, err, lines=2)
        ranks = psutil.Process(agent.pid).children()  # the agent's children are the two ranks
        assert len(ranks) == 2
        ranks[-1].send_signal(signal.SIGTERM)
        agent.wait(timeout=60)  # a rank left waiting in a collective would hang here
    finally:
        if agent.poll() is None:
            os.killpg(agent.pid, signal.SIGKILL)
            agent.wait()
    stopped = re.findall(r"harness: interrupted by SIGTERM: \S+ stopped at step (\d+);", err.read_text())
    assert len(stopped) == 2 and stopped[0] == stopped[1], err.read_text()[-3000:]
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "interrupted" and summary["steps"] == int(stopped[0])
    steps = [json.loads(line)["step"] for line in metrics.read_text().splitlines() if "reward" in line]
    assert steps == sorted(set(steps)) and steps[-1] == int(stopped[0])


def test_two_process_study_worker_trains_each_trial_on_both_ranks(tmp_path):
    """An Optuna worker under torchrun: rank 0 asks and tells, rank 1 trains the same trials; one study, one
    trial directory and summary per trial, both ranks exit when the budget is spent."""
    import optuna
    from optuna.storages.journal import JournalFileBackend, JournalStorage

    result = torchrun(
        "-m", "harness.run", "sweep=smoke", "sweep.n_trials=2", f"sweep.dir={tmp_path}", "logger=none",
        "sweep.pruner.name=none", "trainer.ddp_timeout=120",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-4000:]
    storage = JournalStorage(JournalFileBackend(str(tmp_path / "study.journal")))
    trials = optuna.load_study(study_name="smoke", storage=storage).get_trials()
    assert [t.state for t in trials] == [optuna.trial.TrialState.COMPLETE] * 2
    for trial in trials:
        summary = json.loads((tmp_path / f"trial-{trial.number:04d}" / "summary.json").read_text())
        assert summary["processes"] == 2 and summary["steps"] == 8 and summary["objective"] == trial.value


def test_a_hung_rank_fails_the_run_after_ddp_timeout(tmp_path):
    """SIGSTOP to rank 1 (a hung process keeps its connections open): rank 0 must fail in its next collective after
    trainer.ddp_timeout seconds, not wait forever (the CPU process group has it from harness/runtime/distributed.py)."""
    import signal

    import psutil

    ranks = []
    agent, run_dir, err = torchrun_in_background(
        tmp_path, 29535, "debug=fast", "logger=none", "trainer.max_steps=100000", "trainer.ddp_timeout=10"
    )
    try:
        wait_for_logs(agent, run_dir / "metrics.jsonl", err, lines=1)
        ranks = sorted(psutil.Process(agent.pid).children(), key=lambda p: p.environ()["RANK"])
        ranks[1].send_signal(signal.SIGSTOP)
        stopped = time.monotonic()
        ranks[0].wait(timeout=120)
        took = time.monotonic() - stopped
    finally:
        for rank in ranks:  # torchrun's workers have process groups of their own: the agent's kill misses them
            with contextlib.suppress(psutil.NoSuchProcess):
                rank.kill()
        os.killpg(agent.pid, signal.SIGKILL)
        agent.wait()
    assert 10 <= took < 60, took
    assert "timed out" in err.read_text().lower() or "timeout" in err.read_text().lower(), err.read_text()[-3000:]


def test_two_process_evaluation_equals_one_process(tmp_path):
    """The held-out set split over 2 ranks (unequal shares) and gathered gives one process's metrics."""
    one, two = tmp_path / "one", tmp_path / "two"
    one.mkdir(), two.mkdir()
    single = subprocess.run(
        [sys.executable, "-m", "tests.distributed_eval_worker", str(one)], cwd=ROOT, capture_output=True, text=True,
        env={**os.environ, "OMP_NUM_THREADS": "1"}, timeout=600,
    )  # fmt: skip
    assert single.returncode == 0, single.stderr[-4000:]
    result = torchrun("-m", "tests.distributed_eval_worker", str(two))
    assert result.returncode == 0, result.stderr[-4000:]
    alone, split = (json.loads((d / "eval.json").read_text()) for d in (one, two))
    assert (alone.pop("processes"), split.pop("processes")) == (1, 2)
    alone.pop("eval/seconds"), split.pop("eval/seconds")
    assert {"eval/greedy/reward", "eval/pass@4", "eval/best_reward@2", "eval/sampled/accuracy"} <= set(alone)
    assert alone.keys() == split.keys()
    for key in alone:
        assert split[key] == pytest.approx(alone[key], abs=1e-6), key
    assert 0 < alone["eval/sampled/reward"] < 1  # sampled completions were scored
