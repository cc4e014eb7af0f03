"""The support guard: no inner step raises a (task, node)'s support loss, only the pairs that need it
are touched, and where it does not trigger the meta-gradient is the unguarded one bit for bit."""

from __future__ import annotations

import copy
import functools

import pytest
import torch

import graphmeta as gm
import graphmeta.model
from graphmeta.adapt.inner_loop import inner_loop
from graphmeta.data import Split
from graphmeta.learners.banks.low_rank import dense_weights
from tests.test_model import mixed_graph, task_data
from tests.test_reference import build, wide_graph


def chain_graph() -> gm.TaskGraph:
    """``u`` reads 2 features, ``v`` one feature and ``u``'s value."""
    return gm.TaskGraph("chain").add_subtask("u", in_dim=2).add_subtask("v", in_dim=1).add_dependency("u", "v")


def chain_tasks(num_tasks: int, shots: int, shift: float, seed: int) -> gm.TaskBatch:
    """Linear tasks ``u = a . f_u``, ``v = b u + f_v`` (plus noise) on features ``N(shift, 1)``: a
    training task at ``shift = 0``, a held-out one ``shift`` training standard deviations away."""
    generator = torch.Generator().manual_seed(seed)
    f_u = torch.randn(num_tasks, 2 * shots, 2, generator=generator) + shift
    f_v = torch.randn(num_tasks, 2 * shots, 1, generator=generator) + shift
    a, b = torch.randn(num_tasks, 1, 2, generator=generator), torch.randn(num_tasks, 1, 1, generator=generator)
    u = (f_u * a).sum(-1, keepdim=True) + 0.1 * torch.randn(num_tasks, 2 * shots, 1, generator=generator)
    v = b * u + f_v + 0.1 * torch.randn(num_tasks, 2 * shots, 1, generator=generator)
    rows = {"u": (f_u, u), "v": (f_v, v)}
    support = {name: (x[:, :shots], y[:, :shots]) for name, (x, y) in rows.items()}
    query = {name: (x[:, shots:], y[:, shots:]) for name, (x, y) in rows.items()}
    return gm.TaskBatch.from_tensors(chain_graph(), support, query)


@functools.cache
def trained_chain_model() -> gm.GraphMetaLearner:
    """MAML meta-trained on unshifted chain tasks, one inner step at 0.1."""
    torch.manual_seed(0)
    model = gm.GraphMetaLearner(chain_graph(), inner_steps=1, inner_lr=0.1, message_passing=False)
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    for step in range(60):
        loss, _ = model.meta_loss(chain_tasks(8, 10, 0.0, step), metrics=False)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return model.eval()


def inner_loop_weights(model: gm.GraphMetaLearner, support, steps: int, guarded: bool = True):
    """The weights of ``model``'s inner loop on ``support`` (no message passing), at test time."""
    initial = [model.algorithm.initial(b, bank, support.num_tasks) for b, bank in enumerate(model.banks)]
    fast, _, _ = inner_loop(model.banks, model.algorithm, initial, support, steps, create_graph=False,
                            track_meta_gradient=False, guarded=guarded)
    return fast


def support_losses(model: gm.GraphMetaLearner, support, steps: int, guarded: bool = True) -> torch.Tensor:
    """``[T, N]``: the support loss of every (task, node) after ``steps`` inner steps."""
    with torch.no_grad():
        return model.banks.losses(inner_loop_weights(model, support, steps, guarded), support)[0]


def test_a_task_three_deviations_out_diverges_unguarded_and_never_gets_worse_guarded():
    """The real-table failure in small: meta-trained rates overshoot on inputs 3 standard deviations
    out (unguarded, the support loss explodes); guarded, every (task, node) ends finite and no worse
    than without adaptation, at every number of steps, and still learns."""
    model = trained_chain_model()
    held_out = chain_tasks(4, 10, 3.0, 1000).support
    before = support_losses(model, held_out, 0)
    unguarded = {steps: support_losses(model, held_out, steps, guarded=False) for steps in (1, 5, 20, 100)}
    assert all(bool((~torch.isfinite(loss) | (loss > 100 * before)).any()) for steps, loss in unguarded.items()
               if steps in (1, 5)), {steps: float(loss.nan_to_num(float("inf")).max()) for steps, loss in unguarded.items()}
    for steps in (1, 5, 20, 100):
        guarded = support_losses(model, held_out, steps)
        assert torch.isfinite(guarded).all(), steps
        assert (guarded <= before).all(), (steps, guarded, before)
    assert (support_losses(model, held_out, 100) < 0.1 * before).all()  # halved steps still go down
    training_like = chain_tasks(4, 10, 0.0, 1001).support
    torch.testing.assert_close(support_losses(model, training_like, 1), support_losses(model, training_like, 1, False),
                               rtol=0, atol=0)  # where no step overshoots, nothing changes


