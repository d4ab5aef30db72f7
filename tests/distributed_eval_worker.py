"""The held-out evaluation of the initial tiny model, as many ranks as it is started with (`torchrun
--nproc_per_node 2 -m tests.distributed_eval_worker OUT`, or plain `python -m` for one process): rank 0 writes the
`eval/...` metrics to OUT/eval.json. 13 prompts in chunks of 3: five chunks, so the ranks get unequal shares."""

import json
import sys
from pathlib import Path

from harness.training.build import build_trainer
from tests.conftest import parse_config

OVERRIDES = ("debug=fast", "logger=none", "eval.size=13", "eval.batch_size=3", "eval.samples=4", "eval.k=[1,2,4]")


def main(out: Path) -> None:
    run = parse_config(*OVERRIDES)
    trainer = build_trainer(run, out, [])
    metrics = trainer.evaluate()
    if trainer.accelerator.is_main_process:
        metrics["processes"] = trainer.accelerator.num_processes
        (out / "eval.json").write_text(json.dumps(metrics))


if __name__ == "__main__":
    main(Path(sys.argv[1]))
