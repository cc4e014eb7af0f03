"""GraphMetaLearner: padding is inert, meta-training learns, dtype, devices, errors; and the data
and model builders the reference tests share (the engine against the reference: tests/test_reference.py)."""

import pytest
import torch
from torch_geometric.data import Data

import graphmeta as gm
from graphmeta.testing.meta_gradients import (
    assert_meta_gradients_close,
    engine_and_reference_meta_gradients,
    meta_gradient,
)
from graphmeta.testing.reference import unpadded_slices


def mixed_graph(gnn: bool = False) -> gm.TaskGraph:
    """Nodes of mixed widths and kinds, two MLP specs, optionally a GNN node."""
    graph = (gm.TaskGraph()
             .add_subtask("a", in_dim=2)
             .add_subtask("b", in_dim=1, kind="classification", num_classes=3)
             .add_subtask("c", in_dim=0, out_dim=2, learner=gm.MLP(hidden=(5,), activation="tanh"))
             .add_subtask("d", in_dim=3, kind="classification", num_classes=2, learner=gm.MLP(hidden=(6, 4)))
             .add_dependency("a", "b").add_dependency("b", "c").add_dependency("a", "c").add_dependency("c", "d"))
    if gnn:
        graph.add_subtask("g", in_dim=2, learner=gm.GNN(hidden=4, layers=2)).add_dependency("b", "g")
    return graph


def random_graph_data(generator: torch.Generator, count: int, features: int = 2) -> list[Data]:
    graphs = []
    for _ in range(count):
        size = int(torch.randint(3, 6, (1,), generator=generator))
        edges = torch.randint(0, size, (2, 2 * size), generator=generator)
        graphs.append(Data(x=torch.randn(size, features, generator=generator, dtype=torch.float64),
                           edge_index=edges))
    return graphs


def task_data(graph: gm.TaskGraph, T: int, K: int, seed: int) -> dict:
    generator = torch.Generator().manual_seed(seed)
    data = {}
    for name in graph.names:
        spec = graph.subtask(name)
        if spec.learner.type == "gnn":
            x = random_graph_data(generator, T * K, spec.in_dim)
        elif spec.in_dim:
            x = torch.randn(T, K, spec.in_dim, generator=generator, dtype=torch.float64)
        else:
            x = None
        if spec.kind == "classification":
            y = torch.randint(0, spec.num_classes, (T, K), generator=generator)
        else:
            y = torch.randn(T, K, spec.out_dim, generator=generator, dtype=torch.float64)
        data[name] = (x, y)
    return data


def observed_masks(graph: gm.TaskGraph, T: int, K: int, seed: int) -> dict:
    generator = torch.Generator().manual_seed(seed)
    masks = {name: torch.rand(T, K, generator=generator) > 0.2 for name in graph.names}
    for mask in masks.values():
        mask[:, 0] = True  # every node keeps a support example
    return masks


def build(graph, algorithm, message_passing, seed=0, **options):
    torch.manual_seed(seed)
    model = gm.GraphMetaLearner(graph, algorithm=algorithm, inner_steps=2, inner_lr=0.25,
                                message_passing=message_passing, **options).double()
    if message_passing:
        with torch.no_grad():  # open the gate, so the correction is really tested
            for gate in model.message_passing.gates:
                gate.uniform_(0.1, 0.5)
            model.message_passing.node_embedding.normal_()
    return model


def engine_and_reference(model, graph, T=3, K=4, masked=False):
    support, query = task_data(graph, T, K, 1), task_data(graph, T, K, 2)
    s_obs = observed_masks(graph, T, K, 3) if masked else None
    q_obs = observed_masks(graph, T, K, 4) if masked else None
    engine, reference, _ = engine_and_reference_meta_gradients(model, support, query, s_obs, q_obs)
    return engine, reference, [p for p in model.parameters() if p.requires_grad]


def test_disconnected_extra_node_changes_nothing():
    """Padding and masks are inert: a wide, unconnected extra node leaves the others' results."""
    graph = mixed_graph()
    wider = mixed_graph().add_subtask("z", in_dim=7, out_dim=4)
    torch.manual_seed(0)
    small = gm.GraphMetaLearner(graph, inner_steps=2, message_passing=False).double()
    big = gm.GraphMetaLearner(wider, inner_steps=2, message_passing=False).double()
    with torch.no_grad():  # copy each node's own slice of the meta-init into the bigger banks
        for name in graph.names:
            b_small, row_small, slices = unpadded_slices(small, name)
            b_big, row_big, _ = unpadded_slices(big, name)
            for key, where in slices.items():
                big.banks[b_big].theta[key][(row_big, *where)] = small.banks[b_small].theta[key][(row_small, *where)]
    data_s, data_q = task_data(graph, 3, 4, 1), task_data(graph, 3, 4, 2)
    extra_s, extra_q = task_data(wider, 3, 4, 3), task_data(wider, 3, 4, 4)
    batch = gm.TaskBatch.from_tensors(graph, data_s, data_q)
    wide_batch = gm.TaskBatch.from_tensors(wider, {**data_s, "z": extra_s["z"]}, {**data_q, "z": extra_q["z"]})
    small_loss = small.adapt(batch).evaluate(batch)["loss"]
    big_loss = big.adapt(wide_batch).evaluate(wide_batch)["loss"]
    positions = [wider.names.index(name) for name in graph.names]
    torch.testing.assert_close(big_loss[:, positions], small_loss, rtol=1e-9, atol=1e-12)


