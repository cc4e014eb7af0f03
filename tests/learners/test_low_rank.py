"""Low-rank fast weights: the factored form is its dense value wherever a tensor is expected, and
a meta-step with low-rank steps equals the same step taken on dense weights (which the engine's
exactness tests tie to the per-node reference)."""

from dataclasses import replace

import pytest
import torch

import graphmeta as gm
import graphmeta.adapt.inner_loop as inner_loop_module
from graphmeta.adapt.algorithms import ALGORITHMS
from graphmeta.learners.banks.low_rank import LowRankWeight, OuterProducts, update_mean_square
from tests.test_model import observed_masks, task_data


def factors(generator: torch.Generator, rank: int = 2, out: int = 5) -> tuple[torch.Tensor, OuterProducts]:
    """``initial [3, 4, out]`` and outer products for T=2 tasks, float64."""
    def draw(*shape):
        return torch.randn(*shape, generator=generator, dtype=torch.float64)
    return draw(3, 4, out), OuterProducts(draw(3, 2, rank, 4), draw(3, 2, rank, out))


def test_low_rank_weight_is_its_dense_value_wherever_a_tensor_is_expected():
    initial, update = factors(torch.Generator().manual_seed(0))
    weight = LowRankWeight(initial, update)
    dense = initial.unsqueeze(0) - torch.einsum("ntri,ntro->tnio", update.left, update.right)
    torch.testing.assert_close(weight.dense(), dense)
    assert weight.shape == dense.shape and weight.rank == 2
    torch.testing.assert_close(weight - dense, torch.zeros_like(dense))
    torch.testing.assert_close(dense - weight, torch.zeros_like(dense))
    torch.testing.assert_close(torch.mul(weight, 2.0), 2 * dense)
    torch.testing.assert_close(weight.detach().clone(), dense)
    torch.testing.assert_close(weight.nodes(torch.tensor([2, 0])).dense(), dense[:, [2, 0]])
    torch.testing.assert_close(update.squared_norm(), (dense - initial).pow(2).sum((2, 3)))
    shared = LowRankWeight.shared(initial, num_tasks=2)
    assert shared.rank == 0 and torch.equal(shared.dense(), initial.expand(2, 3, 4, 5))


def test_one_column_products_and_steps_keep_the_dense_value():
    generator = torch.Generator().manual_seed(1)
    initial, update = factors(generator, out=1)
    _, step = factors(generator, rank=3, out=1)
    weight = LowRankWeight(initial, update).stepped(step, torch.full((3, 2, 1, 1), 0.5, dtype=torch.float64))
    expected = LowRankWeight(initial, update).dense() - 0.5 * step.dense()
    torch.testing.assert_close(weight.dense(), expected)
    assert weight.rank == 5


def test_update_sizes_read_from_factors_equal_the_dense_ones():
    initial, update = factors(torch.Generator().manual_seed(2))
    before, after = LowRankWeight.shared(initial, 2), LowRankWeight(initial, update)
    expected = (after.dense() - before.dense()).flatten(2).pow(2).mean(-1)
    torch.testing.assert_close(update_mean_square(before, after), expected)
    torch.testing.assert_close(update_mean_square(before.dense(), after.dense()), expected)


def wide_graph() -> gm.TaskGraph:
    """Hidden layers wide enough (16) for K=3 shots and 2 steps to stay low-rank (rank 6)."""
    return (gm.TaskGraph()
            .add_subtask("a", in_dim=3, learner=gm.MLP(hidden=(16, 16)))
            .add_subtask("b", in_dim=2, kind="classification", num_classes=3, learner=gm.MLP(hidden=(16, 16)))
            .add_subtask("c", in_dim=0, out_dim=2, learner=gm.MLP(hidden=(16, 16), activation="tanh"))
            .add_dependency("a", "b").add_dependency("b", "c").add_dependency("a", "c"))


def meta_step(algorithm: str, message_passing: bool) -> tuple[gm.GraphMetaLearner, tuple, bool]:
    """Loss, gradients and metrics of one masked meta-step, and whether a weight went low-rank."""
    graph = wide_graph()
    torch.manual_seed(0)
    model = gm.GraphMetaLearner(graph, algorithm=algorithm, inner_steps=2, inner_lr=0.3,
                                message_passing=message_passing).double()
    with torch.no_grad():
        if message_passing:
            for gate in model.message_passing.gates:
                gate.uniform_(0.1, 0.5)
        for rates in getattr(model.algorithm, "rates", []):
            for rate in rates.values():
                rate.uniform_(0.05, 0.5)
    T, K = 3, 3
    batch = gm.TaskBatch.from_tensors(graph, task_data(graph, T, K, 1), task_data(graph, T, K, 2),
                                      observed_masks(graph, T, K, 3), observed_masks(graph, T, K, 4))
    # shots with a parent missing do not count (filling them would tap every weight dense)
    batch = replace(batch, support=replace(batch.support, fill_missing=False),
                    query=replace(batch.query, fill_missing=False))
    loss, metrics = model.meta_loss(batch)
    grads = torch.autograd.grad(loss, [p for p in model.parameters() if p.requires_grad], allow_unused=True)
    adaptation = model._adapt(batch.support, 2, create_graph=False, track_meta_gradient=True)
    low_rank = any(isinstance(w, LowRankWeight) and w.rank > 0
                   for weights in adaptation.plain for w in weights.values())
    return model, (loss, grads, metrics), low_rank


@pytest.mark.parametrize("algorithm", list(ALGORITHMS))
@pytest.mark.parametrize("message_passing", [False, True])
def test_low_rank_steps_equal_dense_steps(algorithm, message_passing, monkeypatch):
    _, (loss, grads, metrics), low_rank = meta_step(algorithm, message_passing)
    # Meta-SGD's rates differ within a matrix, ANIL's 16 x 3 heads are cheaper dense at rank 6, CAVIA adapts a context
    assert low_rank == (algorithm in ("maml", "fomaml", "reptile", "mamlpp"))
    monkeypatch.setattr(inner_loop_module, "_low_rank_cheaper", lambda weight, grad: False)
    _, (dense_loss, dense_grads, dense_metrics), dense_low_rank = meta_step(algorithm, message_passing)
    assert not dense_low_rank
    torch.testing.assert_close(loss, dense_loss, rtol=1e-9, atol=1e-12)
    for grad, dense_grad in zip(grads, dense_grads):
        assert (grad is None) == (dense_grad is None)
        if grad is not None:
            torch.testing.assert_close(grad, dense_grad, rtol=1e-9, atol=1e-12)
    for key in metrics:
        torch.testing.assert_close(metrics[key], dense_metrics[key], rtol=1e-9, atol=1e-12, equal_nan=True)


def test_adapted_graph_holds_dense_weights():
    graph = wide_graph()
    model = gm.GraphMetaLearner(graph, inner_steps=2).double()
    support = task_data(graph, 2, 3, 5)
    for steps in (0, 2):
        fast = model.adapt(gm.TaskBatch.from_tensors(graph, support, support), steps=steps).fast
        assert all(isinstance(w, torch.Tensor) for weights in fast for w in weights.values())
