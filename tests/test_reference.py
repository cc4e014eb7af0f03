"""The batched engine against the independent per-(task, node) reference, for every algorithm,
learner type and message-passing setting (float64, rtol 1e-6); the meta-initialisation the
reference starts from; and the reference's own formulas against hand-computed values."""

from __future__ import annotations

import functools
import math

import pytest
import torch

import graphmeta as gm
import graphmeta.model
from graphmeta.adapt.algorithms import ALGORITHMS as REGISTERED_ALGORITHMS
from graphmeta.adapt.inner_loop import inner_loop
from graphmeta.learners import registered
from graphmeta.testing.reference import (
    mamlpp_importances,
    reference_adapted_weights,
    reference_evaluate,
    reference_meta_loss,
    reference_metrics,
    reference_predict,
    unpadded_slices,
)
from graphmeta.testing.reference_algorithms import REFERENCE_ALGORITHMS
from graphmeta.testing.reference_learners import REFERENCE_LEARNERS
from tests.test_model import observed_masks, task_data

#: Every registered algorithm: a new one fails here until the reference defines it.
ALGORITHMS = list(REGISTERED_ALGORITHMS)
#: Algorithms run with learned per-step rates (the others with the fixed ``inner_lr``).
LEARNED_STEP_RATES = {"maml", "anil", "cavia"}


def every_learner_graph(conjugate: bool = True) -> gm.TaskGraph:
    """MLPs (with and without hidden layers, regression and classification), a GNN, Table learners
    and Linear learners of different widths (one below regression and classification parents, one
    below a Linear); nodes with several parents, several children, both and neither. Reptile
    refuses conjugate learners, so ``conjugate=False`` makes those nodes MLPs."""
    table = gm.Table(prior_strength=1.5) if conjugate else gm.MLP(hidden=(3,))
    linear = gm.Linear(prior_precision=2.0, noise_shape=1.5, noise_scale=0.5) if conjugate else gm.MLP(hidden=(3,))
    return (gm.TaskGraph()
            .add_subtask("a", in_dim=2, learner=gm.MLP(hidden=(5,), activation="tanh"))
            .add_subtask("b", in_dim=1, kind="classification", num_classes=3, learner=gm.MLP(hidden=(4,)))
            .add_subtask("w", kind="classification", num_classes=2, learner=table)
            .add_subtask("t", kind="classification", num_classes=3, learner=table)
            .add_subtask("g", in_dim=2, learner=gm.GNN(hidden=3, layers=2))
            .add_subtask("d", out_dim=2, learner=gm.MLP(hidden=()))
            .add_subtask("l", in_dim=1, out_dim=2, learner=linear)
            .add_subtask("m", learner=linear)
            .add_dependency("a", "l").add_dependency("b", "l").add_dependency("l", "m")
            .add_dependency("a", "b").add_dependency("b", "t").add_dependency("w", "t")
            .add_dependency("b", "g").add_dependency("t", "d").add_dependency("g", "d").add_dependency("a", "d"))


def build(graph: gm.TaskGraph, algorithm: str, message_passing: bool, steps: int = 2, seed: int = 0,
          **options) -> gm.GraphMetaLearner:
    """A float64 model whose every parameter matters: rates that differ per step (and per entry),
    an open message-passing gate, a node embedding, conjugate priors that differ between entries
    (their padding too), MAML++ part-way through its annealing, ALPaCA's prior components of
    different precisions."""
    torch.manual_seed(seed)
    learned = algorithm in LEARNED_STEP_RATES
    options = {"algorithm_options": REFERENCE_ALGORITHMS[algorithm].test_options, **options}
    model = gm.GraphMetaLearner(graph, algorithm=algorithm, inner_steps=steps, inner_lr=0.25,
                                message_passing=message_passing, learn_inner_lr=learned, message_channels=6,
                                message_rounds=2, **options).double()
    with torch.no_grad():
        for parameters in ("precision_factors", "log_noise", "log_mixture"):  # ALPaCA's: priors that differ
            for parameter in getattr(model.algorithm, parameters, {}).values():
                parameter.normal_(0.0, 0.3)
        for scales in model.algorithm.learned_rates():  # rates 0.25 u: 0.2 to 0.4 per step, or 0.05 to 0.5 per entry
            if learned:
                scales.copy_(torch.linspace(0.8, 1.6, scales.numel()))
            else:
                scales.uniform_(0.2, 2.0)
        for bank in model.banks:
            if bank.closed_form:
                for parameter in bank.theta.values():
                    parameter.add_(torch.randn_like(parameter))
        if message_passing:
            for gate in model.message_passing.gates:
                gate.uniform_(0.1, 0.5)
            model.message_passing.node_embedding.normal_()
    model.algorithm.set_progress(0.05)
    return model


