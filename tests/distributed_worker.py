"""Run as 2 ranks (`torchrun --nproc_per_node 2`, or a SLURM job of 2 tasks through `from_slurm_tasks`): process
advantages and the logged ratio/clip metrics computed across ranks equal the 1-process result on the same batch.

Groups of 4 completions over 6 rows per rank straddle the ranks, and each rank has its own completion length.
"""

import sys
from pathlib import Path

import torch

from harness.algorithms.advantages import process_advantages
from harness.algorithms.stats import MetricWindow, ratio_extremes, ratio_moments
from harness.training.build import build_trainer
from tests.conftest import parse_config

ROWS, GENERATIONS = 6, 4


def main(out: Path) -> None:
    run = parse_config(
        "debug=fast", "logger=none", f"trainer.per_device_train_batch_size={ROWS}",
        f"trainer.num_generations={GENERATIONS}",
    )  # fmt: skip
    trainer = build_trainer(run, out, [])
    rank, world = trainer.accelerator.process_index, trainer.accelerator.num_processes
    assert world == 2, world
    g = torch.Generator().manual_seed(0)
    lengths = [7, 5]  # this rank's longest completion
    total_rows, longest = ROWS * world, max(lengths)
    rewards = torch.randint(0, 2, (total_rows, longest), generator=g).float()
    row_lengths = torch.randint(1, longest + 1, (total_rows,), generator=g)
    for r in range(world):  # each rank's rows fit its own T
        row_lengths[r * ROWS : (r + 1) * ROWS].clamp_(max=lengths[r])
    mask = (torch.arange(longest) < row_lengths.unsqueeze(1)).long()
    expected = process_advantages(rewards * mask, mask, GENERATIONS)

    local = slice(rank * ROWS, (rank + 1) * ROWS)
    t = lengths[rank]
    got, all_advantages, _ = trainer.estimate(  # the configured estimator (process) on this rank's rows
        mask=mask[local, :t],
        completion_ids=torch.zeros_like(mask[local, :t]),
        rewards=torch.zeros(ROWS),
        advantages=torch.zeros(ROWS),
        token_rewards=(rewards * mask)[local, :t],
    )
    assert got.shape == (ROWS, t)
    torch.testing.assert_close(got, expected[local, :t], rtol=0, atol=1e-6)
    torch.testing.assert_close(all_advantages, expected, rtol=0, atol=1e-6)
    print(f"rank {rank}: per-token advantages match the single-process result", flush=True)

    # Clip and ratio metrics: each rank records its rows, the trainer sums/extremes them across ranks.
    log_weights = torch.randn(total_rows, longest, generator=g) * 0.01
    low, high = trainer.epsilon_low, trainer.epsilon_high
    single = MetricWindow()
    single.add(ratio_moments(log_weights, expected, mask, low, high), {}, {})
    single_min, single_max = ratio_extremes(log_weights, mask)
    trainer.metric_window = MetricWindow()
    mine = (log_weights[local, :t], expected[local, :t], mask[local, :t])
    rank_min, rank_max = ratio_extremes(mine[0], mine[2])
    trainer._record(ratio_moments(*mine, low, high), {"is_ratio/min": rank_min}, {"is_ratio/max": rank_max}, True)
    got_metrics, want = trainer.metric_window.flush(), single.flush()
    assert got_metrics.pop("is_ratio/min") == single_min.item() and got_metrics.pop("is_ratio/max") == single_max.item()
    assert got_metrics.keys() == want.keys() and "clip/region_frac_seq" in want, got_metrics.keys()
    for key, value in want.items():  # float32 sums added in another order; the std (E[w^2] - E[w]^2) feels it most
        assert abs(got_metrics[key] - value) <= 1e-5, (key, got_metrics[key], value)
    print(f"rank {rank}: ratio and clip metrics match the single-process result", flush=True)
    return rank, world


def main_in_slurm_task(out: Path) -> tuple[int, int]:
    """The same check in one task of a SLURM job: the harness's glue turns the task into a rank."""
    from harness.runtime.distributed import from_slurm_tasks

    from_slurm_tasks()
    return main(out)


if __name__ == "__main__":
    main(Path(sys.argv[1]))
