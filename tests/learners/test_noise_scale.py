"""Predictive uncertainty of the banks: the learned noise scale of MLP and GNN nodes, the Student-t
predictive of Linear nodes, and the squared error and negative log-likelihood they are scored by."""

import math

import pytest
import torch

import graphmeta as gm
from graphmeta.learners.banks.bank import LearnerBank
from tests.test_model import build, mixed_graph, observed_masks, task_data

NOISE = 0.3


def offset_batch(graph: gm.TaskGraph, tasks: int, shots: int, query: int, generator: torch.Generator) -> gm.TaskBatch:
    """Tasks ``y = x + b_t + 0.3 e`` with ``b_t, e ~ N(0, 1)``, ``x ~ U[-1, 1]``: noise of std 0.3."""
    offset = torch.randn(tasks, 1, 1, generator=generator)

    def side(rows: int) -> tuple[torch.Tensor, torch.Tensor]:
        x = torch.rand(tasks, rows, 1, generator=generator) * 2 - 1
        return x, x + offset + NOISE * torch.randn(tasks, rows, 1, generator=generator)

    return gm.TaskBatch.from_tensors(graph, {"y": side(shots)}, {"y": side(query)})


def test_the_learned_noise_scale_converges_to_the_noise_of_the_family():
    """Meta-trained on tasks with Gaussian noise of std 0.3, sigma = exp(log_noise_std) ends within
    20% of 0.3, and at the root mean squared query residual after adaptation (its maximum-likelihood
    value) on new tasks."""
    graph = gm.TaskGraph().add_subtask("y", in_dim=1, out_dim=1, learner=gm.MLP(hidden=(16,)))
    torch.manual_seed(0)
    model = gm.GraphMetaLearner(graph, inner_steps=3, inner_lr=0.3, message_passing=False)
    optimizer = torch.optim.Adam(model.parameters(), lr=0.03)
    generator = torch.Generator().manual_seed(1)
    assert model.banks[0].log_noise_std.exp().item() == 1.0
    for _ in range(100):
        loss, _ = model.meta_loss(offset_batch(graph, 8, 20, 20, generator), metrics=False)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    sigma = model.banks[0].log_noise_std.exp().item()
    assert sigma == pytest.approx(NOISE, rel=0.2)
    test = offset_batch(graph, 200, 20, 50, torch.Generator().manual_seed(5))
    residual = model.adapt(test, steps=3).evaluate(test)["mse"].mean().sqrt().item()
    assert sigma == pytest.approx(residual, rel=0.1)


@pytest.mark.parametrize("algorithm", ["maml", "reptile"])
def test_the_noise_term_leaves_every_other_meta_gradient_unchanged(algorithm, monkeypatch):
    """The meta-gradient of every parameter but the noise scales is the query loss's alone; the noise
    scales take the gradient of the Gaussian negative log-likelihood of the query residuals."""
    graph = mixed_graph(gnn=True)
    model = build(graph, algorithm, message_passing=True)
    with torch.no_grad():
        for bank in model.banks:
            if bank.log_noise_std is not None:
                bank.log_noise_std.normal_(0.0, 0.5)
    batch = gm.TaskBatch.from_tensors(graph, task_data(graph, 2, 5, 1), task_data(graph, 2, 5, 2),
                                      observed_masks(graph, 2, 5, 3), observed_masks(graph, 2, 5, 4))
    named = [(name, p) for name, p in model.named_parameters() if p.requires_grad]
    noise_scales = {name for name, _ in named if name.endswith("log_noise_std")}
    assert noise_scales  # the MLP and GNN banks hold one
    with_noise = torch.autograd.grad(model.meta_loss(batch)[0], [p for _, p in named], allow_unused=True)
    monkeypatch.setattr(LearnerBank, "noise_loss", lambda *args: None)
    without = torch.autograd.grad(model.meta_loss(batch)[0], [p for _, p in named], allow_unused=True)
    for (name, _), grad, plain in zip(named, with_noise, without):
        if name in noise_scales:
            assert plain is None and grad is not None and grad.abs().sum() > 0, name
        elif grad is None or plain is None:
            assert grad is None and plain is None, name
        else:
            torch.testing.assert_close(grad, plain, rtol=0, atol=0, msg=lambda m, name=name: f"{name}: {m}")


def test_evaluate_scores_a_regression_node_by_its_squared_error_and_gaussian_likelihood():
    """``mse`` and ``nll`` of an MLP node by hand from its predictions and exp(log_noise_std);
    NaN for classification nodes."""
    graph = mixed_graph()
    model = build(graph, "maml", message_passing=False)
    with torch.no_grad():
        for bank in model.banks:
            if bank.log_noise_std is not None:
                bank.log_noise_std.normal_(0.0, 0.5)
    support, query = task_data(graph, 2, 6, 1), task_data(graph, 2, 6, 2)
    adapted = model.adapt(gm.TaskBatch.from_tensors(graph, support, support))
    scores = adapted.evaluate(gm.TaskBatch.from_tensors(graph, query, query))
    inputs = {name: x for name, (x, _) in query.items() if x is not None}
    observed = {name: y for name, (_, y) in query.items()}
    predicted = adapted.predict(inputs, observed)
    for n, name in enumerate(graph.names):
        spec = graph.subtask(name)
        if spec.kind == "classification":
            assert scores["mse"][:, n].isnan().all() and scores["nll"][:, n].isnan().all()
            continue
        b = next(b for b, bank in enumerate(model.banks) if name in bank.names)
        row = model.banks[b].names.index(name)
        sigma = model.banks[b].log_noise_std[row, :spec.out_dim].exp().detach()
        residual = predicted[name] - observed[name]
        nll = (0.5 * math.log(2 * math.pi) + sigma.log() + residual ** 2 / (2 * sigma ** 2)).sum(-1).mean(-1)
        torch.testing.assert_close(scores["mse"][:, n], residual.pow(2).mean((-1, -2)))
        torch.testing.assert_close(scores["nll"][:, n], nll)


def test_the_nll_of_a_linear_node_is_its_loss():
    """A Linear node's loss is already its Student-t posterior-predictive negative log-likelihood; its
    ``mse`` is the squared error of the predictive mean."""
    graph = (gm.TaskGraph().add_subtask("x", in_dim=2, out_dim=2, learner="linear")
             .add_subtask("y", in_dim=1, out_dim=1, learner=gm.Linear(noise_shape=3.0))
             .add_dependency("x", "y"))
    torch.manual_seed(0)
    model = gm.GraphMetaLearner(graph, message_passing=False).double()
    support, query = task_data(graph, 3, 8, 1), task_data(graph, 3, 5, 2)
    adapted = model.adapt(gm.TaskBatch.from_tensors(graph, support, support))
    scores = adapted.evaluate(gm.TaskBatch.from_tensors(graph, query, query))
    torch.testing.assert_close(scores["nll"], scores["loss"], rtol=1e-12, atol=0)
    predicted = adapted.predict({name: x for name, (x, _) in query.items()}, {name: y for name, (_, y) in query.items()})
    for n, name in enumerate(graph.names):
        torch.testing.assert_close(scores["mse"][:, n], (predicted[name] - query[name][1]).pow(2).mean((-1, -2)))
