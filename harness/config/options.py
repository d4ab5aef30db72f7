"""Which options a config group has, across Hydra's whole config search path.

`python -m harness.run` checks `group=option` overrides (sweep lists included) and composes every job before Hydra
starts (harness/config/compose.py), so a typo fails with one line instead of Hydra's multi-line report, and before the
first job of a multirun has run. Options and configs are read the way Hydra composes: the package's `conf/`,
`--config-path` (which replaces it), `--config-dir`, and `hydra.searchpath` given on the command line or in a
primary config. Hydra builds its search path in private
helpers (hydra-core 1.3, pinned in pyproject.toml); this module calls them instead of re-implementing them.
"""

from __future__ import annotations

import os
from pathlib import Path

from omegaconf import OmegaConf

from harness.config.schema import ConfigError

CONF_DIR = Path(__file__).resolve().parent.parent.parent / "conf"
APP_FILE = str(
    Path(__file__).resolve().parent.parent / "run.py"
)  # @hydra.main's file: a relative --config-path starts there


def config_loader(config_path: str | None, config_dir: str | None):
    """Hydra's config loader for the command line's `--config-path` and `--config-dir`."""
    from hydra._internal.config_loader_impl import ConfigLoaderImpl
    from hydra._internal.utils import create_automatic_config_search_path
    from hydra.core.config_search_path import SearchPathQuery

    search_path = create_automatic_config_search_path(APP_FILE, None, config_path or "../conf")
    if config_dir is not None:
        absolute = os.path.abspath(config_dir)
        if not os.path.isdir(absolute):
            raise ConfigError(f"--config-dir {config_dir}: no such directory")
        search_path.prepend("command-line", f"file://{absolute}", anchor=SearchPathQuery(provider="schema"))
    return ConfigLoaderImpl(config_search_path=search_path)


def search_path_options(loader, group: str, config_name: str, overrides: list[str]) -> list[str]:
    """The options of `group` on the loader's search path (with the command line's `hydra.searchpath`); none when
    `group` is not a config group."""
    options = loader.get_group_options(group, config_name=config_name, overrides=_searchpath(overrides))
    return [o for o in options if not o.startswith("_")]  # `_name` files are shared includes


def app_group_options(group: str) -> list[str]:
    """The options of `group` in the running Hydra app (its --config-dir included), else in the package's conf/."""
    from hydra.core.global_hydra import GlobalHydra

    if not GlobalHydra.instance().is_initialized():
        return group_options(group)
    return search_path_options(GlobalHydra.instance().config_loader(), group, "config", [])


def _searchpath(overrides: list[str]) -> list[str]:
    """Only the overrides that change where configs are found: group choices must not be composed here."""
    return [o for o in overrides if o.lstrip("+").startswith("hydra.searchpath")]


def app_searchpath_overrides() -> list[str]:
    """The running Hydra app's `hydra.searchpath` overrides: configs composed inside it (a study's trials) need
    them to find the same options."""
    from hydra.core.hydra_config import HydraConfig

    if not HydraConfig.initialized():
        return []
    return [o for o in HydraConfig.get().overrides.hydra if o.lstrip("+").startswith("hydra.searchpath")]


def group_options(group: str) -> list[str]:
    """The options of a group in the package's conf/; files starting with `_` are shared includes, not options."""
    return sorted(p.stem for p in (CONF_DIR / group).glob("[!_]*.yaml"))


def default_options() -> dict[str, str | None]:
    """The option each group starts from (conf/config.yaml's defaults list); null for the opt-in groups."""
    chosen = {}
    for entry in OmegaConf.to_container(OmegaConf.load(CONF_DIR / "config.yaml"))["defaults"]:
        if isinstance(entry, dict):
            chosen.update(entry)
    return chosen


def config_groups() -> list[str]:
    """The config groups, nested ones as paths (`reward/token_function`); Hydra's own (`hydra/launcher`) left out."""
    groups = (p.relative_to(CONF_DIR) for p in CONF_DIR.rglob("*") if p.is_dir())
    return sorted(str(group) for group in groups if group.parts[0] != "hydra")
