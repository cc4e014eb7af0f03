"""The family interface shared by every family: shapes, seeding, splits, bad arguments."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from graphmeta import ConfigError
from graphmeta.data import TaskBatch
from graphmeta.families import (
    BayesNetFamily,
    CompositionalFamily,
    GaussianNetFamily,
    GraphSubtasksFamily,
    SinusoidFamily,
)

MAKERS = {
    "sinusoid": lambda: SinusoidFamily(noise=0.1),
    "compositional": lambda: CompositionalFamily("dag", num_nodes=12, in_dim=2),
    "bayesnet-dirichlet": lambda: BayesNetFamily("asia"),
    "bayesnet-latent": lambda: BayesNetFamily("asia", prior="latent"),
    "gaussian": lambda: GaussianNetFamily("ecoli70", prior="latent"),
    "graph-subtasks": lambda: GraphSubtasksFamily(),
}


@pytest.fixture(params=list(MAKERS))
def family(request):
    return MAKERS[request.param]()


def _equal(a: TaskBatch, b: TaskBatch) -> bool:
    same = [torch.equal(getattr(a, side).values, getattr(b, side).values) for side in ("support", "query")]
    same += [torch.equal(getattr(a, side).features, getattr(b, side).features) for side in ("support", "query")]
    same += [torch.equal(a.support.graphs[n].x, b.support.graphs[n].x) for n in a.support.graphs]
    return all(same)


def test_sample_shapes(family):
    batch = family.sample(3, 4, 5, split="val", seed=1)
    layout = family.layout
    assert batch.graph is family.graph
    assert (batch.num_tasks, batch.shots, batch.query_shots) == (3, 4, 5)
    assert batch.support.values.shape == (3, 4, layout.value_width)
    assert batch.query.features.shape == (3, 5, layout.feature_width)
    assert batch.support.observed.shape == (3, 4, len(family.graph)) and batch.support.observed.all()
    assert batch.dtype == torch.get_default_dtype()
    assert torch.isfinite(batch.support.values).all() and torch.isfinite(batch.query.values).all()


def test_batch_agrees_with_from_tensors(family, matches_from_tensors):
    matches_from_tensors(family.sample(3, 4, 5, seed=2))


def test_same_seed_same_tasks_other_seed_other_tasks(family):
    assert _equal(family.sample(4, 3, 3, seed=7), family.sample(4, 3, 3, seed=7))
    assert not _equal(family.sample(4, 3, 3, seed=7), family.sample(4, 3, 3, seed=8))


def test_splits_draw_disjoint_tasks(family):
    params = {split: family.task_params(64, split, seed=0) for split in ("train", "val", "test")}
    key = next(iter(params["train"]))
    rows = {split: {np.asarray(p[key][t]).tobytes() for t in range(64)} for split, p in params.items()}
    assert not rows["train"] & rows["val"] and not rows["train"] & rows["test"] and not rows["val"] & rows["test"]


def test_task_params_are_those_of_sample_whatever_the_shots(family):
    first = family.task_params(5, "test", seed=3)
    family.sample(5, 1, 1, "test", seed=3)
    again = family.task_params(5, "test", seed=3)
    assert first.keys() == again.keys() and all(np.array_equal(first[k], again[k]) for k in first)


def test_seed_none_takes_the_next_seed_of_the_split():
    family = SinusoidFamily()
    first, second = family.sample(2, 3, 3), family.sample(2, 3, 3)
    assert not _equal(first, second)
    assert _equal(first, SinusoidFamily().sample(2, 3, 3, seed=0))
    assert _equal(second, SinusoidFamily().sample(2, 3, 3, seed=1))
    assert _equal(family.sample(2, 3, 3, split="val"), family.sample(2, 3, 3, split="val", seed=0))


def test_family_seed_changes_the_tasks():
    assert not _equal(SinusoidFamily(seed=0).sample(2, 3, 3, seed=0), SinusoidFamily(seed=1).sample(2, 3, 3, seed=0))


@pytest.mark.parametrize("arguments, key", [
    ((0, 5, 5), "num_tasks"), ((2, 0, 5), "shots"), ((2, -1, 5), "shots"), ((2, 5, 0), "query"), ((2, 2.5, 5), "shots"),
])
def test_bad_counts_name_the_argument(arguments, key):
    with pytest.raises(ConfigError, match=key):
        SinusoidFamily().sample(*arguments)


def test_bad_split_and_seed():
    with pytest.raises(ConfigError, match="did you mean 'train'"):
        SinusoidFamily().sample(2, 3, 3, split="trian")
    with pytest.raises(ConfigError, match="seed"):
        SinusoidFamily().sample(2, 3, 3, seed=-1)
    with pytest.raises(ConfigError, match=r"SinusoidFamily\.seed must be an integer >= 0, got 'zero'"):
        SinusoidFamily(seed="zero")


@pytest.mark.parametrize("family_class, typo, meant", [
    (SinusoidFamily, "amplitudes", "amplitude"), (CompositionalFamily, "num_node", "num_nodes"),
    (BayesNetFamily, "netwrok", "network"), (GaussianNetFamily, "latent_dims", "latent_dim"),
    (GraphSubtasksFamily, "ring_probability", "ring_prob"),
])
def test_a_typo_in_a_constructor_keyword_names_the_closest_one(family_class, typo, meant):
    with pytest.raises(ConfigError, match=rf"unknown keyword '{typo}' in {family_class.__name__} "
                                          rf"\(did you mean '{meant}'\?\)"):
        family_class(**{typo: 1})


def test_config_holds_every_argument_and_rebuilds_the_family(family):
    """``config`` is read off the signature, so it cannot miss an argument."""
    import inspect

    assert list(family.config) == list(inspect.signature(type(family)).parameters)
    rebuilt = type(family)(**family.config)
    assert rebuilt.config == family.config and _equal(rebuilt.sample(2, 3, 3, seed=0), family.sample(2, 3, 3, seed=0))


def test_repr_shows_the_configuration():
    assert repr(SinusoidFamily(noise=0.5, seed=3)).startswith("SinusoidFamily(amplitude=[0.1, 5.0]")
    assert "noise=0.5" in repr(SinusoidFamily(noise=0.5, seed=3)) and "seed=3" in repr(SinusoidFamily(seed=3))
