"""Fixtures for the task families: a check that a family's fast batch equals `TaskBatch.from_tensors`."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch

from graphmeta.data import DenseGraphs, Split, TaskBatch
from graphmeta.taskgraph import ColumnLayout


def _node_inputs(batch: TaskBatch, split: Split) -> tuple[dict, dict]:
    """The ``{node: (x, y)}`` and ``{node: observed}`` that ``from_tensors`` takes, read back from ``split``."""
    from torch_geometric.data import Data

    layout = ColumnLayout(batch.graph)
    data, observed = {}, {}
    for n, name in enumerate(batch.graph.names):
        spec = batch.graph.subtask(name)
        value = split.values[..., layout.value_slices[name]]
        y = value.argmax(-1) if spec.kind == "classification" else value
        if spec.learner.type == "gnn":
            g = split.graphs[name]
            x = []
            for t in range(split.num_tasks):
                for k in range(split.shots):
                    real = g.mask[t, k]
                    edges = g.adjacency[t, k][real][:, real].nonzero().t().contiguous()
                    x.append(Data(x=g.x[t, k][real], edge_index=edges))
        else:
            x = split.features[..., layout.feature_slices[name]] if spec.in_dim else None
        if not spec.observed:  # a latent node: features only, never labels or a mask
            data[name] = (x, None)
            continue
        data[name] = (x, y)
        observed[name] = split.observed[..., n]
    return data, observed


def _padded(g: DenseGraphs, size: int) -> DenseGraphs:
    extra = size - g.x.shape[2]
    pad = torch.nn.functional.pad
    return DenseGraphs(pad(g.x, (0, 0, 0, extra)), pad(g.adjacency, (0, extra, 0, extra)), pad(g.mask, (0, extra)))


def _assert_same(fast: Split, slow: Split) -> None:
    assert torch.equal(fast.features, slow.features)
    assert torch.equal(fast.values, slow.values)
    assert torch.equal(fast.observed, slow.observed)
    assert fast.graphs.keys() == slow.graphs.keys()
    for name, g in fast.graphs.items():
        h = _padded(slow.graphs[name], g.x.shape[2])
        assert torch.equal(g.mask, h.mask) and torch.equal(g.x, h.x) and torch.equal(g.adjacency, h.adjacency)


@pytest.fixture
def matches_from_tensors() -> Callable[[TaskBatch], None]:
    """Assert that a batch built directly from layout offsets equals the validated ``from_tensors`` path."""

    def check(batch: TaskBatch) -> None:
        support, support_observed = _node_inputs(batch, batch.support)
        query, query_observed = _node_inputs(batch, batch.query)
        slow = TaskBatch.from_tensors(batch.graph, support, query, support_observed, query_observed)
        _assert_same(batch.support, slow.support)
        _assert_same(batch.query, slow.query)

    return check
