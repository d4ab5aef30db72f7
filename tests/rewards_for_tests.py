"""Token rewards used by the process-supervision invariant tests."""

from harness.tasks.strings import position_accuracy
from harness.training.model import SPECIAL_TOKENS


def outcome_on_last_token(tokens: list[list[str]], target: list[str], **_) -> list[list[float | None]]:
    """The copy task's sequence reward, written as a token reward on the last token and None elsewhere."""
    special = set(SPECIAL_TOKENS.values())
    rewards = []
    for row, goal in zip(tokens, target):
        text = "".join(token for token in row if token not in special)  # what trl decodes for the sequence reward
        rewards.append([None] * (len(row) - 1) + position_accuracy([text], [goal]))
    return rewards
