"""TaskBatch construction and its DataError cases."""

import pytest
import torch
from torch_geometric.data import Data

import graphmeta as gm
from graphmeta.taskgraph import ColumnLayout


@pytest.fixture
def graph():
    return (gm.TaskGraph()
            .add_subtask("a", in_dim=2)
            .add_subtask("b", in_dim=1, kind="classification", num_classes=3)
            .add_dependency("a", "b"))


def tensors(T=2, K=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    return {"a": (torch.randn(T, K, 2, generator=g), torch.randn(T, K, 1, generator=g)),
            "b": (torch.randn(T, K, 1, generator=g), torch.randint(0, 3, (T, K), generator=g))}


def test_layout_of_values_and_features(graph):
    data = tensors()
    batch = gm.TaskBatch.from_tensors(graph, data, data)
    layout = ColumnLayout(graph)
    assert batch.num_tasks == 2 and batch.shots == 4 and batch.query_shots == 4
    assert torch.equal(batch.support.features[..., layout.feature_slices["a"]], data["a"][0])
    assert torch.equal(batch.support.values[..., layout.value_slices["a"]], data["a"][1])
    one_hot = batch.support.values[..., layout.value_slices["b"]]
    assert torch.equal(one_hot.argmax(-1), data["b"][1]) and torch.equal(one_hot.sum(-1), torch.ones(2, 4))
    assert batch.support.observed.all()


def test_single_task_mapping_gets_a_task_axis(graph):
    data = {name: (x[0], y[0]) for name, (x, y) in tensors().items()}
    batch = gm.TaskBatch.from_tensors(graph, data, data)
    assert batch.num_tasks == 1 and batch.shots == 4


def test_float64_is_kept_and_to_casts(graph):
    data = {k: (x.double(), y.double() if y.is_floating_point() else y) for k, (x, y) in tensors().items()}
    batch = gm.TaskBatch.from_tensors(graph, data, data)
    assert batch.dtype == torch.float64
    assert batch.to(torch.float32).dtype == torch.float32
    assert batch.to(torch.float32).support.observed.dtype == torch.bool


def test_select_takes_tasks(graph):
    data = tensors(T=3)
    batch = gm.TaskBatch.from_tensors(graph, data, data).select([2, 0])
    assert batch.num_tasks == 2
    assert torch.equal(batch.support.features[0], gm.TaskBatch.from_tensors(graph, data, data).support.features[2])


def test_observed_mask_marks_missing_values(graph):
    data = tensors()
    observed = {"b": torch.tensor([[True, False, True, True], [True, True, True, False]])}
    batch = gm.TaskBatch.from_tensors(graph, data, data, support_observed=observed)
    assert not batch.support.observed[0, 1, 1] and batch.support.observed[0, 1, 0]
    assert batch.support.values[0, 1, 1:].abs().sum() == 0  # a missing value is stored as zeros


@pytest.mark.parametrize("mutate, message", [
    (lambda d: d["a"][1].__setitem__((0, 1, 0), float("nan")), "NaN or inf"),
    (lambda d: d["a"][0].__setitem__((1, 0, 1), float("inf")), "NaN or inf"),
    (lambda d: d.__setitem__("a", (d["a"][0], torch.randn(2, 4, 3))), "shape"),
    (lambda d: d.__setitem__("a", (d["a"][0][..., :1], d["a"][1])), "shape"),
    (lambda d: d.__setitem__("a", (d["a"][0], torch.ones(2, 4, 1, dtype=torch.long))), "floating point"),
    (lambda d: d.__setitem__("b", (d["b"][0], d["b"][1].float())), "integer"),
    (lambda d: d["b"][1].__setitem__((0, 0), 3), "out of range"),
    (lambda d: d["b"][1].__setitem__((0, 0), -1), "out of range"),
    (lambda d: d.pop("b"), r"no data for node\(s\) 'b'"),
])
def test_bad_data_names_the_node(graph, mutate, message):
    data = tensors()
    mutate(data)
    with pytest.raises(gm.DataError, match=message) as error:
        gm.TaskBatch.from_tensors(graph, data, tensors())
    assert "'a'" in str(error.value) or "'b'" in str(error.value)


def test_empty_support_set_is_an_error(graph):
    data = tensors()
    observed = {"a": torch.tensor([[True] * 4, [False] * 4])}
    with pytest.raises(gm.DataError, match="empty support set for node 'a' in task 1"):
        gm.TaskBatch.from_tensors(graph, data, data, support_observed=observed)
    empty = {name: (x[:, :0], y[:, :0]) for name, (x, y) in data.items()}
    with pytest.raises(gm.DataError, match="empty support set"):
        gm.TaskBatch.from_tensors(graph, empty, data)


def test_nan_in_a_masked_value_is_allowed(graph):
    data = tensors()
    data["a"][1][0, 1, 0] = float("nan")
    observed = {"a": torch.ones(2, 4, dtype=torch.bool)}
    observed["a"][0, 1] = False
    batch = gm.TaskBatch.from_tensors(graph, data, tensors(), support_observed=observed)
    assert torch.isfinite(batch.support.values).all()


def test_unknown_node_is_a_graph_error(graph):
    data = tensors()
    data["c"] = data["a"]
    with pytest.raises(gm.GraphError, match="unknown subtask 'c'"):
        gm.TaskBatch.from_tensors(graph, data, data)


def test_features_for_a_node_without_inputs_are_rejected():
    graph = gm.TaskGraph().add_subtask("y")
    with pytest.raises(gm.DataError, match="in_dim is 0"):
        gm.TaskBatch.from_tensors(graph, {"y": (torch.ones(2, 1), torch.ones(2, 1))}, {"y": torch.ones(2, 1)})


def test_task_counts_must_agree(graph):
    with pytest.raises(gm.DataError, match="support has 2 tasks but query has 3"):
        gm.TaskBatch.from_tensors(graph, tensors(T=2), tensors(T=3))


def test_gnn_inputs_become_dense_graphs():
    graph = gm.TaskGraph().add_subtask("g", in_dim=3, learner=gm.GNN(hidden=4))
    graphs = [Data(x=torch.randn(n, 3), edge_index=torch.tensor([[0, 1], [1, 0]])) for n in (2, 3, 4, 2)]
    batch = gm.TaskBatch.from_tensors(graph, {"g": (graphs, torch.randn(2, 2, 1))}, {"g": (graphs, torch.randn(2, 2, 1))})
    dense = batch.support.graphs["g"]
    assert dense.x.shape == (2, 2, 4, 3) and dense.adjacency.shape == (2, 2, 4, 4)
    assert dense.mask.sum().item() == 11
    assert dense.adjacency[0, 0, 0, 1] == 1 and dense.adjacency[0, 0, 0, 0] == 0
    with pytest.raises(gm.DataError, match="expected tasks x shots = 4"):
        gm.TaskBatch.from_tensors(graph, {"g": (graphs[:3], torch.randn(2, 2, 1))}, {"g": (graphs, torch.randn(2, 2, 1))})
    wrong = [Data(x=torch.randn(2, 5), edge_index=torch.zeros(2, 0, dtype=torch.long))] * 4
    with pytest.raises(gm.DataError, match="expected \\[num_nodes, 3\\]"):
        gm.TaskBatch.from_tensors(graph, {"g": (wrong, torch.randn(2, 2, 1))}, {"g": (graphs, torch.randn(2, 2, 1))})
