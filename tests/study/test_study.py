"""Optuna studies over real harness runs (harness/study/): spec errors, pruning, resume, workers, faults, CLI.

The e2e tests start real workers (`python -m harness.run sweep=smoke ...`) on the tiny default with 8-step trials;
each worker imports trl once and runs its trials in-process.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import optuna
import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf
from optuna.storages.journal import JournalFileBackend, JournalStorage
from optuna.trial import FixedTrial, TrialState

from harness.config.options import CONF_DIR
from harness.config.schema import ConfigError
from harness.study import JOURNAL_FILE, Ledger, parse_space, prepare, reproduce_command, suggest, trial_overrides
from harness.study.worker import HOST, _fail_dead_local_trials, process_start
from tests.in_process import run_in_process

REPO = Path(__file__).resolve().parents[2]
FINISHED = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)
SHORT = "trainer.max_steps=4"  # trials of the tests that do not look at pruning


# --- helpers --------------------------------------------------------------------------------------------------
def worker_command(sweep_dir: Path, *overrides: str, study: str = "smoke") -> list[str]:
    return [
        sys.executable, "-m", "harness.run", f"sweep={study}", f"sweep.dir={sweep_dir}", "logger=none", *overrides
    ]  # fmt: skip


def run(command: list[str], timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run(command, check=False, cwd=REPO, capture_output=True, text=True, timeout=timeout)


def start(command: list[str], log: Path) -> subprocess.Popen:
    with log.open("w") as out:
        return subprocess.Popen(command, cwd=REPO, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)


def journal_study(sweep_dir: Path, name: str = "smoke") -> optuna.Study:
    if not (sweep_dir / JOURNAL_FILE).is_file():
        raise KeyError(f"no journal in {sweep_dir} yet")  # do not let the reader create it
    storage = JournalStorage(JournalFileBackend(str(sweep_dir / JOURNAL_FILE)))
    return optuna.load_study(study_name=name, storage=storage)


def wait_for(condition, timeout: float, what: str, process: subprocess.Popen | None = None):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = condition()
        if result:
            return result
        if process is not None and process.poll() is not None:
            raise AssertionError(f"worker exited ({process.returncode}) before {what}")
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def running_trial_of(study_loader, pid: int, after_finished: int):
    """A RUNNING trial of worker `pid` whose parameters are sampled, once at least `after_finished` trials have
    finished. (Killed before it samples them, the trial has no parameters to give back: the retry samples anew.)"""

    def check():
        try:
            trials = study_loader().get_trials(deepcopy=False)
        except KeyError:  # the study (or its journal) does not exist yet
            return None
        if sum(t.state in FINISHED for t in trials) < after_finished:
            return None
        mine = [
            t
            for t in trials
            if t.state == TrialState.RUNNING and t.params and t.user_attrs.get("worker", {}).get("pid") == pid
        ]
        return mine[0] if mine else None

    return check


def assert_budget(study: optuna.Study, n_trials: int, sweep_dir: Path) -> list:
    trials = study.get_trials(deepcopy=False)
    assert Ledger.of(trials).finished == n_trials
    assert not [t for t in trials if t.state in (TrialState.RUNNING, TrialState.WAITING)]
    numbers = [t.number for t in trials]
    assert len(numbers) == len(set(numbers))
    for trial in trials:  # every trial ran once, into its own directory (named by trial number)
        metrics = sweep_dir / f"trial-{trial.number:04d}" / "metrics.jsonl"
        if trial.state in (TrialState.COMPLETE, TrialState.PRUNED):
            steps = [json.loads(line)["step"] for line in metrics.read_text().splitlines()]
            assert steps == sorted(set(steps))  # one record per step (the end-of-training keys join the last)
    return trials


def given_back(trials: list, killed: int) -> object:
    retries = [t for t in trials if t.system_attrs.get("failed_trial") == killed]
    assert len(retries) == 1, "the killed worker's trial is retried exactly once"
    return retries[0]


# --- bad specs: one line, before any trial, nothing written -------------------------------------------------------
BAD_SPECS = [
    (["sweep.space.lr.key=trainer.learnig_rate"], "sweep.space.lr.key=trainer.learnig_rate: trainer.learnig_rate is not a GRPOConfig field; did you mean learning_rate?"),
    (["+sweep.space.level={key:importance_sampling,choices:[]}"], "sweep.space.level.choices is empty"),
    (["+sweep.space.level={key:importance_sampling,choices:[token,gspo]}"], "'gspo' is not an option of importance_sampling; allowed: sequence, sequence_token, token"),
    (["sweep.space.lr.low=0.1", "sweep.space.lr.high=0.01"], "sweep.space.lr: low=0.1 > high=0.01"),
    (["sweep.space.lr.low=0"], "sweep.space.lr: log=true needs low > 0"),
    (["+sweep.space.lr.type=double"], "sweep.space.lr.type='double'; allowed: float, int"),
    (["+sweep.space.lr.scale=2"], "sweep.space.lr.scale is not a parameter field"),
    (["+sweep.space.eps2={key:importance_sampling.epsilon,when:{lr:1}}"], "sweep.space.eps2.when.lr: not a parameter with choices"),
    (["+sweep.space.eps2={key:importance_sampling.epsilon,low:0.1,high:0.2}"], "both set importance_sampling.epsilon in the same trial"),
    (["sweep.sampler.name=bayes"], "sweep.sampler.name='bayes'; allowed: tpe, random, cmaes, gp, grid"),
    (["+sweep.sampler.n_startup=3"], "sweep.sampler (tpe): "),
    (["sweep.sampler.name=grid"], "sampler grid needs `choices` or a `step`"),
    (["+sweep.pruner.n_warmup_steps=nan"], "sweep.pruner.n_warmup_steps=nan: must be a finite number"),
    (["+sweep.pruner.n_warmup_steps=150.5"], "sweep.pruner.n_warmup_steps=150.5: must be a whole number"),
    (["sweep.pruner.name=percentile", "+sweep.pruner.percentile=many"], "sweep.pruner.percentile='many': must be a number"),
    (["sweep.pruner.name=successive_halving", "~sweep.pruner.n_startup_trials", "+sweep.pruner.min_resource=soon"], 'sweep.pruner.min_resource=\'soon\': must be a whole number or "auto"'),
    (["sweep.pruner.name=hyperband", "~sweep.pruner.n_startup_trials", "+sweep.pruner.min_resource=auto"], "sweep.pruner.min_resource='auto': must be a whole number"),
    (["sweep.pruner.name=successive_halving", "~sweep.pruner.n_startup_trials", "+sweep.pruner.min_resource=auto"], None),
    (["+sweep.sampler.n_startup_trials=inf"], "sweep.sampler.n_startup_trials=inf: must be a finite number"),
    (["sweep.pruner.name=early"], "sweep.pruner.name='early'; allowed: median, percentile, successive_halving, hyperband, threshold, none"),
    (["sweep.objective.direction=up"], "sweep.objective.direction='up'; allowed: maximize, minimize"),
    (["sweep.n_trials=0"], "sweep.n_trials=0 must be an integer >= 1"),
    (["~sweep.space.lr", "~sweep.space.epsilon"], "sweep.space is empty"),
    (["sweep.storage=postgresql://postgres@127.0.0.1:1/nowhere"], "sweep.storage=postgresql://postgres@127.0.0.1:1/nowhere is unreachable"),
    (["sweep.base=['importance_sampling=token']", "+sweep.space.task={key:reward,choices:[copy,addition]}"], None),
    (["+sweep.level_space.gspo={eps:{key:importance_sampling.epsilon,low:0.1,high:0.2}}"], "sweep.level_space.gspo is not an importance_sampling.level; allowed: token, sequence, sequence_token"),
    (["+sweep.level_space.sequence_token={lr:{key:trainer.learning_rate,low:0.1,high:0.2}}"], "sweep.level_space.sequence_token.lr is also in sweep.space"),
    (["+sweep.space.level={key:importance_sampling,choices:[token]}", "+sweep.level_space.token={eps:{key:importance_sampling.epsilon_high,low:0.1,high:0.2}}"], "sweep.level_space needs the level fixed by the study"),
    (["sweep.finalists.top=7"], "sweep.finalists.top=7 is more than sweep.n_trials=6"),
    (["sweep.finalists.top=2", "+sweep.level_space.sequence_token={eps_high:{key:importance_sampling.epsilon_high,low:1e-4,high:1e-3}}"], None),
]  # fmt: skip


def compose_sweep(overrides: list[str]):
    return compose(config_name="config", overrides=["sweep=smoke", "sweep.name=bad", *overrides])


@pytest.mark.parametrize(("overrides", "message"), BAD_SPECS)
def test_bad_spec_fails_before_any_trial(tmp_path, overrides, message):
    sweep_dir = tmp_path / "study"
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose_sweep([f"sweep.dir={sweep_dir}", *overrides])
        if message is None:  # a valid spec, as a control: it opens the storage and creates the study
            prepare(cfg, [])
            assert (sweep_dir / JOURNAL_FILE).is_file()
            return
        with pytest.raises(ConfigError) as error:
            prepare(cfg, [])
    assert message in str(error.value)
    assert "\n" not in str(error.value)
    assert not sweep_dir.exists()  # nothing written, not even the journal


@pytest.mark.parametrize("study", sorted(p.stem for p in (REPO / "sweeps").glob("[!_]*.yaml")))
def test_shipped_studies_are_valid(tmp_path, study):
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose(
            config_name="config", overrides=[f"sweep={study}", f"sweep.name={study}", f"sweep.dir={tmp_path}"]
        )
        assert prepare(cfg, []).study.study_name == study


def test_conditional_ranges_follow_the_level():
    """sweeps/level.yaml: the level is a group choice, and only that level's epsilon range is suggested."""
    space = OmegaConf.to_container(OmegaConf.load(REPO / "sweeps" / "level.yaml").sweep.space)
    params = parse_space(space)
    token = FixedTrial({"level": "token", "lr": 1e-3, "epsilon_token": 0.2, "epsilon_high_token": 0.28})
    values = suggest(params, token)
    assert set(values) == {"level", "lr", "epsilon_token", "epsilon_high_token"}
    assert trial_overrides(params, values) == [
        "importance_sampling=token",  # the group first, then the values under it
        "trainer.learning_rate=0.001",
        "importance_sampling.epsilon=0.2",
        "importance_sampling.epsilon_high=0.28",
    ]
    sequence = FixedTrial({"level": "sequence", "lr": 1e-3, "epsilon_seq": 3e-4, "epsilon_high_seq": 4e-4})
    assert set(suggest(params, sequence)) == {"level", "lr", "epsilon_seq", "epsilon_high_seq"}


