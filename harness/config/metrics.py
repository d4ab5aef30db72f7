"""The metric catalogue: every key a run logs, defined once with its meaning, its producer and when it is logged.

`logged_metrics(run)` (what `objective.metric` and `sweep.objective.metric` may name) and the generated glossary
(docs/metrics.md, written by `python -m harness.config.tables --write`) both read `CATALOGUE`. Tests check it
against what harness/algorithms/stats.py produces on hand-made tensors and against the keys a real run writes.
Torch-free, like the rest of the config layer: the producers are named, not imported.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from harness.config.evaluation import check_eval_metric, evaluates
from harness.config.groups import Run
from harness.config.registry import GENERATIONS
from harness.config.schema import did_you_mean, require

CLIPPED_LOSSES = ("grpo", "bnpo", "dr_grpo", "dapo", "luspo")  # trl 1.16 logs clip_ratio/* for these only

# When a key is logged: (the docs' words, the test on a run). Keys not named here are logged by every run.
WHEN: dict[str, tuple[str, Callable[[Run], bool]]] = {
    "always": ("every log", lambda run: True),
    "kl": ("`trainer.beta` ≠ 0", lambda run: run.trainer_value("beta") != 0),
    "clipped": (
        f"`loss_type` {', '.join(CLIPPED_LOSSES)}",
        lambda run: run.importance_sampling.loss_type in CLIPPED_LOSSES,
    ),
    "cispo": ("`loss_type=cispo`", lambda run: run.importance_sampling.loss_type == "cispo"),
    "vespo": ("`loss_type=vespo`", lambda run: run.importance_sampling.loss_type == "vespo"),
    "entropy_bonus": (
        "`trainer.entropy_coef` ≠ 0 or `trainer.use_adaptive_entropy`",
        lambda run: run.trainer_value("entropy_coef") != 0 or bool(run.trainer_value("use_adaptive_entropy")),
    ),
    "fresh": ("logs whose window holds a step right after a generation", lambda run: True),
    "end": ("once, in the last record (end of training)", lambda run: True),
    "histogram": ("every `stats.histogram_every` steps", lambda run: run.stats.histogram_every > 0),
    "eval": ("every `eval.every` steps and at the end, when the run evaluates", evaluates),
    "eval_accuracy": (
        "as `eval`, for a task with `reward.accuracy`",
        lambda run: evaluates(run) and run.reward.accuracy is not None,
    ),
    "generations": (
        "an estimator that generates (`advantage=mc_value`)",
        lambda run: GENERATIONS in run.advantage.configured.needs,
    ),
    "credit_mc": (
        "`stats.credit_mc_every` > 0 and a per-token estimator (logs whose window holds a reference generation)",
        lambda run: run.stats.credit_mc_every > 0 and not run.advantage.configured.entry.per_sequence,
    ),
    "credit": (
        "`reward.credit_reference` set and a per-token estimator (logs whose completions vary in both)",
        lambda run: run.reward.credit_reference is not None and not run.advantage.configured.entry.per_sequence,
    ),
}


@dataclass(frozen=True)
class Metric:
    key: str  # `NAME` stands for each reward function's name (reward.functions.NAME)
    meaning: str
    source: str  # the module (and function) that computes it: a harness module, or trl / transformers
    when: str = "always"  # a key of WHEN
    objective: bool = True  # a scalar `objective.metric` may name (the record's step and the histogram are not)

    def keys(self, run: Run) -> list[str]:
        if self.key.endswith("@K"):  # one key per k of eval.k
            return [f"{self.key[:-1]}{k}" for k in run.eval.k]
        if "NAME" in self.key:
            return [self.key.replace("NAME", name) for name in run.reward.functions]
        return [self.key]


STATS = "harness.algorithms.stats"
TRAINER = "harness.training.trainer"
SINK = "harness.training.sinks.MetricsSink"
EVALUATOR = "harness.training.evaluation"
TRL_GENERATE = "trl: GRPOTrainer._generate_and_score_completions"
TRL_LOSS = "trl: GRPOTrainer._compute_loss"
NOISE = "a fresh step's \\|log w\\|, where every ratio should be 1 ([noise floor](levels.md#the-ratios-noise-floor))"


def _clip(kind: str, weighting: str) -> str:
    rule = {"low": "low: w < 1 − ε_low with A < 0", "high": "high: w > 1 + ε_high with A > 0", "region": "low or high"}
    return f"fraction of valid tokens whose ratio is clipped ({rule[kind]}), {weighting}"


SEQ_WEIGHTED = "averaged per sequence first: comparable across levels (trl's `clip_ratio/*` is not)"

CATALOGUE: tuple[Metric, ...] = (
    # --- harness statistics (exact over the logging window: sums and counts over micro-batches and processes) ---
    Metric("adv/mean_token", "mean advantage over all valid completion tokens (token-weighted)", f"{STATS}.finalize"),
    Metric("adv/mean_seq", "mean over sequences of each sequence's mean advantage (sequence-weighted)",
           f"{STATS}.finalize"),
    Metric("adv/std", "std of the per-token advantages the loss sees", f"{STATS}.finalize"),
    Metric("adv/min", "smallest per-token advantage", f"{TRAINER}, from stats.advantage_extremes"),
    Metric("adv/max", "largest per-token advantage", f"{TRAINER}, from stats.advantage_extremes"),
    Metric("adv/abs_mean", "mean of \\|A\\| over valid tokens", f"{STATS}.finalize"),
    Metric("adv/frac_pos", "fraction of valid tokens with A > 0", f"{STATS}.finalize"),
    Metric("adv/frac_neg", "fraction of valid tokens with A < 0", f"{STATS}.finalize"),
    Metric("adv/frac_zero", "fraction of valid tokens with A = 0", f"{STATS}.finalize"),
    Metric("adv/within_seq_std", "mean over sequences of the std of A along the sequence: exactly 0 under "
           "`outcome`; GSPO-token can differ from GSPO only where it is > 0", f"{STATS}.finalize"),
    Metric("adv/credit_corr", "how right the credit is: within each completion, Spearman's rank correlation "
           "between the per-token advantages the loss sees and the process advantages of the task's "
           "`reward.credit_reference` token rewards (the true credit), averaged over completions where both vary",
           f"{STATS}.finalize, from harness.algorithms.credit.correlation.credit_corr_moments", when="credit"),
    Metric("adv/credit_corr_step", "as `adv/credit_corr`, against the reference's normalised token rewards "
           "themselves (which tokens were right, not the sum to the end): the credit a per-step estimator such "
           "as `mc_value` aims at", f"{STATS}.finalize, from harness.algorithms.credit.correlation.credit_corr_moments",
           when="credit"),
    Metric("adv/credit_corr_mc", "as `adv/credit_corr`, against Monte-Carlo step advantages (`mc_value`'s, "
           "`stats.credit_mc_rollouts` continuations per prefix): the credit check for any task",
           f"{STATS}.finalize, from {TRAINER}", when="credit_mc"),
    Metric("mc/generations", "Monte-Carlo continuations sampled per generation step, all ranks (K per distinct "
           "step prefix: the cost of `mc_value`)", f"{STATS}.finalize, from harness.training.trainer",
           when="generations"),
    Metric("adv/histogram", "histogram of the per-token advantages (a wandb histogram; `{counts, edges}` in "
           "metrics.jsonl)", SINK, when="histogram", objective=False),
    Metric("clip/low_frac_token", _clip("low", "token-weighted"), f"{STATS}.finalize"),
    Metric("clip/high_frac_token", _clip("high", "token-weighted"), f"{STATS}.finalize"),
    Metric("clip/region_frac_token", _clip("region", "token-weighted"), f"{STATS}.finalize"),
    Metric("clip/low_frac_seq", _clip("low", SEQ_WEIGHTED), f"{STATS}.finalize"),
    Metric("clip/high_frac_seq", _clip("high", SEQ_WEIGHTED), f"{STATS}.finalize"),
    Metric("clip/region_frac_seq", _clip("region", SEQ_WEIGHTED), f"{STATS}.finalize"),
    Metric("clip/any_frac_seq", "fraction of sequences with at least one clipped token", f"{STATS}.finalize"),
    Metric("is_ratio/mean", "mean of the importance weights the level used: per token for `token` and "
           "`sequence_token`, per sequence for `sequence`", f"{STATS}.finalize"),
    Metric("is_ratio/std", "std of those weights", f"{STATS}.finalize"),
    Metric("is_ratio/min", "smallest of those weights", f"{TRAINER}, from stats.ratio_extremes"),
    Metric("is_ratio/max", "largest of those weights", f"{TRAINER}, from stats.ratio_extremes"),
    Metric("is_ratio/ess", "normalised effective sample size (Σw)² / (n Σw²) ∈ (0, 1]; 1 = uniform weights",
           f"{STATS}.finalize"),
    Metric("is_ratio/noise_token_max", f"the ratio's noise floor at token level: max of {NOISE}",
           f"{STATS}.noise_moments", when="fresh"),
    Metric("is_ratio/noise_token_rms", f"the ratio's noise floor at token level: RMS of {NOISE}",
           f"{STATS}.finalize", when="fresh"),
    Metric("is_ratio/noise_seq_max", "the same for the sequence log-ratio log s_i: max (compare with GSPO's "
           "`epsilon`)", f"{STATS}.noise_moments", when="fresh"),
    Metric("is_ratio/noise_seq_rms", "the same for the sequence log-ratio log s_i: RMS", f"{STATS}.finalize",
           when="fresh"),
    Metric("step", "the optimizer step of the record (the wandb step)", SINK, objective=False),
    # --- held-out evaluation (eval.size prompts of reward.eval_dataset, never trained on) ---
    Metric("eval/greedy/reward", "mean over the held-out prompts of the task's weighted reward of the greedy "
           "(temperature 0) completion", EVALUATOR, when="eval"),
    Metric("eval/greedy/accuracy", "fraction of held-out prompts whose greedy completion is exactly right "
           "(`reward.accuracy`): greedy pass@1", EVALUATOR, when="eval_accuracy"),
    Metric("eval/sampled/reward", "mean@k of the reward: mean over prompts and their `eval.samples` completions "
           "at the training temperature (the unbiased mean@k for every k)", EVALUATOR, when="eval"),
    Metric("eval/sampled/accuracy", "mean@k (avg@k) of the accuracy over those samples", EVALUATOR,
           when="eval_accuracy"),
    Metric("eval/pass@K", "unbiased pass@k (Chen et al. 2021) from `eval.samples` samples per prompt, one key "
           "per k of `eval.k`", f"{EVALUATOR}, from algorithms.evaluation.pass_at_k", when="eval_accuracy"),
    Metric("eval/best_reward@K", "unbiased expected best reward of k of the samples (pass@k for a 0/1 reward), "
           "one key per k of `eval.k`", f"{EVALUATOR}, from algorithms.evaluation.best_of_k", when="eval"),
    Metric("eval/seconds", "wall time of the evaluation (s)", EVALUATOR, when="eval"),
    # --- trl 1.16's GRPOTrainer, on this harness's path (no vLLM, no tools) ---
    Metric("reward", "mean over the generation batch of the weighted sum of the reward functions (the default "
           "objective)", TRL_GENERATE),
    Metric("reward_std", "std of that reward over the generation batch", TRL_GENERATE),
    Metric("rewards/NAME/mean", "mean of reward function NAME (unweighted) over the generation batch",
           TRL_GENERATE),
    Metric("rewards/NAME/std", "std of reward function NAME over the generation batch", TRL_GENERATE),
    Metric("frac_reward_zero_std", "fraction of completions whose group's rewards are all equal (their outcome "
           "advantage is 0)", TRL_GENERATE),
    Metric("num_tokens", "prompt and completion tokens seen so far", TRL_GENERATE),
    Metric("completions/mean_length", "mean completion length (tokens)", TRL_GENERATE),
    Metric("completions/min_length", "shortest completion (tokens)", TRL_GENERATE),
    Metric("completions/max_length", "longest completion (tokens)", TRL_GENERATE),
    Metric("completions/clipped_ratio", "fraction of completions cut at `reward.max_completion_length` (no "
           "end-of-sequence token)", TRL_GENERATE),
    Metric("completions/mean_terminated_length", "mean length of the completions that ended (0 if none did)",
           TRL_GENERATE),
    Metric("completions/min_terminated_length", "shortest of those", TRL_GENERATE),
    Metric("completions/max_terminated_length", "longest of those", TRL_GENERATE),
    Metric("entropy", "mean per-token entropy of the policy over valid completion tokens", TRL_LOSS),
    Metric("kl", "mean per-token KL divergence from the reference model", TRL_LOSS, when="kl"),
    Metric("clip_ratio/low_mean", "trl's low-clip fraction (w < 1 − ε_low with A < 0): over sequences for "
           "`sequence`, over tokens otherwise", TRL_LOSS, when="clipped"),
    Metric("clip_ratio/low_min", "smallest per-sequence low-clip fraction", TRL_LOSS, when="clipped"),
    Metric("clip_ratio/high_mean", "trl's high-clip fraction (w > 1 + ε_high with A > 0), weighted as "
           "`clip_ratio/low_mean`", TRL_LOSS, when="clipped"),
    Metric("clip_ratio/high_max", "largest per-sequence high-clip fraction", TRL_LOSS, when="clipped"),
    Metric("clip_ratio/region_mean", "trl's fraction clipped low or high", TRL_LOSS, when="clipped"),
    Metric("cispo_clip_ratio", "fraction of tokens whose CISPO weight is capped (w > ε_high with A > 0)", TRL_LOSS,
           when="cispo"),
    Metric("vespo/phi_seq_mean", "mean of VESPO's sequence weight φ", TRL_LOSS, when="vespo"),
    Metric("policy_loss", "the policy term of the loss, before the entropy bonus", TRL_LOSS, when="entropy_bonus"),
    Metric("entropy_coef", "the entropy bonus's coefficient (adapted when `use_adaptive_entropy`)", TRL_LOSS,
           when="entropy_bonus"),
    Metric("step_time", "seconds of the last optimizer step (all its micro-batches)", "trl: GRPOTrainer.training_step"),
    # --- transformers' Trainer ---
    Metric("loss", "training loss, averaged over the logging window", "transformers: Trainer"),
    Metric("grad_norm", "gradient norm before clipping", "transformers: Trainer"),
    Metric("learning_rate", "the scheduler's learning rate", "transformers: Trainer"),
    Metric("epoch", "epochs over the dataset so far (fractional)", "transformers: Trainer"),
    Metric("train_loss", "mean training loss over the whole run", "transformers: Trainer", when="end"),
    Metric("train_runtime", "wall time of training (s)", "transformers: Trainer", when="end"),
    Metric("train_samples_per_second", "training samples per second", "transformers: Trainer", when="end"),
    Metric("train_steps_per_second", "optimizer steps per second", "transformers: Trainer", when="end"),
    Metric("total_flos", "estimated floating-point operations of training", "transformers: Trainer", when="end"),
)  # fmt: skip


def logged_metrics(run: Run) -> set[str]:
    """The scalar keys this run logs: what `objective.metric` may name."""
    return {key for m in CATALOGUE if m.objective and WHEN[m.when][1](run) for key in m.keys(run)}


def check_metric(run: Run, metric: str, key: str) -> None:
    check_eval_metric(run, metric, key)
    names = logged_metrics(run)
    require(metric in names, f"{key}={metric!r} is not a metric this run logs{did_you_mean(metric, names)}")


def glossary() -> list[str]:
    """docs/metrics.md's tables: harness keys, then trl's and transformers'."""
    rows = []
    for title, harness in (("Harness statistics", True), ("trl and transformers", False)):
        rows += [f"## {title}", "", "| key | meaning | computed by | logged |", "| --- | --- | --- | --- |"]
        for m in CATALOGUE:
            if m.source.startswith("harness") == harness:
                where = re.sub(r"\w+(\.\w+)+", lambda name: f"`{name[0]}`", m.source) if harness else m.source
                rows.append(f"| `{m.key}` | {m.meaning} | {where} | {WHEN[m.when][0]} |")
        rows.append("")
    return rows[:-1]
