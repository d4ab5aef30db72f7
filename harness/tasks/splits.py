"""Train and held-out splits of the generated tasks, disjoint by construction.

Every item of a generated task (a copy string, an addition, a chain of operands) is identified by its prompt. A
stable hash of the prompt puts 1 in `HELDOUT_BUCKETS` of all possible prompts in the held-out (`test`) split, the
rest in `train`: the training generator skips held-out prompts and the evaluation generator draws only them, so no
seed can put a held-out prompt into training. The hash (SHA-256, not Python's salted `hash`) is the same in every
process and on every machine, so the split is a property of the prompt alone.

`Items.count` counts a split exactly by enumerating the item space when it has at most `ENUMERATE_LIMIT` items
(the embedded defaults have 256 and 10,000); beyond that it returns None (large: any sensible eval.size fits).
Torch-free and datasets-free, so the config layer can call it to refuse an eval.size larger than the split.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Callable
from typing import Literal

HELDOUT_BUCKETS = 8  # 1/8 of the prompts are held out
ENUMERATE_LIMIT = 1 << 20
Split = Literal["train", "test"]


def is_heldout(prompt: str) -> bool:
    digest = hashlib.sha256(prompt.encode()).digest()
    return int.from_bytes(digest[:8], "big") % HELDOUT_BUCKETS == 0


def check_split(split: str) -> None:
    if split not in ("train", "test"):
        raise ValueError(f"split={split!r}; allowed: train, test")


_HELDOUT: dict[tuple, tuple[int, ...]] = {}  # per item space (`Items.key`): its held-out indices


class Items:
    """A generated task's item space: `space` items, item `index` -> its row (a dict with `prompt`); `key` names the
    task and its parameters (the held-out indices are enumerated once per key)."""

    def __init__(self, key: tuple, space: int, row_of: Callable[[int], dict]):
        self.key, self.space, self.row_of = key, space, row_of

    def __call__(self, index: int) -> str:
        return self.row_of(index)["prompt"]

    def _heldout(self) -> tuple[int, ...]:
        if self.key not in _HELDOUT:
            _HELDOUT[self.key] = tuple(i for i in range(self.space) if is_heldout(self(i)))
        return _HELDOUT[self.key]

    def count(self, split: str) -> int | None:
        """The number of distinct prompts in `split` (None: the space is too large to count, and large)."""
        check_split(split)
        if self.space > ENUMERATE_LIMIT:
            return None
        heldout = len(self._heldout())
        return heldout if split == "test" else self.space - heldout

    def rows(self, size: int, split: str, seed: int, what: str) -> list[dict]:
        """`size` rows of `split`: drawn with repetition for train (as a training set is sampled), distinct for
        test (each held-out prompt scored once)."""
        available = self.count(split)
        if available == 0:
            raise ValueError(f"the {split} split of {what} is empty (all {self.space} prompts are in the other split)")
        rng = random.Random(seed)
        if split == "train":
            indices = []
            while len(indices) < size:
                index = rng.randrange(self.space)
                if not is_heldout(self(index)):
                    indices.append(index)
        elif available is not None:
            if size > available:
                raise ValueError(f"eval.size={size} is larger than the held-out split of {what} ({available} prompts)")
            indices = rng.sample(self._heldout(), size)
        else:
            chosen: dict[int, None] = {}  # insertion-ordered set
            while len(chosen) < size:
                index = rng.randrange(self.space)
                if is_heldout(self(index)):
                    chosen.setdefault(index)
            indices = list(chosen)
        return [self.row_of(i) for i in indices]
