"""The machinery of the typed config (harness/config/groups.py holds the rules): turn a composed config section into a
frozen dataclass, checking every key, type and range, and fail with one line naming the key.

Supported field types: bool, int, float, str, Literal[...], X | None, list[X], dict[str, X], Any, nested dataclasses.
Ranges come from `field(metadata=...)` built by `ranged`. Floats are always finite: NaN or inf would train silently
on garbage or crash much later.
"""

from __future__ import annotations

import dataclasses
import difflib
import importlib
import math
import operator
import types
import typing
from collections.abc import Mapping
from typing import Any, Literal

SEED = {"ge": 0, "le": 2**32 - 1}  # numpy's seed range


class ConfigError(ValueError):
    """A bad config value: the message is one line for the user."""


def require(condition: bool, message: str) -> None:
    if not condition:
        raise ConfigError(message)


def imported(path: str):
    """The object a dotted `_target_` path names (`module.attr`)."""
    module, _, name = path.rpartition(".")
    return getattr(importlib.import_module(module), name)


def one_line(error: BaseException) -> str:
    """A (Hydra, OmegaConf, ...) multi-line message as one line, without Hydra's link to its docs."""
    noise = ("See https", "object_type=", "reference_type=")  # Hydra's docs link, OmegaConf's node types
    lines = [line.strip() for line in str(error).splitlines() if line.strip() and not line.strip().startswith(noise)]
    return (
        "".join(f"{line} " if line.endswith((".", ":")) else f"{line}; " for line in lines)[:-2] or type(error).__name__
    )


def ranged(default=dataclasses.MISSING, *, gt=None, ge=None, le=None, lt=None, doc: str = ""):
    """A dataclass field with a numeric range (bounds in the `metadata`) and a one-line description for the
    configuration reference (docs/configuration.md)."""
    bounds = {k: v for k, v in {"gt": gt, "ge": ge, "le": le, "lt": lt}.items() if v is not None}
    return dataclasses.field(default=default, metadata={"bounds": bounds, "doc": doc})


def doc(default=dataclasses.MISSING, text: str = "", **kwargs):
    return dataclasses.field(default=default, metadata={"doc": text, **kwargs})


def did_you_mean(key: str, allowed) -> str:
    allowed = sorted(allowed)
    close = [a for a in allowed if a.startswith(key)][:1] or difflib.get_close_matches(key, allowed, n=1, cutoff=0.6)
    return f"; did you mean {close[0]}?" if close else f"; allowed: {', '.join(allowed)}"


def unknown_key(where: str, key: str, allowed) -> ConfigError:
    return ConfigError(f"{join(where, key)} is not a config key{did_you_mean(key, allowed)}")


def join(where: str, key: str) -> str:
    return f"{where}.{key}" if where else str(key)


def parse(cls, node, where: str = ""):
    """An instance of dataclass `cls` from a plain mapping; unknown keys, missing keys and bad values refused."""
    if not isinstance(node, Mapping):
        raise ConfigError(f"{where or 'the config'} must be a mapping with keys {', '.join(field_names(cls))}")
    names = field_names(cls)
    for key in node:
        if key not in names:
            raise unknown_key(where, key, names)
    hints = typing.get_type_hints(cls)
    values = {}
    for f in dataclasses.fields(cls):
        path = join(where, f.name)
        if f.name not in node:
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                raise ConfigError(f"{path} is required but not set")
            continue
        parser = f.metadata.get("parser")
        bounds = f.metadata.get("bounds", {})
        values[f.name] = parser(node[f.name], path) if parser else convert(hints[f.name], node[f.name], path, bounds)
    return cls(**values)


def field_names(cls) -> list[str]:
    return [f.name for f in dataclasses.fields(cls)]


def convert(tp, value, path: str, bounds: dict | None = None):
    """`value` checked against type `tp` and the numeric `bounds` ({"gt": 0}, ...)."""
    bounds = bounds or {}
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if tp is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        rest = [a for a in args if a is not type(None)]
        if len(rest) == 1:
            return convert(rest[0], value, path, bounds)
        for option in rest:  # the first type that accepts the value
            try:
                return convert(option, value, path, bounds)
            except ConfigError:
                continue
        raise ConfigError(f"{path}={value!r} must be {' or '.join(describe(a, bounds) for a in rest)}")
    if origin is Literal:
        if value not in args:
            raise ConfigError(f"{path}={value!r}; allowed: {', '.join(map(str, args))}")
        return value
    if dataclasses.is_dataclass(tp):
        return parse(tp, value, path)
    if origin is dict:
        if not isinstance(value, Mapping):
            raise ConfigError(f"{path} must be a mapping, got {value!r}")
        return {k: convert(args[1], v, join(path, k)) for k, v in value.items()}
    if origin in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{path}={value!r} must be a list")
        return [convert(args[0], v, f"{path}[{i}]") for i, v in enumerate(value)]
    if not accepts(tp, value) or not in_range(value, bounds):
        raise ConfigError(f"{path}={value!r} must be {describe(tp, bounds)}")
    return float(value) if tp is float else value


def accepts(tp, value) -> bool:
    if tp is bool or isinstance(value, bool):  # True is an int in Python, not in a config
        return tp is bool and isinstance(value, bool)
    if tp is int:
        return isinstance(value, int)
    if tp is float:
        return isinstance(value, (int, float)) and math.isfinite(value)
    return isinstance(value, tp)


def in_range(value, bounds: dict) -> bool:
    return all(getattr(operator, op)(value, bound) for op, bound in bounds.items())


def describe(tp, bounds: dict) -> str:
    """'a number > 0', 'an integer in [0, 4294967295]', 'true or false', 'one of a, b', 'a mapping'."""
    origin = typing.get_origin(tp)
    if origin is Literal:
        return "one of " + ", ".join(map(str, typing.get_args(tp)))
    if origin is dict or origin in (list, tuple):
        return "a mapping" if origin is dict else "a list"
    kind = {bool: "true or false", int: "an integer", float: "a finite number", str: "a string"}.get(tp, "a value")
    if "ge" in bounds and "le" in bounds:
        return f"{kind} in [{bounds['ge']}, {bounds['le']}]"
    if "gt" in bounds and "le" in bounds:
        return f"{kind} in ({bounds['gt']}, {bounds['le']}]"
    ops = {"gt": ">", "ge": ">=", "lt": "<", "le": "<="}
    return " ".join([kind, *(f"{ops[op]} {bound}" for op, bound in bounds.items())])


def lookup(cls, path: list[str]):
    """(type, field) of the key at `path` under dataclass `cls`, or raise naming the first unknown part."""
    tp, f, where = cls, None, ""
    for part in path:
        tp = strip_none(tp)
        if dataclasses.is_dataclass(tp) and hasattr(tp, "key_field"):  # keys beyond its fields (a registry's params)
            tp, f = tp.key_field(part)
        elif dataclasses.is_dataclass(tp):
            fields = {x.name: x for x in dataclasses.fields(tp)}
            if part not in fields:
                raise unknown_key(where, part, fields)
            f = fields[part]
            tp = typing.get_type_hints(tp)[part]
        elif typing.get_origin(tp) is dict:
            tp, f = typing.get_args(tp)[1], None
        else:
            return Any, None  # free-form below here (a `_target_` node's arguments)
        where = join(where, part)
    return tp, f


def strip_none(tp):
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        rest = [a for a in typing.get_args(tp) if a is not type(None)]
        return rest[0] if len(rest) == 1 else tp
    return tp
