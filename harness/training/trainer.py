"""`HarnessGRPOTrainer`: trl's GRPOTrainer plus the registered advantage estimators and importance-sampling levels
(harness/config/estimators.py, harness/config/levels.py), GSPO-token and statistics.

It overrides four private hooks of trl 1.16 (the pinned range in pyproject.toml) and calls upstream for all work:
- `_calculate_rewards`: keep all ranks' rewards per function (the estimator's `AdvantageBatch.rewards`).
- `_generate_and_score_completions`: replace trl's (B,) advantages with the estimator's, computed on all ranks' rows
  (a per-token estimator's are (B, T); a per-sequence estimator's stay (B,)); record advantage statistics.
- `_compute_loss`: hand trl a shallow copy of the batch (trl reuses the buffered dict across iterations).
- after the advantages, `adv/credit_corr` (and `adv/credit_corr_mc`) against a reference credit, and `mc_value`'s
  Monte-Carlo continuations: harness/training/credit.py, which this trainer calls.
- `_get_per_token_logps_and_entropies`: during generation, when an estimator needs the sampling policy's entropies
  and trl computes old log-probs anyway, ask that same pass for the entropies (see `_sampling_entropies` for the
  cost); inside the loss, once the current log-probs exist, record clip and ratio
  statistics and, on the first optimizer step after each generation, the ratio's noise floor; for a level that
  re-bases old log-probs (`sequence_token`), re-base the batch's old log-probs so that trl's token-level ratio
  exp(logp - old) equals the level's weight (GSPO-token: sg[s_i] * pi / sg[pi], see
  `importance.gspo_token_old_logps`).
"""

from __future__ import annotations

import sys
from collections.abc import Callable

import torch
from accelerate.utils import AutocastKwargs
from transformers import Trainer
from trl import GRPOTrainer

from harness.algorithms.advantages import per_sequence_values
from harness.algorithms.batch import AdvantageBatch
from harness.algorithms.noise_floor import noise_warning
from harness.algorithms.stats import (
    MetricWindow,
    advantage_extremes,
    advantage_moments,
    noise_moments,
    ratio_extremes,
    ratio_moments,
)
from harness.algorithms.token_spans import LazySpans
from harness.config.levels import LEVELS
from harness.config.registry import ENTROPIES, GENERATIONS, TOKEN_REWARDS, Configured, resolve
from harness.training import credit
from harness.training.console import note, silence_known_warnings


