"""Which options a config group has, across Hydra's whole config search path.

`python -m harness.run` checks `group=option` overrides (sweep lists included) before Hydra starts, so a typo fails
with one line instead of Hydra's multi-line report, and before the first job of a multirun has run. The options
are read the way Hydra composes: the package's `conf/`, `--config-path` (which replaces it), `--config-dir`, and
`hydra.searchpath` given on the command line or in a primary config. Hydra builds its search path in private
helpers (hydra-core 1.3, pinned in pyproject.toml); this module calls them instead of re-implementing them.
"""

from __future__ import annotations

import os
from pathlib import Path

from harness.config import ConfigError

APP_FILE = str(Path(__file__).with_name("run.py"))  # @hydra.main's file: a relative --config-path starts there
SWEEP_SYNTAX = ("choice(", "range(", "glob(", "interval(", "tag(", "sort(", "shuffle(", "[", "${")


def config_loader(argv: list[str]):
    """Hydra's config loader for this command line, and the overrides and config name it carries."""
    from hydra._internal.config_loader_impl import ConfigLoaderImpl
    from hydra._internal.utils import create_automatic_config_search_path, get_args_parser
    from hydra.core.config_search_path import SearchPathQuery

    args, _ = get_args_parser().parse_known_args(argv)
    search_path = create_automatic_config_search_path(APP_FILE, None, args.config_path or "../conf")
    if args.config_dir is not None:
        config_dir = os.path.abspath(args.config_dir)
        if not os.path.isdir(config_dir):
            raise ConfigError(f"--config-dir {args.config_dir}: no such directory")
        search_path.prepend("command-line", f"file://{config_dir}", anchor=SearchPathQuery(provider="schema"))
    return ConfigLoaderImpl(config_search_path=search_path), args.overrides, args.config_name or "config"


def check_group_overrides(argv: list[str]) -> None:
    """Refuse a `group=option` override naming an option that no search-path entry has (also in `a,b` lists)."""
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    loader, overrides, config_name = config_loader(argv)
    try:
        groups = set(loader.get_group_options("", results_filter=None, config_name=config_name, overrides=[]))
        for override in overrides:
            key, sep, value = override.lstrip("+~").partition("=")
            if not sep or key.split("/")[0] not in groups or value in ("", "null") or value.startswith(SWEEP_SYNTAX):
                continue  # not a group choice, or Hydra's sweep syntax (Hydra itself lists the options then)
            options = loader.get_group_options(key, config_name=config_name, overrides=_searchpath(overrides))
            allowed = [o for o in options if not o.startswith("_")]  # `_name` files are shared includes
            for option in value.split(","):
                if option not in allowed:
                    raise ConfigError(f"{key}={option} is not an option; allowed: {', '.join(allowed)}")
    except (HydraException, OmegaConfBaseException):
        return  # a malformed command line: Hydra reports it


def _searchpath(overrides: list[str]) -> list[str]:
    """Only the overrides that change where configs are found: group choices must not be composed here."""
    return [o for o in overrides if o.lstrip("+").startswith("hydra.searchpath")]
