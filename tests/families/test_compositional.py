"""The compositional family: structures, the generative equations, the shared latent and its control."""

from __future__ import annotations

import time

import numpy as np
import pytest
import torch

from graphmeta import ConfigError
from graphmeta.families import CompositionalFamily


def test_chain_and_tree_structures():
    chain = CompositionalFamily("chain", num_nodes=5).graph
    assert chain.edges == [("n0", "n1"), ("n1", "n2"), ("n2", "n3"), ("n3", "n4")]
    tree = CompositionalFamily("tree", num_nodes=7, branching=2).graph
    assert [tree.parents(f"n{i}") for i in range(1, 7)] == [["n0"], ["n0"], ["n1"], ["n1"], ["n2"], ["n2"]]
    assert len(tree.levels()) == 3


def test_random_dag_respects_max_parents_and_is_fixed_by_the_seed():
    graph = CompositionalFamily("dag", num_nodes=200, max_parents=3, seed=5).graph
    degrees = [len(graph.parents(name)) for name in graph.names]
    assert degrees[0] == 0 and all(1 <= d <= 3 for d in degrees[1:]) and max(degrees) == 3
    assert graph == CompositionalFamily("dag", num_nodes=200, max_parents=3, seed=5).graph
    assert graph != CompositionalFamily("dag", num_nodes=200, max_parents=3, seed=6).graph


def test_values_follow_the_generative_equations():
    family = CompositionalFamily("dag", num_nodes=10, in_dim=2, noise=0.0)
    params = family.task_params(3, seed=0)
    batch = family.sample(3, 4, 2, seed=0)
    x = batch.support.features.double().reshape(3, 4, 10, 2)
    y = batch.support.values.double()
    for i, name in enumerate(family.graph.names):  # the slow, obviously-correct per-node recomputation
        parents = [family.graph.names.index(p) for p in family.graph.parents(name)]
        h = torch.cat([x[:, :, i], y[:, :, parents]], -1)
        w = torch.from_numpy(params["weights"][:, i, : h.shape[-1]])
        assert np.all(params["weights"][:, i, h.shape[-1]:] == 0)
        pre = (h * w[:, None]).sum(-1) / np.sqrt(h.shape[-1]) + torch.from_numpy(params["bias"][:, i, None])
        torch.testing.assert_close(y[:, :, i], torch.sin(pre), atol=2e-5, rtol=1e-4)


def test_noise_scale_and_well_scaled_deep_chain():
    family = CompositionalFamily("chain", num_nodes=300, noise=0.1)
    values = family.sample(8, 50, 1, seed=0).support.values
    assert values.abs().max() <= 1 + 6 * 0.1
    assert 0.3 < float(values[:, :, -100:].std()) < 1.0  # still informative at depth 300
    quiet = CompositionalFamily("chain", num_nodes=3, noise=0.0).sample(8, 50, 1, seed=0).support.values
    assert quiet.abs().max() <= 1


def test_shared_latent_and_its_independent_control():
    shared = CompositionalFamily("dag", num_nodes=20, latent_dim=3, shared=True)
    control = CompositionalFamily("dag", num_nodes=20, latent_dim=3, shared=False)
    assert shared.graph == control.graph
    assert np.array_equal(shared.mean, control.mean) and np.array_equal(shared.mixing, control.mixing)
    z_shared = shared.task_params(2000, seed=0)["latent"]
    z_control = control.task_params(2000, seed=0)["latent"]
    assert z_shared.shape == z_control.shape == (2000, 20, 3)
    assert np.all(z_shared == z_shared[:, :1])  # one latent per task
    correlation = np.corrcoef(z_control[:, 0, 0], z_control[:, 1, 0])[0, 1]
    assert abs(correlation) < 0.1  # nothing shared
    # every node has the same parameter distribution in both: (w, b) = mu + M z with z ~ N(0, I)
    for z in (z_shared, z_control):
        assert z.mean() == pytest.approx(0, abs=0.05) and z.std() == pytest.approx(1, abs=0.05)
    # the shared latent makes one node's parameters predictive of another's
    weights = shared.task_params(2000, seed=0)["weights"]
    assert abs(np.corrcoef(weights[:, 0, 0], weights[:, 5, 0])[0, 1]) > 0.1
    weights = control.task_params(2000, seed=0)["weights"]
    assert abs(np.corrcoef(weights[:, 0, 0], weights[:, 5, 0])[0, 1]) < 0.1


def test_thousand_node_graphs_sample_quickly():
    start = time.perf_counter()
    family = CompositionalFamily("dag", num_nodes=1024)
    batch = family.sample(4, 5, 5, seed=0)
    assert len(family.graph) == 1024 and batch.support.values.shape == (4, 5, 1024)
    assert time.perf_counter() - start < 5


@pytest.mark.parametrize("arguments, key", [
    ({"structure": "ring"}, "structure"), ({"num_nodes": 0}, "num_nodes"), ({"in_dim": 0}, "in_dim"),
    ({"noise": -0.1}, "noise"), ({"latent_dim": 1.5}, "latent_dim"),
])
def test_bad_parameters(arguments, key):
    with pytest.raises(ConfigError, match=key):
        CompositionalFamily(**arguments)
