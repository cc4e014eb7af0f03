"""Partly observed nodes: a parent's missing cell is filled with its prediction, so the child's row counts.

The engine equals the per-node reference with filling in ``tests/test_reference.py`` (whose random masks
miss parents' cells); here: the strict rule, what triggers filling, where the gradient goes, and prediction.
"""

from __future__ import annotations

import math
from dataclasses import replace

import pytest
import torch

import graphmeta as gm
from graphmeta.testing.reference import reference_adapted_weights, reference_evaluate, reference_meta_loss
from tests.test_model import observed_masks, task_data
from tests.test_reference import build, every_learner_graph


def chain() -> gm.TaskGraph:
    return gm.TaskGraph().add_subtask("a", in_dim=2).add_subtask("b", in_dim=1).add_dependency("a", "b")


def chain_batch(graph: gm.TaskGraph, missing_parent: bool = True) -> gm.TaskBatch:
    """Two tasks of 4 shots; ``a`` is observed at shot 0 alone (with ``missing_parent``), ``b`` everywhere."""
    data = task_data(graph, 2, 4, 0)
    a = torch.zeros(2, 4, dtype=torch.bool) if missing_parent else torch.ones(2, 4, dtype=torch.bool)
    a[:, 0] = True
    masks = {"a": a, "b": torch.ones(2, 4, dtype=torch.bool)}
    return gm.TaskBatch.from_tensors(graph, data, data, masks, masks)


@pytest.mark.parametrize("algorithm", ["maml", "alpaca"])
def test_without_filling_the_engine_equals_the_reference_that_drops_such_rows(algorithm):
    graph = every_learner_graph()
    model = build(graph, algorithm, message_passing=True)
    T, K = 2, 4
    support, query = task_data(graph, T, K, 1), task_data(graph, T, K, 2)
    s_obs, q_obs = observed_masks(graph, T, K, 3), observed_masks(graph, T, K, 4)
    batch = gm.TaskBatch.from_tensors(graph, support, query, s_obs, q_obs)
    strict = replace(batch, support=replace(batch.support, fill_missing=False),
                     query=replace(batch.query, fill_missing=False))
    parameters = [p for p in model.parameters() if p.requires_grad]
    loss, _ = model.meta_loss(strict)
    filled_loss, _ = model.meta_loss(batch)
    ref_loss = reference_meta_loss(model, support, query, s_obs, q_obs, fill_missing=False)
    torch.testing.assert_close(loss, ref_loss, rtol=1e-6, atol=1e-9)
    assert abs(float((loss - filled_loss).detach())) > 1e-6  # the masks miss parents' cells: filling changes the loss
    for grad, ref_grad in zip(torch.autograd.grad(loss, parameters, allow_unused=True),
                              torch.autograd.grad(ref_loss, parameters, allow_unused=True)):
        if grad is not None or ref_grad is not None:
            torch.testing.assert_close(grad, ref_grad, rtol=1e-6, atol=1e-9)


def test_filling_is_chosen_where_a_node_is_observed_and_an_input_it_reads_is_not():
    graph = chain()
    banks = gm.GraphMetaLearner(graph).banks
    assert banks.resolved(chain_batch(graph).support).fill_missing is True
    assert banks.resolved(chain_batch(graph, missing_parent=False).support).fill_missing is False
    sink_missing = chain_batch(graph, missing_parent=False).support
    sink_missing = replace(sink_missing, observed=sink_missing.observed & torch.tensor([True, False]))
    assert banks.resolved(sink_missing).fill_missing is False  # b misses its own value: nothing to fill
    # a conjugate child never reads a filled value, so its parent's gaps ask for no filling
    table_child = (gm.TaskGraph().add_subtask("a", kind="classification", num_classes=2)
                   .add_subtask("b", kind="classification", num_classes=2, learner=gm.Table())
                   .add_dependency("a", "b"))
    labels = {"a": torch.zeros(2, 4, dtype=torch.long), "b": torch.ones(2, 4, dtype=torch.long)}
    a = torch.tensor([[True, False, True, False]] * 2)
    split = gm.TaskBatch.from_tensors(table_child, labels, labels, {"a": a}, {"a": a}).support
    assert gm.GraphMetaLearner(table_child).banks.resolved(split).fill_missing is False


def test_a_row_with_a_missing_parent_counts_and_teaches_the_parent_through_its_prediction():
    graph = chain()
    model = gm.GraphMetaLearner(graph).double()
    support = chain_batch(graph).support.to(torch.float64)
    a, b = graph.names.index("a"), graph.names.index("b")
    for fill, rows in ((True, 4), (False, 1)):
        split = replace(support, fill_missing=fill)
        assert model.banks.example_mask(split)[:, b].sum(-1).tolist() == [rows, rows]
        loss, _ = model.banks.losses(model.banks.expand(2), split)
        theta = model.banks[0].theta["head_bias"]
        (grad,) = torch.autograd.grad(loss[:, b].sum(), [theta])
        # b's loss reaches a's weights only through a's predictions at the rows it filled
        assert (float(grad[a].abs().sum()) > 0) == fill


def test_adaptation_uses_the_rows_with_a_missing_parent():
    graph = chain()
    torch.manual_seed(0)
    model = gm.GraphMetaLearner(graph, inner_lr=0.1).double()
    batch = chain_batch(graph).to(torch.float64)
    strict = replace(batch.support, fill_missing=False)
    filled, dropped = model.adapt(batch.support, steps=1), model.adapt(strict, steps=1)
    b_weights = [weights["head_bias"][:, 1] for weights in (filled.fast[0], dropped.fast[0])]
    assert not torch.allclose(*b_weights)
    scores = filled.evaluate(batch)
    assert torch.isfinite(scores["loss"]).all()


def test_evaluation_equals_the_reference_with_and_without_filling():
    graph = every_learner_graph()
    model = build(graph, "maml", message_passing=False)
    T, K = 2, 4
    support, query = task_data(graph, T, K, 1), task_data(graph, T, K, 2)
    s_obs, q_obs = observed_masks(graph, T, K, 3), observed_masks(graph, T, K, 4)
    batch = gm.TaskBatch.from_tensors(graph, support, query, s_obs, q_obs)
    adapted = model.adapt(batch, steps=0)
    weights = reference_adapted_weights(model, support, s_obs, steps=0)
    for fill in (None, False):
        query_split = replace(batch.query, fill_missing=fill)
        expected = reference_evaluate(model, weights, query, q_obs, fill_missing=fill)
        torch.testing.assert_close(adapted.evaluate(query_split)["loss"], expected["loss"], rtol=1e-6, atol=1e-9)


def test_prediction_fills_a_missing_cell_through_the_parent():
    graph = chain()
    torch.manual_seed(0)
    model = gm.GraphMetaLearner(graph).double()
    data = task_data(graph, 1, 4, 0)
    adapted = model.adapt(gm.TaskBatch.from_tensors(graph, data, data), steps=0)
    inputs = {"a": data["a"][0][0], "b": data["b"][0][0]}
    a_values = data["a"][1][0].clone()
    a_values[1] = math.nan
    partly = adapted.predict(inputs, observed={"a": a_values})["b"]
    observed = adapted.predict(inputs, observed={"a": data["a"][1][0]})["b"]
    unobserved = adapted.predict(inputs)["b"]
    torch.testing.assert_close(partly[[0, 2, 3]], observed[[0, 2, 3]])
    torch.testing.assert_close(partly[1], unobserved[1])
    assert not torch.allclose(partly[1], observed[1])
