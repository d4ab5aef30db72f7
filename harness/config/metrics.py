"""The metrics a run logs: what `objective.metric` and `sweep.objective.metric` may name."""

from __future__ import annotations

from harness.config.groups import Run
from harness.config.schema import did_you_mean, require

TRL_METRICS = (  # trl 1.16 GRPOTrainer and transformers' Trainer, on this harness's path (no vLLM, no tools)
    "reward", "reward_std", "frac_reward_zero_std", "entropy", "num_tokens", "step_time",
    "completions/mean_length", "completions/min_length", "completions/max_length", "completions/clipped_ratio",
    "completions/mean_terminated_length", "completions/min_terminated_length", "completions/max_terminated_length",
    "clip_ratio/low_mean", "clip_ratio/low_min", "clip_ratio/high_mean", "clip_ratio/high_max",
    "clip_ratio/region_mean", "loss", "grad_norm", "learning_rate", "epoch",
    "train_loss", "train_runtime", "train_samples_per_second", "train_steps_per_second", "total_flos",  # at the end
)  # fmt: skip
HARNESS_METRICS = (  # harness/algorithms/stats.py, README's metrics glossary
    "adv/mean_token", "adv/mean_seq", "adv/std", "adv/min", "adv/max", "adv/abs_mean", "adv/frac_pos",
    "adv/frac_neg", "adv/frac_zero", "adv/within_seq_std",
    "clip/low_frac_token", "clip/high_frac_token", "clip/region_frac_token", "clip/low_frac_seq",
    "clip/high_frac_seq", "clip/region_frac_seq", "clip/any_frac_seq",
    "is_ratio/mean", "is_ratio/std", "is_ratio/min", "is_ratio/max", "is_ratio/ess",
    "is_ratio/noise_token_max", "is_ratio/noise_token_rms", "is_ratio/noise_seq_max", "is_ratio/noise_seq_rms",
)  # fmt: skip


def logged_metrics(run: Run) -> set[str]:
    names = set(TRL_METRICS) | set(HARNESS_METRICS)
    names |= {f"rewards/{name}/{stat}" for name in run.reward.functions for stat in ("mean", "std")}
    if run.trainer_value("beta") != 0:
        names.add("kl")
    if run.importance_sampling.loss_type == "cispo":
        names.add("cispo_clip_ratio")
    if run.importance_sampling.loss_type == "vespo":
        names.add("vespo/phi_seq_mean")
    return names


def check_metric(run: Run, metric: str, key: str) -> None:
    names = logged_metrics(run)
    require(metric in names, f"{key}={metric!r} is not a metric this run logs{did_you_mean(metric, names)}")
