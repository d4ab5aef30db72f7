"""Command-line overrides checked and composed the way `python -m harness.run` composes them, before Hydra starts.

Hydra reports its own errors (bad syntax, unknown keys, a broken YAML file) in several lines with exit code 1, after
it may have created the run directory; `preflight` turns every one of them into one `ConfigError` line first.
"""

from __future__ import annotations

import functools
import re

import yaml
from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.errors import HydraException
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from harness.config import options, trainer_fields
from harness.config.groups import Run
from harness.config.options import CONF_DIR, config_groups, default_options, group_options
from harness.config.schema import ConfigError, did_you_mean, one_line
from harness.config.validate import key_type

MAX_CHECKED_JOBS = 64  # a multirun's jobs composed up front; each job is checked again when it starts


def normalise(overrides: list[str]) -> list[str]:
    """`trainer.FIELD=V` for any GRPOConfig field: Hydra wants `+` for a key the chosen trainer option lacks, and
    refuses `+` for one it has. Keys that every option sets keep the plain form (Hydra records overrides as given)."""
    fields, everywhere = trainer_fields.load(), _set_by_every_trainer_option()
    out = []
    for override in overrides:
        bare = override.lstrip("+")
        parts = bare.partition("=")[0].split(".")
        if len(parts) >= 2 and parts[0] == "trainer" and parts[1] in fields and not override.startswith("~"):
            override = bare if len(parts) == 2 and parts[1] in everywhere else "++" + bare
        out.append(override)
    return out


@functools.cache
def _set_by_every_trainer_option() -> set[str]:
    return set.intersection(
        *(set(OmegaConf.load(CONF_DIR / "trainer" / f"{o}.yaml")) for o in group_options("trainer"))
    )


def check_overrides(overrides: list[str], options_of=group_options) -> None:
    """Syntax, group options and keys of command-line overrides, each refused with one line. `options_of(group)`
    lists a group's options (empty: not a group); by default the package's conf/."""
    parser, parsed = OverridesParser.create(config_loader=GroupOptions(options_of)), []
    for override in overrides:
        try:
            parsed += parser.parse_overrides([override])
        except HydraException as error:
            raise ConfigError(f"cannot parse override {override!r}: {one_line(error)}") from None
    for override in parsed:
        key = override.key_or_group
        if override.is_sweep_override():
            sweep_values(override)  # one that the basic sweeper cannot enumerate (interval()) is refused here
        if key.startswith("hydra"):
            continue  # Hydra's own keys and groups (hydra/launcher): Hydra has options of its own
        options = [] if "." in key else options_of(key)
        if options:
            if not override.is_delete():
                check_options(key, override, options)
            continue
        if key.startswith("sweep.") or key == "worker":
            continue  # Hydra's own keys; a study's keys are checked by harness/study/plan.py
        if not override.is_delete():
            check_key(key)


class GroupOptions:
    """What Hydra's override parser asks of a config loader, for `glob(...)` sweeps: a group's options, here from
    `options_of` (the command line's search path, `_` includes left out), as every check of this module sees them."""

    def __init__(self, options_of) -> None:
        self.options_of = options_of

    def get_group_options(self, group_name: str, results_filter=None, config_name=None, overrides=None) -> list[str]:
        return self.options_of(group_name)


def sweep_values(override) -> list[str]:
    """The values of a sweep override (`a,b`, `range(3)`, `choice(...)`, `glob(...)` over a group's options)."""
    try:
        return list(override.sweep_string_iterator())
    except HydraException as error:  # e.g. interval(): the basic sweeper cannot enumerate it
        raise ConfigError(f"{override.input_line}: {one_line(error)}") from None


def check_options(group: str, override, allowed: list[str]) -> None:
    values = sweep_values(override) if override.is_sweep_override() else [override.value()]
    for value in values:
        if value is None:  # Hydra takes no null for a group; opt-in groups are off unless chosen
            off = " (it is off unless chosen)" if default_options().get(group) is None else ""
            raise ConfigError(f"{group}=null is not an option{off}; allowed: {', '.join(allowed)}")
        if value is not None and value not in allowed:
            raise ConfigError(f"{group}={value} is not an option; allowed: {', '.join(allowed)}")


