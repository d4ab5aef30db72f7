"""Held-out splits of the generated tasks: disjoint from training by construction, for every seed."""

import pytest

from harness.tasks.chain import chain_dataset, chain_items
from harness.tasks.splits import HELDOUT_BUCKETS, is_heldout
from harness.tasks.strings import addition_dataset, addition_items, copy_dataset, copy_items

TASKS = {
    "copy": (copy_dataset, copy_items, {"length": 4, "alphabet": "abcd"}),
    "copy-long": (copy_dataset, copy_items, {"length": 3, "alphabet": "abcdefgh"}),
    "addition": (addition_dataset, addition_items, {"digits": 2}),
    "chain": (chain_dataset, chain_items, {"steps": 3}),
}


@pytest.mark.parametrize("task", TASKS)
def test_heldout_prompts_never_occur_in_training_for_any_seed(task):
    dataset, items, params = TASKS[task]
    space = items(**params)
    heldout = {space(i) for i in range(space.space) if is_heldout(space(i))}
    assert 0 < len(heldout) == space.count("test") < space.space
    assert space.count("train") == space.space - len(heldout)
    for seed in range(20):
        train = set(dataset(size=512, seed=seed, **params)["prompt"])
        test = dataset(size=len(heldout), seed=seed, split="test", **params)["prompt"]
        assert not train & set(test)
        assert sorted(test) == sorted(heldout)  # the whole split, each prompt once
    # the split is a property of the prompt: about 1/HELDOUT_BUCKETS of all prompts, the same in every call
    assert abs(len(heldout) / space.space - 1 / HELDOUT_BUCKETS) < 0.05
    assert dataset.split_size(split="test", **params) == len(heldout)


def test_eval_rows_are_scored_targets_and_the_size_is_checked():
    rows = copy_dataset(size=5, length=4, alphabet="abcd", seed=0, split="test")
    assert all(row["prompt"] == row["target"] + ">" for row in rows)
    with pytest.raises(ValueError, match=r"eval.size=30 is larger than the held-out split of copy \(29 prompts\)"):
        copy_dataset(size=30, length=4, alphabet="abcd", seed=0, split="test")
    with pytest.raises(ValueError, match="split='dev'; allowed: train, test"):
        copy_dataset(size=3, length=4, alphabet="abcd", seed=0, split="dev")
