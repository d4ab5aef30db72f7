"""The advantage estimators (`advantage.estimator`): torch-free declarations; the math is in
harness/algorithms/advantages.py and, for the estimators that spread an outcome reward over tokens,
harness/algorithms/credit/, imported when training starts.

Each entry's compute function is `fn(batch: AdvantageBatch, **params) -> Tensor (N, T)` on all ranks' rows
(harness/algorithms/batch.py). Registration order is the order of the generated tables and of error messages.
Add one with `@ESTIMATORS.register(...)` on its parameters' frozen dataclass (docs/extending.md).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from harness.config.registry import ENTROPIES, GENERATIONS, TOKEN_REWARDS, Entry, Registry
from harness.config.schema import ConfigError, doc, ranged


@dataclass(frozen=True, kw_only=True)
class Estimator(Entry):
    """An advantage estimator. `per_sequence`: its advantage is one value per sequence (constant along each row of
    what `compute` returns); the trainer then hands trl the (B,) column, so trl's loss and its clip metrics (which
    average over sequences for a (B, 1) ratio) are exactly trl's."""

    per_sequence: bool = False


ESTIMATORS: Registry[Estimator] = Registry("advantage.estimator", Estimator)


@ESTIMATORS.register(
    "outcome",
    "trl's group-normalised outcome advantage: one value per sequence",
    compute="harness.algorithms.advantages:outcome",
    per_sequence=True,
)
@dataclass(frozen=True, kw_only=True)
class Outcome:
    """Outcome supervision (DeepSeekMath, arXiv 2402.03300 §4.1.2), as trl computes it:

        A_{i,t} = (r_i - mean_group(r)) / (std_group(r) + 1e-4)    on every valid token t of completion i

    (trl's `scale_rewards` chooses the group's std, the batch's std or none; 1e-4 is trl's epsilon).
    """


@ESTIMATORS.register(
    "process",
    "per-token process advantage from the task's token rewards (DeepSeekMath process supervision)",
    compute="harness.algorithms.advantages:process",
    needs=frozenset({TOKEN_REWARDS}),
)
@dataclass(frozen=True, kw_only=True)
class Process:
    """Process supervision (DeepSeekMath, arXiv 2402.03300 §4.1.3), with an optional discount:

        r~_k    = (r_k - mean_R(r)) / (std_R(r) + 1e-4)        k in R, the group's reward positions
        A_{i,t} = sum_{k in R, k >= t} gamma^(k - t) r~_k

    gamma = 1 is the paper's sum of the normalised rewards of the steps at or after t; gamma < 1 (the
    `advantage=discounted` option) discounts later steps, as a return in RL does.
    """

    gamma: float = ranged(1.0, gt=0, le=1, doc="discount along the sequence (1: DeepSeekMath's undiscounted sum)")


@ESTIMATORS.register(
    "entropy_bonus",
    "outcome advantage plus a clipped, detached entropy term per token (Cheng et al., arXiv 2506.14758)",
    compute="harness.algorithms.credit.entropy_bonus:entropy_bonus",
    needs=frozenset({ENTROPIES}),
)
@dataclass(frozen=True, kw_only=True)
class EntropyBonus:
    """Entropy-based advantage shaping (Cheng et al., "Reasoning with Exploration: An Entropy Perspective",
    arXiv 2506.14758, §3), on trl's outcome advantage A_i and the sampling policy's token entropy H_{i,t}:

        A_{i,t} = A_i + min(alpha * H_{i,t}, |A_i| / kappa)        H detached

    The clip keeps the term below |A_i| (kappa > 1): it never flips the advantage's sign, and alpha = 0 is
    exactly the outcome advantage. alpha = 0.4, kappa = 2: the defaults reimplementations cite from the paper, not
    checked against its text (the stored copies reachable here hold its abstract and introduction only).
    """

    alpha: float = ranged(0.4, ge=0, doc="weight of the entropy term (0: trl's outcome advantage)")
    kappa: float = ranged(2.0, gt=1, doc="the entropy term is clipped at abs(A_i) / kappa")


@ESTIMATORS.register(
    "gtpo",
    "entropy-weighted token rewards, built separately for a group's successful and unsuccessful completions (GTPO)",
    compute="harness.algorithms.credit.gtpo:gtpo",
    needs=frozenset({ENTROPIES}),
)
@dataclass(frozen=True, kw_only=True)
class Gtpo:
    """GTPO (Tan et al., arXiv 2508.04349, §2.1, Eqs. 3, 5, 6). Within a group, O+ = rewards above the group
    mean (the correct completions for 0/1 rewards), O- = the rest; d_t / h_t = completions of O+ / O- active at t:

        r~_{i,t} = alpha1 r_i + alpha2 H_{i,t} / sum_{k in O+ at t} H_{k,t} * d_t                i in O+
        r~_{j,t} = alpha1 r_j - alpha2 (1/H_{j,t}) / sum_{k in O- at t} (1/H_{k,t}) * h_t        j in O-

    normalisation=polarity (the paper's Eq. 6): r~ z-scored separately over the group's O+ tokens and O- tokens;
    with 0/1 rewards this keeps only the entropy redistribution (the outcome sign and alpha1 cancel).
    normalisation=outcome (this harness's variant): A_{i,t} = alpha1 A_i + alpha2 s_{i,t}, trl's outcome advantage
    plus the unnormalised entropy term s of the lines above; alpha2 = 0 is exactly the outcome advantage.
    alpha1 = 1, alpha2 = 0.1: the paper's values as two reproductions quote them, not checked against its text (the
    stored copies reachable here hold its abstract and introduction only). Groups with equal rewards get 0.
    """

    alpha1: float = ranged(1.0, ge=0, doc="weight of the sequence reward (outcome: of trl's advantage)")
    alpha2: float = ranged(0.1, ge=0, doc="weight of the entropy-weighted token term (0: no shaping)")
    normalisation: Literal["polarity", "outcome"] = doc(
        "polarity", "`polarity`: the paper's Eq. 6, O+ and O- z-scored apart; `outcome`: trl's advantage + shaping"
    )