def test_sqlite_refused_with_several_workers(tmp_path):
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose_sweep([f"sweep.dir={tmp_path}", f"sweep.storage=sqlite:///{tmp_path}/study.db"])
        with pytest.raises(ConfigError, match="SQLite locks under concurrent workers"):
            prepare(cfg, [], workers=2)
    assert not (tmp_path / "study.db").exists()


def test_bad_spec_cli_exit_code(tmp_path):
    sweep_dir = tmp_path / "study"
    result = run(worker_command(sweep_dir, "sweep.pruner.name=early"))
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1].startswith("harness: error: sweep.pruner.name='early'; allowed:")
    assert not (sweep_dir / JOURNAL_FILE).exists()


def test_multirun_fan_out_refuses_sqlite(tmp_path):
    command = worker_command(tmp_path, f"sweep.storage=sqlite:///{tmp_path}/s.db", "worker=range(2)")
    result = run_in_process("-m", *command[3:])  # python -m harness.run -m ..., in this process
    assert result.returncode == 2
    assert "SQLite locks under concurrent workers (2 here)" in result.stderr
    assert not (tmp_path / "s.db").exists()


def test_journal_liveness_survives_pid_reuse(tmp_path):
    """A RUNNING trial on the journal whose worker is gone while its PID now belongs to another live process (the
    recorded start time differs) is failed and given back; a trial of a live worker is left alone."""
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        sweep = prepare(compose_sweep([f"sweep.dir={tmp_path}"]), [])
    gone = subprocess.Popen(["sleep", "60"])  # the worker that ran the lost trial
    gone_started = process_start(gone.pid)
    gone.kill()
    gone.wait()
    time.sleep(0.05)  # start times count clock ticks (10 ms): the next process starts at a later one
    reusing = subprocess.Popen(["sleep", "60"])  # a live, unrelated process with the PID the journal recorded
    try:
        lost, live = sweep.study.ask(), sweep.study.ask()
        for trial, started in ((lost, gone_started), (live, process_start(reusing.pid))):
            owner = {"host": HOST, "pid": reusing.pid, "started": started, "trial": trial.number, "slurm_job": None}
            trial.set_user_attr("worker", owner)
        assert _fail_dead_local_trials(sweep, sweep.study.get_trials(deepcopy=False))
    finally:
        reusing.kill()
        reusing.wait()
    trials = sweep.study.get_trials(deepcopy=False)
    assert trials[lost.number].state == TrialState.FAIL
    assert trials[lost.number].user_attrs["fail_reason"] == f"worker pid {reusing.pid} died (host {HOST})"
    assert given_back(trials, lost.number).state == TrialState.WAITING
    assert trials[live.number].state == TrialState.RUNNING
    assert Ledger.of(trials).running == 1 and not Ledger.of(trials).failed


