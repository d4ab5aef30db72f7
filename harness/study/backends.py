"""Samplers, pruners and storages named in a study file."""

from __future__ import annotations

import inspect
import json
import math
import os
import random
import time
import warnings
from collections.abc import Callable, Mapping
from pathlib import Path

import optuna

from harness.config.schema import ConfigError, one_line
from harness.runtime import redact
from harness.study.space import Param

JOURNAL_FILE = "study.journal"
SAMPLERS = ("tpe", "random", "cmaes", "gp", "grid")
PRUNERS = ("median", "percentile", "successive_halving", "hyperband", "threshold", "none")


def build_sampler(spec: dict, params: list[Param], seed: int | None) -> optuna.samplers.BaseSampler:
    name, kwargs = _named(spec, "sampler", SAMPLERS)
    kwargs.pop("seed", None)
    samplers = optuna.samplers
    if name == "grid":
        kwargs["search_space"] = {p.label: p.grid() for p in params}
    factory = {
        "tpe": samplers.TPESampler,
        "random": samplers.RandomSampler,
        "cmaes": samplers.CmaEsSampler,
        "gp": samplers.GPSampler,
        "grid": samplers.GridSampler,
    }[name]
    _check_numbers("sampler", factory, kwargs)
    try:
        return factory(seed=seed, **kwargs)
    except (TypeError, ValueError) as error:
        raise ConfigError(f"sweep.sampler ({name}): {one_line(error)}") from None


def build_pruner(spec: dict) -> optuna.pruners.BasePruner:
    name, kwargs = _named(spec, "pruner", PRUNERS)
    pruners = optuna.pruners
    if name == "none":
        return pruners.NopPruner()  # ignores the options of the pruner it replaces (`sweep.pruner.name=none`)
    factory = {
        "median": pruners.MedianPruner,
        "percentile": pruners.PercentilePruner,
        "successive_halving": pruners.SuccessiveHalvingPruner,
        "hyperband": pruners.HyperbandPruner,
        "threshold": pruners.ThresholdPruner,  # prunes below `lower` / above `upper`, whatever the other trials do
    }[name]
    _check_numbers("pruner", factory, kwargs)
    try:
        return factory(**kwargs)
    except (TypeError, ValueError) as error:
        raise ConfigError(f"sweep.pruner ({name}): {one_line(error)}") from None


def _named(spec, what: str, allowed: tuple) -> tuple[str, dict]:
    spec = dict(spec or {})
    name = spec.pop("name", None)
    if name not in allowed:
        raise ConfigError(f"sweep.{what}.name={name!r}; allowed: {', '.join(allowed)}")
    return name, spec


def _check_numbers(what: str, factory, kwargs: dict) -> None:
    """Optuna takes a NaN warm-up or a fractional step count without a word, and then never (or always) prunes:
    numbers are checked against the argument's annotation (`int`: whole; `float`: finite; `str | int`: "auto" too)."""
    parameters = inspect.signature(factory).parameters
    for key, value in kwargs.items():
        if key not in parameters or isinstance(value, bool):
            continue  # unknown keys: the factory names them
        annotation = str(parameters[key].annotation).replace("<class 'int'>", "int").replace("<class 'float'>", "float")
        kinds = {kind.strip() for kind in annotation.split("|")}
        if isinstance(value, float) and not math.isfinite(value):
            raise ConfigError(f"sweep.{what}.{key}={value}: must be a finite number")
        auto = "str" in kinds and value == "auto"
        if "int" in kinds and "float" not in kinds and not isinstance(value, int) and not auto:
            allowed = 'a whole number or "auto"' if "str" in kinds else "a whole number"
            raise ConfigError(f"sweep.{what}.{key}={value!r}: must be {allowed}")
        if kinds == {"float"} and not isinstance(value, (int, float)):
            raise ConfigError(f"sweep.{what}.{key}={value!r}: must be a number")


def open_storage(
    spec: Mapping, sweep_dir: Path | None = None, workers: int = 1, say: Callable[[str], None] | None = None
) -> optuna.storages.BaseStorage:
    """The one opener of a study's storage, `spec["storage"]`: an SQLAlchemy URL, checked reachable (with the study
    file's heartbeat and connection settings when `spec` has them), or an Optuna journal file.

    A study worker passes its `sweep_dir`: no storage means the journal there, created (directory included) if new,
    and a damaged last record is repaired before anything is appended (harness/study/journal.py). Without one (the
    study CLI, the report), the storage must exist: a journal file or a directory holding one; a damaged journal is
    read up to its last complete record, never changed. `say` prints a warning line (default: stderr)."""
    from harness.study import journal

    say = say or journal.warn
    url = spec.get("storage")
    if url is not None and "://" in str(url):
        return _database(str(url), spec, workers)
    if sweep_dir is None:
        path = find_journal(Path(url))
        if path is None:
            raise ConfigError(f"{url}: no journal file here (expected a sweep dir, a {JOURNAL_FILE} or a URL)")
    else:
        path = sweep_dir / JOURNAL_FILE if url is None else Path(url).resolve()
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise ConfigError(f"sweep.storage: cannot create {path.parent}: {error.strerror}") from None
        if not os.access(path.parent, os.W_OK):
            raise ConfigError(f"sweep.storage: {path.parent} is not writable")
        if path.exists() and not path.is_file():
            raise ConfigError(f"sweep.storage: {path} is not a file")
        if path.is_file() and path.stat().st_size and not is_journal(path):
            raise ConfigError(f"sweep.storage: {path} is not an Optuna journal file; move it away or choose another")
    from optuna.storages.journal import JournalFileBackend, JournalStorage

    try:
        if sweep_dir is None:
            backend = journal.read_only(path, say) or JournalFileBackend(str(path))
        else:
            journal.repair(path, say)
            backend = JournalFileBackend(str(path))
        return JournalStorage(backend)
    except OSError as error:
        raise ConfigError(f"{path}: cannot read the journal ({error.strerror or error})") from None
    except Exception as error:  # noqa: BLE001 - Optuna's replay of operations it cannot apply (KeyError, ...)
        raise ConfigError(
            f"{path}: not a readable Optuna journal ({type(error).__name__}: {one_line(error)[:200]})"
        ) from None


