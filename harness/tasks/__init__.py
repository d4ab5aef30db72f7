"""Tasks: datasets and the reward functions that score them, referenced from `conf/reward/*.yaml`."""
