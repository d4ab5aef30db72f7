"""The metric catalogue (harness/config/metrics.py) names exactly what the statistics produce.

The keys come from harness/algorithms/stats.py's functions on small hand-made tensors, through the same path the
trainer takes (moments -> MetricWindow -> finalize); no run needed. tests/training/test_runs.py checks the catalogue
against the keys a real run writes.
"""

import importlib
import inspect

import pytest
import torch

from harness.algorithms.stats import (
    MetricWindow,
    advantage_moments,
    noise_moments,
    ratio_moments,
)
from harness.config.metrics import CATALOGUE, WHEN, logged_metrics
from tests.conftest import parse_config

STATS = "harness.algorithms.stats."
MASK = torch.tensor([[1, 1, 1, 0], [1, 1, 0, 0], [1, 1, 1, 1]])
ADVANTAGES = torch.tensor([[0.5, -0.2, 0.1, 0.0], [-1.0, -1.0, 0.0, 0.0], [0.3, 0.3, 0.9, -0.4]])
LOGPS = torch.tensor([[-1.0, -2.0, -0.5, 0.0], [-0.3, -0.7, 0.0, 0.0], [-1.2, -0.1, -0.9, -2.2]])
OLD_LOGPS = LOGPS + torch.tensor([[0.3, -0.2, 0.01, 0.0], [-0.25, 0.1, 0.0, 0.0], [0.0, 0.4, -0.3, 0.05]])


def catalogued(*sources: str) -> set[str]:
    return {m.key for m in CATALOGUE if m.source in sources}


def produced_keys(log_weights: torch.Tensor) -> tuple[set[str], set[str]]:
    """(all keys a logging window yields, the keys `noise_moments` names itself) for one batch."""
    window = MetricWindow()
    window.add({k: float(v) for k, v in advantage_moments(ADVANTAGES, MASK).items()}, {}, {})
    moments = ratio_moments(log_weights, ADVANTAGES, MASK, 0.2, 0.28)
    noise, noise_max = noise_moments(LOGPS, OLD_LOGPS, MASK)
    window.add({k: float(v) for k, v in (moments | noise).items()}, {}, {k: float(v) for k, v in noise_max.items()})
    return set(window.flush()), set(noise_max)


@pytest.mark.parametrize("shape", ["token", "sequence"])
def test_the_statistics_produce_exactly_the_catalogued_keys(shape):
    log_weights = LOGPS - OLD_LOGPS
    if shape == "sequence":  # one weight per sequence, (B, 1)
        log_weights = (log_weights * MASK).sum(-1, keepdim=True) / MASK.sum(-1, keepdim=True)
    keys, named_by_noise = produced_keys(log_weights)
    assert keys == catalogued(STATS + "finalize", STATS + "noise_moments")
    assert named_by_noise == catalogued(STATS + "noise_moments")


def test_every_entry_is_defined_once_and_names_a_real_producer():
    keys = [m.key for m in CATALOGUE]
    assert len(keys) == len(set(keys))
    for m in CATALOGUE:
        assert m.when in WHEN and m.meaning and "|" not in m.meaning.replace("\\|", ""), m  # a table cell
        if not m.source.startswith("harness."):
            assert m.source.startswith(("trl: GRPOTrainer.", "transformers: Trainer")), m
            continue
        module, _, rest = m.source.partition(", ")
        try:
            producer = importlib.import_module(module)
        except ModuleNotFoundError:  # a function or class in a module
            path, _, name = module.rpartition(".")
            producer = getattr(importlib.import_module(path), name)
        if not m.source.startswith(STATS) or rest:  # the stats functions are checked by behaviour, above
            assert f'"{m.key}"' in inspect.getsource(producer), f"{m.source} does not name {m.key}"


def test_logged_metrics_follow_the_loss_and_the_entropy_bonus():
    default = logged_metrics(parse_config())
    assert {"clip_ratio/region_mean", "adv/min", "train_runtime"} <= default
    assert not {"cispo_clip_ratio", "vespo/phi_seq_mean", "policy_loss", "step", "adv/histogram"} & default
    cispo = logged_metrics(parse_config("importance_sampling=token", "importance_sampling.loss_type=cispo"))
    assert "cispo_clip_ratio" in cispo and not any(key.startswith("clip_ratio/") for key in cispo)
    vespo = logged_metrics(parse_config("importance_sampling=token", "importance_sampling.loss_type=vespo"))
    assert "vespo/phi_seq_mean" in vespo and "clip_ratio/low_mean" not in vespo
    assert {"policy_loss", "entropy_coef"} <= logged_metrics(parse_config("trainer.entropy_coef=0.01"))
