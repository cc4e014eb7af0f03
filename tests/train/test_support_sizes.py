"""Support sizes drawn from a range: the sizes, the padded batches, the sampler, the config, a trainer."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import graphmeta as gm
from graphmeta.train.config import TrainConfig
from graphmeta.train.episode_sampler import EpisodeSampler, support_sizes


def test_support_sizes_are_log_uniform_over_the_range():
    assert support_sizes(7, np.array([0.1, 0.9])) == 7
    sizes = np.array(support_sizes((1, 200), np.random.default_rng(0).random(20_000)))
    assert sizes.min() == 1 and sizes.max() == 200
    # each doubling gets the same share: as many ones as sizes 100..200
    ones, top = (sizes == 1).mean(), (sizes >= 100).mean()
    assert ones == pytest.approx(np.log(2) / np.log(201), abs=0.01)
    assert top == pytest.approx(np.log(201 / 100) / np.log(201), abs=0.01)
    assert support_sizes((3, 9), (np.arange(4) + 0.5) / 4) == sorted(support_sizes((3, 9), (np.arange(4) + 0.5) / 4))
    assert support_sizes((5, 5), np.array([0.0, 0.99])) == [5, 5]


def test_a_batch_mixes_sizes_in_the_padded_layout(family):
    mixed = family.sample(3, [1, 4, 2], 5, seed=0)
    full = family.sample(3, 4, 5, seed=0)
    assert mixed.shots == 4 and mixed.query_shots == 5
    kept = torch.tensor([[1, 0, 0, 0], [1, 1, 1, 1], [1, 1, 0, 0]], dtype=torch.bool)
    assert torch.equal(mixed.support.observed, kept[..., None].expand_as(full.support.observed))
    torch.testing.assert_close(mixed.support.values, full.support.values * kept[..., None])
    torch.testing.assert_close(mixed.query.values, full.query.values)  # the same tasks, the same query rows
    with pytest.raises(gm.ConfigError, match="2 support sizes for 3 tasks"):
        family.sample(3, [1, 2], 5)


def test_the_sampler_draws_sizes_per_task_reproducibly(family):
    sampler = EpisodeSampler(family, 8, (1, 6), 5, seed=0)
    first = sampler.next()
    again = EpisodeSampler(family, 8, (1, 6), 5, seed=0).next()
    assert torch.equal(first.support.observed, again.support.observed)
    sizes = first.support.observed[..., 0].sum(1)
    assert len(set(sizes.tolist())) > 1 and sizes.min() >= 1 and sizes.max() <= 6
    fixed = sampler.fixed("val", 6)  # sizes spread evenly over the range, the same at every call
    assert fixed.support.observed[..., 0].sum(1).tolist() == [1, 1, 2, 3, 4, 5]
    assert torch.equal(fixed.support.values, sampler.fixed("val", 6).support.values)
    assert sampler.fixed("val", 6, shots=3).shots == 3


def test_train_shots_may_be_a_range():
    assert TrainConfig.from_dict({"shots": [1, 20]}, "train").shots == (1, 20)
    with pytest.raises(gm.ConfigError, match=r"train\.shots must be an integer >= 1 or a pair \[low, high\] of "
                                             r"integers >= 1 with low <= high, got \[20, 1\]"):
        TrainConfig.from_dict({"shots": [20, 1]}, "train")
    with pytest.raises(gm.ConfigError, match="online mode keeps every arriving task at one support size"):
        TrainConfig.from_dict({"shots": [1, 20], "mode": "online"}, "train")


def test_a_trainer_on_a_range_evaluates_at_any_size(make_trainer):
    trainer = make_trainer(message_passing=True, shots=[1, 6], steps=4)
    trainer.fit()
    assert trainer.run.read_config()["train"]["shots"] == [1, 6]
    for shots in (1, 10):
        report = trainer.evaluate(shots=shots, num_tasks=4, ablation=False, scratch_steps=0)
        assert report.shots == shots and np.isfinite(report.methods["adapted"].total_loss().mean)
