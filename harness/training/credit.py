"""What the trainer computes beside the advantages it trains on (HarnessGRPOTrainer calls these with itself):

- `reference_moments`: `adv/credit_corr`, how right the credit is against the task's known credit: within each
  completion, Spearman's rho between the advantages the loss sees and the process advantages (DeepSeekMath, gamma = 1,
  trl's scaling) of the task's reference token rewards (`reward.credit_reference`), on all ranks' rows. The reference
  is scored whatever the run trains on; it never reaches the loss. `adv/credit_corr_step`: the same against the
  reference's normalised token rewards themselves (gamma = 0: which tokens were right), the credit a per-step
  estimator such as `mc_value` (V(s_k+1) - V(s_k)) aims at, where the process advantage sums them to the end.
- `monte_carlo_moments`: `adv/credit_corr_mc`, the same against `mc_value`'s Monte-Carlo step advantages
  (`stats.credit_mc_every`).
- `monte_carlo_values`: `mc_value`'s Monte-Carlo step values (VinePPO, arXiv 2410.01679): K continuations of every
  step prefix, in one batched `generate` call, scored by the task's reward functions.
"""

from __future__ import annotations

import copy

import torch
from trl.data_utils import is_conversational
from trl.models import unwrap_model_for_generation

from harness.algorithms.advantages import process_advantages
from harness.algorithms.batch import AdvantageBatch
from harness.algorithms.credit.correlation import credit_corr_moments
from harness.algorithms.credit.mc_value import mc_value, step_starts, steps_every, steps_from_separator


def _per_token(all_advantages: torch.Tensor, all_mask: torch.Tensor) -> torch.Tensor:
    """(N, T) advantages: a per-sequence estimator's (N,) broadcast onto the valid tokens."""
    advantages = all_advantages if all_advantages.dim() == 2 else all_advantages.unsqueeze(1) * all_mask
    return advantages.detach().float()


def reference_moments(trainer, inputs: list[dict], output: dict, all_advantages, all_mask) -> dict[str, float]:
    """`adv/credit_corr`'s and `adv/credit_corr_step`'s sums (see the module docstring)."""
    rewards, carries = trainer._token_rewards(
        inputs, output["completion_ids"], output["completion_mask"], trainer.credit_reference
    )
    rewards, carries, mask = trainer._gather_rows(rewards), trainer._gather_rows(carries), all_mask.to(rewards.dtype)
    estimate = _per_token(all_advantages, all_mask)
    out = {}
    for gamma, name in ((1.0, "adv/credit_corr"), (0.0, "adv/credit_corr_step")):
        reference = process_advantages(
            rewards, mask, trainer.num_generations, gamma=gamma, reward_mask=carries, scale=trainer.reward_scaling
        )
        out |= {key: float(value) for key, value in credit_corr_moments(estimate, reference, all_mask, name).items()}
    return out


def monte_carlo_moments(trainer, inputs: list[dict], output: dict, all_advantages, all_mask) -> dict[str, float]:
    """`adv/credit_corr_mc`'s sums: against `mc_value`'s step advantages (K = `stats.credit_mc_rollouts`
    continuations per prefix, a step every `stats.credit_mc_tokens` tokens)."""
    _, rollouts, tokens = trainer.credit_mc
    steps, values = monte_carlo_values(trainer, inputs, output, rollouts, every=tokens, log=False)
    rewards = trainer._all_rewards()
    batch = AdvantageBatch(
        rewards=rewards,
        advantages=torch.zeros_like(rewards),
        mask=all_mask,
        completion_ids=trainer._gather_rows(output["completion_ids"]),
        num_generations=trainer.num_generations,
        scale=trainer.reward_scaling,
        steps=trainer._gather_rows(steps),
        step_values=trainer._gather_rows(values),
    )
    reference = mc_value(batch, rollouts, None, tokens).float()
    moments = credit_corr_moments(_per_token(all_advantages, all_mask), reference, all_mask, "adv/credit_corr_mc")
    return {key: float(value) for key, value in moments.items()}


