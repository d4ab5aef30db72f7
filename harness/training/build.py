"""Build the trainer from a parsed config (`harness.config.groups.Run`): GRPOConfig, task (dataset + rewards), model,
HarnessGRPOTrainer."""

from __future__ import annotations

import warnings
from pathlib import Path

from harness.config.evaluation import evaluates
from harness.config.groups import Run
from harness.config.registry import GENERATIONS, TOKEN_REWARDS
from harness.config.schema import ConfigError


def eval_kwargs(run: Run) -> dict:
    """GRPOConfig's evaluation fields (harness.config.evaluation.TRAINER_EVAL_FIELDS): with evaluation on, step-wise
    evaluation every eval.every steps so transformers calls HarnessGRPOTrainer.evaluate then and at the last step.
    `num_generations_eval=1` only satisfies trl's batch-divisibility check of its own eval loop, which never runs."""
    if not evaluates(run):
        return {"eval_strategy": "no"}
    return {"eval_strategy": "steps", "eval_steps": run.eval.every, "num_generations_eval": 1}


def grpo_kwargs(run: Run, output_dir: Path) -> dict:
    """GRPOConfig's arguments: `trainer` plus the fields other groups own (harness.config.trainer_args.TRAINER_OWNERS):
    the level, clip range and loss type of `importance_sampling`, the seed, and the weights of `reward.functions` (in
    their order, which is the order of the reward functions handed to the trainer)."""
    sampling = run.importance_sampling
    return dict(
        **run.trainer,
        output_dir=str(output_dir / "trainer"),
        seed=run.seed,
        importance_sampling_level=sampling.level,
        epsilon=sampling.epsilon,
        epsilon_high=sampling.epsilon_high,
        loss_type=sampling.loss_type,
        max_completion_length=run.reward.max_completion_length,
        report_to="none",  # the harness owns the wandb run (see sinks.py): one run per job, even with a trial
        reward_weights=[spec.weight for spec in run.reward.functions.values()],
        **eval_kwargs(run),
    )


def grpo_config(run: Run, output_dir: Path, **overrides):
    """The GRPOConfig of `grpo_kwargs`; `overrides` replace some of them (tests without a GPU: `bf16=False`)."""
    from trl import GRPOConfig

    with warnings.catch_warnings():
        # trl 1.16 defaults gradient_checkpointing, transformers' deprecated alias: a FutureWarning on every run
        warnings.filterwarnings("ignore", "`gradient_checkpointing", FutureWarning)
        return GRPOConfig(**(grpo_kwargs(run, output_dir) | overrides))


def build_trainer(run: Run, output_dir: Path, callbacks: list):
    from accelerate import PartialState
    from transformers.trainer_callback import PrinterCallback, ProgressCallback

    from harness.tasks.loading import build_task
    from harness.training.console import hide_transformers_bars, note
    from harness.training.evaluation import EvalSetup
    from harness.training.failures import building
    from harness.training.model import build_model, build_tokenizer
    from harness.training.trainer import HarnessGRPOTrainer

    # Each step inside the build boundary (harness/training/failures.py): a failure is one line naming its key.
    model_key = "model.source=tiny" if run.model.source == "tiny" else f"model.path={run.model.path}"
    with building("trl's GRPOConfig refused the trainer settings", trainer=run.trainer):
        args = grpo_config(run, output_dir)
    with building("loading the tokenizer", model_key):
        tokenizer = build_tokenizer(run.model)
    with building("building the task", f"reward={run.reward.name}"):
        # calls the rewards once: a broken one fails here
        task = build_task(run.reward, tokenizer.eos_token, evaluation=evaluates(run))
    check_fills_a_batch(run, args, len(task.dataset))  # before the model: a run that would train 0 steps
    estimator = run.advantage.configured
    step_separator = None
    if GENERATIONS in estimator.needs and getattr(estimator.params, "separator", None) is not None:
        step_separator = separator_ids(tokenizer, estimator.params.separator)
    hide_transformers_bars()  # no "Writing model shards" / "Loading weights" bars around the progress display
    with building("loading the model", model_key), PartialState().main_process_first():
        model = build_model(run.model, tokenizer, output_dir)  # rank 0 writes the initial model, the others read it
    evaluation = {}
    if evaluates(run):
        evaluation = dict(eval_dataset=task.eval_dataset, eval_setup=EvalSetup(run.eval, task.accuracy))
    elif run.eval.enabled and PartialState().is_main_process:
        note(f"harness: evaluation is off: reward={run.reward.name} has no reward.eval_dataset (docs/evaluation.md)")
    with building("trl's GRPOTrainer refused the settings", trainer=run.trainer):
        trainer = HarnessGRPOTrainer(
            model=model,
            processing_class=tokenizer,
            reward_funcs=task.functions,
            args=args,
            train_dataset=task.dataset,
            callbacks=callbacks,
            estimator=estimator,
            token_reward=task.token_function if TOKEN_REWARDS in estimator.needs else None,
            credit_reference=task.credit_reference,
            step_separator=step_separator,
            credit_mc=(stats.credit_mc_every, stats.credit_mc_rollouts, stats.credit_mc_tokens)
            if (stats := run.stats).credit_mc_every > 0
            else None,
            **evaluation,
        )
    # harness.training.console.ProgressDisplay shows progress instead of transformers' bar and full dicts.
    trainer.remove_callback(PrinterCallback)
    trainer.remove_callback(ProgressCallback)
    return trainer


def check_fills_a_batch(run: Run, args, rows: int) -> None:
    """Refuse a dataset too small for one generation batch: trl's sampler drops the incomplete batch, so such a run
    trains 0 steps and would report success with a NaN objective."""
    prompts = args.generation_batch_size // args.num_generations  # distinct prompts per generation, all processes
    if rows < prompts:
        set_by = (
            "trainer.generation_batch_size"
            if run.trainer.get("generation_batch_size")
            else (
                f"trainer.per_device_train_batch_size={args.per_device_train_batch_size} x {args.world_size} "
                f"process(es) x trainer.steps_per_generation={args.steps_per_generation}"
            )
        )
        raise ConfigError(
            f"reward.dataset of reward={run.reward.name} has {rows} rows but one generation batch takes {prompts} "
            f"distinct prompts ({set_by} = {args.generation_batch_size} completions / trainer.num_generations="
            f"{args.num_generations}): the run would train 0 steps; make the batch smaller or the dataset larger"
        )


def separator_ids(tokenizer, separator: str) -> list[int]:
    """The token ids of `advantage.separator`, refused unless they decode back to it (no unknown or merged token):
    a step boundary is matched on these ids in the sampled completions."""
    ids = tokenizer(separator, add_special_tokens=False)["input_ids"]
    if not ids or tokenizer.decode(ids) != separator or tokenizer.unk_token_id in ids:
        raise ConfigError(
            f"advantage.separator={separator!r} is not a token sequence of the model's tokenizer (it encodes to "
            f"{ids}, which decodes to {tokenizer.decode(ids)!r}); give a string the tokenizer keeps, or advantage.every"
        )
    return ids


def effective_precision(trainer) -> dict:
    """What the run computes in, as trl resolved it: recorded in config.yaml and the run summary."""
    args = trainer.args
    weights = next(trainer.model.parameters()).dtype
    return {
        "autocast": "bf16" if args.bf16 else "fp16" if args.fp16 else "none",
        "weights": str(weights).removeprefix("torch."),
        "lm_head": "float32" if args.cast_lm_head_to_fp32 else str(weights).removeprefix("torch."),
    }
