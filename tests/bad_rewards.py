"""Deliberately broken reward functions for the bad-input tests."""


def wrong_count(completions, **_):
    return [0.0] * (len(completions) + 1)


def nan_reward(completions, **_):
    return [float("nan")] * len(completions)


def raises_on_first_call(completions, **_):
    raise RuntimeError("the scoring service is down")


class FailsOnCall:
    """A reward that passes its pre-flight call (call 1) and the first generations, then fails on call `call`, as user
    code does once real completions arrive: `how` is nan (returns NaN), count (one value too few) or raise
    (ZeroDivisionError). Instantiated once per run (`_partial_: false`), so the count is the run's:
    `reward.functions.NAME.fn={_target_: tests.bad_rewards.FailsOnCall, how: nan}`."""

    def __init__(self, how: str = "nan", call: int = 3):
        self.how, self.call, self.calls = how, call, 0

    def __call__(self, completions, **_):
        self.calls += 1
        if self.calls < self.call:
            return [0.0] * len(completions)
        if self.how == "nan":
            return [float("nan")] * len(completions)
        if self.how == "count":
            return [0.0] * (len(completions) - 1)
        return [1 / 0 for _ in completions]


def token_raises_on_first_call(tokens, **_):
    raise KeyError("tokens_offsets")