def _database(url: str, spec: Mapping, workers: int) -> optuna.storages.RDBStorage:
    if url.startswith("sqlite") and workers > 1:
        raise ConfigError(
            f"sweep.storage={url}: SQLite locks under concurrent workers ({workers} here); "
            "use the default journal file (sweep.storage=null) or PostgreSQL"
        )
    probe(url)
    retry = optuna.storages.RetryHeartbeatStaleTrialCallback(spec["max_retry"]) if "max_retry" in spec else None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return optuna.storages.RDBStorage(
            with_driver(url),
            engine_kwargs=engine_kwargs(url, spec.get("hold_connection", False)),
            heartbeat_interval=spec.get("heartbeat_interval"),
            grace_period=spec.get("grace_period"),
            heartbeat_stale_trial_callback=retry,
        )


def is_journal(path: Path) -> bool:
    """Whether `path` is an Optuna journal file: its first line is a JSON operation with an `op_code`. Only a regular
    file is opened (a FIFO would block, a device never end)."""
    if not path.is_file():
        return False
    try:
        with path.open("rb") as f:
            first = json.loads(f.readline(1 << 16) or b"null")  # bounded: a binary file may have no newline
    except (OSError, ValueError):  # not readable, not JSON (UnicodeDecodeError is a ValueError too)
        return False
    return isinstance(first, dict) and "op_code" in first


def find_journal(path: Path) -> Path | None:
    """`path` if it is a journal file; in a directory, its study.journal, else the first journal file directly in it."""
    if path.is_dir():
        candidates = [path / JOURNAL_FILE, *sorted(p for p in path.iterdir() if p.is_file())]
        return next((p for p in candidates if is_journal(p)), None)
    return path if is_journal(path) else None


def load_study(storage: optuna.storages.BaseStorage, name: str | None, where: str) -> optuna.Study:
    """The study `name` in `storage` (`where`, as messages show it), or its only study when no name is given."""
    names = [s.study_name for s in storage.get_all_studies()]
    if name is None:
        if len(names) != 1:
            found = ", ".join(names) or "none"
            raise ConfigError(f"storage {where} holds {len(names)} studies ({found}); choose one with --study")
        name = names[0]
    elif name not in names:
        raise ConfigError(f"no study {name!r} in {where} (found: {', '.join(names) or 'none'})")
    return optuna.load_study(study_name=name, storage=storage)


def with_driver(url: str) -> str:
    """SQLAlchemy 2.1 reads postgresql:// as psycopg 3; use psycopg2 (the harness's dependency) when that is absent."""
    import importlib.util

    if url.startswith("postgresql://") and importlib.util.find_spec("psycopg") is None:
        return "postgresql+psycopg2://" + url.removeprefix("postgresql://")
    return url


def engine_kwargs(url: str, hold_connection: bool = False) -> dict:
    """A database server, reached patiently (a full server is waited for). By default a connection per storage call
    (NullPool): no worker holds one while it trains, so the server's max_connections (100 on a stock PostgreSQL) bounds
    concurrent calls, not workers. `hold_connection`: each worker keeps its connections open — two, its heartbeat
    thread's too (one shared deadlocks) — cheaper calls, but a stock server refused workers from about 50 on
    (benchmarks/storage_load.py)."""
    if url.startswith("sqlite"):
        return {}
    import sqlalchemy

    pool = {"pool_size": 2, "max_overflow": 0} if hold_connection else {"poolclass": sqlalchemy.pool.NullPool}
    return pool | {"creator": _patient_connect(with_driver(url))}


# What a server says when all its connection slots are taken (PostgreSQL, MySQL/MariaDB): wait for a free one.
SERVER_FULL = ("too many clients", "remaining connection slots", "too many connections")
CONNECT_PATIENCE = 120  # seconds: SLURM starts a whole array of workers at once


def _patient_connect(url: str):
    """A DBAPI connect for `url` that retries, with jittered backoff, while the server is full. Any other error
    (wrong host, password, database) is raised at once."""
    import sqlalchemy

    parsed = sqlalchemy.engine.make_url(url)
    dialect = parsed.get_dialect()
    dbapi = dialect.import_dbapi()
    cargs, cparams = dialect(dbapi=dbapi).create_connect_args(parsed)
    if url.startswith("postgres"):
        cparams.setdefault("connect_timeout", 5)

    def connect():
        delay, deadline = 0.05, time.monotonic() + CONNECT_PATIENCE
        while True:
            try:
                return dbapi.connect(*cargs, **cparams)
            except dbapi.OperationalError as error:
                if time.monotonic() > deadline or not any(s in str(error).lower() for s in SERVER_FULL):
                    raise
            time.sleep(random.uniform(0, delay))
            delay = min(2 * delay, 2.0)

    return connect


def probe(url: str) -> None:
    import sqlalchemy

    try:
        engine = sqlalchemy.create_engine(with_driver(url), **engine_kwargs(url))
        with engine.connect():
            pass
        engine.dispose()
    except (sqlalchemy.exc.SQLAlchemyError, ImportError) as error:  # ImportError: the URL's driver is missing
        raise ConfigError(redact.mask(f"sweep.storage={url} is unreachable: {one_line(error)}")) from None