def engine_and_reference_gradients(model, support, query, support_observed=None, query_observed=None):
    """``{parameter name: (engine gradient, reference gradient)}`` and both meta-losses."""
    graph = model.graph
    batch = gm.TaskBatch.from_tensors(graph, support, query, support_observed, query_observed)
    named = [(name, p) for name, p in model.named_parameters() if p.requires_grad]
    parameters = [p for _, p in named]
    loss, _ = model.meta_loss(batch)
    grads = torch.autograd.grad(loss, parameters, allow_unused=True)
    ref_loss = reference_meta_loss(model, support, query, support_observed, query_observed)
    ref_grads = torch.autograd.grad(ref_loss, parameters, allow_unused=True)
    zero = torch.zeros_like
    pairs = {name: (zero(p) if g is None else g, zero(p) if r is None else r)
             for (name, p), g, r in zip(named, grads, ref_grads)}
    return (loss, ref_loss), pairs


def assert_engine_equals_reference(model, support, query, support_observed=None, query_observed=None,
                                   require_gradient: bool = True) -> None:
    """The meta-loss and the meta-gradient of every parameter equal the reference's, and (with
    ``require_gradient``) the meta-gradient is not zero throughout."""
    (loss, ref_loss), pairs = engine_and_reference_gradients(model, support, query, support_observed, query_observed)
    torch.testing.assert_close(loss, ref_loss, rtol=1e-6, atol=1e-9)
    for name, (grad, ref_grad) in pairs.items():
        torch.testing.assert_close(grad, ref_grad, rtol=1e-6, atol=1e-9, msg=lambda m, name=name: f"{name}: {m}")
    assert not require_gradient or sum(float(ref_grad.abs().sum()) for _, ref_grad in pairs.values()) > 0


def test_the_reference_defines_every_registered_learner_and_algorithm():
    assert set(REFERENCE_LEARNERS) == {learner.name for learner in registered()}
    assert set(REFERENCE_ALGORITHMS) == set(REGISTERED_ALGORITHMS)


@pytest.mark.parametrize("algorithm", ALGORITHMS)
@pytest.mark.parametrize("message_passing", [False, True])
def test_meta_loss_and_meta_gradient_equal_reference(algorithm, message_passing):
    """Every parameter: the banks' meta-init, the algorithm's rates and projections, message passing."""
    graph = every_learner_graph(conjugate=algorithm != "reptile")
    model = build(graph, algorithm, message_passing)
    T, K = 2, 4
    support, query = task_data(graph, T, K, 1), task_data(graph, T, K, 2)
    assert_engine_equals_reference(model, support, query, observed_masks(graph, T, K, 3),
                                   observed_masks(graph, T, K, 4))