def test_process_start_reads_proc_stat_whatever_the_command_name(tmp_path):
    """The command name in /proc/PID/stat may hold spaces and parentheses; the start time is read after it, and
    agrees with psutil's (accelerate's dependency), which computes it from the same field."""
    psutil = pytest.importorskip("psutil")
    rename = "import ctypes, time; ctypes.CDLL(None).prctl(15, b'w) (x y', 0, 0, 0); print(flush=True); time.sleep(60)"
    odd = subprocess.Popen([sys.executable, "-c", rename], stdout=subprocess.PIPE)
    try:
        odd.stdout.readline()  # renamed
        assert psutil.Process(odd.pid).name() == "w) (x y"
        ticks = os.sysconf("SC_CLK_TCK")
        assert process_start(odd.pid) / ticks + psutil.boot_time() == pytest.approx(
            psutil.Process(odd.pid).create_time()
        )
    finally:
        odd.kill()
        odd.wait()
    assert process_start(odd.pid) is None  # gone


# --- a real study: pruning, one wandb run per trial, results, CLI -----------------------------------------------------
@pytest.fixture(scope="module")
def pruned_study(tmp_path_factory):
    """Six trials; the objective is the policy entropy (minimised): it moves with the learning rate from the first
    steps, so the median pruner has something to compare on 8-step runs."""
    sweep_dir = tmp_path_factory.mktemp("pruned") / "study"
    command = worker_command(
        sweep_dir,
        "sweep.n_trials=6",
        "sweep.objective.metric=entropy",
        "sweep.objective.direction=minimize",
        "sweep.objective.last_n=1",
        "logger=wandb",
        "logger.mode=offline",
    )
    result = run(command)
    assert result.returncode == 0, result.stderr[-3000:]
    return sweep_dir, result


