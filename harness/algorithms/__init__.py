"""The math, as pure torch functions on hand-made-testable tensors: advantage estimators, importance weights of the
three levels, advantage/clip/ratio statistics, the ratio's noise floor and where tokens sit in a completion's text;
`credit/` holds the estimators that spread an outcome reward over tokens (entropy bonus, GTPO, KTAE, Monte-Carlo
step values).

May import: `harness.config` (the registries and metric names these functions are declared in). Never trl,
transformers or accelerate: nothing here knows about a trainer.
"""
