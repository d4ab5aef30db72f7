"""Reward models from local directories: a process reward model (PRM) as a token reward, and a sequence reward
model (RM) as an ordinary reward function. Both load with `transformers` from a path; nothing is downloaded.

PRM convention ("score at a step tag"): the completion is split into steps at `separator`; the PRM reads the prompt
and the steps, each followed by `step_tag` (the separator itself when not given), and scores each step at the last
PRM token of its tag. Two formats of that score:

- `ProcessRewardModel`, a token-classification head: the probability of `positive_label` at the tag;
- `GenerativeProcessRewardModel`, a causal LM (the format of Math-Shepherd, Wang et al., arXiv 2312.08935, and of
  the PRMs trained after it): the next-token distribution at the tag restricted to a "good" and a "bad" token,
  P(good) / (P(good) + P(bad)) = softmax(logit_good, logit_bad)[0]. Math-Shepherd's own choices are step tag "ки",
  good "+" and bad "-"; all three are configurable, and good / bad must each be one token of the PRM's tokenizer.

The score goes on the policy token that holds the step's last character, and None on every other token (sparse step
rewards).
"""

from __future__ import annotations

from pathlib import Path

from harness.algorithms.token_spans import token_at


def _load(path: str, kind: str):
    import transformers
    from transformers import AutoTokenizer

    if not (Path(path) / "config.json").is_file():
        raise ValueError(f"{path} is not a saved model directory (no config.json)")
    tokenizer = AutoTokenizer.from_pretrained(path)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    model = getattr(transformers, kind).from_pretrained(path).eval()
    return tokenizer, model


def _prompt_text(prompt) -> str:
    """A conversational prompt (list of messages) is read as its messages' contents, one per line."""
    return prompt if isinstance(prompt, str) else "\n".join(message["content"] for message in prompt)


class ProcessRewardModel:
    """Token reward: a PRM's score at the end of each step of the completion, None elsewhere."""

    # A model to load: harness/config/rules.py refuses it where the advantage estimator reads no token rewards.
    is_reward_model = True

    def __init__(
        self,
        path: str,
        separator: str = "\n",
        step_tag: str | None = None,
        positive_label: int = 1,
        batch_size: int = 16,
        max_length: int = 2048,
    ):
        if not separator:
            raise ValueError("separator must be a non-empty string")
        self.tokenizer, self.model = _load(path, "AutoModelForTokenClassification")
        labels = self.model.config.num_labels
        if not 0 <= positive_label < labels:
            raise ValueError(f"positive_label={positive_label}; the PRM at {path} has labels 0..{labels - 1}")
        self.separator, self.step_tag = separator, step_tag if step_tag is not None else separator
        self.positive_label, self.batch_size, self.max_length = positive_label, batch_size, max_length

    def steps(self, text: str) -> list[tuple[str, int]]:
        """(step text, index of its last character in `text`) for every non-empty step."""
        out, start = [], 0
        for piece in text.split(self.separator):
            if piece.strip():
                out.append((piece, start + len(piece) - 1))
            start += len(piece) + len(self.separator)
        return out

    def __call__(self, prompts, completions, token_spans, device=None, **_) -> list[list[float | None]]:
        steps = [self.steps(text) for text in completions]
        scores = self.score([_prompt_text(p) for p in prompts], [[s for s, _ in row] for row in steps], device)
        rewards = []
        for row_steps, row_scores, spans in zip(steps, scores, token_spans):
            row = [None] * len(spans)
            for (_, last_char), score in zip(row_steps, row_scores):
                token = token_at(spans, last_char)
                if token is not None:
                    row[token] = score
            rewards.append(row)
        return rewards

    def score(self, prompts: list[str], steps: list[list[str]], device=None) -> list[list[float]]:
        """PRM scores of each completion's steps, in batched no-grad forwards on `device`."""
        import torch

        texts, tag_ends = [], []
        for prompt, row in zip(prompts, steps):
            text, ends = prompt, []
            for step in row:
                text += step + self.step_tag
                ends.append(len(text) - 1)  # the tag's last character
            texts.append(text)
            tag_ends.append(ends)
        model = self.model.to(device) if device is not None else self.model
        out: list[list[float]] = []
        for start in range(0, len(texts), self.batch_size):
            batch = self.tokenizer(
                texts[start : start + self.batch_size], return_offsets_mapping=True, padding=True,
                truncation=True, max_length=self.max_length, return_tensors="pt",
            )  # fmt: skip
            offsets = batch.pop("offset_mapping").tolist()
            with torch.no_grad():
                logits = model(**batch.to(model.device)).logits
            probabilities = self.tag_probabilities(logits.float()).cpu()
            for row, (ends, row_offsets) in enumerate(zip(tag_ends[start : start + self.batch_size], offsets)):
                spans = [tuple(span) for span in row_offsets]
                tokens = [token_at(spans, end) for end in ends]
                # A step cut off by max_length has no tag token: it gets no score (a None reward).
                out.append([float(probabilities[row, t]) if t is not None else None for t in tokens])
        return out

    def tag_probabilities(self, logits):
        """(B, L) the score a step would get if its tag ended at each PRM position: P(positive_label)."""
        return logits.softmax(-1)[..., self.positive_label]


