"""Run as 2 ranks (`torchrun --nproc_per_node 2`): every credit estimator computed across ranks (groups straddling
them, each rank with its own completion length) equals the same function on the whole batch in one process.

Groups of 4 completions over 6 rows per rank: the second group has two rows on each rank.
"""

import sys
from pathlib import Path

import torch

from harness.algorithms.batch import AdvantageBatch
from harness.algorithms.credit.groups import outcome_advantages
from harness.algorithms.credit.mc_value import steps_every
from harness.training.build import build_trainer
from tests.conftest import parse_config

ROWS, GENERATIONS = 6, 4
ESTIMATORS = {
    "entropy_bonus": ["advantage.alpha=0.05"],
    "gtpo": [],
    "ktae": [],
    "mc_value": ["advantage.every=2"],
}


def main(out: Path) -> None:
    g = torch.Generator().manual_seed(0)
    world = 2
    lengths = [7, 5]  # each rank's longest completion
    total_rows, longest = ROWS * world, max(lengths)
    row_lengths = torch.randint(1, longest + 1, (total_rows,), generator=g)
    for r in range(world):
        row_lengths[r * ROWS : (r + 1) * ROWS].clamp_(max=lengths[r])
    mask = (torch.arange(longest) < row_lengths.unsqueeze(1)).long()
    rewards = torch.randint(0, 3, (total_rows,), generator=g).float() / 2
    advantages = outcome_advantages(rewards, GENERATIONS)
    ids = torch.randint(3, 12, (total_rows, longest), generator=g) * mask
    entropies = torch.rand(total_rows, longest, generator=g) * 3 * mask
    steps = steps_every(mask, 2)
    step_values = torch.rand(total_rows, int(steps.max()) + 1, generator=g)
    for name, overrides in ESTIMATORS.items():
        run = parse_config(
            "reward=copy", "reward.token_function=null", "debug=fast", "logger=none", f"advantage={name}",
            *overrides, f"trainer.per_device_train_batch_size={ROWS}", f"trainer.num_generations={GENERATIONS}",
        )  # fmt: skip
        trainer = build_trainer(run, out / name, [])
        rank = trainer.accelerator.process_index
        assert trainer.accelerator.num_processes == world
        whole = AdvantageBatch(
            rewards=rewards, advantages=advantages, mask=mask, completion_ids=ids, num_generations=GENERATIONS,
            scale="group", entropies=entropies, steps=steps, step_values=step_values,
        )  # fmt: skip
        expected = trainer.estimator.compute(whole)
        assert expected.shape == (total_rows, longest)
        local, t = slice(rank * ROWS, (rank + 1) * ROWS), lengths[rank]
        kwargs = {"entropies": entropies[local, :t]} if name in ("entropy_bonus", "gtpo") else {}
        if name == "mc_value":
            kwargs = {"steps": steps[local, :t], "step_values": step_values[local]}
        got, all_advantages, _ = trainer.estimate(
            mask=mask[local, :t], completion_ids=ids[local, :t], rewards=rewards[local],
            advantages=advantages[local], **kwargs,
        )  # fmt: skip
        assert got.shape == (ROWS, t)
        assert expected[local, :t].abs().max() > 0, name
        torch.testing.assert_close(got, expected[local, :t], rtol=0, atol=1e-6)
        torch.testing.assert_close(all_advantages, expected, rtol=0, atol=1e-6)
        print(f"rank {rank}: {name} across ranks matches the single-process result", flush=True)


if __name__ == "__main__":
    main(Path(sys.argv[1]))
