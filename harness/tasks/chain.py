"""A multi-step task with sparse step rewards: a chain of additions written out step by step.

`3+4+5+2=` -> `7|2|4`: each step is the running sum mod 10 after the next operand, steps end with the separator `|`
and the answer with the end-of-sequence token. Process supervision as published (DeepSeekMath §4.1.3, PRMs): the
token reward scores each step on the token that ends it and is None on every other token. Like a PRM's probability,
a step's score is graded: the share of its characters in place, its terminator included (`|`, or end-of-sequence
for the last step), so a random policy already earns some reward. The sequence reward is the mean step score over
the expected steps, so both estimators chase one goal.
"""

from __future__ import annotations

from harness.tasks.splits import Items

SEPARATOR = "|"


def chain_items(steps: int) -> Items:
    if steps < 1:
        raise ValueError(f"steps={steps} must be >= 1")

    def row(index: int) -> dict:
        operands = [(index // 10**p) % 10 for p in range(steps + 1)]
        partial = [sum(operands[: k + 2]) % 10 for k in range(steps)]
        return {"prompt": "+".join(map(str, operands)) + "=", "target": SEPARATOR.join(map(str, partial))}

    return Items(("chain", steps), 10 ** (steps + 1), row)


def chain_dataset(size: int, steps: int, seed: int, split: str = "train"):
    """`size` chain rows of `split` (held-out prompts never occur in train: harness/tasks/splits.py)."""
    from datasets import Dataset

    return Dataset.from_list(chain_items(steps).rows(size, split, seed, "chain"))


def _chain_split_size(steps, split="train", **_):
    try:
        return chain_items(steps).count(split)
    except ValueError:
        return None  # a bad `steps` is refused when the dataset is built


chain_dataset.split_size = _chain_split_size


def step_score(k: int, text: str, expected: list[str], terminated_as_last: bool | None) -> float:
    """Score of the k-th step written as `text`: characters in place plus a right terminator, over len + 1.

    `terminated_as_last` is True when the step ended the answer, False when a separator ended it, None when the
    answer was cut off inside it (no terminator to credit).
    """
    if k >= len(expected):
        return 0.0  # a step too many
    goal = expected[k]
    right = sum(a == b for a, b in zip(text, goal)) - max(len(text) - len(goal), 0)
    ends_right = terminated_as_last is not None and terminated_as_last == (k == len(expected) - 1)
    return max(right, 0) / (len(goal) + 1) + ends_right / (len(goal) + 1)


def step_accuracy(completions: list[str], target: list[str], **_) -> list[float]:
    """Mean step score over the expected steps (the text of a completion has ended, so its last piece ends it)."""
    scores = []
    for text, goal in zip(completions, target):
        expected, pieces = goal.split(SEPARATOR), text.split(SEPARATOR)
        total = sum(step_score(k, piece, expected, k == len(pieces) - 1) for k, piece in enumerate(pieces))
        scores.append(total / len(expected))
    return scores


def step_rewards(tokens: list[list[str]], target: list[str], eos_token: str, **_) -> list[list[float | None]]:
    """Per-token rewards: each step's score on the token that ends it, None elsewhere.

    A step ends at a token containing the separator or at the end-of-sequence token; an answer cut off inside a step
    has that step scored, without its terminator, on its last token.
    """
    rewards = []
    for row, goal in zip(tokens, target):
        expected, text, k, row_rewards = goal.split(SEPARATOR), "", 0, []
        for position, token in enumerate(row):
            if token == eos_token or SEPARATOR in token:
                head, _, tail = ("" if token == eos_token else token).partition(SEPARATOR)
                row_rewards.append(step_score(k, text + head, expected, token == eos_token))
                text, k = tail, k + 1
            elif position == len(row) - 1:
                row_rewards.append(step_score(k, text + token, expected, None))
            else:
                row_rewards.append(None)
                text += token
        rewards.append(row_rewards)
    return rewards
