"""Where each generated token sits in the completion text, so token rewards written on text land on tokens.

A subword token covers several characters (and a character can straddle byte-level tokens); trl decodes the
completion with special tokens skipped. `token_spans` gives each token's [start, end) character span in that text;
`token_at` maps a character position back to its token.
"""

from __future__ import annotations

from collections.abc import Sequence

CONTEXT = 8  # tokens decoded before the current one, so merges and leading-space rules come out as in the full text


def token_spans(tokenizer, ids: list[int]) -> tuple[str, list[tuple[int, int]]]:
    """(text, spans): the completion as trl decodes it and each token's character span in it (special: empty)."""
    spans, position = [], 0
    for k in range(len(ids)):
        window = ids[max(0, k - CONTEXT) : k]
        before = len(tokenizer.decode(window, skip_special_tokens=True)) if window else 0
        width = max(len(tokenizer.decode(window + [ids[k]], skip_special_tokens=True)) - before, 0)
        spans.append((position, position + width))
        position += width
    text = tokenizer.decode(ids, skip_special_tokens=True)
    # Decoding in windows can disagree with the whole text by a character at a split multi-byte character: clamp.
    return text, [(min(start, len(text)), min(end, len(text))) for start, end in spans]


def token_at(spans: list[tuple[int, int]], char: int) -> int | None:
    """Index of the first token whose span holds character `char` (None when no token does).

    A linear scan: spans of a tokenizer's offset mapping are not sorted (special and padding tokens are (0, 0)).
    """
    return next((k for k, (start, end) in enumerate(spans) if start <= char < end), None)


class LazySpans(Sequence):
    """`token_spans` for a batch, computed per completion on first access: token rewards that do not read them
    (the dense built-in ones) cost nothing, since decoding in windows is the expensive part."""

    def __init__(self, tokenizer, ids: list[list[int]]):
        self.tokenizer, self.ids, self._rows = tokenizer, ids, {}

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, row):
        if isinstance(row, slice):
            return [self[i] for i in range(*row.indices(len(self)))]
        if row not in self._rows:
            self._rows[row] = token_spans(self.tokenizer, self.ids[row])[1]
        return self._rows[row]
