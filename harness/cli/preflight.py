"""Check the command line of `python -m harness.run` and compose and parse each job, before Hydra starts.

Hydra reports its own errors (bad syntax, unknown keys, a broken YAML file) in several lines with exit code 1, after
it may have created the run directory; `preflight` turns every one of them into one `ConfigError` line first.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import tempfile
from pathlib import Path
from typing import NoReturn

from omegaconf import DictConfig
from omegaconf.errors import OmegaConfBaseException

from harness.config import options
from harness.config.compose import check_overrides, compose, jobs, normalise
from harness.config.schema import ConfigError, did_you_mean, one_line, require
from harness.config.validate import parse
from harness.study.hydra_glue import is_sweep_override
from harness.study.plan import check_arms, check_study

# Hydra's flags (by the names its parser stores them under) that print something and build nothing, or rerun a
# pickled job: the command goes to Hydra unchecked.
INFO = ("help", "hydra_help", "version", "info", "shell_completion", "experimental_rerun")


def parse_argv(argv: list[str]) -> argparse.Namespace | None:
    """The command line read by Hydra's own parser (flags by their exact names, overrides in any order among them);
    None for a command that only prints (help, version, info) or reruns a pickled job. Refuses a bad flag, and more
    than one of Hydra's modes, with one ConfigError line (argparse's own error is a usage text)."""
    from hydra._internal.utils import get_args_parser

    parser = get_args_parser()
    parser.allow_abbrev = False  # `--multi` is refused with a did-you-mean rather than guessed
    parser.error = _refuse
    flags = {flag: action.dest for flag, action in parser._option_string_actions.items()}
    if any(flags.get(arg.partition("=")[0]) in INFO for arg in argv):
        return None
    args, unknown = parser.parse_known_intermixed_args(argv)
    for arg in unknown:
        name = arg.partition("=")[0]
        raise ConfigError(f"{name} is not an option of python -m harness.run{did_you_mean(name, flags)}")
    if args.run + args.multirun + (args.cfg is not None) > 1:
        raise ConfigError("only one of --run, --multirun (-m) and --cfg can be given")
    return args


def _refuse(message: str) -> NoReturn:
    raise ConfigError(message)


def preflight(argv: list[str], checked: dict | None = None) -> list[str]:
    """Check the command line of `python -m harness.run` and compose and parse each job; the argv to hand to Hydra
    (flags first, as Hydra's parser wants them, then the overrides with trainer fields normalised). Raises
    ConfigError before anything is written. `checked`, when given, receives the jobs' overrides and parsed runs
    (`jobs`, `runs`: None for a study worker) and the launcher's `_target_`."""
    args = parse_argv(argv)
    if args is None:
        return argv
    given = set(args.overrides)
    flags = [arg for arg in argv if arg not in given]  # flag values are never `key=value` or `~key`
    overrides = normalise(args.overrides)
    loader = options.config_loader(args.config_path, args.config_dir)
    config_name = args.config_name or "config"
    with hydra_app(loader):  # composes with the command line's search path, as hydra.main will

        def options_of(group: str) -> list[str]:
            return options.search_path_options(loader, group, config_name, overrides)

        check_overrides(overrides, options_of)
        planned, arms, seen = [overrides], {}, set()
        if args.multirun:  # the sweeper's own params (an experiment preset's grid) join the command line's
            first = jobs(overrides, True, {}, options_of)[0]
            params = compose(first, config_name, hydra=True).hydra.sweeper.get("params")
            planned = jobs(overrides, True, dict(params or {}), options_of)
        check_distinct(planned, [sorted(job) for job in planned])  # `seed=0,0`, `worker=0,0`
        identities = []
        for job in planned:
            # The workers of one study differ only in `worker=`: each study (a tuned comparison's arm) checked once.
            study_job = tuple(o for o in job if o.lstrip("+~").partition("=")[0] != "worker")
            if study_job in seen:
                continue
            seen.add(study_job)
            try:  # a broken interpolation, in the job's keys or in Hydra's (hydra.run.dir), names its key
                cfg = compose(job, config_name, hydra=True)
                run, study = check_job(cfg, job, args.multirun, checks_dir=args.cfg is None)
            except OmegaConfBaseException as error:
                raise ConfigError(one_line(error)) from None
            if study is not None:  # a study's workers are not runs: check_distinct compares runs
                arms[study[0]["name"]] = study[1]
                continue
            identities.append((run, sorted(o for o in job if o.lstrip("+~").startswith("hydra"))))
            if checked is not None and args.multirun and args.cfg is None:
                checked.setdefault("jobs", []).append(job)
                checked.setdefault("runs", []).append(run)
                checked["launcher"] = cfg.hydra.launcher.get("_target_")
        check_arms(arms)
        check_distinct(planned, identities)  # `trainer.temperature=1,1.0`: different overrides, the same job
    return flags + overrides


def check_distinct(planned: list[list[str]], identities: list) -> None:
    """Refuse a multirun that runs the same job twice (the report would count it as two seeds of one result): the
    duplicated jobs named by their overrides. `identities[i]`: what makes job i the job it is (its overrides, or its
    parsed config with its Hydra overrides), compared by equality (1 == 1.0, as the trainer sees them)."""
    for number, identity in enumerate(identities):
        for first in range(number):
            if identities[first] == identity:
                raise ConfigError(
                    f"the multirun runs the same job twice: job {first} ({shown(planned[first])}) and job {number} "
                    f"({shown(planned[number])}); drop one of the repeated values"
                )


def shown(job: list[str]) -> str:
    """A job's overrides as a message shows them: as the user wrote them (trainer fields without the `++` that
    `normalise` adds), Hydra's own keys left out."""
    mine = [o.removeprefix("++") for o in job if not o.lstrip("+~").startswith("hydra")]
    return " ".join(mine) or "no overrides"


@contextlib.contextmanager
def hydra_app(loader):
    """Hydra initialised with `loader`'s search path for the block, and cleared after it (hydra.main starts anew)."""
    from hydra._internal.hydra import Hydra
    from hydra.core.global_hydra import GlobalHydra

    GlobalHydra.instance().initialize(Hydra(task_name="run", config_loader=loader))
    try:
        yield
    finally:
        GlobalHydra.instance().clear()


def check_job(cfg: DictConfig, job: list[str], multirun: bool, checks_dir: bool):
    """One job's config: parsed (a study file: checked against its trials' configs), its output directory writable.
    Returns (the parsed run, None for a study worker; the study's check (spec, parameters, ...), None for a run)."""
    run = study = None
    if cfg.get("sweep") is None:
        run = parse(cfg)
    else:
        job_overrides = [o for o in job if not is_sweep_override(o) and not o.lstrip("+~").startswith("hydra")]
        study = check_study(cfg, job_overrides, command_line=job)
    if checks_dir:
        directory = cfg.hydra.sweep.dir if multirun else cfg.hydra.run.dir
        check_writable(Path(directory), "hydra.sweep.dir" if multirun else "hydra.run.dir")
        # Hydra would overwrite an earlier multirun's record there (a study resumes in its own sweep dir: allowed).
        require(
            not (multirun and cfg.get("sweep") is None and (Path(directory) / "multirun.yaml").exists()),
            f"hydra.sweep.dir={directory} already holds a multirun (multirun.yaml); choose another hydra.sweep.dir "
            "or move it away",
        )
    return run, study


def check_writable(path: Path, key: str) -> None:
    """Refuse an output directory that cannot be created or written, before anything is written."""
    require(str(path) not in ("", "."), f"{key}={str(path)!r}: give a directory of its own")
    existing = path.resolve()
    while not existing.exists():
        existing = existing.parent
    require(existing.is_dir(), f"{key}={path}: {existing} is a file, not a directory")
    try:
        tempfile.TemporaryDirectory(dir=existing).cleanup()  # as root, os.access says yes to read-only mounts
    except OSError as error:
        raise ConfigError(f"{key}={path} is not writable ({error.strerror}: {existing})") from None


def literal_run_dir(args: list[str]) -> Path | None:
    """`hydra.run.dir=DIR` given literally on a single run's command line (interpolations are Hydra's to resolve)."""
    if "-m" in args or "--multirun" in args:
        return None
    values = [arg.partition("=")[2] for arg in args if arg.startswith("hydra.run.dir=")]
    return Path(values[-1]) if values and "${" not in values[-1] else None


def check_command_line(argv: list[str]) -> list[str]:
    """Everything checked before Hydra starts: rank counts, every job composed and parsed, a fixed run directory
    that already holds a run (before Hydra overwrites its .hydra/ files). The argv to hand to Hydra."""
    from harness.runtime.distributed import check_task_counts
    from harness.training.job import check_fresh

    check_task_counts(argv)
    checked: dict = {}
    argv = preflight(argv, checked)
    fixed_dir = literal_run_dir(argv)
    if fixed_dir is not None:
        check_fresh(fixed_dir, "hydra.run.dir")
    if checked.get("launcher") == BASIC_LAUNCHER and "WORLD_SIZE" not in os.environ:
        check_trainer_configs(checked["jobs"], checked["runs"])
    return argv


BASIC_LAUNCHER = "hydra._internal.core_plugins.basic_launcher.BasicLauncher"


def check_trainer_configs(jobs: list[list[str]], runs: list) -> None:
    """A multirun whose jobs run one after another in this process: trl's GRPOConfig built for each job before the
    first starts, so that a cross-field rule of trl or transformers that the typed config does not mirror fails the
    multirun at once, naming the job, instead of job 37 of 50 (this process imports trl for the first job anyway).
    Other launchers run the jobs elsewhere (a GPU node may accept what this machine refuses): each job's build checks
    it there (harness/training/failures.py)."""
    from harness.training.build import grpo_config
    from harness.training.failures import building

    built: list = []
    with tempfile.TemporaryDirectory() as scratch:
        for number, (job, run) in enumerate(zip(jobs, runs)):
            if run is None or any(run.trainer == other.trainer and run.seed == other.seed for other in built):
                continue
            try:
                with building("trl's GRPOConfig refused the trainer settings", trainer=run.trainer):
                    grpo_config(run, Path(scratch))
            except ConfigError as error:
                raise ConfigError(f"job {number} ({shown(job)}): {error}") from None
            built.append(run)
