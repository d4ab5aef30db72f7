"""Damaged files on disk, through the real command line: a study journal whose last record a killed worker cut short,
a file that is not a journal, and run directories whose files the report cannot trust."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from harness.study import JOURNAL_FILE
from harness.study.journal import records
from tests.faults import the_line
from tests.study.test_study import REPO, SHORT, journal_study, run, worker_command

pytestmark = [pytest.mark.e2e, pytest.mark.faults]


def study_cli(*args: str) -> subprocess.CompletedProcess:
    return run([sys.executable, "-m", "harness.study", *args])


def test_a_journal_cut_mid_record_is_shown_read_only_then_repaired_by_the_resume(tmp_path):
    sweep_dir = tmp_path / "study"
    first = run(worker_command(sweep_dir, SHORT, "sweep.n_trials=2"))
    assert first.returncode == 0, first.stderr[-3000:]
    journal = sweep_dir / JOURNAL_FILE
    whole = journal.read_bytes()
    kept, damage = records(journal)
    assert damage is None
    # A worker killed mid-write: the start of its next operation, without the rest or the newline.
    started = json.dumps({"op_code": 0, "worker_id": "killed", "study_id": 0, "datetime_start": "2026-"})
    journal.write_bytes(whole + started[: len(started) // 2].encode())
    damaged = journal.read_bytes()

    shown = study_cli("show", str(sweep_dir))
    assert shown.returncode == 0, shown.stderr[-3000:]
    warning = the_line(shown, "harness: warning: ")
    assert "a half-written last record" in warning and f"{len(kept)} complete record(s)" in warning, warning
    assert shown.stdout.count("COMPLETE") + shown.stdout.count("PRUNED") == 2, shown.stdout
    assert journal.read_bytes() == damaged  # a reader never changes the file

    resumed = run(worker_command(sweep_dir, SHORT, "sweep.n_trials=3"))
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "harness: warning:" in resumed.stderr and "a half-written last record" in resumed.stderr
    backups = list(sweep_dir.glob(f"{JOURNAL_FILE}.damaged-*"))
    assert [b.read_bytes() for b in backups] == [damaged]  # the damaged original, kept
    assert records(journal)[1] is None  # whole again: the resume appended after the last complete record
    assert journal.read_bytes().startswith(whole)
    trials = journal_study(sweep_dir).get_trials(deepcopy=False)
    assert [t.state.is_finished() for t in trials] == [True, True, True]
    again = study_cli("best", str(sweep_dir))
    assert again.returncode == 0 and "harness: warning" not in again.stderr, again.stderr[-3000:]


def test_a_journal_with_a_line_that_is_not_json_names_the_line(tmp_path):
    sweep_dir = tmp_path / "study"
    first = run(worker_command(sweep_dir, SHORT, "sweep.n_trials=1"))
    assert first.returncode == 0, first.stderr[-3000:]
    journal = sweep_dir / JOURNAL_FILE
    lines = journal.read_bytes().splitlines(keepends=True)
    journal.write_bytes(b"".join([*lines[:3], b"\x00\x00 not json\n", *lines[3:]]))
    shown = study_cli("show", str(sweep_dir))
    assert shown.returncode == 0, shown.stderr[-3000:]
    assert "line 4 is not a JSON record" in the_line(shown, "harness: warning: ")


@pytest.mark.parametrize(
    "content",
    [b"just some text\n", b"\x89PNG\r\n\x1a\n\x00\x00", b'{"not": "an operation"}\n'],
    ids=["text", "binary", "json that is not optuna"],
)
def test_show_on_a_file_that_is_not_a_journal_is_one_line(tmp_path, content):
    path = tmp_path / "notes.log"
    path.write_bytes(content)
    result = study_cli("show", str(path))
    assert result.returncode == 2, result.stderr[-3000:]
    assert str(path) in the_line(result)
    assert path.read_bytes() == content


@pytest.fixture(scope="module")
def good_run(tmp_path_factory) -> Path:
    run_dir = tmp_path_factory.mktemp("good") / "run"
    result = subprocess.run(
        [sys.executable, "-m", "harness.run", "debug=fast", "logger=none", f"hydra.run.dir={run_dir}"],
        cwd=REPO, capture_output=True, text=True, check=False, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    return run_dir


def damage_config_yaml(run_dir: Path) -> str:
    (run_dir / "config.yaml").write_text("reward: {name: copy\nimportance_sampling: [\n")
    return "config.yaml is not valid YAML"


def damage_binary_config(run_dir: Path) -> str:
    (run_dir / "config.yaml").write_bytes(b"\xff\xfe\x00\x81 binary")
    return "config.yaml is not valid YAML"


def damage_config_as_list(run_dir: Path) -> str:
    (run_dir / "config.yaml").write_text("- 1\n- 2\n")
    return "is not a harness run config (it is not a mapping)"


def damage_metrics_dir(run_dir: Path) -> str:
    (run_dir / "metrics.jsonl").unlink()
    (run_dir / "metrics.jsonl").mkdir()
    return "metrics.jsonl is not a regular file"


def damage_metrics_fifo(run_dir: Path) -> str:
    (run_dir / "metrics.jsonl").unlink()
    os.mkfifo(run_dir / "metrics.jsonl")  # reading it would block forever
    return "metrics.jsonl is not a regular file"


def damage_level_type(run_dir: Path) -> str:
    text = (run_dir / "config.yaml").read_text()
    (run_dir / "config.yaml").write_text(text.replace("level: sequence_token", "level: [1, 2]", 1))
    return "has no valid importance_sampling.level"


DAMAGES = [
    damage_config_yaml, damage_binary_config, damage_config_as_list, damage_metrics_dir, damage_metrics_fifo,
    damage_level_type,
]  # fmt: skip


def test_the_report_skips_each_damaged_run_with_one_warning_and_reports_the_rest(good_run, tmp_path):
    runs = tmp_path / "runs"
    shutil.copytree(good_run, runs / "run-ok", ignore=shutil.ignore_patterns("*_model", "trainer"))
    expected = {}
    for damage in DAMAGES:
        copy = runs / f"run-{damage.__name__}"
        shutil.copytree(good_run, copy, ignore=shutil.ignore_patterns("*_model", "trainer"))
        expected[copy] = damage(copy)
    result = subprocess.run(
        [sys.executable, "-m", "harness.report", str(runs)], cwd=REPO, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Traceback" not in result.stderr
    for copy, why in expected.items():
        lines = [line for line in result.stderr.splitlines() if f"skipping {copy}:" in line]
        assert len(lines) == 1 and why in lines[0], (why, result.stderr[-3000:])
    assert "run-ok" not in result.stderr
    assert (runs / "report" / "report.html").is_file() or any(runs.glob("**/report.html")), result.stdout


def test_a_report_of_only_damaged_runs_is_one_line_and_exit_2(good_run, tmp_path):
    copy = tmp_path / "runs" / "run-0"
    shutil.copytree(good_run, copy, ignore=shutil.ignore_patterns("*_model", "trainer"))
    damage_config_yaml(copy)
    result = subprocess.run(
        [sys.executable, "-m", "harness.report", str(copy.parent)], cwd=REPO, capture_output=True, text=True
    )
    assert result.returncode == 2, result.stderr[-3000:]
    assert "Traceback" not in result.stderr