def check_key(key: str) -> None:
    parts = key.split(".")
    if len(parts) == 1 and parts[0] not in Run.__dataclass_fields__:
        if parts[0] in trainer_fields.load():
            raise ConfigError(f"{key} is not a config key; did you mean trainer.{key}?")
        allowed = set(Run.__dataclass_fields__) | set(config_groups())
        raise ConfigError(f"{key} is not a config group or key{did_you_mean(key, allowed)}")
    key_type(".".join(parts[:2]) if parts[0] == "trainer" else key)  # unknown keys named, with a did-you-mean


def compose(overrides: list[str], config_name: str = "config", hydra: bool = False) -> DictConfig:
    """The job config for `overrides`, composed by Hydra exactly as `python -m harness.run OVERRIDES` would; with
    `hydra`, the `hydra` node too, and HydraConfig set so that `${hydra:...}` resolves."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.hydra_config import HydraConfig

    overrides = normalise(overrides)

    def run(overrides: list[str]) -> DictConfig:
        if GlobalHydra.instance().is_initialized():  # inside a Hydra app (a study worker): reuse its search path
            return hydra_compose(
                config_name=config_name,
                overrides=overrides + options.app_searchpath_overrides(),
                return_hydra_config=hydra,
            )
        with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
            return hydra_compose(config_name=config_name, overrides=overrides, return_hydra_config=hydra)

    try:
        cfg = run(overrides)
    except (HydraException, OmegaConfBaseException, yaml.YAMLError) as error:  # a broken YAML file too
        raise ConfigError(_refusal_behind(error, overrides, run) or one_line(error)) from None
    if hydra:
        HydraConfig.instance().set_config(cfg)
    return cfg


def _refusal_behind(error: Exception, overrides: list[str], run) -> str | None:
    """Hydra refuses to override a key the chosen option lacks, advising `+KEY=VALUE`. When the harness would refuse
    that key anyway (`logger.project` with logger=none, `advantage.gamma` with advantage=outcome, a tiny-model key
    with model=local, a pruner's argument with sweep.pruner.name=none), its own refusal, so that following Hydra's
    advice does not just lead to it; None otherwise."""
    from harness.config.validate import parse

    missing = re.match(r"Could not override '([^']+)'", str(error))
    if missing is None:
        return None
    key = missing.group(1)
    appended = [f"+{o}" if o.partition("=")[0] == key else o for o in overrides]
    try:
        cfg = run(appended)
        if cfg.get("sweep") is None:
            parse(cfg)
        elif key.startswith("sweep.pruner.") and (cfg.sweep.get("pruner") or {}).get("name") == "none":
            raise ConfigError(no_pruning(key, OmegaConf.select(cfg, key)))
    except ConfigError as refusal:
        return str(refusal)
    except (HydraException, OmegaConfBaseException, yaml.YAMLError):
        return None
    return None


def no_pruning(key: str, value) -> str:
    """The refusal of a pruner argument that a study without pruning would ignore (harness.study.plan too)."""
    return f"{key}={value} has no effect with sweep.pruner.name=none (no pruning); remove it"


def jobs(overrides: list[str], multirun: bool, sweeper_params: dict, options_of=group_options) -> list[list[str]]:
    """The override lists of the jobs a run or multirun starts (the first MAX_CHECKED_JOBS), split as Hydra's basic
    sweeper splits them: its params first, then the command line (a key given in both: the command line's value),
    one job per combination of the sweeps' values."""
    if not multirun:
        return [overrides]
    parser = OverridesParser.create(config_loader=GroupOptions(options_of))
    try:
        parsed = parser.parse_overrides([f"{k}={v}" for k, v in sweeper_params.items()] + overrides)
        batches = BasicSweeper.split_arguments(parsed, max_batch_size=MAX_CHECKED_JOBS)
    except HydraException as error:  # a preset's params: the command line's were checked by check_overrides
        raise ConfigError(f"hydra.sweeper.params: {one_line(error)}") from None
    if not batches:
        raise ConfigError(f"the multirun {' '.join(overrides)} has no jobs: a sweep has no values")
    return batches[0]
