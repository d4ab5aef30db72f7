"""Tasks: datasets and the reward functions that score them, referenced from `conf/reward/*.yaml` (`strings`: copy and
addition, `chain`, `gsm8k`), reward models from local directories (`reward_models`), and `loading`, which instantiates
a task from its config and checks its rewards once before training.

May import: `harness.algorithms` (where tokens sit in a completion's text), `harness.config`.
"""