@pytest.mark.e2e
def test_study_prunes_early(pruned_study):
    sweep_dir, _ = pruned_study
    trials = assert_budget(journal_study(sweep_dir), 6, sweep_dir)
    pruned = [t for t in trials if t.state == TrialState.PRUNED]
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    assert pruned and complete
    for trial in pruned:
        summary = json.loads((sweep_dir / f"trial-{trial.number:04d}" / "summary.json").read_text())
        assert summary["steps"] == trial.user_attrs["pruned_at"] < 8  # stopped early ...
        assert not (sweep_dir / f"trial-{trial.number:04d}" / "final_model").exists()  # ... checkpoint-free
    for trial in complete:
        assert json.loads((sweep_dir / f"trial-{trial.number:04d}" / "summary.json").read_text())["steps"] == 8


@pytest.mark.e2e
def test_one_wandb_run_per_trial(pruned_study):
    sweep_dir, _ = pruned_study
    for trial in journal_study(sweep_dir).trials:
        runs = list((sweep_dir / f"trial-{trial.number:04d}" / "wandb").glob("offline-run-*"))
        assert [run.name.rsplit("-", 1)[-1] for run in runs] == [str(trial.number)]  # id smoke-<number>
        assert runs[0].name.endswith(f"-smoke-{trial.number}")


@pytest.mark.e2e
def test_best_trial_reproduces_as_single_run(pruned_study):
    sweep_dir, result = pruned_study
    best = json.loads((sweep_dir / "best.json").read_text())
    assert best["command"] in result.stdout
    study = journal_study(sweep_dir)
    assert best["trial"] == study.best_trial.number and best["value"] == study.best_value
    overrides = best["command"].split()[3:]
    assert reproduce_command(overrides) == best["command"]
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        single = OmegaConf.to_container(compose(config_name="config", overrides=overrides), resolve=True)
    trial = OmegaConf.to_container(OmegaConf.load(Path(best["dir"]) / "config.yaml"))
    trial.pop("group")  # run_job records the wandb group (the study name)
    trial.pop("precision")  # and the effective precision
    single.pop("group")
    assert single == trial
    for label, value in best["params"].items():
        key = {"lr": "trainer.learning_rate", "epsilon": "importance_sampling.epsilon"}[label]
        assert OmegaConf.select(OmegaConf.create(single), key) == value


