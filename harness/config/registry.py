"""Registries of the two compared axes: advantage estimators (harness/config/estimators.py) and importance-sampling
levels (harness/config/levels.py).

An entry is declared by decorating its parameters' frozen dataclass (fields built with `schema.ranged`/`schema.doc`,
so the schema checks their types and ranges and the generated config tables list them; the docstring gives the
formula and its source):

    @ESTIMATORS.register("process", "per-token process advantage", needs={TOKEN_REWARDS},
                         compute="harness.algorithms.advantages:process")
    @dataclass(frozen=True, kw_only=True)
    class Process:
        gamma: float = ranged(1.0, gt=0, le=1, doc="discount along the sequence")

`compute` is a "module:function" string, imported on first use so that declarations stay torch-free (`--cfg job`
and every refusal import no torch), or a callable (an out-of-tree module that imports torch itself). A config value
with a dot, `MODULE.NAME`, imports MODULE (which registers NAME) and looks NAME up.
"""

from __future__ import annotations

import dataclasses
import importlib
import sys
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from harness.config.schema import ConfigError, did_you_mean, field_names
from harness.config.schema import parse as parse_section

# What an estimator may need from the run beyond trl's sequence rewards and advantages (AdvantageBatch's optional
# fields, harness/algorithms/batch.py).
TOKEN_REWARDS = "token_rewards"  # the task's per-token rewards (`reward.token_function`)
ENTROPIES = "entropies"  # the sampling policy's per-token entropies
GENERATIONS = "generations"  # extra generations from the policy (e.g. Monte-Carlo rollouts)
NEEDS = frozenset({TOKEN_REWARDS, ENTROPIES, GENERATIONS})


def resolve(function: str | Callable) -> Callable:
    """A callable, or the function a "module:function" string names (imported now)."""
    if callable(function):
        return function
    module, _, name = function.partition(":")
    return getattr(importlib.import_module(module), name)


@dataclass(frozen=True, kw_only=True)
class Entry:
    """One registered option: its name, a one-line description, its parameters and the function that computes it."""

    name: str
    description: str
    params: type  # a frozen dataclass; its docstring holds the formula and the source
    compute: str | Callable
    needs: frozenset[str] = frozenset()

    def __post_init__(self):
        if not (dataclasses.is_dataclass(self.params) and self.params.__dataclass_params__.frozen):
            raise TypeError(f"{self.name}: the registered class must be a frozen dataclass")
        if not isinstance(self.compute, str) and not callable(self.compute):
            raise TypeError(f"{self.name}: compute must be a 'module:function' string or a callable")
        if isinstance(self.compute, str) and ":" not in self.compute:
            raise TypeError(f"{self.name}: compute={self.compute!r} must read 'module:function'")
        unknown = set(self.needs) - NEEDS
        if unknown:
            raise TypeError(f"{self.name}: needs {sorted(unknown)}; known: {', '.join(sorted(NEEDS))}")

    @property
    def formula(self) -> str:
        return (self.params.__doc__ or "").strip()

    def function(self) -> Callable:
        """The compute function (imported on first call)."""
        return resolve(self.compute)

    def parse(self, node: Mapping, where: str):
        """The entry's parameters from `node` (the group's keys minus the fixed ones), checked by the schema."""
        return parse_section(self.params, node, where)


@dataclass(frozen=True)
class Configured:
    """An entry with its parsed parameters: what the build hands the trainer."""

    entry: Entry
    params: Any

    @property
    def name(self) -> str:
        return self.entry.name

    @property
    def needs(self) -> frozenset[str]:
        return self.entry.needs

    def kwargs(self) -> dict:
        return {f.name: getattr(self.params, f.name) for f in dataclasses.fields(self.params)}

    def compute(self, *args):
        return self.entry.function()(*args, **self.kwargs())


E = TypeVar("E", bound=Entry)


class Registry(Generic[E]):
    """The options of one config key (`key`, e.g. "advantage.estimator"), in registration order."""

    def __init__(self, key: str, entry_type: type[E] = Entry):
        self.key, self.entry_type = key, entry_type
        self._entries: dict[str, E] = {}

    def register(self, name: str, description: str, **fields) -> Callable[[type], type]:
        """Decorator of an entry's parameters dataclass; `fields` are the entry type's other fields."""

        def decorate(params: type) -> type:
            self.add(self.entry_type(name=name, description=description, params=params, **fields))
            return params

        return decorate

    def add(self, entry: E) -> E:
        if "." in entry.name or not entry.name:
            raise TypeError(f"{self.key}: {entry.name!r} is not a valid name (non-empty, no dot)")
        if entry.name in self._entries:
            raise ConfigError(f"{self.key}={entry.name} is registered twice")
        self._entries[entry.name] = entry
        return entry

    def names(self) -> tuple[str, ...]:
        return tuple(self._entries)

    def __iter__(self) -> Iterator[E]:
        return iter(tuple(self._entries.values()))

    def __contains__(self, name: str) -> bool:
        return self.find(name) is not None

    def find(self, name: str) -> E | None:
        """The entry `name` names if it is registered already (nothing imported), else None."""
        if name in self._entries:
            return self._entries[name]
        module, _, short = name.rpartition(".")
        return self._entries.get(short) if module and module in sys.modules else None

    def get(self, name) -> E:
        """The entry of config value `name`; `MODULE.NAME` imports MODULE first. One-line ConfigError otherwise."""
        if not isinstance(name, str):
            raise ConfigError(f"{self.key}={name!r} must be a string; allowed: {', '.join(self.names())}")
        module, _, short = name.rpartition(".")
        if module:
            try:
                importlib.import_module(module)
            except Exception as error:  # an own module's own bug, too: one line naming it
                why = error if isinstance(error, ImportError) else f"{type(error).__name__}: {error}"
                raise ConfigError(f"{self.key}={name}: cannot import {module} ({why})") from None
            if short not in self._entries:
                raise ConfigError(
                    f"{self.key}={name}: {module} registers no {short}; registered: {', '.join(self.names())}"
                )
            return self._entries[short]
        if name not in self._entries:
            hint = did_you_mean(name, self.names())
            hint = "" if hint.startswith("; allowed") else hint
            raise ConfigError(
                f"{self.key}={name!r}; allowed: {', '.join(self.names())} (or MODULE.NAME of an own module){hint}"
            )
        return self._entries[name]

    def param_field(self, key: str) -> tuple[list[E], dataclasses.Field | None]:
        """(the entries whose parameters have `key`, the first one's field)."""
        owners = [e for e in self if key in field_names(e.params)]
        field = next((f for f in dataclasses.fields(owners[0].params) if f.name == key), None) if owners else None
        return owners, field
