"""The tasks a run trains on, validates on and is evaluated on are disjoint."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import graphmeta as gm
from graphmeta.train.episode_sampler import FIXED_STREAM, SPLITS, TRAIN_STREAM, EpisodeSampler, derive_seed


def task_keys(params: dict[str, np.ndarray]) -> set[bytes]:
    """One key per task: the bytes of all its true parameters."""
    names = sorted(params)
    count = len(params[names[0]])
    return {b"".join(np.ascontiguousarray(params[name][t]).tobytes() for name in names) for t in range(count)}


@pytest.mark.parametrize("card", ["compositional-chain", "sinusoid"])
def test_training_validation_and_test_tasks_of_a_synthetic_family_never_coincide(card):
    family = gm.load_family(card)
    sampler = EpisodeSampler(family, 8, 3, 5, seed=0)
    training = set().union(*(task_keys(family.task_params(8, "train", derive_seed(0, TRAIN_STREAM, i)))
                             for i in range(50)))
    fixed = {split: task_keys(family.task_params(20, split, derive_seed(0, FIXED_STREAM, SPLITS.index(split))))
             for split in ("val", "test")}
    assert len(training) == 400 and all(len(keys) == 20 for keys in fixed.values())  # no task drawn twice
    assert not training & fixed["val"] and not training & fixed["test"] and not fixed["val"] & fixed["test"]
    by_split = {split: set().union(*(task_keys(family.task_params(8, split, seed)) for seed in range(5)))
                for split in SPLITS}  # the same seeds in every split: the split alone keeps them apart
    assert not by_split["train"] & by_split["val"] and not by_split["train"] & by_split["test"]
    assert not by_split["val"] & by_split["test"]
    batch = sampler.fixed("val", 20)  # the sampler's validation tasks are those parameters' tasks
    again = family.sample(20, 3, 5, "val", seed=derive_seed(0, FIXED_STREAM, SPLITS.index("val")))
    assert batch.support.values.equal(again.support.values)


def test_the_tasks_of_a_table_are_split_by_name_and_sampled_from_their_split_only():
    rng = np.random.default_rng(0)
    table = pd.DataFrame({"site": np.repeat([f"s{i}" for i in range(10)], 8), "x": rng.normal(size=80)})
    table["y"] = table["site"].str[1:].astype(float)  # y names the site: one value per task
    family = gm.DataFrameFamily(table, task_column="site", graph={"dependencies": [["x", "y"]]}, seed=3)
    splits = {split: set(family.tasks[split]) for split in SPLITS}
    assert set().union(*splits.values()) == {f"s{i}" for i in range(10)}
    assert sum(map(len, splits.values())) == 10 and all(splits.values())
    seen = {}
    for split, names in splits.items():
        sampled = family.sample(len(names) * 4, 2, 2, split, seed=0)
        y = sampled.support.values[..., family.layout.value_slices["y"]]  # standardised, one value per site
        seen[split] = {round(float(value), 5) for value in y.flatten()}
        assert len(seen[split]) == len(names), split  # every task of the split, and no other
    assert not seen["train"] & seen["val"] and not seen["train"] & seen["test"] and not seen["val"] & seen["test"]
