"""The compiled engine (``model.compile()``) against the eager one: the same meta-loss, meta-gradients
and adapted weights, second order where the algorithm is. Compiling takes tens of seconds per
model here, so the default run compiles one small model (inductor) and ``--slow`` the second-order
check, every algorithm with and without message passing, latent nodes, task factors and new sizes.
``aot_eager`` runs AOTAutograd, where double backward is lost, without inductor's code generation;
one test compiles with inductor, PyTorch's default."""

from __future__ import annotations

import copy

import pytest
import torch
from torch._dynamo.utils import counters

import graphmeta as gm
from graphmeta.adapt.algorithms import ALGORITHMS
from graphmeta.testing.meta_gradients import assert_meta_gradients_close, meta_gradient
from tests.adapt.test_task_factor import factored_graph
from tests.test_latent import latent_data, latent_graph
from tests.test_model import task_data
from tests.test_reference import build, every_learner_graph

pytestmark = pytest.mark.usefixtures("fresh_compiler")  # tests/conftest.py


def eager_and_compiled(algorithm: str, message_passing: bool, backend: str = "aot_eager",
                       graph: gm.TaskGraph | None = None, adapt_steps: int = 3, data=task_data):
    """The meta-loss, its meta-gradient and the weights adapted in ``adapt_steps`` steps, of one
    float32 model run eagerly and of a copy run compiled (its ``adapt`` too), on the same batch."""
    graph = graph or every_learner_graph(conjugate=algorithm != "reptile")
    eager = build(graph, algorithm, message_passing).float()
    compiled = copy.deepcopy(eager)
    compiled.compile(backend=backend)
    T, K = 3, 4
    batch = gm.TaskBatch.from_tensors(graph, data(graph, T, K, 1), data(graph, T, K, 2))
    results = []
    for model in (eager, compiled):
        parameters = [p for p in model.parameters() if p.requires_grad]
        loss, _ = model.meta_loss(batch, metrics=False)
        results.append((meta_gradient(loss, parameters), model.adapt(batch, steps=adapt_steps)))
    # both engines were captured whole, so nothing of them ran eagerly
    assert counters["stats"]["unique_graphs"] == 2 and not counters["graph_break"], dict(counters["graph_break"])
    return results


def assert_compiled_equals_eager(algorithm: str, message_passing: bool, **options) -> None:
    (eager, eager_adapted), (compiled, compiled_adapted) = eager_and_compiled(algorithm, message_passing, **options)
    torch.testing.assert_close(compiled.loss, eager.loss, rtol=1e-5, atol=1e-6)
    assert_meta_gradients_close(compiled, eager, rtol=1e-5, atol=1e-5)
    for eager_weights, compiled_weights in zip(eager_adapted.fast, compiled_adapted.fast, strict=True):
        for name, weight in eager_weights.items():
            torch.testing.assert_close(compiled_weights[name], weight, rtol=1e-5, atol=1e-5,
                                       msg=lambda m, name=name: f"adapted {name}: {m}")


@pytest.mark.slow
@pytest.mark.parametrize("message_passing", [False, True])
@pytest.mark.parametrize("algorithm", list(ALGORITHMS))
def test_compiled_equals_eager(algorithm, message_passing):
    """Every learner (MLP, GNN, Table, Linear; regression and classification) in one graph."""
    assert_compiled_equals_eager(algorithm, message_passing)


@pytest.mark.slow  # 14 s; by default the inductor test below compares compiled meta-gradients with eager second-order ones
def test_compiled_meta_gradient_is_second_order():
    """The known trap: AOTAutograd over ``autograd.grad(create_graph=True)`` returns the first-order
    gradient. Compiled MAML's meta-gradient equals eager MAML's and differs from the first-order
    gradient of the same model: the same weights and rates, in training mode (where the support
    guard leaves the last inner step to the query loss), with the algorithm's second order off."""
    graph = gm.TaskGraph().add_subtask("y", in_dim=1, learner=gm.MLP(hidden=(8,), activation="tanh"))
    (eager, _), (compiled, _) = eager_and_compiled("maml", False, graph=graph)
    first_order = build(graph, "maml", False).float()  # built as eager_and_compiled builds it
    first_order.algorithm.second_order = False  # the class setting, shadowed on this instance
    batch = gm.TaskBatch.from_tensors(graph, task_data(graph, 3, 4, 1), task_data(graph, 3, 4, 2))
    loss, _ = first_order.meta_loss(batch, metrics=False)
    fomaml = meta_gradient(loss, [p for p in first_order.parameters() if p.requires_grad])
    torch.testing.assert_close(fomaml.loss, eager.loss)  # the same model and batch
    assert_meta_gradients_close(compiled, eager, rtol=1e-5, atol=1e-6)
    differences = [float((a - b).abs().max()) for a, b in zip(compiled.grads, fomaml.grads, strict=True)
                   if a is not None and b is not None]
    assert max(differences) > 1e-3


def test_inductor_compiled_equals_eager():
    """PyTorch's default backend, as ``model.compile()`` uses it, on a sinusoid-sized MLP."""
    graph = gm.TaskGraph().add_subtask("y", in_dim=1, learner=gm.MLP(hidden=(40, 40)))
    # one adaptation step: inductor's cold compile of the unrolled loop grows with its steps (13 s for
    # one, 38 s for three here); the steps after the first are checked under aot_eager with --slow
    assert_compiled_equals_eager("maml", False, backend="inductor", graph=graph, adapt_steps=1)


@pytest.mark.slow
def test_compiled_equals_eager_with_latent_nodes():
    """Latent nodes filled level by level inside the compiled step."""
    assert_compiled_equals_eager("maml", True, graph=latent_graph(), data=latent_data)


@pytest.mark.slow
@pytest.mark.parametrize("message_passing", [False, True])
def test_compiled_equals_eager_with_task_factors(message_passing):
    """Linear priors that share a task factor (placed by one solve per task after the inner loop)."""
    assert_compiled_equals_eager("maml", message_passing, graph=factored_graph())


@pytest.mark.slow
def test_new_sizes_recompile_a_bounded_number_of_times():
    """A new support size compiles once more, after which PyTorch makes that size dynamic; so does a
    new number of tasks. Five shapes, at most three compiles, and the last two reuse them."""
    family = gm.load_family("sinusoid", seed=0)
    model = gm.GraphMetaLearner(family.graph, "maml", message_passing=False)
    model.compile(backend="aot_eager", adapt=False)
    graphs = []
    for shots, tasks in ((5, 8), (7, 8), (5, 12), (9, 8), (11, 16)):
        loss, _ = model(family.sample(tasks, shots=shots, query=10), metrics=False)
        loss.backward()
        graphs.append(counters["stats"]["unique_graphs"])
    assert graphs[-1] <= 3 and graphs[-1] == graphs[2], graphs


def test_each_model_keeps_its_own_compiled_code():
    """Two compiled models of one process (a tuning study's trials) do not count against one
    recompile limit: with a limit of one compile per function, the second model still compiles
    (sharing the engine's entries, it would run eagerly past the limit, without a word)."""
    family = gm.load_family("sinusoid", seed=0)
    batch = family.sample(4, shots=5, query=5)
    with torch._dynamo.config.patch(recompile_limit=1):
        for seed in (0, 1):
            torch.manual_seed(seed)
            model = gm.GraphMetaLearner(family.graph, "maml", message_passing=False)
            model.compile(backend="eager", adapt=False)
            model(batch, metrics=False)[0].backward()
    assert counters["stats"]["unique_graphs"] == 2, dict(counters["stats"])
