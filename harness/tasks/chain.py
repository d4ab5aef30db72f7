"""A multi-step task with sparse step rewards: a chain of additions written out step by step.

`3+4+5+2=` -> `7|2|4`: each step is the running sum mod 10 after the next operand, steps are separated by `|`, and
the answer ends with the end-of-sequence token. Process supervision as published (DeepSeekMath §4.1.3, PRMs): the
token reward scores each step on the token that ends it (the separator, or the end-of-sequence token for the last
step) and is None on every other token; the sequence reward is the fraction of steps right, so both estimators
chase one goal.
"""

from __future__ import annotations

import random

SEPARATOR = "|"


def chain_dataset(size: int, steps: int, seed: int):
    from datasets import Dataset

    rng = random.Random(seed)
    rows = []
    for _ in range(size):
        operands = [rng.randint(0, 9) for _ in range(steps + 1)]
        partial = [sum(operands[: k + 2]) % 10 for k in range(steps)]
        rows.append(
            {
                "prompt": "+".join(map(str, operands)) + "=",
                "target": SEPARATOR.join(map(str, partial)),
            }
        )
    return Dataset.from_list(rows)


def _step_right(k: int, text: str, expected: list[str], last: bool) -> float:
    """Step k is right when it holds the expected value and ends the answer exactly when it is the last step."""
    return float(k < len(expected) and text == expected[k] and last == (k == len(expected) - 1))


def step_accuracy(completions: list[str], target: list[str], **_) -> list[float]:
    """Fraction of the expected steps that are right."""
    scores = []
    for text, goal in zip(completions, target):
        expected, steps = goal.split(SEPARATOR), text.split(SEPARATOR)
        right = sum(_step_right(k, step, expected, k == len(steps) - 1) for k, step in enumerate(steps))
        scores.append(right / len(expected))
    return scores


def step_rewards(tokens: list[list[str]], target: list[str], eos_token: str, **_) -> list[list[float | None]]:
    """Per-token rewards: each step's score on the token that ends it, None elsewhere.

    A step ends at a token containing the separator or at the end-of-sequence token; an answer cut off before the
    end-of-sequence token leaves its last step unscored.
    """
    rewards = []
    for row, goal in zip(tokens, target):
        expected, text, k, row_rewards = goal.split(SEPARATOR), "", 0, []
        for token in row:
            if token == eos_token or SEPARATOR in token:
                head, _, tail = ("" if token == eos_token else token).partition(SEPARATOR)
                row_rewards.append(_step_right(k, text + head, expected, token == eos_token))
                text, k = tail, k + 1
            else:
                row_rewards.append(None)
                text += token
        rewards.append(row_rewards)
    return rewards
