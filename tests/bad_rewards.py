"""Deliberately broken reward functions for the bad-input tests."""


def wrong_count(completions, **_):
    return [0.0] * (len(completions) + 1)


def nan_reward(completions, **_):
    return [float("nan")] * len(completions)
