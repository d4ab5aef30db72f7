import statistics

import pytest
import torch

from harness.algorithms.credit.gtpo import entropy_shares, gtpo_advantages
from tests.algorithms.credit_cases import batch, tensors, trl_outcome, within_sequence_std

EPS = 1e-8


def reference(case, alpha1, alpha2, normalisation):
    """GTPO Eqs. 3, 5 and 6 written out group by group, position by position."""
    rewards, mask, entropies, group = case["rewards"], case["mask"], case["entropies"], case["group"]
    length = len(mask[0])
    out = [[0.0] * length for _ in rewards]
    for start in range(0, len(rewards), group):
        members = list(range(start, start + group))
        values = [rewards[i] for i in members]
        if len(set(values)) == 1:
            continue  # no outcome information: 0
        mean = sum(values) / group
        pos = {i for i in members if rewards[i] > mean}
        neg = set(members) - pos
        share = {}
        for t in range(length):
            active_pos = [i for i in members if i in pos and mask[i][t]]
            active_neg = [i for i in members if i in neg and mask[i][t]]
            total_h = sum(entropies[i][t] for i in active_pos)
            total_inv = sum(1.0 / (entropies[i][t] + EPS) for i in active_neg)
            for i in active_pos:
                share[i, t] = entropies[i][t] / (total_h + EPS) * len(active_pos)
            for i in active_neg:
                share[i, t] = -(1.0 / (entropies[i][t] + EPS)) / (total_inv + EPS) * len(active_neg)
        if normalisation == "outcome":
            for (i, t), s in share.items():
                out[i][t] = alpha1 * case["outcome"][i] + alpha2 * s
            continue
        for side in (pos, neg):
            cells = [(i, t) for (i, t) in share if i in side]
            token_rewards = [alpha1 * rewards[i] + alpha2 * share[i, t] for i, t in cells]
            mu = statistics.fmean(token_rewards)
            sd = statistics.stdev(token_rewards) if len(token_rewards) > 1 else 0.0
            for (i, t), x in zip(cells, token_rewards):
                out[i][t] = (x - mu) / (sd + 1e-4)
    return torch.tensor(out, dtype=torch.float64)


def run(case, **kwargs):
    t = tensors(case)
    return gtpo_advantages(t["rewards"], t["entropies"], t["mask"], case["group"], outcome=t["outcome"], **kwargs)


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("normalisation", ["polarity", "outcome"])
@pytest.mark.parametrize("alpha1,alpha2", [(1.0, 0.1), (0.5, 2.0)])
def test_matches_the_papers_equations(seed, normalisation, alpha1, alpha2):
    case = batch(seed, graded=seed % 2 == 1)
    got = run(case, alpha1=alpha1, alpha2=alpha2, normalisation=normalisation)
    assert torch.allclose(got, reference(case, alpha1, alpha2, normalisation), atol=1e-9)
    assert (got[tensors(case)["mask"] == 0] == 0).all()


@pytest.mark.parametrize("seed", range(4))
def test_entropy_shares_sum_to_the_active_counts(seed):
    """The paper's conservation (Prop. 2.2): at each t the shares of active O+ sum to d_t, of active O- to -h_t."""
    case = batch(seed)
    t = tensors(case)
    positive = t["rewards"] > 0.5
    shares = entropy_shares(t["entropies"], t["mask"], positive, case["group"]).reshape(-1, case["group"], 7)
    mask = t["mask"].reshape(-1, case["group"], 7)
    pos = positive.reshape(-1, case["group"], 1).double()
    assert torch.allclose((shares * pos).sum(1), (mask * pos).sum(1), atol=1e-6)
    assert torch.allclose((shares * (1 - pos)).sum(1), -(mask * (1 - pos)).sum(1), atol=1e-6)


@pytest.mark.parametrize("seed", range(3))
def test_no_shaping_under_outcome_normalisation_is_trls_advantage_exactly(seed):
    case = batch(seed)
    t = tensors(case)
    outcome = t["outcome"].float()
    got = gtpo_advantages(
        t["rewards"].float(), t["entropies"].float(), t["mask"], 4, alpha2=0.0, normalisation="outcome", outcome=outcome
    )
    assert torch.equal(got, outcome.unsqueeze(1) * t["mask"].float())


