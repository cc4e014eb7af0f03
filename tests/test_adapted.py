"""AdaptedGraph: evaluation and level-by-level prediction."""

import pytest
import torch

import graphmeta as gm
from graphmeta.testing.reference import reference_adapted_weights, reference_predict
from tests.test_model import mixed_graph, task_data


@pytest.fixture
def adapted_model():
    graph = mixed_graph(gnn=True)
    torch.manual_seed(0)
    model = gm.GraphMetaLearner(graph, inner_steps=1).double()
    support = gm.TaskBatch.from_tensors(graph, task_data(graph, 2, 4, 1), task_data(graph, 2, 4, 2))
    return model.adapt(support, steps=3), support, model


@pytest.fixture
def adapted(adapted_model):
    adapted, support, _ = adapted_model
    return adapted, support


def inputs_of(graph, data):
    return {name: x for name, (x, _) in data.items() if x is not None}


def test_observed_parents_reproduce_teacher_forced_outputs(adapted):
    adapted, batch = adapted
    graph = adapted.graph
    data = task_data(graph, 2, 4, 2)
    observed = {name: y for name, (_, y) in data.items()}
    predictions = adapted.predict(inputs_of(graph, data), observed=observed)
    loss = adapted.evaluate(batch)["loss"]
    for n, name in enumerate(graph.names):
        spec = graph.subtask(name)
        prediction, target = predictions[name], observed[name]
        if spec.kind == "classification":
            expected = torch.nn.functional.cross_entropy(prediction.log().transpose(1, 2), target, reduction="none")
        else:
            expected = ((prediction - target) ** 2).mean(-1)
        torch.testing.assert_close(expected.mean(-1), loss[:, n])


def test_unobserved_parents_are_predicted_first(adapted_model):
    """Every node reads its parents' predictions (class probabilities for b), as the reference does;
    an observed parent's value replaces its prediction for its children."""
    adapted, _, model = adapted_model
    graph = adapted.graph
    data = task_data(graph, 2, 4, 3)
    weights = reference_adapted_weights(model, task_data(graph, 2, 4, 1), steps=3)
    free = adapted.predict(inputs_of(graph, data))
    assert set(free) == set(graph.names)
    for name, expected in reference_predict(model, weights, inputs_of(graph, data)).items():
        torch.testing.assert_close(free[name], expected, rtol=1e-6, atol=1e-9)
    # c depends on a and b: feeding their predictions as observations must give the same c
    fed = adapted.predict(inputs_of(graph, data), observed={"a": free["a"]})
    torch.testing.assert_close(fed["c"], free["c"])
    shifted = {"a": free["a"] + 1.0}
    other = adapted.predict(inputs_of(graph, data), observed=shifted)
    torch.testing.assert_close(other["c"], reference_predict(model, weights, inputs_of(graph, data), shifted)["c"],
                               rtol=1e-6, atol=1e-9)


def test_single_task_prediction_drops_the_task_axis():
    graph = mixed_graph()
    model = gm.GraphMetaLearner(graph).double()
    data = task_data(graph, 1, 5, 1)
    single = {name: (None if x is None else x[0], y[0]) for name, (x, y) in data.items()}
    adapted = model.adapt(single)
    predictions = adapted.predict({name: x for name, (x, _) in single.items() if x is not None})
    assert predictions["a"].shape == (5, 1) and predictions["b"].shape == (5, 3)


def test_bad_prediction_inputs(adapted):
    adapted, _ = adapted
    with pytest.raises(gm.DataError, match="predict needs inputs for node 'a'"):
        adapted.predict({"d": torch.zeros(2, 4, 3)}, shots=4)
    with pytest.raises(gm.GraphError, match="unknown subtask 'nope'"):
        adapted.predict({"nope": torch.zeros(2, 4, 3)})
    data = task_data(adapted.graph, 3, 4, 1)
    with pytest.raises(gm.DataError, match="adapted to 2 tasks"):
        adapted.evaluate(gm.TaskBatch.from_tensors(adapted.graph, data, data))
