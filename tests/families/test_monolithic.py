"""`MonolithicFamily`: a graph's tasks as one MLP from every input to the observed sinks sees them."""

from __future__ import annotations

import math

import pytest
import torch

import graphmeta as gm
from tests.test_model import task_data


def graph_with_an_observed_input() -> gm.TaskGraph:
    """``x`` (observed, with children) -> latent ``h`` -> sinks ``y`` (2 outputs) and ``z``; ``x`` -> ``z``."""
    return (gm.TaskGraph("g").add_subtask("x", in_dim=2).add_subtask("h", in_dim=1, observed=False)
            .add_subtask("y", out_dim=2).add_subtask("z", in_dim=1)
            .add_dependency("x", "h").add_dependency("h", "y").add_dependency("h", "z").add_dependency("x", "z"))


class TensorFamily:
    """A family of fixed tensors (what ``MonolithicFamily`` asks of a family: graph, sample, fixed_tasks)."""

    def __init__(self, graph: gm.TaskGraph, observed: dict | None = None) -> None:
        self.graph = graph
        data = task_data(graph, 3, 5, 0)
        self.data = {name: (x, None) if not graph.subtask(name).observed else (x, y) for name, (x, y) in data.items()
                     if graph.subtask(name).observed or x is not None}
        self.observed = observed

    def sample(self, num_tasks, shots, query, split="train", seed=None) -> gm.TaskBatch:
        return gm.TaskBatch.from_tensors(self.graph, self.data, self.data, self.observed, self.observed)

    def fixed_tasks(self, split):
        return None


def test_tasks_are_every_input_and_the_observed_sinks():
    graph = graph_with_an_observed_input()
    sink_y = torch.ones(3, 5, dtype=torch.bool)
    sink_y[:, 1] = False
    family = TensorFamily(graph, {"x": torch.ones(3, 5, dtype=torch.bool), "y": sink_y,
                                  "z": torch.ones(3, 5, dtype=torch.bool)})
    monolithic = gm.MonolithicFamily(family)
    assert monolithic.sinks == ["y", "z"]
    assert monolithic.graph.names == ["outputs"]
    outputs = monolithic.graph.subtask("outputs")
    original = family.sample(3, 5, 5)
    assert outputs.in_dim == original.support.features.shape[-1] + 1  # every feature, then x's value
    assert outputs.out_dim == 3  # y's two outputs, then z's
    batch = monolithic.sample(3, 5, 5)
    assert batch.graph is monolithic.graph
    features = batch.support.features
    torch.testing.assert_close(features[..., :-1], original.support.features)
    torch.testing.assert_close(features[..., -1:], torch.as_tensor(family.data["x"][1]).to(features.dtype))
    values = torch.cat([torch.as_tensor(family.data[name][1]) for name in ("y", "z")], dim=-1)
    observed = batch.support.observed[..., 0]
    torch.testing.assert_close(batch.support.values[observed], values.to(features.dtype)[observed])
    assert observed.tolist() == sink_y.tolist()  # a row counts where every sink is observed


def test_scores_are_each_sinks_query_error_and_nan_elsewhere():
    graph = graph_with_an_observed_input()
    monolithic = gm.MonolithicFamily(TensorFamily(graph))
    torch.manual_seed(0)
    model = gm.GraphMetaLearner(monolithic.graph).double()
    batch = monolithic.sample(3, 5, 5).to(torch.float64)
    adapted = model.adapt(batch, steps=1)
    scores = monolithic.scores(adapted, batch)
    predicted = adapted.predict({"outputs": batch.query.features})["outputs"]
    squared = (predicted - batch.query.values) ** 2
    names = graph.names
    torch.testing.assert_close(scores["mse"][:, names.index("y")], squared[..., :2].mean(-1).mean(-1))
    torch.testing.assert_close(scores["mse"][:, names.index("z")], squared[..., 2].mean(-1))
    assert scores["loss"][:, [names.index("x"), names.index("h")]].isnan().all()
    assert scores["accuracy"].isnan().all()
    std = model.banks[0].log_noise_std[0].exp().detach()
    nll = -torch.distributions.Normal(predicted[..., 2], std[2]).log_prob(batch.query.values[..., 2])
    torch.testing.assert_close(scores["nll"][:, names.index("z")], nll.mean(-1))
    # the monolithic learner's own loss on its one node is the mean over the sinks' outputs
    loss = adapted.evaluate(batch)["mse"][:, 0]
    torch.testing.assert_close(loss, squared.mean(-1).mean(-1))
    assert math.isfinite(float(scores["nll"][:, names.index("y")].mean()))


def test_graphs_without_its_peer_are_refused_with_the_reason():
    observed = gm.TaskGraph("plain").add_subtask("a", in_dim=1).add_subtask("b").add_dependency("a", "b")
    with pytest.raises(gm.ConfigError, match="no monolithic baseline for task graph 'plain': it has no latent"):
        gm.MonolithicFamily(TensorFamily(observed))
    classes = (gm.TaskGraph("classes").add_subtask("h", in_dim=1, observed=False)
               .add_subtask("c", kind="classification", num_classes=3).add_dependency("h", "c"))
    with pytest.raises(gm.ConfigError, match="sink\\(s\\) 'c' are classification subtasks"):
        gm.MonolithicFamily(TensorFamily(classes))
