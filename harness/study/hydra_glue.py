"""How a study worker reads Hydra's overrides and multirun fan-out."""

from __future__ import annotations

from pathlib import Path

from omegaconf import OmegaConf


def _override_key(override: str) -> str:
    return override.lstrip("+~").partition("=")[0]


def is_sweep_override(override: str) -> bool:
    key = _override_key(override)
    return key in ("sweep", "worker") or key.startswith("sweep.")


def fan_out(hydra_cfg) -> int:
    """How many workers this launch starts: the number of values of `worker=` in the multirun's overrides."""
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.types import RunMode

    if hydra_cfg.mode != RunMode.MULTIRUN:
        return 1
    multirun = Path(hydra_cfg.sweep.dir) / "multirun.yaml"
    if not multirun.is_file():
        return 1
    task = OmegaConf.load(multirun).hydra.overrides.task
    for override in OverridesParser.create().parse_overrides([o for o in task if _override_key(o) == "worker"]):
        return len(list(override.sweep_string_iterator())) if override.is_sweep_override() else 1
    return 1
