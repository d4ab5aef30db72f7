"""The two failure boundaries of a job (harness/training/job.py), one mechanism each, whatever the exception's type.

- **Building** (`building`): anything raised while the job is built — trl's and transformers' config objects, the
  tokenizer, the model, the dataset, the rewards' pre-flight call, the run directory's first files — becomes one
  `ConfigError` line naming the cause (the upstream message, shortened, and the key that set it when known). The job
  wrapper (harness/cli/task.py) prints it and exits 2; `clean_up` removes what the job had written.
- **Training** (`RunFailed`): once training has started, an error from user code or the environment (a reward that
  returns NaN on its 40th call, a full disk, a directory that became read-only) ends the run with `summary.json`
  `status: failed` and the reason, every logged step kept, the wandb run finished as failed, the full traceback in
  `run.log`, and one line on the terminal naming the function and the call (`describe`); the process exits 1.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import shutil
import traceback
from collections.abc import Iterator
from pathlib import Path

from harness.config.schema import ConfigError
from harness.tasks.loading import UserCodeError

MAX_MESSAGE = 300  # characters of an upstream message kept in the one line
LOG_FILE = "run.log"  # Hydra's job log (`hydra.job.name` is `run`): the traceback of a failed run goes here
# The environment's own failures, named by their errno rather than by the exception's type.
ENVIRONMENT = {errno.ENOSPC, errno.EDQUOT, errno.EACCES, errno.EPERM, errno.EROFS, errno.EIO}


class RunFailed(Exception):
    """Training started, then failed; the run's files are complete up to the failure. The message is one line;
    the process exits 1. An Exception, so that a study worker's trial loop records the trial as failed and goes on."""

    exit_code = 1


def shorten(error: BaseException, limit: int = MAX_MESSAGE) -> str:
    """An exception's message as one line of at most `limit` characters ("ValueError" when it has none)."""
    text = " ".join(str(error).split())
    if isinstance(error, KeyError) and text.startswith("'"):  # KeyError('x') prints as 'x'
        text = f"key {text} missing"
    if not text:
        return type(error).__name__
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def environment_error(error: BaseException) -> str | None:
    """A full disk, a quota, a permission or a read-only filesystem, as one line naming the file; None otherwise."""
    for cause in _chain(error):
        if isinstance(cause, OSError) and cause.errno in ENVIRONMENT:
            name = errno.errorcode.get(cause.errno, str(cause.errno))
            where = f" writing {cause.filename}" if cause.filename else ""
            return f"{cause.strerror or os.strerror(cause.errno)} ({name}){where}"
    return None


def _chain(error: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        yield error
        error = error.__cause__ or error.__context__


def mentioned(message: str, keys) -> list[str]:
    """The keys among `keys` that `message` names as words (`bf16`, `--save_steps`, `'vllm_mode'`)."""
    return [key for key in keys if re.search(rf"(?<![A-Za-z0-9_]){re.escape(key)}(?![A-Za-z0-9_])", message)]


def trainer_keys(message: str, trainer: dict) -> str:
    """`trainer.a=1, trainer.b=2`: the trainer fields set in the config that an upstream message names."""
    named = mentioned(message, trainer)
    return ", ".join(f"trainer.{key}={_show(trainer[key])}" for key in named)


def _show(value) -> str:
    if isinstance(value, bool) or value is None:
        return {True: "true", False: "false", None: "null"}[value]
    return str(value)


@contextlib.contextmanager
def building(what: str, key: str | None = None, trainer: dict | None = None) -> Iterator[None]:
    """Inside, any Exception becomes one ConfigError line: `KEY: WHAT failed: MESSAGE`. `key` names the setting
    behind this step (model.path=...); `trainer`: the trainer fields of the run, to name those the message mentions."""
    try:
        yield
    except ConfigError:
        raise
    except Exception as error:  # noqa: BLE001 - the boundary: whatever upstream raises
        message = environment_error(error) or shorten(error)
        named = trainer_keys(message, trainer) if trainer else ""
        where = key or named or None
        if isinstance(error, ImportError) and not environment_error(error):
            message = f"{message} (a package is missing)" if "install" not in message.lower() else message
        raise ConfigError(f"{where}: {what}: {message}" if where else f"{what}: {message}") from error


def describe(error: BaseException) -> str:
    """A failure after training started, as one line: the user function and its call when it was user code, the
    errno and file for the environment, else the exception and the innermost frame of code that is not a library's."""
    environment = environment_error(error)
    if environment:
        return environment
    for cause in _chain(error):
        if isinstance(cause, UserCodeError):
            return shorten(cause)
    frame = _culprit(error)
    where = f" in {frame.name} ({_short_path(frame.filename)}:{frame.lineno})" if frame else ""
    return f"{type(error).__name__}{where}: {shorten(error)}"


_STDLIB = os.path.dirname(os.__file__)
_HARNESS = str(Path(__file__).resolve().parents[1])


def _culprit(error: BaseException):
    """The frame to name: the innermost one of the user's own code (neither a library, the standard library nor the
    harness); else the innermost one of all (the library that raised)."""
    frames = traceback.extract_tb(error.__traceback__)
    user = [f for f in frames if not f.filename.startswith((_STDLIB, _HARNESS)) and "-packages" not in f.filename]
    return user[-1] if user else (frames[-1] if frames else None)


def _short_path(filename: str) -> str:
    """A file as the line shows it: relative to the working directory, or to site-packages for a library."""
    if "-packages/" in filename:
        return filename.rpartition("-packages/")[2]
    try:
        return str(Path(filename).resolve().relative_to(Path.cwd()))
    except ValueError:
        return filename


def log_traceback(output_dir: Path, error: BaseException) -> bool:
    """Append the full traceback to the run's `run.log`; whether it could be written (a full disk may refuse)."""
    try:
        with (output_dir / LOG_FILE).open("a") as log:
            log.write("".join(traceback.format_exception(error)))
        return True
    except OSError:
        return False


def clean_up(output_dir: Path, before: set[str]) -> None:
    """Remove what a job that failed while building wrote into `output_dir` (`before`: the names there when it
    started: Hydra's `.hydra/` and `run.log`, which the job wrapper removes with the directory)."""
    if not output_dir.is_dir():
        return
    for path in output_dir.iterdir():
        if path.name in before:
            continue
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
