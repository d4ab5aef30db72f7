"""GSM8K from the hub (GPU users): chat prompts and a final-answer match reward. Downloads the dataset."""

from __future__ import annotations

import re

SYSTEM_PROMPT = "Solve the problem step by step, then give the final answer on its own line as '#### <number>'."
_ANSWER = re.compile(r"####\s*(-?[\d,\.]+)")


def gsm8k_dataset(name: str, config: str, split: str, size: int | None = None):
    from datasets import load_dataset

    data = load_dataset(name, config, split=split)
    if split != "train" and size is not None and size > len(data):
        raise ValueError(f"eval.size={size} is larger than the {split} split of {name} ({len(data)} prompts)")
    if size is not None:
        data = data.select(range(min(size, len(data))))
    return data.map(
        lambda row: {
            "prompt": [
                {"role": "system", "content": SYSTEM_PROMPT},
                {"role": "user", "content": row["question"]},
            ],
            "target": _final_answer(row["answer"]),
        },
        remove_columns=data.column_names,
    )


def _final_answer(text: str) -> str | None:
    match = _ANSWER.search(text)
    return match.group(1).replace(",", "").rstrip(".") if match else None


def answer_match(completions: list, target: list[str], **_) -> list[float]:
    """1 when the completion's '#### <number>' equals the reference answer."""
    texts = [c[-1]["content"] if isinstance(c, list) else c for c in completions]
    return [float(_final_answer(text) == goal) for text, goal in zip(texts, target)]
