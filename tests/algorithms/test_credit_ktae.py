import math

import pytest
import torch

from harness.algorithms.credit.ktae import ktae_advantages
from tests.algorithms.credit_cases import batch, tensors, trl_outcome, within_sequence_std


def entropy_bits(p):
    return -sum(x * math.log2(x) for x in (p, 1 - p) if x > 0)


def reference_values(case, h1=1.0, h2=1.0, h3=1.0, k1=1.2, b_bm25=0.75):
    """KTAE §3 with exact factorials and Python counters: the key-token value of every valid token."""
    rewards, mask, ids, group = case["rewards"], case["mask"], case["ids"], case["group"]
    out = [[0.0] * len(mask[0]) for _ in rewards]
    for start in range(0, len(rewards), group):
        members = list(range(start, start + group))
        if len({rewards[i] for i in members}) == 1:
            continue
        mean = sum(rewards[i] for i in members) / group
        correct = [i for i in members if rewards[i] > mean]
        wrong = [i for i in members if rewards[i] <= mean]
        tokens = {i: [v for v, m in zip(ids[i], mask[i]) if m] for i in members}
        len_t, len_f = sum(len(tokens[i]) for i in correct), sum(len(tokens[i]) for i in wrong)
        len_avg = (len_t + len_f) / 2
        value = {}
        for v in {v for i in members for v in tokens[i]}:
            a = sum(v in tokens[i] for i in correct)
            b = sum(v in tokens[i] for i in wrong)
            c, d, n = len(correct) - a, len(wrong) - b, group
            f = math.factorial
            p = f(a + b) * f(c + d) * f(a + c) * f(b + d) / (f(a) * f(b) * f(c) * f(d) * f(n))
            fisher = math.exp(-2 * p)
            cond = 0.0
            if a + b:
                cond += (a + b) / n * entropy_bits(a / (a + b))
            if c + d:
                cond += (c + d) / n * entropy_bits(c / (c + d))
            gain = entropy_bits(len(correct) / n) - cond

            tf_t, tf_f = (
                (k1 + 1) * tf / (k1 * (1 - b_bm25 + b_bm25 * set_len / len_avg) + tf) if tf else 0.0
                for tf, set_len in (
                    (sum(tokens[i].count(v) for i in correct), len_t),
                    (sum(tokens[i].count(v) for i in wrong), len_f),
                )
            )
            ratio = (tf_t + 1) / (tf_f + 1)
            direction = math.asin(math.sqrt(a / (a + c))) - math.asin(math.sqrt(b / (b + d))) + h3 * (ratio - 1 / ratio)
            value[v] = 1 / (1 + math.exp(-(h1 * fisher + h2 * gain) * direction)) - 0.5
        for i in members:
            out[i] = [value[v] if m else 0.0 for v, m in zip(ids[i], mask[i])]
    return out


def run(case, **kwargs):
    t = tensors(case)
    return ktae_advantages(t["rewards"], t["outcome"], t["ids"], t["mask"], case["group"], **kwargs)


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("h", [(1.0, 1.0, 1.0), (0.5, 2.0, 0.3)])
def test_matches_the_papers_statistics(seed, h):
    case = batch(seed, graded=seed % 2 == 1, group=5)
    values = reference_values(case, *h)
    expected = [
        [(a + v) if m else 0.0 for v, m in zip(row, mask)]
        for a, row, mask in zip(case["outcome"], values, case["mask"])
    ]
    got = run(case, h1=h[0], h2=h[1], h3=h[2])
    assert torch.allclose(got, torch.tensor(expected, dtype=got.dtype), atol=1e-9)
    assert (got[tensors(case)["mask"] == 0] == 0).all()


def test_by_hand_key_tokens_point_the_right_way():
    # Group of 4: token 7 occurs only in the two correct answers, token 8 only in the two wrong ones, 5 everywhere.
    rewards = torch.tensor([1.0, 1.0, 0.0, 0.0])
    ids = torch.tensor([[5, 7], [7, 5], [5, 8], [8, 5]])
    outcome = torch.tensor(trl_outcome(rewards.tolist(), 4))
    got = ktae_advantages(rewards, outcome, ids, torch.ones(4, 2), 4) - outcome.unsqueeze(1)
    key_good, key_bad, common = got[0, 1], got[2, 1], got[0, 0]
    assert key_good > 0.3 and key_bad < -0.3 and abs(common) < 1e-12
    assert torch.isclose(key_good, -key_bad)
    # Table for token 7: a=2, b=0, c=0, d=2 -> P = 2!2!2!2!/(2!0!0!2!4!) = 1/6; IG = 1 bit.
    fisher, gain = math.exp(-2 / 6), 1.0
    bm25 = 2.2 * 2 / (1.2 * 1 + 2)  # tf = 2 in 4 correct tokens, len_T = len_avg
    direction = math.pi / 2 + (bm25 + 1) - 1 / (bm25 + 1)
    assert math.isclose(key_good.item(), 1 / (1 + math.exp(-(fisher + gain) * direction)) - 0.5, rel_tol=1e-6)


