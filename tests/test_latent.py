"""Latent subtasks (``observed=False``): never labelled, learned end to end through their children.

The batched engine against the per-node reference's own level-by-level loop (float64), the
gradient reaching a latent node only through its children, the graph and data checks, and the
unchanged path of a graph without latent nodes."""

from __future__ import annotations

import pytest
import torch

import graphmeta as gm
from graphmeta.learners.banks.low_rank import LowRankWeight
from graphmeta.testing.meta_gradients import assert_meta_gradient_equals_reference
from graphmeta.testing.reference import reference_adapted_weights, reference_evaluate
from tests.test_model import observed_masks, task_data

#: Every algorithm (ALPaCA steps the heads of the banks that hold or read a latent node).
ALGORITHMS = ["maml", "fomaml", "metasgd", "anil", "reptile", "cavia", "mamlpp", "alpaca"]


def latent_graph() -> gm.TaskGraph:
    """Two latent levels (``h1`` -> ``h2``, a 2-d embedding), a latent parent beside an observed one
    (``y``), an observed parent of a latent node, and two banks (``h2`` a linear MLP)."""
    return (gm.TaskGraph()
            .add_subtask("x", in_dim=2, learner=gm.MLP(hidden=(4,)))
            .add_subtask("h1", in_dim=1, learner=gm.MLP(hidden=(4,)), observed=False)
            .add_subtask("h2", out_dim=2, learner=gm.MLP(hidden=()), observed=False)
            .add_subtask("y", in_dim=1, learner=gm.MLP(hidden=(4,)))
            .add_subtask("z", learner=gm.MLP(hidden=(4,)))
            .add_dependency("x", "h1").add_dependency("h1", "h2").add_dependency("h2", "y")
            .add_dependency("x", "y").add_dependency("h1", "z"))


def latent_data(graph: gm.TaskGraph, T: int, K: int, seed: int) -> dict:
    """``task_data`` with the latent nodes' labels dropped (features kept as ``(x, None)``)."""
    data = task_data(graph, T, K, seed)
    return {name: (x, None) if not graph.subtask(name).observed else (x, y) for name, (x, y) in data.items()
            if graph.subtask(name).observed or x is not None}


def build(algorithm: str, message_passing: bool, graph: gm.TaskGraph | None = None) -> gm.GraphMetaLearner:
    torch.manual_seed(0)
    model = gm.GraphMetaLearner(graph or latent_graph(), algorithm=algorithm, inner_steps=2, inner_lr=0.05,
                                message_passing=message_passing, message_channels=6).double()
    if message_passing:
        with torch.no_grad():
            for gate in model.message_passing.gates:
                gate.uniform_(0.1, 0.5)
            model.message_passing.node_embedding.normal_()
    return model


@pytest.mark.parametrize("message_passing", [False, True])
@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_meta_loss_and_meta_gradient_equal_the_level_by_level_reference(algorithm, message_passing):
    graph = latent_graph()
    model = build(algorithm, message_passing)
    T, K = 3, 4
    support, query = latent_data(graph, T, K, 1), latent_data(graph, T, K, 2)
    masks = {name: mask for name, mask in observed_masks(graph, T, K, 3).items() if graph.subtask(name).observed}
    metrics = assert_meta_gradient_equals_reference(model, support, query, masks, None, rtol=1e-9, atol=1e-12)
    latent = [graph.names.index(name) for name in graph.latent]
    assert metrics["loss_after"][latent].isnan().all()  # a latent node is not scored
    assert not metrics["loss_after"][[i for i in range(len(graph)) if i not in latent]].isnan().any()


