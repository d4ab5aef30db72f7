"""Hand-made batches in trl's layout for the credit-estimator tests, and trl's outcome advantage written out."""

from __future__ import annotations

import random
import statistics

import torch


def trl_outcome(rewards: list[float], group: int) -> list[float]:
    """trl's group-normalised advantage, (r - mean) / (stdev + 1e-4) with the unbiased std, in plain Python."""
    out = []
    for start in range(0, len(rewards), group):
        members = rewards[start : start + group]
        mean = statistics.fmean(members)
        std = statistics.stdev(members) if len(members) > 1 else 0.0
        out.extend((r - mean) / (std + 1e-4) for r in members)
    return out


def batch(seed: int, groups: int = 3, group: int = 4, length: int = 7, graded: bool = False, vocab: int = 6):
    """Random rewards, lengths, entropies and token ids; every group has rewards that are not all equal."""
    rng = random.Random(seed)
    rewards: list[float] = []
    for _ in range(groups):
        while True:
            members = [rng.choice([0.0, 0.5, 1.0, 2.0]) if graded else float(rng.random() < 0.5) for _ in range(group)]
            if len(set(members)) > 1:
                break
        rewards.extend(members)
    n = groups * group
    lengths = [rng.randint(1, length) for _ in range(n)]
    mask = [[1 if t < lengths[i] else 0 for t in range(length)] for i in range(n)]
    entropies = [[round(rng.uniform(0.0, 3.0), 3) if mask[i][t] else 9.9 for t in range(length)] for i in range(n)]
    ids = [[rng.randrange(vocab) if mask[i][t] else 0 for t in range(length)] for i in range(n)]
    return {
        "rewards": rewards,
        "mask": mask,
        "entropies": entropies,
        "ids": ids,
        "group": group,
        "outcome": trl_outcome(rewards, group),
    }


def tensors(case: dict) -> dict:
    """The same case as torch tensors (float64 values, float mask, int64 ids)."""
    return {
        "rewards": torch.tensor(case["rewards"], dtype=torch.float64),
        "mask": torch.tensor(case["mask"], dtype=torch.float64),
        "entropies": torch.tensor(case["entropies"], dtype=torch.float64),
        "ids": torch.tensor(case["ids"], dtype=torch.int64),
        "outcome": torch.tensor(case["outcome"], dtype=torch.float64),
    }


def within_sequence_std(advantages: torch.Tensor, mask: torch.Tensor) -> list[float]:
    """Population std of each row's valid-token advantages (rows with fewer than 2 valid tokens are skipped)."""
    out = []
    for row, valid in zip(advantages.tolist(), mask.tolist()):
        values = [a for a, m in zip(row, valid) if m]
        if len(values) >= 2:
            out.append(statistics.pstdev(values))
    return out
