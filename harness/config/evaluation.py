"""The rules of the `eval` group (held-out evaluation), torch-free, and the GRPOConfig evaluation fields it owns.

The harness evaluates with its own evaluator (harness/training/evaluation.py) scheduled by transformers'
`eval_strategy=steps` / `eval_steps` (DefaultFlowCallback evaluates every `eval.every` steps and once more at the
last step): `trainer.eval_*` and their neighbours would configure transformers' evaluation loop, which never runs,
so each is refused in one line naming the `eval.*` key that does its job.
"""

from __future__ import annotations

from harness.config.schema import ConfigError, imported, require

# The functions take a `harness.config.groups.Run` (not imported: groups imports this module's field table).

EVAL_KEYS = "eval.enabled, eval.every, eval.size, eval.samples, eval.k, eval.batch_size"
_LOOP = "belongs to transformers' evaluation loop, which the harness replaces (docs/evaluation.md)"

# GRPOConfig field -> why `trainer.FIELD` is refused: the eval.* key that does its job, or what it would configure.
TRAINER_EVAL_FIELDS: dict[str, str] = {
    "eval_strategy": "is set by eval (eval.enabled=true|false, eval.every=N steps); set it there",
    "eval_steps": "is set by eval (eval.every=N); set it there",
    "per_device_eval_batch_size": "is set by eval (eval.batch_size=N prompts per generation call); set it there",
    "num_generations_eval": "is set by eval (eval.samples=N completions per prompt); set it there",
    "do_eval": "is set by eval (eval.enabled=true|false); set it there",
    "eval_on_start": f"{_LOOP}; the harness evaluates every eval.every steps and at the end",
    "eval_delay": f"{_LOOP}; the harness evaluates every eval.every steps and at the end",
    "eval_accumulation_steps": f"{_LOOP}; held-out metrics are gathered per evaluation ({EVAL_KEYS})",
    "eval_do_concat_batches": f"{_LOOP}; set {EVAL_KEYS}",
    "eval_use_gather_object": f"{_LOOP}; set {EVAL_KEYS}",
    "batch_eval_metrics": f"{_LOOP}; set {EVAL_KEYS}",
    "prediction_loss_only": f"{_LOOP}; set {EVAL_KEYS}",
    "include_for_metrics": f"{_LOOP}; set {EVAL_KEYS}",
    "bf16_full_eval": f"{_LOOP}; evaluation runs in the training precision",
    "fp16_full_eval": f"{_LOOP}; evaluation runs in the training precision",
    "load_best_model_at_end": f"{_LOOP}; choose runs by objective.metric=eval/... instead",
    "metric_for_best_model": f"{_LOOP}; name a held-out metric in objective.metric=eval/... instead",
    "greater_is_better": f"{_LOOP}; name a held-out metric in objective.metric=eval/... instead",
}


def trainer_eval_refusal(key: str) -> ConfigError:
    return ConfigError(f"trainer.{key} {TRAINER_EVAL_FIELDS[key]}")


def evaluates(run) -> bool:
    """Whether the run evaluates: eval.enabled and the task names a held-out split."""
    return run.eval.enabled and run.reward.eval_dataset is not None


def check_eval(run) -> None:
    ev = run.eval
    for i, k in enumerate(ev.k):
        require(1 <= k <= ev.samples, f"eval.k[{i}]={k} must be in [1, eval.samples={ev.samples}] (k samples of n)")
    require(len(set(ev.k)) == len(ev.k), f"eval.k={ev.k} repeats a value")
    if not evaluates(run):
        return
    node = run.reward.eval_dataset
    size_of = getattr(imported(node["_target_"]), "split_size", None)  # embedded tasks count their split exactly
    if size_of is not None:
        available = size_of(**{key: value for key, value in node.items() if not key.startswith("_")})
        require(
            available is None or ev.size <= available,
            f"eval.size={ev.size} is larger than the held-out split of reward={run.reward.name} ({available} prompts)",
        )


def check_eval_metric(run, metric: str, key: str) -> None:
    """An `eval/...` objective needs a run that evaluates."""
    if not metric.startswith("eval/") or evaluates(run):
        return
    if not run.eval.enabled:
        raise ConfigError(f"{key}={metric} is a held-out metric but evaluation is off (eval.enabled=false)")
    raise ConfigError(
        f"{key}={metric} is a held-out metric but reward={run.reward.name} has no reward.eval_dataset; give one "
        "(a `_target_` returning rows with a `prompt`) or name a training metric"
    )
