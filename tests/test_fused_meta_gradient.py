"""The compiled meta-loss that carries its meta-gradient (graphmeta/fused_meta_gradient.py): its
backward scales the gradient by the upstream one, grad mode off takes the plain compiled loss, and the
input statistics still learn.
(Compiled against eager for every algorithm and learner: tests/adapt/test_compiled.py.)"""

from __future__ import annotations

import copy

import pytest
import torch
from torch._dynamo.utils import counters

import graphmeta as gm
from tests.test_model import task_data

pytestmark = pytest.mark.usefixtures("fresh_compiler")  # tests/conftest.py


@pytest.fixture(scope="module")
def models_and_batch():
    torch.manual_seed(0)
    graph = (gm.TaskGraph().add_subtask("x", in_dim=1, learner=gm.MLP(hidden=(6,), activation="tanh"))
             .add_subtask("y", in_dim=1, learner=gm.MLP(hidden=(5,))).add_dependency("x", "y"))
    eager = gm.GraphMetaLearner(graph, "maml", inner_steps=2, message_passing=False).float()
    batch = gm.TaskBatch.from_tensors(graph, task_data(graph, 3, 4, 1), task_data(graph, 3, 4, 2)).to(torch.float32)
    return eager, batch


def compiled_copy(model: gm.GraphMetaLearner) -> gm.GraphMetaLearner:
    compiled = copy.deepcopy(model)
    compiled.compile(backend="aot_eager", adapt=False)
    return compiled


def test_the_loss_carries_its_gradient_scaled_and_summed_with_other_terms(models_and_batch):
    """``(3 L + ||theta||^2).backward()`` leaves ``3 dL/dtheta + 2 theta``, as eagerly, from one
    compiled call that also gives the metrics and records the batch's inputs (against which
    adaptation is judged)."""
    eager, batch = models_and_batch
    eager, compiled = copy.deepcopy(eager), compiled_copy(eager)
    results, grads = [], []
    for model in (eager, compiled):
        loss, metrics = model.meta_loss(batch)
        assert loss.requires_grad
        (3 * loss + sum((p ** 2).sum() for p in model.parameters())).backward()
        results.append((loss, metrics))
        grads.append([p.grad for p in model.parameters()])
    assert counters["stats"]["unique_graphs"] == 1 and not counters["graph_break"]
    torch.testing.assert_close(results[1][0], results[0][0], rtol=1e-5, atol=1e-6)
    for eager_grad, compiled_grad in zip(*grads, strict=True):
        torch.testing.assert_close(compiled_grad, eager_grad, rtol=1e-5, atol=1e-6)
    for name, value in results[0][1].items():
        torch.testing.assert_close(results[1][1][name], value, rtol=1e-5, atol=1e-6, equal_nan=True)
    for name, buffer in eager.input_statistics.named_buffers():
        torch.testing.assert_close(dict(compiled.input_statistics.named_buffers())[name], buffer)
    assert float(compiled.input_statistics.count.max()) > 0


def test_without_grad_mode_the_loss_alone_runs(models_and_batch):
    eager, batch = models_and_batch
    compiled = compiled_copy(eager)
    with torch.no_grad():
        loss, metrics = compiled.meta_loss(batch)
        expected, expected_metrics = eager.meta_loss(batch)
    assert not loss.requires_grad
    torch.testing.assert_close(loss, expected)
    torch.testing.assert_close(metrics["loss_after"], expected_metrics["loss_after"])
