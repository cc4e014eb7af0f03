"""A tiny task family and trainer factory: a 3-node regression chain sharing a task latent."""

from __future__ import annotations

import pytest
import torch

import graphmeta as gm

TINY = {"steps": 12, "meta_batch_size": 4, "shots": 3, "query_shots": 5, "outer_lr": 1e-2, "val_every": 4,
        "val_tasks": 6, "checkpoint_every": 4, "log_every": 2, "progress": False, "name": "run"}


@pytest.fixture(scope="session")
def family():
    return gm.load_family("compositional-chain", num_nodes=3)


@pytest.fixture
def make_trainer(tmp_path, family):
    """``make_trainer(message_passing=..., **train)``: a fresh, seeded model and its trainer in ``tmp_path``."""

    def make(message_passing: bool = False, seed: int = 0, **train) -> gm.Trainer:
        torch.manual_seed(seed)
        model = gm.GraphMetaLearner(family.graph, inner_steps=1, inner_lr=0.1, message_passing=message_passing,
                                    message_channels=8, message_rounds=1)
        return gm.Trainer(model, family, **{**TINY, "run_dir": str(tmp_path), "seed": seed, **train})

    return make


@pytest.fixture
def assert_same_state():
    """``assert_same_state(a, b)``: two state dicts are equal bit for bit."""

    def check(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
        assert a.keys() == b.keys()
        for name in a:
            assert torch.equal(a[name], b[name]), f"{name} differs"

    return check


@pytest.fixture
def rates_used():
    """``rates_used(learner)``: a list that gets the rate of every optimizer step ``learner`` takes from now on."""

    def record(learner) -> list[float]:
        rates: list[float] = []
        learner.optimizer.register_step_pre_hook(lambda optimizer, args, kwargs: rates.append(
            optimizer.param_groups[0]["lr"]))
        return rates

    return record
