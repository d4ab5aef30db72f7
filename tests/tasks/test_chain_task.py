"""The multi-step chain task: dataset, step scores on the token that ends each step, None elsewhere."""

import pytest

from harness.tasks.chain import chain_dataset, step_accuracy, step_rewards

EOS = "<eos>"


def test_dataset_writes_running_sums_mod_10():
    row = chain_dataset(size=5, steps=3, seed=0)[0]
    operands = [int(x) for x in row["prompt"].rstrip("=").split("+")]
    expected = [sum(operands[: k + 2]) % 10 for k in range(3)]
    assert row["target"] == "|".join(map(str, expected))
    assert len(chain_dataset(size=7, steps=2, seed=1)) == 7


def test_each_step_is_scored_on_its_last_token_and_none_elsewhere():
    tokens = [
        [*"7|2|4", EOS],  # all right
        [*"7|3|4", EOS],  # middle step's digit wrong, its separator right
        [*"7|2"],  # cut off inside the second step: scored on its last token, no terminator credit
        ["7", EOS],  # stops after one step: its digit is right, its terminator is not
        [*"17|2|4|", EOS],  # one character too many; the third step does not end the answer; a step too many
    ]
    assert step_rewards(tokens, ["7|2|4"] * 5, EOS) == [
        [None, 1.0, None, 1.0, None, 1.0],
        [None, 1.0, None, 0.5, None, 1.0],
        [None, 1.0, 0.5],
        [None, 0.5],
        [None, None, 0.5, None, 1.0, None, 0.5, 0.0],
    ]


def test_multi_character_tokens_split_at_the_separator():
    # A subword tokenizer may merge a digit with the separator: the step ends on that token.
    assert step_rewards([["7|", "2|", "4", EOS]], ["7|2|4"], EOS) == [[1.0, 1.0, None, 1.0]]


def test_sequence_reward_is_the_mean_step_score_of_an_ended_answer():
    completions = ["7|2|4", "7|3|4", "7", "17|2|4|", ""]
    rows = step_rewards([[*text, EOS] for text in completions], ["7|2|4"] * 5, EOS)
    expected = [sum(v for v in row if v is not None) / 3 for row in rows]
    assert step_accuracy(completions, ["7|2|4"] * 5) == pytest.approx(expected)
