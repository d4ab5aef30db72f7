"""Synthetic string tasks generated locally: every example has a `prompt` and the `target` string to emit.

- copy: repeat a random string (`abca>` -> `abca`);
- addition: add two numbers (`12+34=` -> `46`), per-digit credit.

Both are scored by the same rewards: a sequence-level one (fraction of positions right, stopping included) and a
token-level one (1 for each token that matches the target at its position, the end-of-sequence token included).
The sequence reward is the sum of the token rewards divided by len(target) + 1, so both estimators chase one goal.
"""

from __future__ import annotations

import random


def copy_dataset(size: int, length: int, alphabet: str, seed: int):
    from datasets import Dataset

    rng = random.Random(seed)
    rows = []
    for _ in range(size):
        text = "".join(rng.choice(alphabet) for _ in range(length))
        rows.append({"prompt": f"{text}>", "target": text})
    return Dataset.from_list(rows)


def addition_dataset(size: int, digits: int, seed: int):
    from datasets import Dataset

    rng = random.Random(seed)
    high = 10**digits - 1
    rows = []
    for _ in range(size):
        a, b = rng.randint(0, high), rng.randint(0, high)
        rows.append({"prompt": f"{a}+{b}=", "target": str(a + b)})
    return Dataset.from_list(rows)


def position_accuracy(completions: list[str], target: list[str], **_) -> list[float]:
    """Fraction of the len(target) + 1 positions right: each character, then stopping right after the target."""
    return [
        (sum(a == b for a, b in zip(text, goal)) + (len(text) == len(goal))) / (len(goal) + 1)
        for text, goal in zip(completions, target)
    ]


def exact_match(completions: list[str], target: list[str], **_) -> list[float]:
    return [float(text == goal) for text, goal in zip(completions, target)]


def position_correct(tokens: list[list[str]], target: list[str], eos_token: str, **_) -> list[list[float]]:
    """Per-token reward: 1 where the token equals the expected one (target characters, then end of sequence)."""
    rewards = []
    for row, goal in zip(tokens, target):
        expected = [*goal, eos_token]
        rewards.append([float(t < len(expected) and token == expected[t]) for t, token in enumerate(row)])
    return rewards
