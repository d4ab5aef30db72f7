"""Held-out datasets for the evaluation tests: a user's `reward.eval_dataset` targets."""


def rows_without_prompt(**_):
    from datasets import Dataset

    return Dataset.from_list([{"question": "ab>", "target": "ab"}])


def train_prompts_as_eval(size: int, length: int, alphabet: str, seed: int, **_):
    """The training rows themselves as the "held-out" set (for a test where held-out equals training)."""
    from harness.tasks.strings import copy_dataset

    return copy_dataset(size, length, alphabet, seed, split="train")
