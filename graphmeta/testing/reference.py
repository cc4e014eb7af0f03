"""A slow, obviously-correct reference of the meta-training step: one task, one node at a time.

It reads the same meta-parameters as a :class:`~graphmeta.GraphMetaLearner` but none of its
batching: no padding, no gathers, no masks beyond dropping unobserved rows, one
``autograd.grad`` per (task, node). Tests check the batched engine against it; the
throughput benchmark times it as the per-node loop a learn2learn-style library runs.

Data come as the ``{node: (x, y)}`` mappings of :meth:`TaskBatch.from_tensors` with a task
axis (``x`` of a GNN node: a list of ``T * K`` PyG ``Data``), plus optional ``observed``
masks ``{node: [T, K] bool}``.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F
from torch_geometric.utils import to_dense_adj

from ..learners import GNN, Table
from ..model import GraphMetaLearner

Data = Mapping[str, Any]


def reference_meta_loss(model: GraphMetaLearner, support: Data, query: Data,
                        support_observed: Data | None = None, query_observed: Data | None = None,
                        create_graph: bool | None = None) -> torch.Tensor:
    """The meta-loss of ``model`` computed task by task, node by node."""
    graph = model.graph
    names = graph.names
    algorithm = model.algorithm
    T = _num_tasks(graph, support)
    if create_graph is None:
        create_graph = algorithm.second_order and model.training
    theta = {name: _node_theta(model, name) for name in names}
    fast: dict[tuple[int, str], dict[str, torch.Tensor]] = {}
    every_step: dict[tuple[int, str], list[dict[str, torch.Tensor]]] = {}
    support_before: dict[tuple[int, str], torch.Tensor] = {}
    for t in range(T):
        for name in names:
            weights = _node_initial(model, name, theta[name])
            every_step[t, name] = []
            for step in range(model.inner_steps):
                loss = _node_loss(model, name, weights, support, support_observed, t)
                if step == 0:
                    support_before[t, name] = loss if create_graph else loss.detach()
                weights = _inner_step(model, name, weights, loss, support, support_observed, t, step, create_graph)
                every_step[t, name].append(weights)
            fast[t, name] = weights
    plain = dict(fast)
    initial = {(t, name): _node_initial(model, name, theta[name]) for t in range(T) for name in names}
    if model.message_passing is not None and model.inner_steps > 0:
        fast = _message_passing(model, initial, fast, support, support_observed, support_before, T,
                                detach=not algorithm.query_trains_theta)

    def query_loss(weights_of) -> torch.Tensor:
        total, count = 0.0, 0
        for t in range(T):
            for name in names:
                if _rows(graph, name, query, query_observed, t).any():
                    total = total + _node_loss(model, name, weights_of(t, name), query, query_observed, t)
                    count += 1
        return total / max(count, 1)

    final = query_loss(lambda t, name: fast[t, name])
    if algorithm.uses_every_step and model.inner_steps > 1:  # MAML++'s multi-step loss
        importances = algorithm.importances(model.inner_steps).tolist()
        return sum(v * query_loss(lambda t, name, s=s: every_step[t, name][s])
                   for s, v in enumerate(importances[:-1])) + importances[-1] * final
    if algorithm.query_trains_theta:
        return final
    pull = sum(0.5 * (th - plain[t, name][key].detach()).pow(2).sum() / T
               for t in range(T) for name in names for key, th in theta[name].items())
    return pull + (final if model.message_passing is not None else 0)


def reference_adapted_weights(model: GraphMetaLearner, support: Data, support_observed: Data | None = None
                              ) -> dict[tuple[int, str], dict[str, torch.Tensor]]:
    """Unpadded adapted weights per (task, node), without message passing."""
    graph = model.graph
    fast = {}
    for t in range(_num_tasks(graph, support)):
        for name in graph.names:
            weights = _node_initial(model, name, _node_theta(model, name))
            for step in range(model.inner_steps):
                loss = _node_loss(model, name, weights, support, support_observed, t)
                weights = _inner_step(model, name, weights, loss, support, support_observed, t, step, True)
            fast[t, name] = weights
    return fast


def _inner_step(model: GraphMetaLearner, name: str, weights: dict[str, torch.Tensor], loss: torch.Tensor,
                support: Data, observed: Data | None, t: int, step: int, create_graph: bool
                ) -> dict[str, torch.Tensor]:
    """One inner step of node ``name`` in task ``t``: a gradient step on the weights the
    algorithm adapts, or for a Table node the conjugate update at step 0 (counted shot by shot)
    and nothing after."""
    if isinstance(model.graph.subtask(name).learner, Table):
        if step > 0:
            return weights
        pseudo_counts = weights["log_counts"].exp()
        keep = _rows(model.graph, name, support, observed, t)
        rows = _table_rows(model, name, support, t)
        _, y = _unpack(support[name])
        for k in torch.nonzero(keep).flatten().tolist():
            pseudo_counts = pseudo_counts.index_put((rows[k], y[t, k].long()), torch.ones((), dtype=pseudo_counts.dtype),
                                                    accumulate=True)
        return {"log_counts": pseudo_counts.log()}
    b, row, slices = unpadded_slices(model, name)
    adapted = model.algorithm.adapted(model.banks[b])
    grads = dict(zip(adapted, torch.autograd.grad(loss, [weights[key] for key in adapted], create_graph=create_graph)))
    return {key: w - _node_rate(model, b, row, key, step, slices.get(key)) * grads[key] if key in grads else w
            for key, w in weights.items()}


def _node_rate(model: GraphMetaLearner, b: int, row: int, key: str, step: int, where: tuple[slice, ...] | None):
    """The algorithm's rate of weight ``key`` at ``step``, cut to node ``row``'s own entries."""
    rate = model.algorithm.rate(b, key, step)
    if isinstance(rate, float) or rate.dim() == 0:
        return rate
    return rate[(row, *where)]
def _table_rows(model: GraphMetaLearner, name: str, data: Data, t: int) -> torch.Tensor:
    """``[K]``: the table row of each shot, ``sum_j class_j * prod_{i > j} classes_i`` over the parents."""
    parents = model.graph.parents(name)
    classes = [model.graph.subtask(p).num_classes for p in parents]
    rows = torch.zeros(_unpack(data[name])[1].shape[1], dtype=torch.long)
    for j, parent in enumerate(parents):
        rows = rows + _unpack(data[parent])[1][t].long().clamp(min=0) * math.prod(classes[j + 1:])
    return rows


def unpadded_slices(model: GraphMetaLearner, name: str) -> tuple[int, int, dict[str, tuple[slice, ...]]]:
    """``(bank index, row, slices)``: which part of each named bank tensor is node ``name``'s own."""
    graph = model.graph
    b, row = _bank_rows(model)[name]
    bank = model.banks[b]
    spec = graph.subtask(name)
    parent_width = graph.input_width(name) - spec.in_dim
    full = slice(None)
    slices = {key: (full,) * (p.dim() - 1) for key, p in bank.theta.items()}
    if isinstance(spec.learner, Table):
        slices["log_counts"] = (full, slice(0, spec.width))
    elif isinstance(spec.learner, GNN):
        slices["conv0_weight"] = (slice(0, spec.in_dim), full)
        slices["head_weight"] = (slice(0, spec.learner.hidden + parent_width), slice(0, spec.width))
        slices["head_bias"] = (slice(0, spec.width),)
    else:
        head_inputs = slice(0, graph.input_width(name)) if not spec.learner.hidden else full
        slices[f"{bank.layers[0]}_weight"] = (slice(0, graph.input_width(name)), full)
        slices["head_weight"] = (head_inputs, slice(0, spec.width))
        slices["head_bias"] = (slice(0, spec.width),)
    return b, row, slices


