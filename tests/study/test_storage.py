"""The study storage on a real PostgreSQL server: a worker holds no connection between storage calls, and a server
whose connection slots are all taken is waited for, not reported unreachable (benchmarks/storage_load.py)."""

from __future__ import annotations

import threading
import time
import uuid

import optuna
import psycopg2
import pytest

from harness.config.schema import ConfigError
from harness.study.backends import open_storage, probe
from tests.conftest import PG

SPEC = {"heartbeat_interval": 60, "grace_period": None, "max_retry": 1, "hold_connection": False}


def connections(admin, database: str) -> int:
    cursor = admin.cursor()
    cursor.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()", (database,))
    return cursor.fetchone()[0]


def settles_in(admin, database: str, allowed: set[int]) -> bool:
    """Whether the server's count of connections to `database` is (or within 5 s becomes) one of `allowed`: a closed
    connection's server process ends a moment after the client let go of it, later on a loaded machine."""
    deadline = time.monotonic() + 5
    while connections(admin, database) not in allowed:
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


@pytest.fixture
def admin():
    connection = psycopg2.connect(f"{PG}/postgres", connect_timeout=3)
    connection.autocommit = True
    yield connection
    connection.close()


@pytest.mark.parametrize("hold, held", [(True, {1, 2}), (False, {0})])
def test_connections_a_worker_holds(tmp_path, postgres_url, admin, hold, held):
    """sweep.hold_connection=false (default): no connection between storage calls, e.g. while the trial trains;
    true: at most two (the worker's and its heartbeat thread's), reused."""
    database = postgres_url.rsplit("/", 1)[1]
    storage = open_storage(
        SPEC | {"storage": postgres_url, "hold_connection": hold, "heartbeat_interval": 1}, tmp_path, 2
    )
    study = optuna.create_study(study_name="held", storage=storage, direction="maximize")

    def objective(trial):
        for step in range(1, 6):
            trial.report(step / 10, step)
            trial.should_prune()
            time.sleep(0.3)  # heartbeats (every second) interleave with the reports
            assert settles_in(admin, database, held)
        return 0.5

    study.optimize(objective, n_trials=2)
    assert settles_in(admin, database, held)
    assert study.best_value == 0.5


@pytest.fixture
def limited_role(admin, postgres_url):
    """A role allowed one connection: a server "full" for it, with the server's own error when it is."""
    role = f"harness_limited_{uuid.uuid4().hex[:8]}"
    admin.cursor().execute(f"CREATE ROLE {role} LOGIN CONNECTION LIMIT 1")
    try:
        yield role, postgres_url.replace("postgres@", f"{role}@")
    finally:
        admin.cursor().execute(f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = '{role}'")
        admin.cursor().execute(f"DROP ROLE IF EXISTS {role}")


def test_full_server_is_waited_for(limited_role):
    _, url = limited_role
    held = psycopg2.connect(url, connect_timeout=3)
    with pytest.raises(psycopg2.OperationalError, match="too many connections"):
        psycopg2.connect(url, connect_timeout=3)  # the server's answer the harness waits on
    release = threading.Timer(1.5, held.close)
    release.start()
    started = time.monotonic()
    probe(url)  # returns once the slot is free
    assert time.monotonic() - started >= 1.4
    release.join()


def test_other_connection_errors_fail_at_once(postgres_url):
    started = time.monotonic()
    with pytest.raises(ConfigError, match='role "nobody_here" does not exist'):
        probe(postgres_url.replace("postgres@", "nobody_here@"))
    with pytest.raises(ConfigError, match="unreachable"):
        probe(f"{PG.replace('5432', '5499')}/test")
    assert time.monotonic() - started < 5
