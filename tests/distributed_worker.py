"""Run under `torchrun --nproc_per_node 2`: process advantages computed across ranks equal the 1-process result.

Groups of 4 completions over 6 rows per rank straddle the ranks, and each rank has its own completion length.
"""

import sys
from pathlib import Path

import torch

from harness.advantages import process_advantages
from harness.build import build_trainer
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
    got, all_advantages, _ = trainer.process_advantages((rewards * mask)[local, :t], mask[local, :t])
    assert got.shape == (ROWS, t)
    torch.testing.assert_close(got, expected[local, :t], rtol=0, atol=1e-6)
    torch.testing.assert_close(all_advantages, expected, rtol=0, atol=1e-6)
    print(f"rank {rank}: per-token advantages match the single-process result", flush=True)


if __name__ == "__main__":
    main(Path(sys.argv[1]))