@ESTIMATORS.register(
    "ktae",
    "outcome advantage plus a key-token score from which token ids occur in correct vs incorrect completions (KTAE)",
    compute="harness.algorithms.credit.ktae:ktae",
)
@dataclass(frozen=True, kw_only=True)
class Ktae:
    """KTAE (Sun et al., arXiv 2505.16826, §3). Per group and token id v, a contingency table over completions
    (a / b: correct / incorrect completions containing v; c, d the others; N scored completions):

        F(v)  = exp(-2 (a+b)!(c+d)!(a+c)!(b+d)! / (a! b! c! d! N!))        Fisher's exact test
        IG(v) = H(correct) - H(correct | contains v)                       information gain, bits
        D(v)  = asin sqrt(a/(a+c)) - asin sqrt(b/(b+d)) + h3 (TF_T/TF_F - TF_F/TF_T)
        A_{i,t} = A_i + sigmoid((h1 F + h2 IG) D) - 0.5                    v = token t of completion i

    TF_{T/F}: BM25-saturated frequency of v in the concatenated correct / incorrect completions (k1, b), with
    add-one smoothing in the ratios. Token ids only: any tokenizer. h1 = h2 = 0 is exactly the outcome advantage.
    h1..h3 = 1 and BM25's customary k1 = 1.2, b = 0.75 (not read off the paper, see the module docstring).
    """

    h1: float = ranged(1.0, ge=0, doc="weight of Fisher's exact-test significance")
    h2: float = ranged(1.0, ge=0, doc="weight of the information gain")
    h3: float = ranged(1.0, ge=0, doc="weight of the frequency-ratio direction term")
    bm25_k1: float = ranged(1.2, gt=0, doc="BM25 term-frequency saturation")
    bm25_b: float = ranged(0.75, ge=0, le=1, doc="BM25 length normalisation")


@ESTIMATORS.register(
    "mc_value",
    "Monte-Carlo step values from K extra continuations per step boundary: A = V(s_next) - V(s) (VinePPO)",
    compute="harness.algorithms.credit.mc_value:mc_value",
    needs=frozenset({GENERATIONS}),
)
@dataclass(frozen=True, kw_only=True)
class McValue:
    """VinePPO's Monte-Carlo credit (Kazemnejad et al., arXiv 2410.01679, §4). A completion is cut into steps at
    step boundaries; s_k is the prompt plus the completion's tokens before step k (s_0 the prompt). From each s_k the
    trainer samples K continuations with the run's own sampling settings, scores each (prefix + continuation) with
    the task's reward functions (weighted as trl weighs them), and every token of step k gets

        A_{i,t} = V^(s_{k+1}) - V^(s_k)   (+ R_i on the last step, V^(s_K) = 0),   V^(s) = mean of the K rewards

    so the step advantages of a completion add up to R_i - V^(s_0). Undiscounted, unnormalised (the paper's LLM
    setting: gamma = 1, the MC values replace PPO's critic). Boundaries: `separator` (a step ends with each
    occurrence of its tokens) or `every` N tokens, exactly one of them. Cost: K continuations per distinct prefix,
    all in ONE batched `generate` call per generation step (identical prefixes, e.g. s_0 of a group, are shared);
    `mc/generations` logs how many. Step rewards are not added: V^ estimates the return of the task's sequence
    reward only, so adding a token reward would count a different return than the one V^ estimates.
    K = 9: the number of MC rollouts per state we recall from the paper's experiments; the stored copy of the paper
    available here ends before its experimental setup (§5), so the value is not checked against its text.
    """

    rollouts: int = ranged(9, ge=1, doc="K: continuations sampled from each step boundary's prefix")
    separator: str | None = doc(None, "a step ends with each occurrence of this string (its tokens); or use `every`")
    every: int | None = ranged(None, ge=1, doc="a step is this many tokens; or use `separator`")

    def __post_init__(self):
        if (self.separator is None) == (self.every is None):
            given = "both" if self.separator is not None else "neither"
            raise ConfigError(
                f"advantage.estimator=mc_value needs step boundaries: set exactly one of advantage.separator "
                f"(a string) and advantage.every (an integer >= 1); {given} set"
            )
        if self.separator is not None and not self.separator:
            raise ConfigError(
                "advantage.separator='' marks no boundary; give a non-empty string or use advantage.every"
            )