def test_only_the_refused_pairs_keep_their_weights():
    """Three training-like tasks and one shifted: after one step the (task, node) pairs whose step
    overshoots keep the meta-initialisation, every other one has the unguarded step's exact weights."""
    model = trained_chain_model()
    normal, shifted = chain_tasks(3, 10, 0.0, 7).support, chain_tasks(1, 10, 3.0, 8).support
    support = Split(*(torch.cat([getattr(normal, part), getattr(shifted, part)]) for part in ("features", "values",
                                                                                             "observed")))
    refused = support_losses(model, support, 1, guarded=False) > support_losses(model, support, 0)
    assert not refused[:3].any() and refused[3].any()  # only the shifted task overshoots
    guarded, plain = inner_loop_weights(model, support, 1), inner_loop_weights(model, support, 1, guarded=False)
    for bank, weights, unguarded in zip(model.banks, guarded, plain):
        start = dense_weights(bank.expand(4))
        weights, unguarded = dense_weights(weights), dense_weights(unguarded)
        kept = refused[:, bank.node_index]
        for name, weight in weights.items():
            assert torch.equal(weight[kept], start[name][kept].detach()), name
            assert torch.equal(weight[~kept], unguarded[name][~kept]), name


def test_meta_training_leaves_its_last_step_to_the_query_loss(monkeypatch):
    """One inner step on a shifted task that overshoots: in training mode the meta-loss is the
    unguarded one (the last step is not reviewed, and its overshoot reaches the meta-gradient);
    in eval mode (validation) and in ``adapt`` the step is refused."""
    model = copy.deepcopy(trained_chain_model())
    batch = chain_tasks(2, 10, 3.0, 9)
    assert (support_losses(model, batch.support, 1, guarded=False) > support_losses(model, batch.support, 0)).any()
    losses = {}
    for training in (True, False):
        model.train(training)
        losses[training, True] = model.meta_loss(batch, metrics=False)[0].detach()
        with monkeypatch.context() as patch:
            patch.setattr(graphmeta.model, "inner_loop", functools.partial(inner_loop, guarded=False))
            losses[training, False] = model.meta_loss(batch, metrics=False)[0].detach()
    assert torch.equal(losses[True, True], losses[True, False])
    assert losses[False, True] < losses[False, False]  # validation refuses the overshooting step
    torch.testing.assert_close(losses[False, False], losses[True, False])


@pytest.mark.parametrize("graph", [mixed_graph, wide_graph], ids=["mixed", "low-rank"])
@pytest.mark.parametrize("algorithm", ["maml", "metasgd", "cavia"])
def test_the_meta_gradient_is_unchanged_where_the_guard_does_not_trigger(graph, algorithm, monkeypatch):
    """Small steps that all go down: guarded and unguarded meta-losses and meta-gradients are equal
    bit for bit (second order, message passing on), low-rank weights included."""
    graph = graph()
    model = build(graph, algorithm, message_passing=True, steps=3)
    model.algorithm.inner_lr = 0.01
    batch = gm.TaskBatch.from_tensors(graph, task_data(graph, 3, 4, 1), task_data(graph, 3, 4, 2))
    parameters = [p for p in model.parameters() if p.requires_grad]

    def meta_gradient():
        loss, _ = model.meta_loss(batch, metrics=False)
        return loss, torch.autograd.grad(loss, parameters, allow_unused=True)

    loss, gradients = meta_gradient()
    monkeypatch.setattr(graphmeta.model, "inner_loop", functools.partial(inner_loop, guarded=False))
    plain_loss, plain_gradients = meta_gradient()
    assert torch.equal(loss, plain_loss)
    for gradient, plain in zip(gradients, plain_gradients):
        assert (gradient is None) == (plain is None) and (gradient is None or torch.equal(gradient, plain))
