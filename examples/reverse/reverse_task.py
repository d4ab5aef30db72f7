"""An own task for harness: reverse a string (`abcd:` -> `dcba`).

Everything a task needs: a dataset factory, a sequence reward and a token reward written on text. The token reward
uses `token_spans` (each generated token's character span in the completion text), so it is right for any
tokenizer, character-level or subword.
"""

import itertools
import random


def reverse_dataset(size: int, length: int, seed: int, split: str = "train"):
    """`size` rows of `split`: training words drawn with repetition; held-out (`test`) words, the ones `is_heldout`
    picks and training never sees, drawn without."""
    from datasets import Dataset

    from harness.tasks.splits import is_heldout

    rng = random.Random(seed)
    words = ["".join(letters) for letters in itertools.product("abcdef", repeat=length)]
    pool = [w for w in words if is_heldout(f"{w}:") == (split == "test")]
    if split == "test" and size > len(pool):
        raise ValueError(f"eval.size={size} is larger than the held-out split of reverse ({len(pool)} words)")
    chosen = rng.sample(pool, size) if split == "test" else [rng.choice(pool) for _ in range(size)]
    return Dataset.from_list([{"prompt": f"{w}:", "target": w[::-1]} for w in chosen])


def reversed_right(completions, target, **_):
    """Sequence reward: share of the target's characters in place, plus one for stopping right, over len + 1."""
    return [
        (sum(a == b for a, b in zip(text, goal)) + (len(text) == len(goal))) / (len(goal) + 1)
        for text, goal in zip(completions, target)
    ]


def chars_in_place(completions, token_spans, target, eos_token, tokens, **_):
    """Token reward: a token's share of characters in place; the end-of-sequence token scores stopping right.

    Tokens that cover no character (other special tokens) carry no reward: None.
    """
    rows = []
    for text, spans, goal, names in zip(completions, token_spans, target, tokens):
        row = []
        for (start, end), name in zip(spans, names):
            if name == eos_token:
                row.append(float(len(text) == len(goal)))
            elif end > start:
                row.append(sum(i < len(goal) and text[i] == goal[i] for i in range(start, end)) / (end - start))
            else:
                row.append(None)
        rows.append(row)
    return rows