@pytest.mark.parametrize("seed", range(3))
def test_no_shaping_is_trls_advantage_exactly(seed):
    case = batch(seed)
    t = tensors(case)
    outcome = t["outcome"].float()
    got = ktae_advantages(t["rewards"], outcome, t["ids"], t["mask"], 4, h1=0.0, h2=0.0)
    assert torch.equal(got, outcome.unsqueeze(1) * t["mask"].float())


def test_any_tokenizer_only_ids_matter():
    """Relabelling the vocabulary (here: into a large-vocabulary range, 0 included) changes nothing."""
    case = batch(4, vocab=9)
    t = tensors(case)
    relabel = torch.tensor([151_000, 3, 0, 99_999, 42, 7, 151_643, 1, 2])
    before = ktae_advantages(t["rewards"], t["outcome"], t["ids"], t["mask"], 4)
    after = ktae_advantages(t["rewards"], t["outcome"], relabel[t["ids"]], t["mask"], 4)
    assert torch.allclose(before, after, atol=1e-12)


def test_padding_ids_do_not_count():
    case = batch(6)
    t = tensors(case)
    padded = t["ids"].clone()
    padded[t["mask"] == 0] = 5  # a real id in the padding must not enter any table
    assert torch.allclose(
        ktae_advantages(t["rewards"], t["outcome"], t["ids"], t["mask"], 4),
        ktae_advantages(t["rewards"], t["outcome"], padded, t["mask"], 4),
    )


def test_constant_rewards_give_zero():
    rewards = torch.tensor([1.0] * 4 + [0.0] * 4)
    outcome = torch.tensor(trl_outcome(rewards.tolist(), 4))
    got = ktae_advantages(rewards, outcome, torch.randint(0, 5, (8, 6)), torch.ones(8, 6), 4)
    assert torch.count_nonzero(got) == 0


def test_shaping_spreads_advantage_within_sequences():
    case = batch(8, length=9)
    assert max(within_sequence_std(run(case), tensors(case)["mask"])) > 0.01


def test_groups_are_independent():
    case = batch(9, groups=3)
    t = tensors(case)
    whole = run(case)
    for g in range(3):
        rows = slice(4 * g, 4 * g + 4)
        alone = ktae_advantages(t["rewards"][rows], t["outcome"][rows], t["ids"][rows], t["mask"][rows], 4)
        assert torch.allclose(whole[rows], alone, atol=1e-12)


@pytest.mark.parametrize("kwargs", [{"h1": -1.0}, {"bm25_k1": 0.0}, {"bm25_b": 1.5}])
def test_out_of_range_parameters_are_refused(kwargs):
    with pytest.raises(ValueError, match="allowed"):
        ktae_advantages(torch.tensor([0.0, 1.0]), torch.zeros(2), torch.zeros(2, 3), torch.ones(2, 3), 2, **kwargs)


def test_an_unscored_completion_is_in_no_table():
    """A NaN reward (trl: no reward function scored it): 0 for it, and the others as if the group had 3 members."""
    case = batch(13, groups=1, group=3)
    t = tensors(case)
    rows = [0, 1, 3]
    rewards = torch.full((4,), float("nan"), dtype=torch.float64)
    rewards[rows] = t["rewards"]
    ids, mask = torch.full((4, 7), 2), torch.ones(4, 7)
    ids[rows], mask[rows] = t["ids"], t["mask"].float()
    outcome = torch.zeros(4, dtype=torch.float64)
    outcome[rows] = t["outcome"]
    got = ktae_advantages(rewards, outcome, ids, mask, 4)
    assert torch.count_nonzero(got[2]) == 0
    expected = [
        [(a + v) if m else 0.0 for v, m in zip(row, valid)]
        for a, row, valid in zip(case["outcome"], reference_values(case), case["mask"])
    ]
    assert torch.allclose(got[rows], torch.tensor(expected, dtype=got.dtype), atol=1e-9)