@pytest.mark.e2e
def test_cli_show_best_dashboard(pruned_study):
    sweep_dir, _ = pruned_study
    show = run([sys.executable, "-m", "harness.study", "show", str(sweep_dir)])
    assert show.returncode == 0, show.stderr
    assert "PRUNED" in show.stdout and "COMPLETE" in show.stdout and len(show.stdout.splitlines()) == 7
    best = run([sys.executable, "-m", "harness.study", "best", str(sweep_dir / JOURNAL_FILE)])
    assert best.returncode == 0 and "reproduce as a single run: python -m harness.run" in best.stdout
    missing = run([sys.executable, "-m", "harness.study", "show", str(sweep_dir / "nowhere")])
    assert missing.returncode == 2 and len(missing.stderr.strip().splitlines()) == 1

    port = 18000 + os.getpid() % 1000
    dashboard = subprocess.Popen(
        [sys.executable, "-m", "harness.study", "dashboard", str(sweep_dir), f"--port={port}"],
        cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:

        def studies():
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/studies", timeout=2) as response:
                    return json.loads(response.read())
            except OSError:
                return None

        answer = wait_for(studies, 60, "the dashboard", dashboard)
        assert [s["study_name"] for s in answer["study_summaries"]] == ["smoke"]
    finally:
        dashboard.kill()
        dashboard.wait()


# --- resume, workers, faults -------------------------------------------------------------------------------------
@pytest.mark.e2e
def test_resume_after_kill(tmp_path):
    """kill -9 a worker mid-trial; rerunning the same multirun command finishes exactly the budget."""
    sweep_dir = tmp_path / "study"
    command = worker_command(sweep_dir, SHORT, "sweep.n_trials=4", "worker=range(2)")
    command = [*command[:3], "-m", *command[3:]]
    worker = start(command, tmp_path / "first.log")
    check = running_trial_of(lambda: journal_study(sweep_dir), worker.pid, after_finished=1)
    killed = wait_for(check, 240, "a running trial", worker).number
    os.killpg(worker.pid, signal.SIGKILL)
    worker.wait()
    before = {t.number: t.params for t in journal_study(sweep_dir).trials if t.state.is_finished()}

    result = run(command)
    assert result.returncode == 0, result.stderr[-3000:]
    trials = assert_budget(journal_study(sweep_dir), 4, sweep_dir)
    lost = trials[killed]
    assert lost.state == TrialState.FAIL and "died" in lost.user_attrs["fail_reason"]
    assert given_back(trials, killed).params == lost.params
    assert {t.number: t.params for t in trials if t.number in before} == before  # finished trials not run again


@pytest.mark.e2e
def test_two_workers_share_journal(tmp_path):
    sweep_dir = tmp_path / "study"
    workers = [
        start(worker_command(sweep_dir, SHORT, "sweep.n_trials=4", f"worker={i}"), tmp_path / f"worker{i}.log")
        for i in range(2)
    ]
    for worker in workers:
        assert worker.wait(timeout=300) == 0, (tmp_path / "worker0.log").read_text()[-3000:]
    trials = assert_budget(journal_study(sweep_dir), 4, sweep_dir)
    assert {t.user_attrs["worker"]["pid"] for t in trials} == {w.pid for w in workers}


@pytest.mark.e2e
def test_two_workers_on_postgres_with_kill(tmp_path, postgres_url):
    """Two workers share PostgreSQL; one is killed with -9 mid-trial: its heartbeat stops, the other worker fails
    the stale trial, Optuna's retry callback gives it back, and the survivor runs it."""
    sweep_dir = tmp_path / "study"
    options = [
        SHORT,
        "sweep.n_trials=4",
        f"sweep.storage={postgres_url}",
        "sweep.heartbeat_interval=1",
        "sweep.grace_period=3",
    ]
    victim = start(worker_command(sweep_dir, *options, "worker=0"), tmp_path / "victim.log")
    survivor = start(worker_command(sweep_dir, *options, "worker=1"), tmp_path / "survivor.log")

    def load():
        return optuna.load_study(
            study_name="smoke", storage=postgres_url.replace("postgresql:", "postgresql+psycopg2:")
        )

    killed = wait_for(running_trial_of(load, victim.pid, after_finished=1), 240, "a running trial", victim).number
    os.killpg(victim.pid, signal.SIGKILL)
    victim.wait()
    assert survivor.wait(timeout=300) == 0, (tmp_path / "survivor.log").read_text()[-3000:]
    trials = assert_budget(load(), 4, sweep_dir)
    lost = trials[killed]
    assert lost.state == TrialState.FAIL
    retry = given_back(trials, killed)
    assert retry.state in (TrialState.COMPLETE, TrialState.PRUNED) and retry.params == lost.params
    assert retry.user_attrs["worker"]["pid"] == survivor.pid


@pytest.mark.e2e
def test_storage_password_is_masked_in_everything_written(tmp_path, postgres_url):
    """A worker started as a multirun on PostgreSQL with a password in the URL (trust auth accepts any), then the
    report of the study: no file under the sweep, Hydra and report directories, not the wandb run (which records
    the command line) and no output line holds the password; Hydra's saved configs hold the masked URL."""
    password = "Pa55w0rd-n0t-in-f1les"
    url = postgres_url.replace("postgres@", f"postgres:{password}@")
    command = worker_command(
        tmp_path / "study", SHORT, "sweep.n_trials=1", f"sweep.storage={url}", "logger=wandb", "logger.mode=offline"
    )
    result = run([*command[:3], "-m", *command[3:], "worker=range(1)", f"hydra.sweep.dir={tmp_path / 'multirun'}"])
    assert result.returncode == 0, result.stderr[-3000:]
    assert (tmp_path / "study" / "best.json").is_file() and list((tmp_path / "study").rglob("offline-run-*"))
    masked = url.replace(password, "***")
    assert f"storage: {masked}" in (tmp_path / "multirun" / "worker-0" / ".hydra" / "config.yaml").read_text()
    report = [sys.executable, "-m", "harness.report", str(tmp_path / "study"), f"--storage={url}", "--study=smoke"]
    reported = run([*report, f"--out={tmp_path / 'report'}"])
    assert reported.returncode == 0 and "Study: smoke" in (tmp_path / "report" / "report.html").read_text()
    written = [path for path in tmp_path.rglob("*") if path.is_file()]
    assert len(written) > 20
    assert [path for path in written if password.encode() in path.read_bytes()] == []
    assert password not in result.stdout + result.stderr + reported.stdout + reported.stderr


@pytest.mark.e2e
def test_failures_are_isolated_and_bounded(tmp_path):
    """Config errors found once a trial's values are known (num_generations=3 does not divide the batch, an objective
    metric the run never logs) make their trials FAIL with the reason, before any model is built, and the study goes
    on; a failure budget stops the study."""
    space = [
        "~sweep.space.lr",
        "~sweep.space.epsilon",
        "+sweep.space.generations={key:trainer.num_generations,choices:[4,3]}",
        "+sweep.space.metric={key:objective.metric,choices:[reward,no_such_metric]}",
    ]
    sweep_dir = tmp_path / "study"
    sweep_dir.mkdir()
    # Enqueued trials (run first by any worker) make every combination run, whatever the sampler proposes.
    study = optuna.create_study(
        study_name="smoke",
        storage=JournalStorage(JournalFileBackend(str(sweep_dir / JOURNAL_FILE))),
        direction="maximize",
    )
    combinations = [(3, "reward"), (4, "no_such_metric"), (4, "reward")]
    for generations, metric in combinations:
        study.enqueue_trial({"generations": generations, "metric": metric})
    result = run(worker_command(sweep_dir, *space, SHORT, "sweep.n_trials=3", "sweep.max_failure_rate=1.0"))
    assert result.returncode == 0, result.stderr[-3000:]
    trials = assert_budget(journal_study(sweep_dir), 3, sweep_dir)
    assert [(t.params["generations"], t.params["metric"]) for t in trials] == combinations
    assert [t.state for t in trials] == [TrialState.FAIL, TrialState.FAIL, TrialState.COMPLETE]
    assert (
        "ConfigError: trainer.num_generations=3 does not divide the generation batch"
        in trials[0].user_attrs["fail_reason"]
    )
    assert (
        "ConfigError: objective.metric='no_such_metric' is not a metric this run logs"
        in trials[1].user_attrs["fail_reason"]
    )
    assert not (sweep_dir / "trial-0001" / "metrics.jsonl").exists()  # refused before training

    stopped_dir = tmp_path / "stopped"
    always_failing = [*space[:2], "+sweep.space.generations={key:trainer.num_generations,choices:[3]}"]
    stopped = run(worker_command(stopped_dir, *always_failing, "sweep.n_trials=5", "sweep.max_failure_rate=0.2"))
    assert stopped.returncode == 1
    assert "study smoke stopped: 2 of 5 trials failed, more than sweep.max_failure_rate=0.2" in stopped.stderr
    assert len(journal_study(stopped_dir).trials) == 2
