"""Deliberately broken reward functions for the bad-input tests."""


def wrong_count(completions, **_):
    return [0.0] * (len(completions) + 1)


def nan_reward(completions, **_):
    return [float("nan")] * len(completions)


def raises_on_first_call(completions, **_):
    raise RuntimeError("the scoring service is down")


# Rewards that pass the pre-flight call (call 1) and fail later, as user code does once real completions arrive:
# call N counts across the run (trl calls each reward once per generation batch).
_calls = {"nan": 0, "count": 0, "raise": 0}


def nan_on_third_call(completions, **_):
    _calls["nan"] += 1
    return [float("nan") if _calls["nan"] >= 3 else 0.0] * len(completions)


def wrong_count_on_third_call(completions, **_):
    _calls["count"] += 1
    return [0.0] * (len(completions) - (1 if _calls["count"] >= 3 else 0))


def raises_on_third_call(completions, **_):
    _calls["raise"] += 1
    if _calls["raise"] >= 3:
        return [1 / 0 for _ in completions]
    return [0.0] * len(completions)


def token_raises_on_first_call(tokens, **_):
    raise KeyError("tokens_offsets")
