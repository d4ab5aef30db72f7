"""The one storage opener on real Optuna journal files: how a journal is recognised, found in a directory, created by
a worker, and refused (one line) when a reader points at anything else."""

import json

import optuna
import pytest
from optuna.storages.journal import JournalFileBackend, JournalStorage

from harness.config.schema import ConfigError
from harness.study.backends import JOURNAL_FILE, find_journal, is_journal, load_study, open_storage


@pytest.fixture
def sweep_dir(tmp_path):
    """A sweep dir as a study leaves it: its journal (one study with a trial), best.json, a run's metrics, a binary."""
    storage = JournalStorage(JournalFileBackend(str(tmp_path / JOURNAL_FILE)))
    study = optuna.create_study(study_name="levels", storage=storage, direction="maximize")
    study.add_trial(optuna.trial.create_trial(params={}, distributions={}, value=0.5))
    (tmp_path / "best.json").write_text(json.dumps({"trial": 0, "value": 0.5}, indent=2))
    (tmp_path / "aaa_metrics.jsonl").write_text('{"step": 1, "reward": 0.5}\n')
    (tmp_path / "aaa_weights.bin").write_bytes(bytes(range(256)) * 64)
    (tmp_path / "aaa_empty").touch()
    return tmp_path


def test_journal_files_are_recognised_by_their_first_operation(sweep_dir):
    assert is_journal(sweep_dir / JOURNAL_FILE)
    others = ["best.json", "aaa_metrics.jsonl", "aaa_weights.bin", "aaa_empty", "nowhere"]
    assert not any(is_journal(sweep_dir / name) for name in others)
    assert find_journal(sweep_dir) == find_journal(sweep_dir / JOURNAL_FILE) == sweep_dir / JOURNAL_FILE
    assert find_journal(sweep_dir / "best.json") is None


def test_a_journal_of_another_name_is_found_in_its_directory(sweep_dir):
    renamed = sweep_dir / "levels.log"
    (sweep_dir / JOURNAL_FILE).rename(renamed)
    assert find_journal(sweep_dir) == renamed
    assert load_study(open_storage({"storage": str(sweep_dir)}), None, "here").study_name == "levels"


def test_readers_open_what_is_there(sweep_dir):
    for target in (sweep_dir, sweep_dir / JOURNAL_FILE):
        study = load_study(open_storage({"storage": str(target)}), None, str(target))
        assert study.study_name == "levels" and study.best_value == 0.5
    (sweep_dir / "trial-0000").mkdir()
    for target in (sweep_dir / "best.json", sweep_dir / "nowhere", sweep_dir / "trial-0000"):
        with pytest.raises(ConfigError, match=f"^{target}: no journal file here"):
            open_storage({"storage": str(target)})
    assert not (sweep_dir / "nowhere").exists()  # a reader creates nothing


def test_study_names_are_checked(sweep_dir):
    storage = open_storage({"storage": str(sweep_dir)})
    with pytest.raises(ConfigError, match=r"^no study 'other' in here \(found: levels\)$"):
        load_study(storage, "other", "here")
    optuna.create_study(study_name="second", storage=storage)
    with pytest.raises(ConfigError, match=r"holds 2 studies \(levels, second\); choose one with --study"):
        load_study(storage, None, "here")


def test_a_worker_creates_its_journal(tmp_path):
    sweep_dir = tmp_path / "new" / "sweep"
    storage = open_storage({"storage": None}, sweep_dir, workers=2)
    optuna.create_study(study_name="fresh", storage=storage)
    assert find_journal(sweep_dir) == sweep_dir / JOURNAL_FILE
    elsewhere = tmp_path / "journals" / "fresh.journal"
    optuna.create_study(study_name="fresh", storage=open_storage({"storage": str(elsewhere)}, sweep_dir))
    assert is_journal(elsewhere)
