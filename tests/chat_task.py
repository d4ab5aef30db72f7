"""A conversational copy task for the BPE/chat-template tests: prompts are message lists, rewards read text."""

import random

CHAT_TEMPLATE = (
    "{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}\n{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>{% endif %}"
)


def chat_copy_dataset(size: int, seed: int):
    from datasets import Dataset

    rng = random.Random(seed)
    words = ["apple", "banana", "cherry", "grape", "lemon", "mango"]
    rows = []
    for _ in range(size):
        text = " ".join(rng.sample(words, 2))
        rows.append({"prompt": [{"role": "user", "content": f"copy: {text}"}], "target": text})
    return Dataset.from_list(rows)


def chat_accuracy(completions, target, **_):
    """Share of the target's characters in place (completions are assistant messages)."""
    texts = [c[-1]["content"] for c in completions]
    return [sum(a == b for a, b in zip(t, g)) / len(g) for t, g in zip(texts, target)]


def chars_in_place(completions, token_spans, target, **_):
    """Token reward written on text: each token scores the share of its characters in place; None if it has none."""
    rows = []
    for text, spans, goal in zip(completions, token_spans, target):
        row = []
        for start, end in spans:
            chars = range(start, end)
            row.append(sum(i < len(goal) and text[i] == goal[i] for i in chars) / len(chars) if chars else None)
        rows.append(row)
    return rows
