"""The graph meta-learner: inert at a closed gate, differentiable, and it does move weights."""

import torch

import graphmeta as gm
from graphmeta.adapt.message_passing import ParameterMessagePassing
from graphmeta.learners.banks.bank_set import BankSet
from graphmeta.learners.banks.low_rank import LowRankWeight, OuterProducts, update_mean_square
from graphmeta.testing.reference import reference_adapted_weights, unpadded_slices
from tests.test_model import mixed_graph, task_data


def batch_of(graph, T=3, K=4):
    return gm.TaskBatch.from_tensors(graph, task_data(graph, T, K, 1), task_data(graph, T, K, 2))


def test_closed_gate_equals_message_passing_off():
    graph = mixed_graph(gnn=True)
    torch.manual_seed(0)
    on = gm.GraphMetaLearner(graph, inner_steps=2, message_passing=True).double()
    off = gm.GraphMetaLearner(graph, inner_steps=2, message_passing=False).double()
    off.banks.load_state_dict(on.banks.state_dict())
    batch = batch_of(graph)
    loss_on, metrics_on = on.meta_loss(batch)
    loss_off, metrics_off = off.meta_loss(batch)
    assert torch.equal(loss_on, loss_off)
    for key in metrics_on:
        torch.testing.assert_close(metrics_on[key], metrics_off[key], equal_nan=True, rtol=0, atol=0)
    # the gate is the only message-passing parameter with a gradient at initialisation
    loss_on.backward()
    assert all(g.grad is not None and g.grad.abs().sum() > 0 for g in on.message_passing.gates)


def test_open_gate_corrects_the_adapted_heads_as_the_reference_does():
    """Half-open gates: each node's head moves by the messages of its parents, its children and the
    whole graph, exactly as the reference's dense formula says; the other weights stay where the
    inner loop left them."""
    graph = mixed_graph()
    torch.manual_seed(0)
    model = gm.GraphMetaLearner(graph, message_passing=True).double()
    support = task_data(graph, 3, 4, 1)
    batch = gm.TaskBatch.from_tensors(graph, support, support)
    plain = model.adapt(batch).fast
    with torch.no_grad():
        for gate in model.message_passing.gates:
            gate.fill_(0.5)
    corrected = model.adapt(batch).fast
    for (t, name), weights in reference_adapted_weights(model, support).items():
        b, row, slices = unpadded_slices(model, name)
        for key, expected in weights.items():
            torch.testing.assert_close(corrected[b][key][t, row][slices[key]], expected, rtol=1e-6, atol=1e-9)
            if key.startswith("head_"):
                assert (corrected[b][key][t, row] - plain[b][key][t, row]).abs().min() > 0, (name, key)
            else:
                assert torch.equal(corrected[b][key][t, row], plain[b][key][t, row]), (name, key)


def test_gradcheck_through_message_passing():
    graph = (gm.TaskGraph().add_subtask("a", in_dim=1, learner=gm.MLP(hidden=(3,)))
             .add_subtask("b", in_dim=1, learner=gm.MLP(hidden=(3,))).add_dependency("a", "b"))
    torch.manual_seed(0)
    model = gm.GraphMetaLearner(graph, message_passing=True, message_channels=4, message_rounds=1).double()
    with torch.no_grad():
        for gate in model.message_passing.gates:
            gate.uniform_(0.2, 0.6)
    batch = batch_of(graph, T=2, K=3)
    names = ["banks.banks.0.theta.hidden0_weight", "message_passing.encoders.0.weight", "message_passing.gates.0"]
    parameters = dict(model.named_parameters())
    inputs = tuple(parameters[name].detach().clone().requires_grad_() for name in names)

    def meta_loss(*tensors):
        return torch.func.functional_call(model, dict(zip(names, tensors)), (batch,))[0]

    assert torch.autograd.gradcheck(meta_loss, inputs, eps=1e-6, atol=1e-6)


def test_directed_means_average_parents_and_children():
    """``[A_pa; A_ch]`` is the dense adjacency normalised by in- and out-degree (0 without any)."""
    graph = mixed_graph()
    banks = BankSet(graph)
    module = ParameterMessagePassing(graph, banks, [tuple(bank.theta) for bank in banks])
    N = len(graph)
    adjacency = torch.zeros(N, N)
    for parent, child in graph.edges:
        adjacency[graph.names.index(parent), graph.names.index(child)] = 1.0
    from_parents = adjacency.T / adjacency.sum(0).clamp(min=1)[:, None]
    from_children = adjacency / adjacency.sum(1).clamp(min=1)[:, None]
    means = module.means(torch.float32)
    assert means.is_coalesced()
    torch.testing.assert_close(means.to_dense(), torch.cat([from_parents, from_children]), rtol=0, atol=0)


def test_update_sizes_from_either_product_are_the_dense_updates():
    """The sizes the encoder reads come from ``L^T R`` or from the Gram matrices, whichever is
    cheaper: both are the dense update's mean square, with its gradient."""
    generator = torch.Generator().manual_seed(0)
    for d_in, d_out, rank in ((3, 8, 4), (8, 8, 2)):  # d_in d_out <= R (d_in + d_out), and not
        initial = torch.randn(3, d_in, d_out, generator=generator, dtype=torch.float64)
        left = torch.randn(3, 2, rank, d_in, generator=generator, dtype=torch.float64, requires_grad=True)
        right = torch.randn(3, 2, rank, d_out, generator=generator, dtype=torch.float64, requires_grad=True)
        scale = torch.rand(3, 2, 1, 1, generator=generator, dtype=torch.float64)

        def sizes(left, right):
            return update_mean_square(LowRankWeight.shared(initial, 2),
                                      LowRankWeight(initial, OuterProducts(left, right, scale)))

        dense = torch.einsum("ntri,ntro->tnio", left, right * scale)
        torch.testing.assert_close(sizes(left, right), dense.flatten(2).pow(2).mean(-1))
        assert torch.autograd.gradcheck(sizes, (left, right))