def test_reptile_meta_init_learns_from_the_pull_alone_with_message_passing():
    """Reptile's theta follows the adapted weights only: with message passing on, its meta-gradient
    is the pull's, the query loss reaching message passing's own parameters alone."""
    graph = every_learner_graph(conjugate=False)
    model = build(graph, "reptile", message_passing=True)
    support, query = task_data(graph, 2, 3, 1), task_data(graph, 2, 3, 2)
    assert_engine_equals_reference(model, support, query)
    batch = gm.TaskBatch.from_tensors(graph, support, query)
    theta = [p for name, p in model.named_parameters() if name.startswith("banks.") and ".theta." in name]
    loss, _ = model.meta_loss(batch)
    with_messages = torch.autograd.grad(loss, theta)
    model.message_passing, passing = None, model.message_passing
    pull, _ = model.meta_loss(batch)
    without = torch.autograd.grad(pull, theta)
    model.message_passing = passing
    for a, b in zip(with_messages, without):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_adapted_weights_equal_reference(algorithm):
    """``adapt`` with more steps than meta-training uses (the last learned rate is reused), message
    passing on: every (task, node)'s own weights, as it predicts with them."""
    graph = every_learner_graph(conjugate=algorithm != "reptile")
    model = build(graph, algorithm, message_passing=True)
    support = task_data(graph, 2, 3, 5)
    observed = observed_masks(graph, 2, 3, 6)
    adapted = model.adapt(gm.TaskBatch.from_tensors(graph, support, support, observed, observed), steps=3)
    reference = reference_adapted_weights(model, support, observed, steps=3)
    for (t, name), weights in reference.items():
        b, row, slices = unpadded_slices(model, name)
        assert set(weights) == set(adapted.fast[b]), name
        for key, expected in weights.items():
            torch.testing.assert_close(adapted.fast[b][key][t, row][slices[key]], expected, rtol=1e-6, atol=1e-9,
                                       msg=lambda m, key=key, name=name: f"{name}.{key}: {m}")


def wide_graph() -> gm.TaskGraph:
    """Layers much wider than a support set has shots, where a weight's update is low-rank."""
    wide = gm.MLP(hidden=(16, 12))
    return (gm.TaskGraph()
            .add_subtask("x", in_dim=9, learner=wide)
            .add_subtask("y", in_dim=3, kind="classification", num_classes=3, learner=wide)
            .add_subtask("z", in_dim=0, out_dim=2, learner=gm.MLP(hidden=(20,)))
            .add_dependency("x", "y").add_dependency("x", "z").add_dependency("y", "z"))


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_wide_layers_with_few_shots_equal_reference(algorithm):
    """Two shots through 16- and 12-wide layers: the meta-loss and meta-gradient of training, and
    the weights after adapting with more steps than trained."""
    graph = wide_graph()
    model = build(graph, algorithm, message_passing=True)
    support, query = task_data(graph, 2, 2, 1), task_data(graph, 2, 3, 2)
    assert_engine_equals_reference(model, support, query)
    adapted = model.adapt(gm.TaskBatch.from_tensors(graph, support, support), steps=5)
    for (t, name), weights in reference_adapted_weights(model, support, steps=5).items():
        b, row, slices = unpadded_slices(model, name)
        for key, expected in weights.items():
            torch.testing.assert_close(adapted.fast[b][key][t, row][slices[key]], expected, rtol=1e-6, atol=1e-9,
                                       msg=lambda m, key=key, name=name: f"{name}.{key}: {m}")


@pytest.mark.parametrize("steps", [1, 3])
def test_mamlpp_multi_step_loss_equals_reference(steps):
    graph = every_learner_graph()
    model = build(graph, "mamlpp", message_passing=True, steps=steps)
    support, query = task_data(graph, 2, 3, 1), task_data(graph, 2, 3, 2)
    for progress in (0.0, 0.1, 1.0):
        model.algorithm.set_progress(progress)
        batch = gm.TaskBatch.from_tensors(graph, support, query)
        torch.testing.assert_close(model.meta_loss(batch)[0], reference_meta_loss(model, support, query),
                                   rtol=1e-6, atol=1e-9)


def test_evaluation_mode_takes_first_order_meta_gradients_like_the_reference():
    graph = every_learner_graph()
    model = build(graph, "maml", message_passing=True).eval()
    support, query = task_data(graph, 2, 3, 1), task_data(graph, 2, 3, 2)
    assert_engine_equals_reference(model, support, query)


