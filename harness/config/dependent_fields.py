"""Dead settings: GRPOConfig fields whose effect depends on another setting, as one table derived from what trl 1.16
and transformers 5 do with them (the code that reads each field, and the field's own help text).

A field in `RULES` set (even to trl's default) while its condition does not hold would be accepted and then do
nothing (`trainer.save_steps=1` with `save_strategy: no`, `trainer.vllm_mode=colocate` without `use_vllm`): `check`
refuses it in one line naming both keys. `ALWAYS_DEAD` fields have no effect under the harness at all. `ELSEWHERE`
and `REVIEWED` list the fields whose help text or name ties them to another setting but that are not refused here,
each with its reason. `tests/config/test_dependent_fields.py` derives that set from the installed trl — every field
whose help text names another field in a conditional sentence, and every field of a switch's family (`vllm_*`,
`save_*`, `hub_*`, ...) — and fails when the pinned trl adds one this table does not cover.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from harness.config.evaluation import TRAINER_EVAL_FIELDS
from harness.config.schema import ConfigError


@dataclass(frozen=True)
class Needs:
    """`field` has an effect only when `holds(value of key)`; `wants` says when, for the message."""

    key: str  # a GRPOConfig field (`save_strategy`) or a config key of another group (`importance_sampling.loss_type`)
    holds: Callable[[object], bool]
    wants: str


def _is(*values) -> Callable[[object], bool]:
    return lambda value: value in values


def _truthy(value) -> bool:
    return bool(value)


def _positive(value) -> bool:
    return isinstance(value, int | float) and value > 0


TRUE = "is true"
CLIPPED_LOSSES = ("grpo", "bnpo", "dr_grpo", "dapo", "luspo")  # trl's loss applies `delta` only to these

RULES: dict[str, Needs] = {
    # checkpoints: transformers saves only with a save strategy; save_steps only with "steps"
    "save_steps": Needs("save_strategy", _is("steps"), "is steps"),
    "save_total_limit": Needs("save_strategy", lambda v: v != "no", "is steps, epoch or best"),
    "save_only_model": Needs("save_strategy", lambda v: v != "no", "is steps, epoch or best"),
    "save_on_each_node": Needs("save_strategy", lambda v: v != "no", "is steps, epoch or best"),
    "logging_steps": Needs("logging_strategy", _is("steps"), "is steps"),
    # the Hub: only read when pushing
    **{
        name: Needs("push_to_hub", _truthy, TRUE)
        for name in ("hub_token", "hub_private_repo", "hub_model_id", "hub_strategy", "hub_always_push", "hub_revision")
    },
    "gradient_checkpointing_kwargs": Needs("gradient_checkpointing", _truthy, TRUE),
    "activation_checkpointing_kwargs": Needs("activation_checkpointing", _truthy, "is set"),
    "liger_kernel_config": Needs("use_liger_kernel", _truthy, TRUE),
    "fsdp_config": Needs("fsdp", _truthy, TRUE),
    "dataloader_persistent_workers": Needs("dataloader_num_workers", _positive, "is > 0"),
    "dataloader_prefetch_factor": Needs("dataloader_num_workers", _positive, "is > 0"),
    "dataloader_multiprocessing_context": Needs("dataloader_num_workers", _positive, "is > 0"),
    "length_column_name": Needs(
        "train_sampling_strategy", _is("group_by_length", "batch_rebalance"), "is group_by_length or batch_rebalance"
    ),
    "transformers_continuous_batching_config": Needs("use_transformers_continuous_batching", _truthy, TRUE),
    # generation: vLLM's settings only with vLLM, each mode's own only in that mode; transformers' cache without it
    **{
        name: Needs("use_vllm", _truthy, TRUE)
        for name in (
            "vllm_mode",
            "vllm_model_impl",
            "vllm_structured_outputs_regex",
            "vllm_importance_sampling_correction",
            "vllm_importance_sampling_cap",
        )
    },  # fmt: skip
    **{
        name: Needs("vllm_mode", _is("server"), "is server")
        for name in (
            "vllm_server_base_url",
            "vllm_server_host",
            "vllm_server_port",
            "vllm_server_timeout",
            "vllm_group_port",
        )
    },  # fmt: skip
    **{
        name: Needs("vllm_mode", _is("colocate"), "is colocate")
        for name in (
            "vllm_gpu_memory_utilization",
            "vllm_tensor_parallel_size",
            "vllm_max_model_length",
            "vllm_enable_sleep_mode",
        )
    },  # fmt: skip
    **{
        name: Needs("vllm_importance_sampling_correction", _truthy, TRUE)
        for name in (
            "vllm_importance_sampling_mode",
            "vllm_importance_sampling_clip_max",
            "vllm_importance_sampling_clip_min",
        )
    },  # fmt: skip
    "cache_implementation": Needs("use_vllm", lambda v: not v, "is false"),
    # the reference model exists only with beta > 0; its sync only with sync_ref_model
    "sync_ref_model": Needs("beta", _positive, "is > 0"),
    "use_bias_correction_kl": Needs("beta", _positive, "is > 0"),
    "ref_model_mixup_alpha": Needs("sync_ref_model", _truthy, TRUE),
    "ref_model_sync_steps": Needs("sync_ref_model", _truthy, TRUE),
    # the loss: each loss type reads its own parameters
    "delta": Needs("importance_sampling.loss_type", _is(*CLIPPED_LOSSES), "is " + ", ".join(CLIPPED_LOSSES)),
    "sapo_temperature_neg": Needs("importance_sampling.loss_type", _is("sapo"), "is sapo"),
    "sapo_temperature_pos": Needs("importance_sampling.loss_type", _is("sapo"), "is sapo"),
    **{
        name: Needs("importance_sampling.loss_type", _is("vespo"), "is vespo")
        for name in ("vespo_k_pos", "vespo_lambda_pos", "vespo_k_neg", "vespo_lambda_neg")
    },
    **{
        name: Needs("use_adaptive_entropy", _truthy, TRUE)
        for name in ("entropy_coef_min", "entropy_coef_max", "entropy_coef_delta", "entropy_target")
    },
    "multi_objective_aggregation": Needs("reward.functions", lambda n: n > 1, "has more than one function"),
    # completions are sampled for logging only with log_completions
    **{
        name: Needs("log_completions", _truthy, TRUE)
        for name in ("num_completions_to_print", "log_unique_prompts", "log_completions_hub_repo", "log_multimodal")
    },
}

# No effect under the harness whatever else is set.
ALWAYS_DEAD: dict[str, str] = {
    "num_train_epochs": "trainer.max_steps (always > 0 here) sets the run's length; epochs are not read",
    "resume_from_checkpoint": (
        "transformers' scripts read it, the Trainer does not: the run would start again from step 1 "
        "(a requeued SLURM job resumes from its own checkpoint by itself, docs/slurm.md)"
    ),
    "do_train": "a flag of transformers' example scripts; the Trainer does not read it",
    "do_predict": "a flag of transformers' example scripts; the Trainer does not read it",
    "label_smoothing_factor": "GRPOTrainer computes its own loss; the Trainer's label smoother is never applied",
    "run_name": "read only by reporting integrations, and the harness reports itself (report_to=none): use name=...",
    **{
        name: "read only by the Trackio integration, and the harness reports itself (report_to=none)"
        for name in ("project", "trackio_space_id", "trackio_bucket_id", "trackio_static_space_id")
    },
}

# Owned by the held-out `eval` group, which refuses each with its own advice (harness/config/evaluation.py).
ELSEWHERE: dict[str, str] = {name: "refused by the eval group's rules" for name in TRAINER_EVAL_FIELDS}

# Tied to another setting by name or help text, and deliberately not refused here: why.
REVIEWED: dict[str, str] = {
    "bf16": "cross-field rules (not with fp16, a GPU unless use_cpu) are refused by harness/config/rules.py",
    "fp16": "refused together with bf16 by harness/config/rules.py",
    "torch_compile_backend": "transformers turns torch_compile on when it is set: never dead",
    "torch_compile_mode": "transformers turns torch_compile on when it is set: never dead",
    "disable_tqdm": "the harness draws its own progress line either way; log_level only sets its default",
    "save_strategy": "the switch itself",
    "enable_jit_checkpoint": "saves on SIGTERM whatever save_strategy says",
    "data_seed": "defaults to seed: any value has an effect",
    "generation_batch_size": "refused together with steps_per_generation by harness/config/rules.py",
    "steps_per_generation": "defaults to gradient_accumulation_steps: any value has an effect",
    "generation_kwargs": "passed to generation as given (min_p, top_p there override the fields)",
    "epsilon_high": "set by importance_sampling.epsilon_high",
    "loss_type": "set by importance_sampling.loss_type",
    "top_entropy_quantile": "a range ([0, 1], harness/config/trainer_args.py), not a dependency",
    "entropy_coef": "read with or without use_adaptive_entropy (its start value with it)",
    "use_adaptive_entropy": "the switch itself",
    "log_completions": "the switch itself",
    "logging_first_step": "logging_strategy=no is refused by harness/config/rules.py",
    "logging_nan_inf_filter": "read at every log",
    "log_level": "read by the trainer's logger",
    "log_level_replica": "read on ranks other than 0, which always exist in a multi-process run",
    "log_on_each_node": "multi-node only; the node count is not known before launch",
    "dataloader_drop_last": "read by the dataloader; trl's sampler already yields whole batches",
    "dataloader_num_workers": "the switch itself",
    "dataloader_pin_memory": "read by the dataloader on every device",
    "dataloader_in_order": "read by the dataloader",
    "train_sampling_strategy": "the switch itself",
    "fsdp": "the switch itself",
    "ds3_gather_for_generation": "depends on the DeepSpeed file's stage, which is read only at launch",
    "cast_lm_head_to_fp32": "trl handles tied and untied heads; a PEFT adapter on lm_head is refused by trl itself",
    "num_generations": "the group size: always read",
    "model_init_kwargs": "read only when the model is given by name, and the harness loads the model itself; its "
    "dtype comes from model.dtype",
    "router_aux_loss_coef": "depends on the model's architecture (MoE), known only once it is loaded",
    "parallelism_config": "accelerate's, read at launch",
    "remove_unused_columns": "read when the dataset is prepared",
    "restore_callback_states_from_checkpoint": "read when a checkpoint is loaded: a SLURM requeue",
    "full_determinism": "read at start-up",
    "use_vllm": "the switch itself",
    "mask_truncated_completions": "read by the loss whatever else is set",
    "max_tool_calling_iterations": "read when the task gives tools",
    "use_transformers_continuous_batching": "the switch itself",
    "use_transformers_paged": "read by transformers' generation",
    "gradient_checkpointing": "the switch itself",
    "activation_checkpointing": "the switch itself",
    "use_liger_kernel": "the switch itself; refused when liger-kernel is not installed (harness/config/rules.py)",
    "torch_compile": "the switch itself",
    "push_to_hub": "the switch itself",
    "lr_scheduler_kwargs": "the scheduler's own arguments: the scheduler refuses unknown ones at start-up",
    "optim_args": "the optimizer's own arguments, read at start-up",
    "logging_strategy": "the switch itself",
}


def setting(run, key: str):
    """The value of `key` in the run as trl will see it: a GRPOConfig field (set, or trl's default), a key of
    another group, or the number of reward functions."""
    if key == "reward.functions":
        return len(run.reward.functions)
    if "." in key:
        group, _, name = key.partition(".")
        return getattr(getattr(run, group), name)
    return run.trainer_value(key)


def check(run) -> None:
    """Refuse a trainer field that is set (on the command line or by a preset: any key of the composed `trainer`,
    even at trl's default value) where it has no effect."""
    for name, value in run.trainer.items():
        if name in ALWAYS_DEAD:
            raise ConfigError(f"trainer.{name}={show(value)} has no effect: {ALWAYS_DEAD[name]}; remove it")
        needs = RULES.get(name)
        if needs is None:
            continue
        other = setting(run, needs.key)
        if not needs.holds(other):
            key = needs.key if "." in needs.key else f"trainer.{needs.key}"
            given = f"{other} reward function(s)" if needs.key == "reward.functions" else f"{key}={show(other)}"
            raise ConfigError(
                f"trainer.{name}={show(value)} has no effect with {given}: it applies only when {key} {needs.wants}; "
                f"remove it (~trainer.{name} drops a preset's value) or change {key}"
            )


def show(value) -> str:
    """A value as it is written on the command line."""
    if isinstance(value, bool) or value is None:
        return {True: "true", False: "false", None: "null"}[value]
    return str(value)
