"""The latent variant of the compositional family: intermediate nodes hidden, sinks observed."""

from __future__ import annotations

import torch

import graphmeta as gm
from graphmeta.families import CompositionalFamily


def test_non_sinks_are_latent_and_hidden_while_the_supervised_twin_gives_them():
    family = gm.load_family("compositional-dag-latent")
    graph = family.graph
    sinks = [name for name in graph.names if not graph.children(name)]
    assert set(graph.names) - set(graph.latent) == set(sinks) and graph.latent
    supervised = family.supervised()
    assert not supervised.graph.latent
    assert [list(e) for e in supervised.graph.edges] == [list(e) for e in graph.edges]
    batch, full = family.sample(3, 5, 6, seed=1), supervised.sample(3, 5, 6, seed=1)
    latent = torch.tensor([name in graph.latent for name in graph.names])
    assert not batch.support.observed[..., latent].any() and batch.support.observed[..., ~latent].all()
    columns = torch.tensor([c for name in graph.latent for c in range(*_span(family, name))])
    assert (batch.query.values[..., columns] == 0).all() and (full.query.values[..., columns] != 0).any()
    kept = torch.tensor([c for c in range(batch.query.values.shape[-1]) if c not in set(columns.tolist())])
    torch.testing.assert_close(batch.query.values[..., kept], full.query.values[..., kept])
    torch.testing.assert_close(batch.query.features, full.query.features)


def test_a_model_meta_trains_on_it():
    family = CompositionalFamily(num_nodes=6, latent_nodes="non-sinks", seed=2)
    model = gm.GraphMetaLearner(family.graph, inner_steps=1)
    loss, metrics = model.meta_loss(family.sample(4, 5, 5, seed=0))
    loss.backward()
    latent = [family.graph.names.index(name) for name in family.graph.latent]
    assert torch.isfinite(loss) and metrics["loss_after"][latent].isnan().all()
    bank = model.banks[0]
    rows = [bank.names.index(name) for name in family.graph.latent]
    assert bank.theta["head_bias"].grad[rows].abs().sum() > 0  # reached through the children


def _span(family, name):
    columns = family.layout.value_slices[name]
    return columns.start, columns.stop