def sine_family(num_tasks, shots, generator):
    amplitude = torch.rand(num_tasks, 1, 1, generator=generator) * 4.9 + 0.1
    phase = torch.rand(num_tasks, 1, 1, generator=generator) * torch.pi
    x = torch.rand(num_tasks, 2 * shots, 1, generator=generator) * 10 - 5
    y = amplitude * torch.sin(x + phase)
    return ({"y": (x[:, :shots], y[:, :shots])}, {"y": (x[:, shots:], y[:, shots:])})


@pytest.mark.parametrize("algorithm", ["maml", "fomaml"])
def test_meta_training_learns_to_adapt(algorithm):
    """A seeded learning test: after meta-training, one adaptation step beats no adaptation."""
    torch.manual_seed(0)
    generator = torch.Generator().manual_seed(0)
    graph = gm.TaskGraph().add_subtask("y", in_dim=1, learner=gm.MLP(hidden=(40, 40)))
    model = gm.GraphMetaLearner(graph, algorithm=algorithm, inner_steps=1, inner_lr=0.01, message_passing=False)
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    test = gm.TaskBatch.from_tensors(graph, *sine_family(200, 10, torch.Generator().manual_seed(99)))
    untrained = model.adapt(test, steps=10).evaluate(test)["loss"].mean()
    for _ in range(600):
        batch = gm.TaskBatch.from_tensors(graph, *sine_family(25, 10, generator))
        optimizer.zero_grad()
        model.meta_loss(batch)[0].backward()
        optimizer.step()
    unadapted = model.adapt(test, steps=0).evaluate(test)["loss"].mean()
    adapted = model.adapt(test, steps=10).evaluate(test)["loss"].mean()
    assert adapted < 0.5 * unadapted, (adapted, unadapted)
    assert adapted < 0.5 * untrained, (adapted, untrained)


def test_model_follows_its_dtype_and_validates_options():
    graph = mixed_graph()
    model = gm.GraphMetaLearner(graph).double()
    batch = gm.TaskBatch.from_tensors(graph, task_data(graph, 2, 3, 1), task_data(graph, 2, 3, 2)).to(torch.float32)
    loss, metrics = model.meta_loss(batch)
    assert loss.dtype == torch.float64 and set(metrics) == {"loss_before", "loss_after", "accuracy_after"}
    assert torch.isnan(metrics["accuracy_after"][graph.names.index("a")])
    assert 0 <= metrics["accuracy_after"][graph.names.index("b")] <= 1
    with pytest.raises(gm.ConfigError, match="did you mean 'message_rounds'"):
        gm.GraphMetaLearner(graph, message_round=3)
    with pytest.raises(gm.ConfigError, match="did you mean 'maml'"):
        gm.GraphMetaLearner(graph, algorithm="mamll")
    with pytest.raises(gm.ConfigError, match="inner_lr"):
        gm.GraphMetaLearner(graph, inner_lr=-1)


def test_fit_from_scratch_fits_the_support_set():
    graph = mixed_graph()
    model = gm.GraphMetaLearner(graph).double()
    support = gm.TaskBatch.from_tensors(graph, task_data(graph, 2, 6, 1), task_data(graph, 2, 6, 1))
    before = model.adapt(support, steps=0).evaluate(support)["loss"]
    after = model.fit_from_scratch(support, steps=200, lr=0.01).evaluate(support)["loss"]
    assert (after < before).all() and after.mean() < 0.2 * before.mean()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize("message_passing", [False, True])
def test_cuda_equals_cpu(message_passing):
    graph = mixed_graph(gnn=True)
    model = build(graph, "maml", message_passing)
    batch = gm.TaskBatch.from_tensors(graph, task_data(graph, 3, 4, 1), task_data(graph, 3, 4, 2))
    cpu = meta_gradient(model.meta_loss(batch)[0], list(model.parameters()))
    model_gpu = model.cuda()
    gpu = meta_gradient(model_gpu.meta_loss(batch.to("cuda"))[0], list(model_gpu.parameters()))
    assert_meta_gradients_close(gpu, cpu, rtol=1e-6, atol=1e-9)


def test_meta_loss_without_metrics_is_the_same_loss():
    graph = mixed_graph()
    model = build(graph, "maml", message_passing=True)
    batch = gm.TaskBatch.from_tensors(graph, task_data(graph, 2, 3, 1), task_data(graph, 2, 3, 2))
    with_metrics, metrics = model.meta_loss(batch)
    without, none = model.meta_loss(batch, metrics=False)
    assert none == {} and set(metrics) == {"loss_before", "loss_after", "accuracy_after"}
    torch.testing.assert_close(with_metrics, without, rtol=0, atol=0)


def test_data_of_another_graph_is_a_data_error_naming_the_difference():
    graph = mixed_graph()
    model = gm.GraphMetaLearner(graph).double()
    other = mixed_graph().add_subtask("extra", in_dim=1)
    batch = gm.TaskBatch.from_tensors(other, task_data(other, 2, 3, 1), task_data(other, 2, 3, 2))
    with pytest.raises(gm.DataError, match=r"nodes only in the data: \['extra'\]"):
        model.meta_loss(batch)
    with pytest.raises(gm.DataError, match=r"nodes only in the data: \['extra'\]"):
        model.adapt(batch)
    with pytest.raises(gm.DataError, match="another task graph"):
        model.adapt(batch.support)


@pytest.mark.parametrize("steps", [-1, 2.5, True, "3"])
def test_adapt_steps_must_be_a_count(steps):
    graph = mixed_graph()
    model = gm.GraphMetaLearner(graph).double()
    batch = gm.TaskBatch.from_tensors(graph, task_data(graph, 2, 3, 1), task_data(graph, 2, 3, 2))
    with pytest.raises(gm.ConfigError, match=r"steps must be an integer >= 0"):
        model.adapt(batch, steps=steps)
