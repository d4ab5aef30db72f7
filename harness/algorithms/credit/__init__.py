"""Per-token credit from outcome rewards: advantage estimators that need no hand-written token rewards.

GSPO-token differs from GSPO only when the advantage varies along a completion. With an outcome reward only (a math
answer checker, unit tests, a verifier) trl's advantage is one number per completion; these estimators spread it
over the tokens using what every run already has, each from its paper's own definition:

- `entropy_bonus`: the outcome advantage plus a clipped, detached entropy term (Cheng et al., arXiv 2506.14758).
- `gtpo`: entropy-weighted token rewards built separately for the successful and unsuccessful completions of a
  group (Tan et al., arXiv 2508.04349).
- `ktae`: a per-token score from contingency-table statistics of which token ids occur in correct versus incorrect
  completions of a group (Sun et al., arXiv 2505.16826).
- `mc_value`: step boundaries and step advantages V(s_next) - V(s) from Monte-Carlo values (Kazemnejad et al.,
  VinePPO, arXiv 2410.01679); generating the continuations is the trainer's job.
- `groups`: trl's layout (the `num_generations` completions of a prompt are consecutive rows), the outcome advantage
  and the correct/incorrect split the estimators share.

Every function takes explicit tensors and returns (N, T) advantages with 0 on padding (`mask` is 1 on valid tokens).
Shared invariants, tested against plain-loop references: with the shaping switched off an estimator returns trl's
outcome advantage on every valid token exactly, and a group whose rewards are all equal gets 0.
"""
