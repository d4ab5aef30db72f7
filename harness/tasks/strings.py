"""Synthetic string tasks generated locally: every example has a `prompt` and the `target` string to emit.

- copy: repeat a random string (`abca>` -> `abca`);
- addition: add two numbers (`12+34=` -> `46`), per-digit credit.

Both are scored by the same rewards: a sequence-level one (fraction of positions right, stopping included) and a
token-level one (1 for each token that matches the target at its position, the end-of-sequence token included).
The sequence reward is the sum of the token rewards divided by len(target) + 1, so both estimators chase one goal.
"""

from __future__ import annotations

from harness.tasks.splits import Items


def copy_items(length: int, alphabet: str) -> Items:
    def row(index: int) -> dict:
        text = "".join(alphabet[(index // len(alphabet) ** p) % len(alphabet)] for p in range(length))
        return {"prompt": f"{text}>", "target": text}

    return Items(("copy", length, alphabet), len(alphabet) ** length, row)


def copy_dataset(size: int, length: int, alphabet: str, seed: int, split: str = "train"):
    """`size` copy rows of `split` (held-out prompts never occur in train: harness/tasks/splits.py)."""
    from datasets import Dataset

    return Dataset.from_list(copy_items(length, alphabet).rows(size, split, seed, "copy"))


def addition_items(digits: int) -> Items:
    count = 10**digits

    def row(index: int) -> dict:
        a, b = divmod(index, count)
        return {"prompt": f"{a}+{b}=", "target": str(a + b)}

    return Items(("addition", digits), count * count, row)


def addition_dataset(size: int, digits: int, seed: int, split: str = "train"):
    """`size` addition rows of `split` (held-out prompts never occur in train: harness/tasks/splits.py)."""
    from datasets import Dataset

    return Dataset.from_list(addition_items(digits).rows(size, split, seed, "addition"))


# The number of distinct prompts in a split (the config layer refuses an eval.size above it).
copy_dataset.split_size = lambda length, alphabet, split="train", **_: copy_items(length, alphabet).count(split)
addition_dataset.split_size = lambda digits, split="train", **_: addition_items(digits).count(split)


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