@pytest.mark.parametrize("algorithm", ["maml", "anil", "cavia", "alpaca"])
def test_adapted_weights_and_evaluation_equal_reference(algorithm):
    graph = latent_graph()
    model = build(algorithm, message_passing=True)
    support, query = latent_data(graph, 2, 5, 1), latent_data(graph, 2, 5, 2)
    batch = gm.TaskBatch.from_tensors(graph, support, query)
    adapted = model.adapt(batch, steps=3)
    reference = reference_adapted_weights(model, support, steps=3)
    expected = reference_evaluate(model, reference, query)
    result = adapted.evaluate(batch)
    torch.testing.assert_close(result["loss"], expected["loss"], rtol=1e-9, atol=1e-12, equal_nan=True)


def test_a_latent_node_learns_only_through_its_children():
    """``h1`` feeds ``h2 -> y`` and ``z``: with its descendants' rows observed it moves; with every row of
    ``y`` and ``z`` unobserved (their losses weigh nothing) it keeps its meta-init exactly, as does ``h2``."""
    graph = latent_graph()
    model = build("maml", message_passing=False)
    support = gm.TaskBatch.from_tensors(graph, latent_data(graph, 2, 4, 1), latent_data(graph, 2, 4, 1)).support
    silent = torch.tensor([name in ("y", "z") for name in graph.names])
    no_children = type(support)(support.features, support.values, support.observed & ~silent, support.graphs)
    for split, moves in ((support, True), (no_children, False)):
        adapted = model.adapt(split, steps=2)
        for name in graph.latent:
            b, row = next((b, bank.names.index(name)) for b, bank in enumerate(model.banks) if name in bank.names)
            theta = model.banks[b].theta["head_bias"][row].detach().expand(2, -1)
            assert torch.allclose(adapted.fast[b]["head_bias"][:, row], theta) != moves, (name, moves)
    # the observed root x learns from its own rows either way
    b = next(b for b, bank in enumerate(model.banks) if "x" in bank.names)
    row = model.banks[b].names.index("x")
    assert not torch.allclose(adapted.fast[b]["head_bias"][:, row],
                              model.banks[b].theta["head_bias"][row].detach().expand(2, -1))


def test_a_bank_of_latent_and_observed_mlp_nodes_keeps_its_low_rank_taps():
    """Bank 0 (``x``, ``h1``, ``y``, ``z``) reads its latent row's gradient from the level pass's
    pre-activations, so its step stays low-rank, and its loss pass leaves ``h1`` out; bank 1, all latent
    (``h2``), is tapped at its weights, made dense."""
    graph = latent_graph()
    model = build("maml", message_passing=False)
    banks = model.banks
    assert [bank.names for bank in banks] == [["x", "h1", "y", "z"], ["h2"]]
    assert banks.loss_rows[0][0].tolist() == [0, 2, 3] and banks.loss_rows[1] is None
    support = gm.TaskBatch.from_tensors(graph, latent_data(graph, 2, 4, 1), latent_data(graph, 2, 4, 2)).support
    adaptation = model._adapt(support, 1, create_graph=True, track_meta_gradient=True)
    assert isinstance(adaptation.final[0]["hidden0_weight"], LowRankWeight)
    assert adaptation.final[0]["hidden0_weight"].rank == 4
    assert not isinstance(adaptation.final[1]["head_weight"], LowRankWeight)


def test_a_graph_without_latent_nodes_takes_the_plain_path():
    graph = (gm.TaskGraph().add_subtask("a", in_dim=2).add_subtask("b").add_dependency("a", "b"))
    model = gm.GraphMetaLearner(graph)
    assert model.banks.latent_levels == [] and model.banks.holds_latent == [False]
    data = task_data(graph, 2, 3, 0)
    split = gm.TaskBatch.from_tensors(graph, data, data).support
    assert model.banks.filled(model.banks.expand(2), split) is split


def test_graph_checks_name_the_latent_node():
    with pytest.raises(gm.GraphError, match="'h'.*no observed descendant.*sink"):
        gm.TaskGraph().add_subtask("a").add_subtask("h", observed=False).add_dependency("a", "h").validate()
    chain = (gm.TaskGraph().add_subtask("a").add_subtask("h", observed=False).add_subtask("k", observed=False)
             .add_dependency("a", "h").add_dependency("h", "k"))
    with pytest.raises(gm.GraphError, match="'h'.*all its descendants are latent"):
        chain.validate()
    with pytest.raises(gm.GraphError, match="'c'.*latent subtask.*regression"):
        gm.TaskGraph().add_subtask("c", kind="classification", num_classes=3, observed=False)


