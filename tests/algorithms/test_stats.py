import math

import pytest
import torch

from harness.algorithms.noise_floor import noise_warning
from harness.algorithms.stats import (
    MetricWindow,
    advantage_extremes,
    advantage_moments,
    finalize,
    noise_moments,
    ratio_extremes,
    ratio_moments,
)


def _floats(moments):
    return {k: float(v) for k, v in moments.items()}


MASK = torch.tensor([[1, 1, 1, 1], [1, 1, 0, 0]])


def test_outcome_advantages_have_zero_within_sequence_std():
    stats = finalize(_floats(advantage_moments(torch.tensor([2.0, -1.0]), MASK)))
    assert stats["adv/within_seq_std"] == 0
    assert stats["adv/mean_token"] == pytest.approx((4 * 2 - 2) / 6)
    assert stats["adv/mean_seq"] == pytest.approx(0.5)
    assert stats["adv/frac_pos"] == pytest.approx(4 / 6)
    assert stats["adv/frac_zero"] == 0
    assert stats["adv/abs_mean"] == pytest.approx(10 / 6)


def test_per_token_advantage_statistics_by_hand():
    adv = torch.tensor([[1.0, -1.0, 0.0, 2.0], [3.0, 3.0, 7.0, 7.0]])
    stats = finalize(_floats(advantage_moments(adv, MASK)))
    values = torch.tensor([1.0, -1.0, 0.0, 2.0, 3.0, 3.0])
    assert stats["adv/std"] == pytest.approx(values.std(unbiased=False).item(), rel=1e-6)
    assert stats["adv/frac_zero"] == pytest.approx(1 / 6)
    assert stats["adv/within_seq_std"] == pytest.approx((values[:4].std(unbiased=False).item() + 0) / 2, rel=1e-6)
    assert [v.item() for v in advantage_extremes(adv, MASK)] == [-1.0, 3.0]


def test_clip_fractions_token_and_sequence_weighted():
    # Sequence level: sequence 0 (4 tokens) is high-clipped, sequence 1 (2 tokens) is not.
    log_w = torch.tensor([[math.log(1.5)], [0.0]])
    stats = finalize(_floats(ratio_moments(log_w, torch.tensor([1.0, 1.0]), MASK, 0.2, 0.2)))
    assert stats["clip/high_frac_token"] == pytest.approx(4 / 6)
    assert stats["clip/high_frac_seq"] == pytest.approx(1 / 2)
    assert stats["clip/any_frac_seq"] == pytest.approx(1 / 2)
    assert stats["clip/low_frac_token"] == 0
    # Ratio moments count one weight per sequence here.
    assert stats["is_ratio/mean"] == pytest.approx(1.25)
    assert stats["is_ratio/ess"] == pytest.approx(2.5**2 / (2 * (1.5**2 + 1)))


def test_token_level_clip_needs_matching_advantage_sign():
    log_w = torch.log(torch.tensor([[0.5, 0.5, 1.5, 1.0], [1.5, 1.0, 9.0, 9.0]]))
    adv = torch.tensor([[-1.0, 1.0, 1.0, 1.0], [-1.0, 1.0, 1.0, 1.0]])
    stats = finalize(_floats(ratio_moments(log_w, adv, MASK, 0.2, 0.2)))
    assert stats["clip/low_frac_token"] == pytest.approx(1 / 6)  # only (0,0): low ratio with A < 0
    assert stats["clip/high_frac_token"] == pytest.approx(1 / 6)  # only (0,2); padding (1,2) is ignored
    assert stats["clip/region_frac_seq"] == pytest.approx((2 / 4 + 0) / 2)
    assert [v.item() for v in ratio_extremes(log_w, MASK)] == pytest.approx([0.5, 1.5])


def test_window_adds_moments_exactly_and_keeps_extremes():
    window = MetricWindow()
    adv_a, adv_b = torch.tensor([1.0, 1.0]), torch.tensor([[3.0, 3.0, 3.0, 3.0], [5.0, 5.0, 0.0, 0.0]])
    for adv in (adv_a, adv_b):
        low, high = advantage_extremes(adv, MASK)
        window.add(_floats(advantage_moments(adv, MASK)), {"adv/min": low.item()}, {"adv/max": high.item()})
    stats = window.flush()
    assert stats["adv/mean_token"] == pytest.approx((6 + 12 + 10) / 12)
    assert (stats["adv/min"], stats["adv/max"]) == (1.0, 5.0)
    assert window.flush() == {}


def test_noise_floor_by_hand():
    logps = torch.tensor([[-1.0, -2.0, -3.0], [-1.0, -1.0, 0.0]])
    sampling = torch.tensor([[-1.0, -2.003, -3.001], [-1.002, -1.0, 5.0]])  # last token of row 2 is padding
    mask = torch.tensor([[1, 1, 1], [1, 1, 0]])
    window = MetricWindow()
    moments, maxima = noise_moments(logps, sampling, mask)
    window.add({k: v.item() for k, v in moments.items()}, {}, {k: v.item() for k, v in maxima.items()})
    out = window.flush()
    assert out["is_ratio/noise_token_max"] == pytest.approx(0.003, abs=1e-6)
    # log s_i: row 1 mean(0, .003, .001) = .004/3, row 2 mean(.002, 0) = .001
    assert out["is_ratio/noise_seq_max"] == pytest.approx(0.004 / 3, abs=1e-6)
    tokens = [0.0, 0.003, 0.001, 0.002, 0.0]
    assert out["is_ratio/noise_token_rms"] == pytest.approx(math.sqrt(sum(x * x for x in tokens) / 5), rel=1e-4)
    assert out["is_ratio/noise_seq_rms"] == pytest.approx(math.sqrt(((0.004 / 3) ** 2 + 0.001**2) / 2), rel=1e-4)


def test_noise_warning_compares_the_levels_own_granularity_with_epsilon():
    logs = {"is_ratio/noise_token_max": 2e-3, "is_ratio/noise_seq_max": 2e-5}
    assert noise_warning(logs, "sequence", 3e-4, 4e-4) is None  # 2e-5 is well below 3e-4
    assert noise_warning(logs, "token", 0.2, 0.28) is None
    line = noise_warning({**logs, "is_ratio/noise_seq_max": 1e-4}, "sequence_token", 3e-4, 4e-4)
    assert "importance_sampling=sequence_token" in line and "epsilon=0.0003" in line and "\n" not in line
    assert noise_warning({}, "sequence", 3e-4, 4e-4) is None  # nothing measured in this window
