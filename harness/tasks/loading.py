"""Instantiate a task from `conf/reward/*.yaml`: its dataset and its named, checked reward functions."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from hydra.errors import InstantiationException
from hydra.utils import instantiate

from harness.config.groups import Reward
from harness.config.schema import ConfigError


class UserCodeError(ValueError):
    """A user's function (a reward) raised or returned something unusable: the message names the function, its
    `_target_` and the call (harness/training/failures.py reports it as the run's one line)."""


class CheckedReward:
    """A reward function with trl's name attribute that refuses a wrong number of values or NaN, and names itself
    and its call (1: the pre-flight call of `build_task`) in whatever it raises."""

    def __init__(
        self, name: str, fn: Callable, per_token: bool = False, target: str | None = None, key: str | None = None
    ):
        self.__name__ = name
        self.fn = fn
        self.per_token = per_token
        self.calls = 0
        key = key or f"reward.{'token_function' if per_token else 'functions.' + name}"
        self.where = f"{key} ({target})" if target else key

    def __call__(self, **kwargs) -> list:
        self.calls += 1
        try:
            values = self.fn(**kwargs)
            self._check(values, kwargs)
        except UserCodeError:
            raise
        except ValueError as error:  # the checks below
            head, sep, tail = str(error).partition(";")
            raise UserCodeError(f"{head} on call {self.calls}{sep}{tail}") from error
        except Exception as error:  # noqa: BLE001 - user code: whatever it raises is named, not a traceback
            message = " ".join(str(error).split())[:300] or "no message"
            raise UserCodeError(
                f"{self.where} raised {type(error).__name__} on call {self.calls}: {message}"
            ) from error
        return values

    def _check(self, values, kwargs) -> None:
        expected = len(kwargs["prompts"])
        where = self.where
        if values is None or not hasattr(values, "__len__") or len(values) != expected:
            got = "None" if values is None else len(values) if hasattr(values, "__len__") else repr(values)
            raise ValueError(f"{where} returned {got} values for {expected} completions; return one per completion")
        for i, value in enumerate(values):
            if self.per_token:
                _check_token_row(where, i, value, len(kwargs["tokens"][i]))
            elif value is not None and not _finite_number(value):
                raise ValueError(f"{where} returned {value!r} for completion {i}; rewards must be finite numbers")


def _check_token_row(where: str, i: int, row: Any, length: int) -> None:
    """One value per token: a finite number where the token carries a reward, None where it carries none."""
    if row is None or not hasattr(row, "__len__") or len(row) != length:
        got = "None" if row is None else len(row) if hasattr(row, "__len__") else repr(row)
        raise ValueError(f"{where} returned {got} token rewards for completion {i} of {length} tokens")
    for value in row:
        if value is not None and not _finite_number(value):
            raise ValueError(
                f"{where} returned {value!r} for a token of completion {i}; "
                "token rewards must be finite numbers, or None where a token carries no reward"
            )


def _finite_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value)


@dataclass
class Task:
    dataset: Any
    functions: list[CheckedReward]
    token_function: CheckedReward | None
    eval_dataset: Any = None  # held-out rows (reward.eval_dataset), when the task has them
    accuracy: Callable | None = None  # 0/1 per completion (reward.accuracy)
    credit_reference: CheckedReward | None = None  # token rewards giving the true credit (`adv/credit_corr`)


def build_task(cfg: Reward, eos_token: str, evaluation: bool = False) -> Task:
    """Instantiate the task and call its rewards once on dataset rows, so a broken reward fails before training;
    with `evaluation`, also its held-out rows and accuracy."""
    dataset = _instantiate(cfg.dataset, "reward.dataset")
    if len(dataset) == 0:  # trl would fail deep inside its sampler
        raise ConfigError(f"reward.dataset ({cfg.dataset['_target_']}) is empty; give it at least one row")
    functions = [
        CheckedReward(name, _instantiate(spec.fn, f"reward.functions.{name}.fn"), target=spec.fn["_target_"])
        for name, spec in cfg.functions.items()
    ]
    token_function = None
    if cfg.token_function is not None:
        function = _instantiate(cfg.token_function, "reward.token_function")
        target = cfg.token_function["_target_"]
        token_function = CheckedReward("token_function", function, per_token=True, target=target)
    credit_reference = None
    if cfg.credit_reference is not None:
        function = _instantiate(cfg.credit_reference, "reward.credit_reference")
        target = cfg.credit_reference["_target_"]
        credit_reference = CheckedReward(
            "credit_reference", function, per_token=True, target=target, key="reward.credit_reference"
        )
    task = Task(dataset, functions, token_function, credit_reference=credit_reference)
    if evaluation and cfg.eval_dataset is not None:
        task.eval_dataset = _instantiate(cfg.eval_dataset, "reward.eval_dataset")
        target = cfg.eval_dataset["_target_"]
        if len(task.eval_dataset) == 0:
            raise ConfigError(f"reward.eval_dataset ({target}) is empty; give it at least one row")
        if "prompt" not in task.eval_dataset[0]:
            raise ConfigError(
                f"reward.eval_dataset ({target}) has no `prompt` column (columns: "
                f"{', '.join(task.eval_dataset[0])}); return rows with a `prompt`"
            )
    if evaluation and cfg.accuracy is not None:
        function = _instantiate(cfg.accuracy, "reward.accuracy")
        task.accuracy = CheckedReward("accuracy", function, target=cfg.accuracy["_target_"], key="reward.accuracy")
    try:
        _smoke_test(task, eos_token)
    except ValueError as error:
        raise ConfigError(str(error)) from error
    return task


def _instantiate(node: dict, where: str):
    """Instantiate a dataset or reward; one that refuses its arguments (a bad path, label or size) is a config error."""
    try:
        return instantiate(node)
    except InstantiationException as error:
        cause = error.__cause__ or error
        raise ConfigError(f"{where}: {' '.join(str(cause).split())}") from error


def _smoke_test(task: Task, eos_token: str) -> None:
    rows = [task.dataset[i] for i in range(min(2, len(task.dataset)))]
    columns = {key: [row[key] for row in rows] for key in rows[0] if key != "prompt"}
    prompts = [row["prompt"] for row in rows]
    conversational = isinstance(prompts[0], list)
    completions = [[{"role": "assistant", "content": ""}] if conversational else "" for _ in rows]
    for fn in task.functions:
        fn(prompts=prompts, completions=completions, completion_ids=[[] for _ in rows], **columns)
    for token_function in (task.token_function, task.credit_reference):
        if token_function is not None:
            token_function(
                prompts=prompts,
                completions=["" for _ in rows],
                tokens=[[eos_token] for _ in rows],
                token_spans=[[(0, 0)] for _ in rows],
                completion_ids=[[0] for _ in rows],
                eos_token=eos_token,
                **columns,
            )