class HarnessGRPOTrainer(GRPOTrainer):
    def __init__(
        self,
        *args,
        estimator: Configured | None = None,
        token_reward: Callable | None = None,
        credit_reference: Callable | None = None,
        step_separator: list[int] | None = None,
        credit_mc: tuple[int, int, int] | None = None,
        eval_setup=None,
        **kwargs,
    ):
        """`estimator`: the configured advantage estimator (None: trl's own advantage). `token_reward`: the task's
        token reward function, for an estimator that needs TOKEN_REWARDS. `credit_reference`: token rewards whose
        process advantages are the true per-token credit (`reward.credit_reference`): `adv/credit_corr`.
        `step_separator`: the token ids of `advantage.separator` for an estimator that needs GENERATIONS.
        `credit_mc`: (every, rollouts, tokens) of `stats.credit_mc_*`: Monte-Carlo step advantages as a second
        reference credit, `adv/credit_corr_mc`. `eval_setup`: the held-out evaluation
        (harness.training.evaluation.EvalSetup), with `eval_dataset`."""
        self.eval_setup = eval_setup
        super().__init__(*args, **kwargs)
        if estimator is not None and GENERATIONS in estimator.needs and self.use_vllm:
            raise ValueError(f"advantage.estimator={estimator.name} generates with transformers, not vLLM")
        silence_known_warnings()  # trl's generation calls transformers' deprecated checkpointing aliases
        self.level = self.args.importance_sampling_level
        level = LEVELS.get(self.level)
        self.importance_sampling_level = level.trl_level  # what trl computes; `level` may re-base it (GSPO-token)
        self.log_weights = level.function()
        self.rebase_old_logps = None if level.rebase_old_logps is None else resolve(level.rebase_old_logps)
        self.estimator = estimator
        self.token_reward = token_reward
        self.credit_reference = credit_reference
        self.step_separator = step_separator
        self.credit_mc = credit_mc
        self._generations_seen = 0
        # trl accepts booleans for scale_rewards; estimators get the same convention as a string.
        self.reward_scaling = {True: "group", False: "none"}.get(self.scale_rewards, self.scale_rewards)
        self.metric_window = MetricWindow()
        self.last_advantages: tuple[torch.Tensor, torch.Tensor] | None = None  # all ranks' (advantages, mask)
        self._rewards_per_func: torch.Tensor | None = None  # all ranks' rewards, one column per reward function
        self._loss_inputs: dict | None = None
        self._generation_step = -1  # the optimizer step at which the buffered completions were generated
        self._capture_entropies = False  # take the entropies from trl's old-log-prob pass of this generation
        self._captured_entropies: torch.Tensor | None = None
        self._noise_warned = False  # the noise-floor warning is printed once per run

    # --- advantages -------------------------------------------------------------------------------------------
    def _calculate_rewards(self, *args, **kwargs):
        self._rewards_per_func = super()._calculate_rewards(*args, **kwargs)
        return self._rewards_per_func

    def _generate_and_score_completions(self, inputs):
        needs_entropies = self.estimator is not None and ENTROPIES in self.estimator.needs
        self._captured_entropies = None
        self._capture_entropies = self.model.training and needs_entropies and self._trl_scores_old_logps()
        try:
            output = super()._generate_and_score_completions(inputs)
        finally:
            self._capture_entropies = False
        if not self.model.training:
            return output
        self._generation_step = self.state.global_step
        mask = _loss_mask(output)
        local = self._estimator_inputs(inputs, output, mask)
        if local is None:  # trl's own advantage
            all_advantages, all_mask = self.accelerator.gather(output["advantages"]), self._gather_rows(mask)
        else:
            output["advantages"], all_advantages, all_mask = self.estimate(**local)
        low, high = advantage_extremes(all_advantages, all_mask)
        self._record(advantage_moments(all_advantages, all_mask), {"adv/min": low}, {"adv/max": high}, reduce=False)
        if self.credit_reference is not None:
            self._record_credit(inputs, output, all_advantages, all_mask)
        if self.credit_mc is not None:
            self._generations_seen += 1
            if (self._generations_seen - 1) % self.credit_mc[0] == 0:
                self._record_credit_mc(inputs, output, all_advantages, all_mask)
        self.last_advantages = (all_advantages, all_mask)
        return output

    def _record_credit(self, inputs: list[dict], output: dict, all_advantages: torch.Tensor, all_mask: torch.Tensor):
        """`adv/credit_corr` against the task's reference token rewards (harness/training/credit.py)."""
        self.metric_window.add(credit.reference_moments(self, inputs, output, all_advantages, all_mask), {}, {})

    def _record_credit_mc(self, inputs: list[dict], output: dict, all_advantages: torch.Tensor, all_mask: torch.Tensor):
        """`adv/credit_corr_mc` against Monte-Carlo step advantages (harness/training/credit.py)."""
        self.metric_window.add(credit.monte_carlo_moments(self, inputs, output, all_advantages, all_mask), {}, {})

    def _all_rewards(self) -> torch.Tensor:
        """All ranks' weighted sequence rewards (N,), NaN where no reward function scored a completion (trl's)."""
        weights = self.reward_weights.to(self._rewards_per_func.device).unsqueeze(0)
        all_rewards = (self._rewards_per_func * weights).nansum(dim=1)
        all_rewards[torch.isnan(self._rewards_per_func).all(dim=1)] = torch.nan  # unscorable, as trl marks them
        return all_rewards

    def _estimator_inputs(self, inputs: list[dict], output: dict, mask: torch.Tensor) -> dict | None:
        """This rank's rows of what the estimator reads; None when there is no estimator or the trainer cannot meet
        its needs (no token reward function: validation refuses such a config, and tests switch the token rewards
        off to get trl's own advantage on the same completions)."""
        if self.estimator is None or (TOKEN_REWARDS in self.estimator.needs and self.token_reward is None):
            return None
        rows = len(inputs)
        start = self.accelerator.process_index * rows
        all_rewards = self._all_rewards()
        local = {
            "mask": mask,
            "completion_ids": output["completion_ids"],
            "rewards": all_rewards[start : start + rows],
            "advantages": output["advantages"],
        }
        if TOKEN_REWARDS in self.estimator.needs:
            local["token_rewards"], local["reward_mask"] = self._token_rewards(
                inputs, output["completion_ids"], output["completion_mask"]
            )
        if ENTROPIES in self.estimator.needs:
            local["entropies"] = self._sampling_entropies(output)
        if GENERATIONS in self.estimator.needs:
            params = self.estimator.params
            local["steps"], local["step_values"] = credit.monte_carlo_values(
                self, inputs, output, params.rollouts, every=params.every, separator=self.step_separator
            )
        return local

    def estimate(
        self,
        *,
        mask: torch.Tensor,
        completion_ids: torch.Tensor,
        rewards: torch.Tensor,
        advantages: torch.Tensor,
        token_rewards: torch.Tensor | None = None,
        reward_mask: torch.Tensor | None = None,
        entropies: torch.Tensor | None = None,
        steps: torch.Tensor | None = None,
        step_values: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(this rank's, all ranks', all ranks' mask) advantages of the estimator, from this rank's rows.

        A prompt's group can straddle ranks and T differs per rank: pad to the longest T, gather, compute on the
        whole generation batch, slice this rank's rows back and trim to its own T. A per-sequence estimator's
        advantages are (B,) (and (N,) for all ranks), so trl sees the same shapes as with its own advantage.
        """
        all_mask = self._gather_rows(mask)
        batch = AdvantageBatch(
            rewards=self.accelerator.gather(rewards),
            advantages=self.accelerator.gather(advantages),
            mask=all_mask,
            completion_ids=self._gather_rows(completion_ids),
            num_generations=self.num_generations,
            scale=self.reward_scaling,
            token_rewards=None if token_rewards is None else self._gather_rows(token_rewards),
            reward_mask=None if reward_mask is None else self._gather_rows(reward_mask),
            entropies=None if entropies is None else self._gather_rows(entropies),
            steps=None if steps is None else self._gather_rows(steps),
            step_values=None if step_values is None else self._gather_rows(step_values),
        )
        all_advantages = self.estimator.compute(batch)
        if tuple(all_advantages.shape) != batch.shape:
            raise ValueError(
                f"advantage.estimator={self.estimator.name} returned shape {tuple(all_advantages.shape)}; "
                f"expected (N, T) = {batch.shape}"
            )
        rows, length = mask.shape
        start = self.accelerator.process_index * rows
        if self.estimator.entry.per_sequence:
            all_advantages = per_sequence_values(all_advantages, all_mask, self.estimator.name)
            return all_advantages[start : start + rows].contiguous(), all_advantages, all_mask
        return all_advantages[start : start + rows, :length].contiguous(), all_advantages, all_mask

    def _trl_scores_old_logps(self) -> bool:
        """Whether trl 1.16's `_generate_and_score_completions` runs its no-grad pass of the policy for old log-probs
        (its own condition: generation misaligned with optimizer steps, or vLLM's importance-sampling correction)."""
        generate_every = self.args.steps_per_generation * self.num_iterations
        return self.args.gradient_accumulation_steps % generate_every != 0 or bool(
            self.use_vllm and self.vllm_importance_sampling_correction
        )

    def _sampling_entropies(self, output: dict) -> torch.Tensor:
        """The sampling policy's per-token entropies at its sampling temperature, once per generation batch.

        Cost: when trl runs its old-log-prob pass (`_trl_scores_old_logps`; the default trainer, whose
        steps_per_generation exceeds gradient_accumulation_steps, does), the entropies come from that same forward
        pass: trl's fused head then also reduces the logits it already holds to an entropy, no extra forward. When
        it does not (on-policy: generation aligned with optimizer steps, no vLLM correction), it costs one extra
        no-grad forward of the policy over prompts and completions of the generation batch, the same work as trl's
        old-log-prob pass, about a third of a training step's forward and backward over those tokens.
        """
        if self._captured_entropies is not None:
            entropies, self._captured_entropies = self._captured_entropies, None
            return entropies
        ids = torch.cat([output["prompt_ids"], output["completion_ids"]], dim=1)
        attention = torch.cat([output["prompt_mask"], output["completion_mask"]], dim=1)
        with torch.no_grad():
            _, entropies, _ = super()._get_per_token_logps_and_entropies(
                self.model,
                ids,
                attention,
                output["completion_ids"].size(1),
                batch_size=self.args.per_device_train_batch_size,
                compute_entropy=True,
            )
        return entropies.float()

    def _token_rewards(
        self,
        inputs: list[dict],
        completion_ids: torch.Tensor,
        completion_mask: torch.Tensor,
        function: Callable | None = None,
    ):
        """(rewards, carries) (B, T) of `function` (default: the task's token reward function) on this rank's rows."""
        function = self.token_reward if function is None else function
        lengths = completion_mask.sum(-1).tolist()
        ids = [row[: int(n)].tolist() for row, n in zip(completion_ids, lengths)]
        columns = {key: [example[key] for example in inputs] for key in inputs[0] if key != "prompt"}
        values = function(
            prompts=[example["prompt"] for example in inputs],
            completions=self.processing_class.batch_decode(ids, skip_special_tokens=True),
            tokens=[self.processing_class.convert_ids_to_tokens(row) for row in ids],
            token_spans=LazySpans(self.processing_class, ids),
            completion_ids=ids,
            eos_token=self.processing_class.eos_token,
            device=self.accelerator.device,
            **columns,
        )
        # (rewards, carries): None marks a token without a reward (e.g. inside a reasoning step).
        rewards = torch.zeros(completion_mask.shape, dtype=torch.float32)
        carries = torch.zeros(completion_mask.shape, dtype=torch.float32)
        for row, row_values in enumerate(values):
            for position, value in enumerate(row_values):
                if value is not None:
                    rewards[row, position], carries[row, position] = value, 1.0
        return rewards.to(completion_mask.device), carries.to(completion_mask.device)

    def _gather_rows(self, x: torch.Tensor) -> torch.Tensor:
        return self.accelerator.gather(self.accelerator.pad_across_processes(x, dim=1, pad_index=0))

    # --- loss -------------------------------------------------------------------------------------------------
    def _compute_loss(self, model, inputs):
        self._loss_inputs = dict(inputs)
        try:
            return super()._compute_loss(model, self._loss_inputs)
        finally:
            self._loss_inputs = None

    def _get_per_token_logps_and_entropies(self, *args, **kwargs):
        if self._capture_entropies and self._loss_inputs is None:
            # The first pass of a generation step is trl's old log-probs of the policy (before any reference pass):
            # the sampling policy's forward. Its fused head gives the entropies with the log-probs.
            self._capture_entropies = False
            logps, entropies, aux_loss = super()._get_per_token_logps_and_entropies(
                *args, **{**kwargs, "compute_entropy": True}
            )
            self._captured_entropies = entropies.detach().float()
            return logps, None, aux_loss
        logps, entropies, aux_loss = super()._get_per_token_logps_and_entropies(*args, **kwargs)
        inputs, self._loss_inputs = self._loss_inputs, None  # only the policy pass inside `_compute_loss`
        if inputs is not None:
            # No optimizer step since generation: the policy is the sampling policy, every ratio should be 1.
            fresh = self.model.training and self.state.global_step == self._generation_step
            reference = self._noise_reference(inputs, args, kwargs) if fresh else None
            self._before_ratio(logps, inputs, fresh, reference)
        return logps, entropies, aux_loss

    def _noise_reference(self, inputs: dict, args, kwargs) -> torch.Tensor | None:
        """The log-probs a fresh step's ratio should match exactly: the generation engine's (vLLM) when trl has
        them, else the sampling policy's in float32 when the run computes under autocast, else trl's old log-probs.
        None (on-policy: trl uses the current log-probs) means the ratio is 1 by construction."""
        if "sampling_per_token_logps" in inputs:
            return inputs["sampling_per_token_logps"]
        if not self.accelerator.native_amp:
            return inputs.get("old_per_token_logps")
        # Autocast is entered twice: by trl around the forward and by accelerate's wrapper of `model.forward`
        # (the unwrapped forward is kept in `_original_forward`). Switch both off for one no-grad pass.
        model = self.accelerator.unwrap_model(args[0])
        wrapped, handler = model.__dict__.get("forward"), self.accelerator.autocast_handler
        if "_original_forward" in model.__dict__:
            model.forward = model._original_forward
        self.accelerator.autocast_handler = AutocastKwargs(enabled=False)
        try:
            with torch.no_grad():
                reference, _, _ = super()._get_per_token_logps_and_entropies(model, *args[1:], **kwargs)
        finally:
            self.accelerator.autocast_handler = handler
            if wrapped is not None:
                model.forward = wrapped
        return reference

    def _before_ratio(self, logps: torch.Tensor, inputs: dict, fresh: bool, noise_reference: torch.Tensor | None):
        mask = _loss_mask(inputs)
        old = inputs.get("old_per_token_logps")
        old = logps.detach() if old is None else old
        if self.model.training:
            log_weights = self.log_weights(logps.detach(), old, mask)
            low, high = ratio_extremes(log_weights, mask)
            moments = ratio_moments(log_weights, inputs["advantages"], mask, self.epsilon_low, self.epsilon_high)
            maxs = {"is_ratio/max": high}
            if fresh:
                reference = logps.detach() if noise_reference is None else noise_reference
                noise, noise_max = noise_moments(logps.detach(), reference, mask)
                moments |= noise
                maxs |= noise_max
            self._record(moments, {"is_ratio/min": low}, maxs, reduce=True)
        if self.rebase_old_logps is not None:
            inputs["old_per_token_logps"] = self.rebase_old_logps(logps, old, mask)

    # --- held-out evaluation -----------------------------------------------------------------------------------
    def evaluate(self, eval_dataset=None, ignore_keys=None, metric_key_prefix: str = "eval") -> dict[str, float]:
        """transformers calls this every `eval_steps` (= eval.every) and at the last step: the harness's evaluator
        (harness/training/evaluation.py) instead of trl's loss-and-sampled-reward loop. Logged through transformers'
        `Trainer.log`, not trl's (which would flush its training metrics into the record)."""
        from harness.training.evaluation import evaluate

        metrics = evaluate(self, self.eval_dataset if eval_dataset is None else eval_dataset)
        Trainer.log(self, dict(metrics))
        self.control = self.callback_handler.on_evaluate(self.args, self.state, self.control, metrics)
        return metrics

    # --- statistics -------------------------------------------------------------------------------------------
    def _record(self, moments: dict, mins: dict, maxs: dict, reduce: bool) -> None:
        sums = torch.stack([v.float() for v in moments.values()])
        extremes = torch.stack([v.float() for v in mins.values()] + [-v.float() for v in maxs.values()])
        if reduce and self.accelerator.num_processes > 1:
            sums = self.accelerator.reduce(sums.to(self.accelerator.device), reduction="sum")
            gathered = self.accelerator.gather(extremes.to(self.accelerator.device).unsqueeze(0))
            extremes = torch.where(gathered.isnan(), torch.inf, gathered).min(dim=0).values
        sums, extremes = sums.tolist(), extremes.tolist()
        self.metric_window.add(
            dict(zip(moments, sums)),
            dict(zip(mins, extremes[: len(mins)])),
            {key: -value for key, value in zip(maxs, extremes[len(mins) :])},
        )

    def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
        if self.model.training:
            logs.update(self.metric_window.flush())
            self._warn_if_noise_reaches_clip_range(logs)
        super().log(logs, start_time)

    def _warn_if_noise_reaches_clip_range(self, logs: dict[str, float]) -> None:
        """Warn once when the level's ratio noise is not well below its clip range: clipping then follows rounding."""
        message = noise_warning(logs, self.level, self.epsilon_low, self.epsilon_high)
        if message and not self._noise_warned:
            self._noise_warned = True
            if self.accelerator.is_main_process:
                note(f"harness: warning: {message}", sys.stderr)


def _loss_mask(batch: dict) -> torch.Tensor:
    mask = batch["completion_mask"]
    return mask * batch["tool_mask"] if "tool_mask" in batch else mask
