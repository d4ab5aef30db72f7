"""`parse(cfg)`: a composed Hydra config as a `Run`, every key, type, range and rule checked, or one `ConfigError`
line naming the key and the allowed values. Cheap: imports nothing heavy. `key_type`/`check_value` check a single
key's value the same way (a study's search-space bounds and choices).
"""

from __future__ import annotations

import dataclasses
from typing import Any

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from harness.config import trainer_fields
from harness.config.groups import Run
from harness.config.rules import check_rules
from harness.config.schema import ConfigError, convert, lookup, one_line
from harness.config.schema import parse as parse_section
from harness.config.trainer_args import TRAINER_RANGES, trainer_type

EMPTY_FIELD = dataclasses.field()  # no metadata: a key below a free-form node


def parse(cfg: DictConfig) -> Run:
    """The composed config as a `Run`, every key and value checked; cheap, imports nothing heavy."""
    if "hydra" in cfg:  # composed with Hydra's own node (harness/config/compose.py): not ours to check
        cfg = OmegaConf.masked_copy(cfg, [key for key in cfg if key != "hydra"])
    try:  # a missing value or a broken interpolation (`${oc.env:UNSET}`) names its key
        missing = sorted(OmegaConf.missing_keys(cfg))
        if missing:
            raise ConfigError(f"{missing[0]} is required but not set; give it on the command line ({missing[0]}=...)")
        container = OmegaConf.to_container(cfg, resolve=True)
    except OmegaConfBaseException as error:
        raise ConfigError(one_line(error)) from None
    for key in container:
        if key not in Run.__dataclass_fields__ and key in trainer_fields.load():
            raise ConfigError(f"{key} is not a config key; did you mean trainer.{key}?")
    run = parse_section(Run, container)
    check_rules(run)
    return run


def key_type(key: str) -> tuple[Any, dict | None]:
    """(type, numeric bounds) of the config key `key`, a dotted path; Any below a free-form (`_target_`) node."""
    parts = key.split(".")
    if parts[0] == "trainer" and len(parts) == 2:
        return trainer_type(parts[1]), TRAINER_RANGES.get(parts[1])
    tp, f = lookup(Run, parts)
    return tp, f.metadata.get("bounds") if f is not None else None


def check_value(key: str, value, where: str) -> None:
    """`value` checked as if set at `key` (a search-space bound or choice); the error starts with `where`. A key a
    registry serves (`importance_sampling.level`, `advantage.estimator`) takes its registered names."""
    try:
        tp, bounds = key_type(key)
        convert(tp, value, key, bounds)
        if not key.startswith("trainer."):
            registry = (lookup(Run, key.split("."))[1] or EMPTY_FIELD).metadata.get("registry")
            if registry is not None:
                registry.get(value)
    except ConfigError as error:
        raise ConfigError(f"{where}: {error}") from None