def test_latent_flag_round_trips_through_dict_yaml_and_networkx(tmp_path):
    graph = latent_graph()
    assert graph.to_dict()["subtasks"]["h1"]["observed"] is False
    assert "observed" not in graph.to_dict()["subtasks"]["x"]
    for copy in (gm.TaskGraph.from_dict(graph.to_dict()), gm.TaskGraph.load(graph.save(tmp_path / "g.yaml")),
                 gm.TaskGraph.from_networkx(graph.to_networkx())):
        assert copy == graph and copy.latent == ["h1", "h2"]
    assert "(latent)" in graph.summary()


def test_labels_or_masks_for_a_latent_node_are_refused():
    graph = latent_graph()
    data = task_data(graph, 2, 3, 0)
    with pytest.raises(gm.DataError, match="labels for latent node 'h1'"):
        gm.TaskBatch.from_tensors(graph, data, data)
    clean = latent_data(graph, 2, 3, 0)
    with pytest.raises(gm.DataError, match="observed mask for latent node 'h2'"):
        gm.TaskBatch.from_tensors(graph, clean, clean, {"h2": torch.ones(2, 3, dtype=torch.bool)})
    without_features = {name: entry for name, entry in clean.items() if name != "h1"}
    with pytest.raises(gm.DataError, match="no data for node.*'h1'"):
        gm.TaskBatch.from_tensors(graph, without_features, clean)
    batch = gm.TaskBatch.from_tensors(graph, clean, clean)
    assert not batch.support.observed[..., graph.names.index("h1")].any()


def test_alpaca_steps_the_heads_it_cannot_fit_and_fits_the_others():
    """A bank holding or reading a latent node takes gradient steps on its head; a bank of observed
    nodes with observed parents keeps the closed-form fit."""
    graph = (gm.TaskGraph().add_subtask("x", in_dim=1).add_subtask("h", in_dim=1, observed=False)
             .add_subtask("y", learner=gm.MLP(hidden=(4,))).add_subtask("z", in_dim=1, learner=gm.MLP(hidden=(3,)))
             .add_dependency("x", "h").add_dependency("h", "y"))
    model = gm.GraphMetaLearner(graph, algorithm="alpaca")
    solved = {tuple(bank.names): model.algorithm.solves(bank) for bank in model.banks}
    assert solved == {("x", "h"): False, ("y",): False, ("z",): True}


def test_closed_form_adaptation_of_a_latent_node_or_its_children_is_refused():
    graph = (gm.TaskGraph().add_subtask("a", in_dim=1).add_subtask("h", observed=False)
             .add_subtask("y", learner=gm.Linear()).add_dependency("a", "h").add_dependency("h", "y"))
    with pytest.raises(gm.ConfigError, match="'y'.*closed form"):
        gm.GraphMetaLearner(graph)


def test_prediction_fills_a_latent_parent_and_evaluation_leaves_it_unscored():
    graph = latent_graph()
    model = build("maml", message_passing=False)
    data = latent_data(graph, 2, 3, 0)
    batch = gm.TaskBatch.from_tensors(graph, data, data)
    adapted = model.adapt(batch)
    inputs = {name: x for name, (x, _) in data.items() if x is not None}
    predictions = adapted.predict(inputs, observed={"x": data["x"][1]})
    filled = model.banks.filled(adapted.fast, batch.query)
    columns = model.banks[0].layout.value_slices["h2"]
    torch.testing.assert_close(predictions["h2"], filled.values[..., columns])
    scores = adapted.evaluate(batch)
    assert scores["loss"][:, graph.names.index("h1")].isnan().all()
