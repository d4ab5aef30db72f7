"""Build the trainer from a validated config: GRPOConfig, task (dataset + rewards), model, HarnessGRPOTrainer."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from harness.config import check_grpo_fields


def grpo_config(cfg: DictConfig, output_dir: Path):
    """GRPOConfig from `trainer` plus the level, clip range and loss type of `importance_sampling` and the weights of
    `reward.functions` (in their order, which is the order of the reward functions handed to the trainer)."""
    from trl import GRPOConfig

    check_grpo_fields(cfg.trainer, {f.name for f in dataclasses.fields(GRPOConfig)})
    sampling = cfg.importance_sampling
    kwargs = OmegaConf.to_container(cfg.trainer, resolve=True)
    kwargs.update(
        output_dir=str(output_dir / "trainer"),
        seed=cfg.seed,
        importance_sampling_level=sampling.level,
        epsilon=sampling.epsilon,
        epsilon_high=sampling.epsilon_high,
        loss_type=sampling.loss_type,
        max_completion_length=cfg.reward.max_completion_length,
        report_to="none",  # the harness owns the wandb run (see sinks.py): one run per job, even with a trial
        reward_weights=[float(spec.get("weight", 1.0)) for spec in cfg.reward.functions.values()],
    )
    return GRPOConfig(**kwargs)


def build_trainer(cfg: DictConfig, output_dir: Path, callbacks: list):
    from accelerate import PartialState
    from transformers.trainer_callback import PrinterCallback, ProgressCallback
    from transformers.utils.logging import disable_progress_bar

    from harness.model import build_model, build_tokenizer
    from harness.rewards import build_task
    from harness.trainer import HarnessGRPOTrainer

    args = grpo_config(cfg, output_dir)
    tokenizer = build_tokenizer(cfg.model)
    task = build_task(cfg.reward, tokenizer.eos_token)  # calls the rewards once: a broken one fails here
    with PartialState().main_process_first():  # rank 0 writes the initial model, the others read it
        model = build_model(cfg.model, tokenizer, output_dir)
    process = cfg.advantage.estimator == "process"
    trainer = HarnessGRPOTrainer(
        model=model,
        processing_class=tokenizer,
        reward_funcs=task.functions,
        args=args,
        train_dataset=task.dataset,
        callbacks=callbacks,
        token_reward=task.token_function if process else None,
        gamma=cfg.advantage.get("gamma", 1.0),
    )
    disable_progress_bar()  # no "Writing model shards" bars in the job log
    # MetricsSink prints a compact line per log instead of transformers' full dicts.
    trainer.remove_callback(PrinterCallback)
    trainer.remove_callback(ProgressCallback)
    return trainer


def effective_precision(trainer) -> dict:
    """What the run computes in, as trl resolved it: recorded in config.yaml and the run summary."""
    args = trainer.args
    weights = next(trainer.model.parameters()).dtype
    return {
        "autocast": "bf16" if args.bf16 else "fp16" if args.fp16 else "none",
        "weights": str(weights).removeprefix("torch."),
        "lm_head": "float32" if args.cast_lm_head_to_fp32 else str(weights).removeprefix("torch."),
    }

