"""The fields of trl's `GRPOConfig` and their types, as a table that loads without importing trl (~4 s).

`trainer_fields.json` is generated from the installed trl by `python -m harness.config.trainer_fields`; a test checks
that it still matches, so a trl upgrade that adds, removes or retypes a field fails CI instead of going unnoticed.
"""

from __future__ import annotations

import dataclasses
import enum
import functools
import json
import math
import operator
import types
import typing
from pathlib import Path
from typing import Any, Literal

TABLE = Path(__file__).with_suffix(".json")
# A type as the kinds of value it accepts; anything else (e.g. accelerate's ParallelismConfig) is "any".
KINDS = {bool: "bool", int: "int", float: "float", str: "str", dict: "dict", list: "list"}
TYPES = {"bool": bool, "int": int, "float": float, "str": str, "dict": dict[str, Any], "list": list[Any], "any": Any}


@dataclasses.dataclass(frozen=True)
class TrainerField:
    name: str
    kinds: tuple[str, ...]  # "bool", "int", "float", "str", "dict", "list", "any"
    nullable: bool
    choices: tuple[str, ...] = ()  # an enum's values (save_strategy, lr_scheduler_type, ...)
    default: object = None  # GRPOConfig's default (None when it is not plain JSON)

    def type(self):
        """The field as a type for `harness.config.schema.convert`."""
        options = [Literal[self.choices] if kind == "str" and self.choices else TYPES[kind] for kind in self.kinds]
        if self.nullable:
            options.append(type(None))
        return functools.reduce(operator.or_, options)


@functools.cache
def load() -> dict[str, TrainerField]:
    rows = json.loads(TABLE.read_text())
    return {
        r["name"]: TrainerField(r["name"], tuple(r["kinds"]), r["nullable"], tuple(r["choices"]), r["default"])
        for r in rows
    }


def generate() -> list[dict]:
    from trl import GRPOConfig

    hints = typing.get_type_hints(GRPOConfig)
    return [_describe(f.name, hints[f.name], f.default) for f in dataclasses.fields(GRPOConfig)]


def _describe(name: str, tp, default) -> dict:
    options = typing.get_args(tp) if typing.get_origin(tp) in (typing.Union, types.UnionType) else (tp,)
    kinds, choices = [], []
    for option in options:
        base = typing.get_origin(option) or option
        if option is type(None):
            continue
        if isinstance(base, type) and issubclass(base, enum.Enum):
            choices += [member.value for member in base]
            kind = "str"
        else:
            kind = KINDS.get(base, "any")
        if kind not in kinds:
            kinds.append(kind)
    if "any" in kinds:
        kinds = ["any"]
    default = default.value if isinstance(default, enum.Enum) else default
    plain = isinstance(default, (bool, int, float, str, type(None))) and not (
        isinstance(default, float) and math.isnan(default)
    )
    row = {"name": name, "kinds": kinds, "nullable": type(None) in options, "choices": choices}
    return row | {"default": default if plain else None}


if __name__ == "__main__":
    TABLE.write_text("[\n" + ",\n".join(json.dumps(row) for row in generate()) + "\n]\n")  # a row per field
    print(f"wrote {TABLE}")