@functools.lru_cache(maxsize=4)
def _bank_rows(model: GraphMetaLearner) -> dict[str, tuple[int, int]]:
    return {name: (b, row) for b, bank in enumerate(model.banks) for row, name in enumerate(bank.names)}


def _node_theta(model: GraphMetaLearner, name: str) -> dict[str, torch.Tensor]:
    b, row, slices = unpadded_slices(model, name)
    return {key: p[(row, *slices[key])] for key, p in model.banks[b].theta.items()}


def _node_initial(model: GraphMetaLearner, name: str, theta: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The node's weights before the first step: theta, and a zero context where the algorithm
    adapts one (CAVIA)."""
    b, _, _ = unpadded_slices(model, name)
    if "context" not in model.algorithm.adapted(model.banks[b]):
        return dict(theta)
    return {**theta, "context": theta["head_bias"].new_zeros(model.algorithm.context_dim).requires_grad_()}


def _num_tasks(graph, data: Data) -> int:
    first = graph.names[0]
    entry = data[first]
    y = entry[1] if isinstance(entry, (tuple, list)) else entry
    return int(torch.as_tensor(y).shape[0])


def _unpack(entry: Any) -> tuple[Any, torch.Tensor]:
    return (entry[0], torch.as_tensor(entry[1])) if isinstance(entry, (tuple, list)) else (None, torch.as_tensor(entry))


def _value(graph, name: str, data: Data, t: int) -> torch.Tensor:
    """Node ``name``'s value in task ``t`` as the columns its children read: [K, width]."""
    _, y = _unpack(data[name])
    spec = graph.subtask(name)
    if spec.kind == "classification":
        return F.one_hot(y[t].long().clamp(min=0), spec.num_classes).double()
    return y[t].double()


def _rows(graph, name: str, data: Data, observed: Data | None, t: int) -> torch.Tensor:
    """Shots of task ``t`` where ``name`` and all its parents are observed."""
    _, y = _unpack(data[name])
    keep = torch.ones(y.shape[1], dtype=torch.bool)
    for node in [name, *graph.parents(name)]:
        if observed is not None and node in observed:
            keep &= torch.as_tensor(observed[node][t], dtype=torch.bool)
    return keep


def _node_loss(model: GraphMetaLearner, name: str, weights: dict[str, torch.Tensor], data: Data,
               observed: Data | None, t: int) -> torch.Tensor:
    graph = model.graph
    spec = graph.subtask(name)
    dtype = weights["head_bias" if "head_bias" in weights else "log_counts"].dtype
    x, y = _unpack(data[name])
    keep = _rows(graph, name, data, observed, t)
    parents = [_value(graph, p, data, t).to(dtype) for p in graph.parents(name)]
    context_shift = _context_shift(model, name, weights)
    if isinstance(spec.learner, Table):
        outputs = weights["log_counts"][_table_rows(model, name, data, t)].log_softmax(-1)
    elif isinstance(spec.learner, GNN):
        K = y.shape[1]
        outputs = []
        for k in range(K):
            graph_k = x[t * K + k]
            hidden = graph_k.x.to(dtype)
            adjacency = to_dense_adj(graph_k.edge_index, max_num_nodes=hidden.shape[0])[0].to(dtype)
            adjacency = (adjacency > 0).to(dtype)
            adjacency.fill_diagonal_(0)
            adjacency = adjacency + torch.eye(hidden.shape[0], dtype=dtype)
            scale = adjacency.sum(-1).rsqrt()
            propagate = scale[:, None] * adjacency * scale[None, :]
            for layer in range(spec.learner.layers):
                bias = weights[f"conv{layer}_bias"] + (context_shift if layer == 0 else 0)
                hidden = _activation(model, name)(propagate @ hidden @ weights[f"conv{layer}_weight"] + bias)
            head_input = torch.cat([hidden.mean(0), *[p[k] for p in parents]])
            outputs.append(head_input @ weights["head_weight"] + weights["head_bias"])
        outputs = torch.stack(outputs)
    else:
        columns = ([torch.as_tensor(x[t]).to(dtype)] if spec.in_dim > 0 else []) + parents
        hidden = torch.cat(columns, dim=-1) if columns else torch.zeros(y.shape[1], 0, dtype=dtype)
        layers = [f"hidden{layer}" for layer in range(len(spec.learner.hidden))] + ["head"]
        for layer in layers:
            hidden = hidden @ weights[f"{layer}_weight"] + weights[f"{layer}_bias"]
            if layer == layers[0]:
                hidden = hidden + context_shift
            if layer != "head":
                hidden = _activation(model, name)(hidden)
        outputs = hidden
    outputs = outputs[keep]
    if spec.kind == "classification":
        return F.cross_entropy(outputs, y[t][keep].long())
    return F.mse_loss(outputs, y[t][keep].to(dtype))


def _context_shift(model: GraphMetaLearner, name: str, weights: dict[str, torch.Tensor]) -> torch.Tensor | float:
    """CAVIA: the context ``c`` fed to the first layer through its projection ``W_c``, i.e. the
    first layer's input ``[x, c]`` times ``[W; W_c]``, written as the added term ``c W_c``."""
    if "context" not in weights:
        return 0.0
    b, row, slices = unpadded_slices(model, name)
    bank = model.banks[b]
    projection = model.algorithm.projections[str(b)][row][:, slices[bank.first_bias][0]]
    return weights["context"] @ projection


def _activation(model: GraphMetaLearner, name: str):
    from ..learners.mlp_bank import ACTIVATION_FUNCTIONS

    return ACTIVATION_FUNCTIONS[model.graph.subtask(name).learner.activation]


def _message_passing(model, initial, fast, support, observed, support_before, T, detach):
    """Pad each node's weights back into its bank's layout, run the model's message passing,
    and cut each node's corrected weights out again."""
    graph = model.graph

    def stacked(per_node, b, bank, key):
        rows = []
        for t in range(T):
            nodes = []
            for name in bank.names:
                _, row, slices = unpadded_slices(model, name)
                if key == "context":
                    nodes.append(per_node[t, name][key])
                    continue
                full = bank.theta[key][row].clone()
                full[slices[key]] = per_node[t, name][key]
                nodes.append(full)
            rows.append(torch.stack(nodes))
        return torch.stack(rows)

    initial_banks, fast_banks = [], []
    for b, bank in enumerate(model.banks):
        keys = list(initial[0, bank.names[0]])
        initial_banks.append({key: stacked(initial, b, bank, key) for key in keys})
        weights = {key: stacked(fast, b, bank, key) for key in keys}
        fast_banks.append({key: w.detach() for key, w in weights.items()} if detach else weights)
    statistics = torch.stack([
        torch.stack([torch.stack([support_before[t, name], _rows(graph, name, support, observed, t).sum().to(
            support_before[t, name].dtype)]) for name in graph.names])
        for t in range(T)])
    corrected_banks = model.message_passing(initial_banks, fast_banks, statistics.detach() if detach else statistics)
    corrected = {}
    for b, bank in enumerate(model.banks):
        for name in bank.names:
            _, row, slices = unpadded_slices(model, name)
            for t in range(T):
                corrected[t, name] = {key: w[t, row] if key == "context" else w[t, row][slices[key]]
                                      for key, w in corrected_banks[b].items()}
    return corrected
