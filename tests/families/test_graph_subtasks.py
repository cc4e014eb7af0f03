"""The graph-subtasks family: valid small input graphs, targets that follow the equations, shared latents."""

from __future__ import annotations

import networkx as nx
import numpy as np
import pytest
import torch

from graphmeta import GNN, ConfigError
from graphmeta.families import GraphSubtasksFamily


@pytest.fixture(scope="module")
def family() -> GraphSubtasksFamily:
    return GraphSubtasksFamily(noise=0.0)


def test_graph_declares_gnn_inputs(family):
    graph = family.graph
    assert graph.names == ["polarity", "energy", "active"]
    assert graph.parents("active") == ["polarity", "energy"]
    for name in ("polarity", "energy"):
        assert graph.subtask(name).learner == GNN() and graph.subtask(name).in_dim == family.num_types
    assert graph.subtask("active").kind == "classification" and graph.subtask("active").learner.type == "mlp"
    custom = GraphSubtasksFamily(learner={"type": "gnn", "hidden": 8, "layers": 3}).graph
    assert custom.subtask("energy").learner == GNN(hidden=8, layers=3)


def test_input_graphs_are_small_connected_molecules(family):
    batch = family.sample(6, 8, 2, seed=0)
    g = batch.support.graphs["polarity"]
    assert g is batch.support.graphs["energy"]  # both properties of the same molecule
    assert g.x.shape == (6, 8, 12, 3) and g.adjacency.shape == (6, 8, 12, 12)
    atoms = g.mask.sum(-1)
    assert atoms.min() >= 6 and atoms.max() <= 12
    assert torch.equal(g.adjacency, g.adjacency.transpose(-1, -2))
    assert g.adjacency.diagonal(dim1=-2, dim2=-1).abs().sum() == 0
    assert torch.equal(g.x.sum(-1), g.mask.to(g.x.dtype))  # one type per real atom, none on padding
    for t in range(6):
        for k in range(8):
            real = g.mask[t, k]
            assert g.adjacency[t, k][~real].sum() == 0
            assert nx.is_connected(nx.from_numpy_array(g.adjacency[t, k][real][:, real].numpy()))


def test_targets_follow_the_equations(family):
    batch = family.sample(5, 30, 1, seed=1)
    params = family.task_params(5, seed=1)
    g, values = batch.support.graphs["polarity"], batch.support.values.double()
    types = g.x.argmax(-1)  # [T, K, M]
    atoms = g.mask.sum(-1).double()
    for t in range(5):
        charge = torch.from_numpy(params["polarity_charges"][t])[types[t]]
        polarity = (torch.tanh(charge) * g.mask[t]).sum(-1) / atoms[t]
        torch.testing.assert_close(values[t, :, 0], polarity, atol=1e-5, rtol=1e-5)
        e = torch.from_numpy(params["energy_charges"][t])[types[t]]
        pairwise = torch.tanh(e[..., :, None] * e[..., None, :]) * g.adjacency[t].double()
        torch.testing.assert_close(values[t, :, 1], pairwise.sum((-1, -2)) / 2 / atoms[t], atol=1e-5, rtol=1e-5)
    assert torch.equal(values[..., 2] + values[..., 3], torch.ones_like(values[..., 2]))


def test_active_is_logistic_in_its_parents():
    family = GraphSubtasksFamily()
    batch = family.sample(1, 20_000, 1, seed=3)
    w = family.task_params(1, seed=3)["active_weights"][0]
    values = batch.support.values[0].double().numpy()
    probability = 1 / (1 + np.exp(-4 * (w[0] * values[:, 0] + w[1] * values[:, 1] + w[2])))
    assert abs(values[:, 3].mean() - probability.mean()) < 5 * np.sqrt(0.25 / 20_000)


def test_type_frequencies_vary_by_task(family):
    probs = family.task_params(200, seed=0)["type_probs"]
    np.testing.assert_allclose(probs.sum(-1), 1.0)
    assert probs.std(0).min() > 0.05


def test_latents_shared_or_independent():
    shared = GraphSubtasksFamily().task_params(100, seed=0)["latent"]
    control = GraphSubtasksFamily(shared=False).task_params(100, seed=0)["latent"]
    assert shared.shape == control.shape == (100, 4, 2)
    assert np.all(shared == shared[:, :1]) and not np.any(control[:, 0] == control[:, 1])


@pytest.mark.parametrize("arguments, key", [
    ({"learner": "mlp"}, "learner"), ({"min_nodes": 1}, "min_nodes"), ({"max_nodes": 4}, "max_nodes"),
    ({"ring_prob": 1.5}, "ring_prob"), ({"num_types": 1}, "num_types"),
])
def test_bad_parameters(arguments, key):
    with pytest.raises(ConfigError, match=key):
        GraphSubtasksFamily(**arguments)
