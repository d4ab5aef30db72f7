"""`python -m harness.run ARGS` run inside the test process: the module's own `__main__` block (preflight's
`check_command_line`, the one-line refusal with exit code 2, then Hydra's run and the job), without the 2-3 s a new
interpreter spends importing Hydra. Used for the bad-input tables; `tests.conftest.run_cli` keeps a few cases going
through a real process.

The command starts as in a new process, with Hydra's GlobalHydra and HydraConfig unset, and changes process-wide
state that the next test must not see: Hydra's singletons, OmegaConf's resolvers, sys.argv (Hydra parses it; `redact.mask_argv` rewrites it), the working
directory, the environment (Hydra's `job.env_set`), signal handlers (`stop.install`), the log record factory
(`redact.mask_logs`) and the loggers Hydra configures for a job, and warning filters. `isolated()` restores them all.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import runpy
import signal
import subprocess
import sys
import warnings
from collections.abc import Iterator
from pathlib import Path

from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from hydra.core.singleton import Singleton
from omegaconf.basecontainer import BaseContainer

from harness.runtime import stop

ROOT = Path(__file__).resolve().parent.parent


def run_in_process(*args: str, cwd: Path = ROOT, env: dict | None = None) -> subprocess.CompletedProcess:
    """Run `python -m harness.run ARGS` in this process; its exit code and what it printed, as `run_cli` returns."""
    out, err = io.StringIO(), io.StringIO()
    code = 0
    with isolated(cwd, env), contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        sys.argv = [str(ROOT / "harness" / "run.py"), *args]
        try:
            runpy.run_module("harness.run", run_name="__main__", alter_sys=False)
        except SystemExit as exit_:  # as the interpreter exits: None is 0, a message is printed and is 1
            code = 0 if exit_.code is None else exit_.code
            if not isinstance(code, int):
                print(code, file=sys.stderr)
                code = 1
    return subprocess.CompletedProcess(["harness.run", *args], code, out.getvalue(), err.getvalue())


@contextlib.contextmanager
def isolated(cwd: Path, env: dict | None) -> Iterator[None]:
    """Run the block in `cwd` with `env` added to the environment, and undo what the command changed globally."""
    saved_argv, saved_cwd, saved_environ = sys.argv[:], os.getcwd(), dict(os.environ)
    saved_resolvers, saved_singletons = dict(BaseContainer._resolvers), dict(Singleton._instances)
    global_hydra, hydra_config = GlobalHydra.instance(), HydraConfig.instance()
    saved_hydra, saved_hydra_cfg = global_hydra.hydra, hydra_config.cfg
    global_hydra.hydra = hydra_config.cfg = None  # as in a new process (a test's compose() may have set them)
    saved_signals = {signum: signal.getsignal(signum) for signum in stop.SIGNALS}
    saved_stop = dict(stop._state)
    saved_factory = logging.getLogRecordFactory()
    saved_loggers = _logger_state()
    os.environ.update(env or {})
    os.chdir(cwd)
    try:
        with warnings.catch_warnings():
            yield
    finally:
        os.chdir(saved_cwd)
        os.environ.clear()
        os.environ.update(saved_environ)
        sys.argv = saved_argv
        Singleton._instances.clear()
        Singleton._instances.update(saved_singletons)
        global_hydra.hydra, hydra_config.cfg = saved_hydra, saved_hydra_cfg
        BaseContainer._resolvers.clear()
        BaseContainer._resolvers.update(saved_resolvers)
        for signum, handler in saved_signals.items():
            signal.signal(signum, handler)
        stop._state.clear()
        stop._state.update(saved_stop)
        logging.setLogRecordFactory(saved_factory)
        _restore_loggers(saved_loggers)


def _logger_state() -> dict:
    loggers = [logging.getLogger(), *logging.Logger.manager.loggerDict.values()]
    return {
        logger: (logger.level, logger.handlers[:], logger.filters[:], logger.propagate, logger.disabled)
        for logger in loggers
        if isinstance(logger, logging.Logger)
    }


def _restore_loggers(saved: dict) -> None:
    """Loggers back to their levels, handlers and flags; handlers the command added closed (Hydra's job log file)."""
    kept = {id(handler) for _, handlers, *_ in saved.values() for handler in handlers}
    for logger in [logging.getLogger(), *logging.Logger.manager.loggerDict.values()]:
        if not isinstance(logger, logging.Logger):
            continue
        for handler in logger.handlers:
            if id(handler) not in kept:
                handler.close()
        if logger in saved:
            level, handlers, filters, logger.propagate, logger.disabled = saved[logger]
            logger.setLevel(level)  # clears the loggers' cached levels
            logger.handlers[:], logger.filters[:] = handlers, filters
        else:  # created by the command: silent and passing records up, as a fresh logger is
            logger.handlers.clear()
            logger.setLevel(logging.NOTSET)
            logger.propagate, logger.disabled = True, False