class GenerativeProcessRewardModel(ProcessRewardModel):
    """Token reward from a generative (causal-LM) PRM: at each step's tag, P(good) / (P(good) + P(bad)) of the
    next-token distribution, None elsewhere. Refuses good / bad strings that are not single tokens of its tokenizer
    (the score would then be the probability of a token the PRM never emits there)."""

    def __init__(
        self,
        path: str,
        separator: str = "\n",
        step_tag: str | None = "ки",
        good_token: str = "+",
        bad_token: str = "-",
        batch_size: int = 16,
        max_length: int = 2048,
    ):
        if not separator:
            raise ValueError("separator must be a non-empty string")
        self.tokenizer, self.model = _load(path, "AutoModelForCausalLM")
        ids = {}
        for name, token in (("good_token", good_token), ("bad_token", bad_token)):
            encoded = self.tokenizer(token, add_special_tokens=False)["input_ids"]
            if len(encoded) != 1 or encoded[0] == self.tokenizer.unk_token_id:
                raise ValueError(
                    f"{name}={token!r} is not a single token of the PRM's tokenizer at {path} (it encodes to "
                    f"{encoded}); give the exact token the PRM emits after a step tag"
                )
            ids[name] = encoded[0]
        if ids["good_token"] == ids["bad_token"]:
            raise ValueError(f"good_token={good_token!r} and bad_token={bad_token!r} are the same token")
        self.candidates = [ids["good_token"], ids["bad_token"]]
        self.separator, self.step_tag = separator, step_tag if step_tag is not None else separator
        self.batch_size, self.max_length = batch_size, max_length

    def tag_probabilities(self, logits):
        """(B, L) P(good) / (P(good) + P(bad)) of the next token after each position."""
        return logits[..., self.candidates].softmax(-1)[..., 0]


class SequenceRewardModel:
    """Reward function: a sequence-classification reward model's score (logit of label 0) per completion."""

    def __init__(self, path: str, batch_size: int = 16, max_length: int = 2048):
        self.tokenizer, self.model = _load(path, "AutoModelForSequenceClassification")
        self.batch_size, self.max_length = batch_size, max_length

    def __call__(self, prompts, completions, **_) -> list[float]:
        import torch

        texts = [
            _prompt_text(p) + (c if isinstance(c, str) else c[-1]["content"]) for p, c in zip(prompts, completions)
        ]
        scores = []
        for start in range(0, len(texts), self.batch_size):
            batch = self.tokenizer(
                texts[start : start + self.batch_size], padding=True, truncation=True, max_length=self.max_length,
                return_tensors="pt",
            )  # fmt: skip
            with torch.no_grad():
                scores += self.model(**batch.to(self.model.device)).logits[:, 0].float().tolist()
        return scores