@pytest.mark.parametrize("algorithm", ["cavia", "metasgd"])
def test_metrics_evaluation_and_predictions_equal_reference(algorithm):
    """A node without a query shot in one task: ``meta_loss`` and its per-node metrics (means over the
    tasks that have one); ``evaluate``'s per-(task, node) loss and accuracy; ``predict`` with
    unobserved parents (a Table then predicts its mixture of columns)."""
    graph = every_learner_graph()
    model = build(graph, algorithm, message_passing=True)
    T, K = 3, 4
    support, query = task_data(graph, T, K, 1), task_data(graph, T, K, 2)
    s_obs, q_obs = observed_masks(graph, T, K, 3), observed_masks(graph, T, K, 4)
    q_obs["b"][0] = False  # b has no query in task 0: its means are over tasks 1 and 2
    batch = gm.TaskBatch.from_tensors(graph, support, query, s_obs, q_obs)
    loss, metrics = model.meta_loss(batch)
    torch.testing.assert_close(loss, reference_meta_loss(model, support, query, s_obs, q_obs), rtol=1e-6, atol=1e-9)
    expected = reference_metrics(model, support, query, s_obs, q_obs)
    for key, value in expected.items():
        torch.testing.assert_close(metrics[key], value, rtol=1e-6, atol=1e-9, equal_nan=True, msg=key)
    adapted = model.adapt(gm.TaskBatch.from_tensors(graph, support, support, s_obs, s_obs))
    weights = reference_adapted_weights(model, support, s_obs)
    query_batch = gm.TaskBatch.from_tensors(graph, query, query, observed_masks(graph, T, K, 5),
                                            observed_masks(graph, T, K, 5))
    evaluation = adapted.evaluate(query_batch)
    for key, value in reference_evaluate(model, weights, query, observed_masks(graph, T, K, 5)).items():
        torch.testing.assert_close(evaluation[key], value, rtol=1e-6, atol=1e-9, equal_nan=True, msg=key)
    inputs = {name: x for name, (x, _) in query.items() if x is not None}
    for observed in ({}, {"b": query["b"][1], "g": query["g"][1]}):
        predictions = adapted.predict(inputs, observed=observed)
        for name, value in reference_predict(model, weights, inputs, observed).items():
            torch.testing.assert_close(predictions[name], value, rtol=1e-6, atol=1e-9, msg=name)


# ------------------------------------------------------------- the meta-initialisation
def own_fan_ins(graph: gm.TaskGraph, name: str) -> dict[str, int]:
    """Weight name -> the fan-in ``nn.Linear`` would give that layer of node ``name`` alone."""
    spec = graph.subtask(name)
    learner = spec.learner
    parents = sum(graph.subtask(p).width for p in graph.parents(name))
    if learner.type == "gnn":
        layers = {f"conv{l}": spec.in_dim if l == 0 else learner.hidden for l in range(learner.layers)}
        layers["head"] = learner.hidden + parents
    else:
        widths = [spec.in_dim + parents, *learner.hidden]
        layers = {f"hidden{l}": widths[l] for l in range(len(learner.hidden))} | {"head": widths[-1]}
    return {f"{layer}_{kind}": fan_in for layer, fan_in in layers.items() for kind in ("weight", "bias")}


def test_networks_start_as_nn_linear_with_each_nodes_own_fan_in():
    """Every layer of node ``i`` is ``U(-1/sqrt(fan_in_i), 1/sqrt(fan_in_i))`` with its own fan-in (not the
    bank's padded one; a node without inputs uses 1), over 30 seeds; padded input rows are 0."""
    graph = every_learner_graph(conjugate=False)
    scaled: dict[tuple[str, str], list[torch.Tensor]] = {}
    for seed in range(30):
        torch.manual_seed(seed)
        model = gm.GraphMetaLearner(graph, message_passing=False).double()
        for name in graph.names:
            b, row, slices = unpadded_slices(model, name)
            for key, fan_in in own_fan_ins(graph, name).items():
                parameter = model.banks[b].theta[key][row].detach()
                own = parameter[slices[key]]
                scaled.setdefault((name, key.rsplit("_", 1)[0]), []).append(own.flatten() * math.sqrt(max(fan_in, 1)))
                rows = slices[key][0] if key.endswith("weight") else slice(None)
                if key.endswith("weight") and rows.stop is not None:
                    assert not parameter[rows.stop:].any(), (name, key)  # padded inputs read 0
    for (name, layer), values in scaled.items():
        values = torch.cat(values).abs()
        assert values.max() <= 1, (name, layer)
        assert 0.4 < values.mean() < 0.6, (name, layer, float(values.mean()))  # E|U(-1, 1)| = 1/2