def test_no_shaping_under_the_papers_normalisation_leaves_nothing_for_binary_rewards():
    """Eq. 6 normalises O+ and O- separately: a per-set constant cancels, so alpha2 = 0 gives 0 for 0/1 rewards."""
    case = batch(3)
    assert torch.count_nonzero(run(case, alpha2=0.0)) == 0
    # ... and alpha1 drops out entirely: only the entropy redistribution is left.
    assert torch.allclose(run(case, alpha1=1.0), run(case, alpha1=7.0), atol=1e-9)


@pytest.mark.parametrize("normalisation", ["polarity", "outcome"])
def test_constant_rewards_give_zero(normalisation):
    rewards = torch.tensor([1.0] * 4 + [0.0] * 4)
    outcome = torch.tensor(trl_outcome(rewards.tolist(), 4))
    got = gtpo_advantages(
        rewards, torch.rand(8, 5) * 3, torch.ones(8, 5), 4, normalisation=normalisation, outcome=outcome
    )
    assert torch.count_nonzero(got) == 0


@pytest.mark.parametrize("normalisation", ["polarity", "outcome"])
def test_shaping_spreads_advantage_within_sequences(normalisation):
    case = batch(11, length=9)
    assert max(within_sequence_std(run(case, normalisation=normalisation), tensors(case)["mask"])) > 0.01


def test_outcome_normalisation_keeps_the_outcome_sign():
    case = batch(5, length=9)
    t = tensors(case)
    got = run(case, normalisation="outcome", alpha2=0.5)
    assert torch.equal(torch.sign(got) * t["mask"], torch.sign(t["outcome"]).unsqueeze(1) * t["mask"])


def test_groups_are_independent():
    """A batch gives the same advantages as its groups computed one at a time (groups may sit on different ranks)."""
    case = batch(2, groups=3)
    t = tensors(case)
    whole = gtpo_advantages(t["rewards"], t["entropies"], t["mask"], 4)
    for g in range(3):
        rows = slice(4 * g, 4 * g + 4)
        alone = gtpo_advantages(t["rewards"][rows], t["entropies"][rows], t["mask"][rows], 4)
        assert torch.allclose(whole[rows], alone, atol=1e-12)


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"normalisation": "sequence"}, "normalisation"),
        ({"alpha2": -1.0}, "alpha"),
        ({"normalisation": "outcome"}, "outcome advantages"),
    ],
)
def test_bad_parameters_are_refused(kwargs, match):
    with pytest.raises(ValueError, match=match):
        gtpo_advantages(torch.tensor([0.0, 1.0]), torch.zeros(2, 3), torch.ones(2, 3), 2, **kwargs)


def test_rows_that_do_not_split_into_groups_are_refused():
    with pytest.raises(ValueError, match="num_generations=4"):
        gtpo_advantages(torch.zeros(6), torch.zeros(6, 3), torch.ones(6, 3), 4)


@pytest.mark.parametrize("normalisation", ["polarity", "outcome"])
def test_an_unscored_completion_is_left_out_of_its_group(normalisation):
    """A NaN reward (trl: no reward function scored it): 0 for it, and the others as if the group had 3 members."""
    case = batch(12, groups=1, group=3)
    t = tensors(case)
    rows = [0, 1, 3]
    rewards = torch.full((4,), float("nan"), dtype=torch.float64)
    rewards[rows] = t["rewards"]
    entropies, mask = torch.rand(4, 7, dtype=torch.float64), torch.ones(4, 7, dtype=torch.float64)
    entropies[rows], mask[rows] = t["entropies"], t["mask"]
    outcome = torch.zeros(4, dtype=torch.float64)
    outcome[rows] = t["outcome"]
    got = gtpo_advantages(rewards, entropies, mask, 4, normalisation=normalisation, outcome=outcome)
    assert torch.count_nonzero(got[2]) == 0
    assert torch.allclose(got[rows], reference(case, 1.0, 0.1, normalisation), atol=1e-9)