def monte_carlo_values(
    trainer,
    inputs: list[dict],
    output: dict,
    rollouts: int,
    every: int | None = None,
    separator: list[int] | None = None,
    log: bool = True,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(steps (B, T), values (B, S)) of the trainer's rank's completions: VinePPO's Monte-Carlo value of every step's
    prefix s_k (the prompt plus the completion's tokens before step k), the mean of the task's weighted reward
    over K continuations sampled with the run's own generation settings (trl's `generation_config`).

    All continuations of the generation step come from ONE batched `generate` call. A prefix shared by several
    completions of a group (always s_0, the prompt) is sampled once and its value shared: the same state, the
    same distribution. Each continuation is cut at its first end-of-sequence token and at
    `max_completion_length` tokens of completion in all, as the sampled completions are. Steps: every `every`
    tokens, else at each occurrence of the token ids `separator`. Logs `mc/generations` when `log`.
    """
    completion_mask = output["completion_mask"]
    ids = output["completion_ids"]
    if every is not None:
        steps = steps_every(completion_mask, every)
    else:
        steps = steps_from_separator(ids, completion_mask, separator)
    starts = step_starts(steps).tolist()
    prompts = [row[m.bool()].tolist() for row, m in zip(output["prompt_ids"], output["prompt_mask"])]
    completions = [row[m.bool()].tolist() for row, m in zip(ids, completion_mask)]
    unique: dict[tuple, int] = {}  # (group, prefix tokens) -> index into `states`
    states: list[tuple[int, list[int]]] = []  # (a row starting with that prefix, the prefix)
    state_of = {}  # (row, step) -> index into `states`
    for row, row_starts in enumerate(starts):
        for step, start in enumerate(row_starts):
            if start >= 0:
                key = (row // trainer.num_generations, tuple(completions[row][:start]))
                if key not in unique:
                    unique[key] = len(states)
                    states.append((row, completions[row][:start]))
                state_of[row, step] = unique[key]
    k = rollouts
    scores = _score_continuations(trainer, inputs, prompts, states, k) if states else torch.zeros(0, k)
    state_values = scores.nanmean(dim=1)  # NaN where no continuation was scored
    values = torch.full((len(starts), max((len(r) for r in starts), default=0)), float("nan"))
    for (row, step), index in state_of.items():
        values[row, step] = state_values[index]
    if log:
        generations = torch.tensor([float(len(states) * k)], device=trainer.accelerator.device)
        if trainer.accelerator.num_processes > 1:
            generations = trainer.accelerator.reduce(generations, reduction="sum")
        trainer.metric_window.add({"mc/generations_sum": float(generations), "mc/generation_steps": 1.0}, {}, {})
    return steps.to(ids.device), values.to(ids.device)


def _score_continuations(trainer, inputs: list[dict], prompts: list[list[int]], states: list, k: int):
    """(len(states), k) weighted sequence rewards of k continuations of each state (row, completion prefix)."""
    device = trainer.accelerator.device
    pad = trainer.processing_class.pad_token_id
    sequences = [prompts[row] + prefix for row, prefix in states for _ in range(k)]
    width = max(map(len, sequences))
    input_ids = torch.tensor([[pad] * (width - len(s)) + s for s in sequences], device=device)
    attention = torch.tensor([[0] * (width - len(s)) + [1] * len(s) for s in sequences], device=device)
    budget = [trainer.max_completion_length - len(prefix) for _, prefix in states for _ in range(k)]
    config = copy.deepcopy(trainer.generation_config)
    config.max_new_tokens = max(budget)
    with (
        unwrap_model_for_generation(
            trainer.model_wrapped,
            trainer.accelerator,
            gather_deepspeed3_params=trainer.args.ds3_gather_for_generation,
            generation_kwargs=trainer.generation_kwargs,
            gradient_checkpointing_kwargs=trainer.args.gradient_checkpointing_kwargs,
        ) as unwrapped,
        torch.no_grad(),
        trainer._dist.summon_full_params(trainer.model_wrapped, recurse=False),
    ):
        generated = unwrapped.generate(input_ids=input_ids, attention_mask=attention, generation_config=config)
    eos = set(trainer.eos_token_ids)
    completion_ids = []
    for index, row in enumerate(generated[:, width:].tolist()):
        _, prefix = states[index // k]
        continuation = row[: budget[index]]
        end = next((t for t, token in enumerate(continuation) if token in eos), None)
        completion_ids.append(prefix + (continuation if end is None else continuation[: end + 1]))
    texts = trainer.processing_class.batch_decode(completion_ids, skip_special_tokens=True)
    rows = [row for row, _ in states for _ in range(k)]
    prompt_texts = [inputs[row]["prompt"] for row in rows]
    if is_conversational({"prompt": prompt_texts[0]}):
        texts = [[{"role": "assistant", "content": text}] for text in texts]
    columns = {key: [inputs[row][key] for row in rows] for key in inputs[0] if key != "prompt"}
    scores = torch.full((len(rows), len(trainer.reward_funcs)), float("nan"))
    for column, function in enumerate(trainer.reward_funcs):
        if isinstance(function, torch.nn.Module):
            raise ValueError("mc_value scores continuations with reward functions, not reward models")
        values = function(
            prompts=prompt_texts, completions=texts, completion_ids=completion_ids, trainer_state=trainer.state,
            **columns,
        )  # fmt: skip
        scores[:, column] = torch.tensor([float("nan") if v is None else float(v) for v in values])
    weights = trainer.reward_weights.detach().float().cpu().unsqueeze(0)
    total = (scores * weights).nansum(dim=1)
    total[torch.isnan(scores).all(dim=1)] = float("nan")
    return total.reshape(len(states), k)
