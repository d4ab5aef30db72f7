"""SIGINT/SIGTERM stop a real run at a step boundary and lose nothing: metrics, summary.json and the wandb offline
run (read back with wandb's own tooling) are complete, the exit code names the signal, stderr ends with one line."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from optuna.trial import TrialState

from harness.runtime import stop
from harness.study import Ledger
from harness.training.job import run_job
from tests.conftest import compose_config, wandb_summary
from tests.study.test_study import assert_budget, journal_study, running_trial_of, wait_for, worker_command

REPO = Path(__file__).resolve().parents[2]


def start_run(run_dir: Path, *overrides: str, env: dict | None = None) -> subprocess.Popen:
    """`python -m harness.run` in its own session, like a job a user or a scheduler would stop."""
    command = [sys.executable, "-m", "harness.run", "debug=fast", f"hydra.run.dir={run_dir}", *overrides]
    run_dir.parent.mkdir(parents=True, exist_ok=True)
    out, err = (open(run_dir.parent / f"{run_dir.name}.{s}", "w") for s in ("out", "err"))
    with out, err:
        return subprocess.Popen(
            command,
            cwd=REPO,
            stdout=out,
            stderr=err,
            start_new_session=True,
            env={**os.environ, **(env or {})},
            # Ctrl-C live, as at a terminal: a shell's background job (`cmd &`, nohup) inherits SIGINT ignored, and
            # the harness rightly leaves an ignored signal alone.
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
        )


def logged_steps(run_dir: Path) -> list[int]:
    path = run_dir / "metrics.jsonl"
    lines = path.read_text().splitlines() if path.is_file() else []
    return [record["step"] for record in map(json.loads, lines) if "reward" in record]


def stderr_of(run_dir: Path) -> str:
    return (run_dir.parent / f"{run_dir.name}.err").read_text()


@pytest.mark.e2e
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=lambda signum: signum.name)
def test_signal_stops_run_at_step_boundary_and_keeps_everything(tmp_path, signum):
    run_dir = tmp_path / "run"
    process = start_run(run_dir, "trainer.max_steps=300", "logger.mode=offline")
    wait_for(lambda: len(logged_steps(run_dir)) >= 2, 240, "two logged steps", process)
    sent = time.monotonic()
    if signum == signal.SIGINT:
        os.killpg(process.pid, signum)  # Ctrl-C reaches the whole process group, wandb's service process included
    else:
        process.send_signal(signum)  # what timeout, docker stop and SLURM send to the job
    assert process.wait(timeout=60) == 128 + signum
    print(f"{signum.name}: exit {time.monotonic() - sent:.1f} s after the signal")

    err = stderr_of(run_dir)
    assert "Traceback" not in err
    ours = [line for line in err.splitlines() if line.startswith("harness:")]
    assert ours == [err.strip().splitlines()[-1]], err[-2000:]
    assert ours[0].startswith(f"harness: interrupted by {signum.name}: ")

    steps = logged_steps(run_dir)  # every line parses; steps unique and increasing
    assert steps == sorted(set(steps)) and 2 <= len(steps) and steps[-1] < 300
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "interrupted" and summary["steps"] == steps[-1]
    assert not (run_dir / "final_model").exists()

    wandb = wandb_summary(run_dir)
    assert wandb["exit_code"] == 128 + signum and wandb["state"] == "failed"
    assert wandb["step"] == steps[-1]  # the last logged step reached the wandb run
    assert wandb["summary"]["status"] == "interrupted"


@pytest.mark.e2e
def test_second_signal_exits_at_once(tmp_path):
    """The first SIGTERM lands while a step is busy (a reward that sleeps 5 s once training is under way); the
    second exits at once instead of waiting for the step to end."""
    run_dir, marker = tmp_path / "run", tmp_path / "slow-step"
    fn = "reward.functions.position_accuracy.fn._target_=tests.runtime.test_signals.slow_once_training"
    process = start_run(run_dir, "trainer.max_steps=300", "logger=none", fn, env={"SLOW_STEP_MARKER": str(marker)})
    wait_for(marker.exists, 240, "a slow step", process)
    process.send_signal(signal.SIGTERM)
    out = run_dir.parent / "run.out"
    wait_for(lambda: "harness: got SIGTERM" in out.read_text(), 10, "the first signal's notice", process)
    sent = time.monotonic()
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=30) == 143
    assert time.monotonic() - sent < 3  # the slow step had seconds left
    err = stderr_of(run_dir)
    assert err.strip().splitlines()[-1] == "harness: SIGTERM: exiting now" and "Traceback" not in err
    assert not (run_dir / "summary.json").exists()


_calls = {"n": 0}


def slow_once_training(completions, **_):
    """A reward that is fast for the check before the build and the first generations, then slow."""
    _calls["n"] += 1
    if _calls["n"] > 3:
        Path(os.environ["SLOW_STEP_MARKER"]).touch()
        time.sleep(5)
    return [0.0] * len(completions)


@pytest.mark.e2e
def test_interrupted_study_worker_gives_its_trial_back(tmp_path):
    """SIGTERM a study worker mid-trial: the trial goes back to the study (a FAIL that is retried, not counted) and
    the same command run again completes the budget."""
    sweep_dir = tmp_path / "study"
    command = worker_command(sweep_dir, "sweep.n_trials=1", "trainer.max_steps=16")
    log = tmp_path / "worker.log"
    with log.open("w") as out:
        worker = subprocess.Popen(command, cwd=REPO, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    check = running_trial_of(lambda: journal_study(sweep_dir), worker.pid, after_finished=0)
    trial = wait_for(check, 240, "a running trial", worker)
    wait_for(lambda: logged_steps(sweep_dir / f"trial-{trial.number:04d}"), 240, "a logged step", worker)
    worker.send_signal(signal.SIGTERM)
    assert worker.wait(timeout=60) == 143, log.read_text()[-3000:]
    output = log.read_text()
    assert "Traceback" not in output
    assert f"trial {trial.number} goes back to the study" in output.strip().splitlines()[-1]

    trials = journal_study(sweep_dir).get_trials(deepcopy=False)
    interrupted = trials[trial.number]
    assert interrupted.state == TrialState.FAIL
    assert interrupted.user_attrs["fail_reason"] == "worker interrupted by SIGTERM"
    assert not Ledger.of(trials).failed  # given back: no failure counted against the budget
    summary = json.loads((sweep_dir / f"trial-{trial.number:04d}" / "summary.json").read_text())
    assert summary["status"] == "interrupted"

    again = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr[-3000:]
    trials = assert_budget(journal_study(sweep_dir), 1, sweep_dir)  # two trials stored, one counted
    retry = [t for t in trials if t.system_attrs.get("failed_trial") == trial.number]
    assert (
        len(trials) == 2
        and len(retry) == 1
        and retry[0].state == TrialState.COMPLETE
        and retry[0].params == interrupted.params
    )


@pytest.mark.e2e
def test_preemption_request_checkpoints_at_the_step_and_raises(tmp_path):
    """SLURM's warning signal shares the stop mechanism (harness/runtime/slurm.py `_flag` asks for a checkpoint): training
    stops at that step, saves a complete checkpoint there and raises Preempted for submitit to requeue."""
    from transformers import TrainerCallback

    class WarningSignalAtStep3(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            if state.global_step == 3:
                stop.request(signal.SIGUSR2, checkpoint=True)

    cfg = compose_config("debug=fast", "logger=none", "trainer.max_steps=8")
    try:
        with pytest.raises(stop.Preempted, match="checkpoint saved at step 3"):
            run_job(cfg, tmp_path, group="test", callbacks=[WarningSignalAtStep3()])
    finally:
        stop.reset()
    assert [p.name for p in (tmp_path / "trainer").glob("checkpoint-*")] == ["checkpoint-3"]
    assert (tmp_path / "trainer" / "checkpoint-3" / "trainer_state.json").is_file()
    assert logged_steps(tmp_path)[-1] == 3  # the step was logged before the checkpoint
    assert not (tmp_path / "summary.json").exists()  # the requeued job finishes the run


@pytest.mark.e2e
def test_signal_at_the_last_step_keeps_the_finished_run(tmp_path):
    """A stop asked for during the last step changes nothing in the run (complete, final model saved); only the
    exit code (harness/run.py) still tells that a signal came."""
    from transformers import TrainerCallback

    class SignalAtLastStep(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            if state.global_step == state.max_steps:
                stop.request(signal.SIGTERM)

    cfg = compose_config("debug=fast", "logger=none")
    try:
        run_job(cfg, tmp_path, group="test", callbacks=[SignalAtLastStep()])
        assert stop.exit_code() == 143
    finally:
        stop.reset()
    assert json.loads((tmp_path / "summary.json").read_text())["status"] == "finished"
    assert (tmp_path / "final_model").is_dir()


def test_handlers_leave_signals_that_others_handle_alone():
    """submitit ignores SIGTERM in SLURM jobs (harness/runtime/slurm.py relies on it) and a shell starts background jobs
    with SIGINT ignored: installing keeps those, and takes over only default dispositions."""

    def submitit_bypass(signum, frame):
        pass

    saved = {signum: signal.getsignal(signum) for signum in stop.SIGNALS}
    try:
        signal.signal(signal.SIGTERM, submitit_bypass)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        stop.install()
        assert signal.getsignal(signal.SIGTERM) is submitit_bypass
        assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        stop.install()
        assert signal.getsignal(signal.SIGTERM) is signal.getsignal(signal.SIGINT) is stop._on_signal
    finally:
        for signum, handler in saved.items():
            signal.signal(signum, handler)


def test_waiting_worker_wakes_on_a_signal():
    """A study worker waiting for other workers' trials (heartbeat interval) reacts within a fraction of a second."""
    saved = {signum: signal.getsignal(signum) for signum in stop.SIGNALS}
    stop.install()
    try:
        with stop.graceful():
            threading.Timer(0.3, os.kill, (os.getpid(), signal.SIGTERM)).start()
            started = time.monotonic()
            stop.wait(10)
            assert time.monotonic() - started < 1 and stop.exit_code() == 143
    finally:
        stop.reset()
        for signum, handler in saved.items():
            signal.signal(signum, handler)