def test_tables_start_with_prior_strength_pseudo_counts_per_column_spread_evenly():
    graph = every_learner_graph()
    model = gm.GraphMetaLearner(graph).double()
    for name in ("w", "t"):
        b, row, slices = unpadded_slices(model, name)
        pseudo_counts = model.banks[b].theta["log_counts"][(row, *slices["log_counts"])].detach().exp()
        classes = graph.subtask(name).num_classes
        torch.testing.assert_close(pseudo_counts, torch.full_like(pseudo_counts, 1.5 / classes))


# ------------------------------------------------------------------ the reference itself
def test_reference_mamlpp_importances_are_the_papers():
    assert mamlpp_importances(0.0, 4) == pytest.approx([0.25] * 4)
    assert mamlpp_importances(0.075, 4) == pytest.approx([0.125] * 3 + [0.625])  # half-way through annealing
    assert mamlpp_importances(1.0, 4) == pytest.approx([0.0075] * 3 + [0.9775])
    assert mamlpp_importances(0.3, 2) == pytest.approx([0.015, 0.985])
    assert mamlpp_importances(0.5, 1) == [1.0]


def test_reference_table_posterior_counts_each_shot_once_in_its_row():
    """Node t (parents b with 3 classes, w with 2: row = 2 b + w) after one step is ``beta + n``."""
    graph = every_learner_graph()
    model = build(graph, "maml", message_passing=False)
    support = task_data(graph, 1, 5, 7)
    adapted = reference_adapted_weights(model, support)[0, "t"]["log_counts"].exp()
    b, row, slices = unpadded_slices(model, "t")
    expected = model.banks[b].theta["log_counts"][(row, *slices["log_counts"])].detach().exp().clone()
    for b_class, w_class, t_class in zip(support["b"][1][0], support["w"][1][0], support["t"][1][0]):
        expected[2 * b_class + w_class, t_class] += 1
    torch.testing.assert_close(adapted, expected)


@pytest.mark.parametrize("algorithm", ["maml", "metasgd", "mamlpp", "cavia", "anil"])
@pytest.mark.parametrize("graph", [every_learner_graph, wide_graph], ids=["every-learner", "low-rank"])
def test_refused_steps_equal_reference(algorithm, graph, monkeypatch):
    """Inner rates 20 times too large, so that many steps raise a node's support loss: the steps the
    guard refuses and halves, in training (meta-loss and meta-gradient) and in adaptation with more
    steps, equal the reference's rule; and the guard did refuse (unguarded, the weights differ)."""
    graph = graph()
    model = build(graph, algorithm, message_passing=True, steps=2)
    model.algorithm.inner_lr = model.config["inner_lr"] = 5.0
    support, query = task_data(graph, 2, 3, 1), task_data(graph, 2, 3, 2)
    assert_engine_equals_reference(model, support, query)
    batch = gm.TaskBatch.from_tensors(graph, support, support)
    adapted = model.adapt(batch, steps=6)
    for (t, name), weights in reference_adapted_weights(model, support, steps=6).items():
        b, row, slices = unpadded_slices(model, name)
        for key, expected in weights.items():
            torch.testing.assert_close(adapted.fast[b][key][t, row][slices[key]], expected, rtol=1e-6, atol=1e-9,
                                       msg=lambda m, key=key, name=name: f"{name}.{key}: {m}")
    monkeypatch.setattr(graphmeta.model, "inner_loop", functools.partial(inner_loop, guarded=False))
    unguarded = model.adapt(batch, steps=6)
    assert any(not torch.equal(weights[key], unguarded.fast[b][key])
               for b, weights in enumerate(adapted.fast) for key in weights)
