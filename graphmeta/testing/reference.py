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

from ..model import GraphMetaLearner

Data = Mapping[str, Any]


def reference_meta_loss(model: GraphMetaLearner, support: Data, query: Data,
                        support_observed: Data | None = None, query_observed: Data | None = None,
                        create_graph: bool | None = None) -> torch.Tensor:
    """The meta-loss of ``model`` computed task by task, node by node."""
    graph = model.graph
    names = graph.names
    T = _num_tasks(graph, support)
    if create_graph is None:
        create_graph = model.algorithm.second_order and model.training
    theta = {name: _node_theta(model, name) for name in names}
    rates = {name: _node_rates(model, name) for name in names}
    fast: dict[tuple[int, str], list[torch.Tensor]] = {}
    support_before: dict[tuple[int, str], torch.Tensor] = {}
    for t in range(T):
        for name in names:
            weights = list(theta[name])
            for step in range(model.inner_steps):
                loss = _node_loss(model, name, weights, support, support_observed, t)
                if step == 0:
                    support_before[t, name] = loss if create_graph else loss.detach()
                weights = _inner_step(model, name, weights, loss, support, support_observed, t, step, create_graph,
                                      rates[name])
            fast[t, name] = weights
    plain = dict(fast)
    if model.message_passing is not None and model.inner_steps > 0:
        fast = _message_passing(model, theta, fast, support, support_observed, support_before, T,
                                detach=model.algorithm.reptile)
    total, count = 0.0, 0
    for t in range(T):
        for name in names:
            if _rows(graph, name, query, query_observed, t).any():
                total = total + _node_loss(model, name, fast[t, name], query, query_observed, t)
                count += 1
    query_loss = total / max(count, 1)
    if not model.algorithm.reptile:
        return query_loss
    reptile = sum(0.5 * (th - ph.detach()).pow(2).sum() / T
                  for t in range(T) for name in names for th, ph in zip(theta[name], plain[t, name]))
    return reptile + (query_loss if model.message_passing is not None else 0)


def reference_adapted_weights(model: GraphMetaLearner, support: Data, support_observed: Data | None = None
                              ) -> dict[tuple[int, str], list[torch.Tensor]]:
    """Unpadded adapted weights per (task, node), without message passing."""
    graph = model.graph
    fast = {}
    for t in range(_num_tasks(graph, support)):
        for name in graph.names:
            weights = list(_node_theta(model, name))
            for step in range(model.inner_steps):
                loss = _node_loss(model, name, weights, support, support_observed, t)
                weights = _inner_step(model, name, weights, loss, support, support_observed, t, step, True,
                                      _node_rates(model, name))
            fast[t, name] = weights
    return fast


def _inner_step(model: GraphMetaLearner, name: str, weights: list[torch.Tensor], loss: torch.Tensor, support: Data,
                observed: Data | None, t: int, step: int, create_graph: bool, rates) -> list[torch.Tensor]:
    """One inner step of node ``name`` in task ``t``: a gradient step, or for a Table node the
    conjugate update at step 0 (counted shot by shot) and nothing after."""
    if model.graph.subtask(name).learner.type == "table":
        if step > 0:
            return weights
        pseudo_counts = weights[0].exp()
        keep = _rows(model.graph, name, support, observed, t)
        rows = _table_rows(model, name, support, t)
        _, y = _unpack(support[name])
        for k in torch.nonzero(keep).flatten().tolist():
            pseudo_counts = pseudo_counts.index_put((rows[k], y[t, k].long()), torch.ones((), dtype=pseudo_counts.dtype),
                                                    accumulate=True)
        return [pseudo_counts.log()]
    adapt = _adaptable(model, name)
    grads = iter(torch.autograd.grad(loss, [w for w, a in zip(weights, adapt) if a], create_graph=create_graph))
    step_rates = rates(step)
    return [w - step_rates[i] * next(grads) if a else w for i, (w, a) in enumerate(zip(weights, adapt))]


def _table_rows(model: GraphMetaLearner, name: str, data: Data, t: int) -> torch.Tensor:
    """``[K]``: the table row of each shot, ``sum_j class_j * prod_{i > j} classes_i`` over the parents."""
    parents = model.graph.parents(name)
    classes = [model.graph.subtask(p).num_classes for p in parents]
    rows = torch.zeros(_unpack(data[name])[1].shape[1], dtype=torch.long)
    for j, parent in enumerate(parents):
        rows = rows + _unpack(data[parent])[1][t].long().clamp(min=0) * math.prod(classes[j + 1:])
    return rows


def unpadded_slices(model: GraphMetaLearner, name: str) -> tuple[int, int, list[tuple[slice, ...]]]:
    """``(bank index, row, slices)``: which part of each bank tensor is node ``name``'s own."""
    graph = model.graph
    b, row = _bank_rows(model)[name]
    bank = model.banks[b]
    spec = graph.subtask(name)
    parent_width = graph.input_width(name) - spec.in_dim
    full = slice(None)
    if spec.learner.type == "table":
        slices = [(full, slice(0, spec.width))]
    elif spec.learner.type == "gnn":
        slices = [(slice(0, spec.in_dim), full) if i == 0 else (full,) * (p.dim() - 1)
                  for i, p in enumerate(bank.theta[:-2])]
        slices += [(slice(0, spec.learner.hidden + parent_width), slice(0, spec.width)), (slice(0, spec.width),)]
    else:
        slices = [(full,) * (p.dim() - 1) for p in bank.theta]
        slices[0] = (slice(0, graph.input_width(name)), full)
        slices[-2] = (full, slice(0, spec.width))
        slices[-1] = (slice(0, spec.width),)
    return b, row, slices


@functools.lru_cache(maxsize=4)
def _bank_rows(model: GraphMetaLearner) -> dict[str, tuple[int, int]]:
    return {name: (b, row) for b, bank in enumerate(model.banks) for row, name in enumerate(bank.names)}


def _node_theta(model: GraphMetaLearner, name: str) -> list[torch.Tensor]:
    b, row, slices = unpadded_slices(model, name)
    return [p[(row, *s)] for p, s in zip(model.banks[b].theta, slices)]


def _node_rates(model: GraphMetaLearner, name: str):
    b, row, slices = unpadded_slices(model, name)
    if model.banks[b].conjugate:
        return None  # adapts in closed form
    if model.algorithm.per_parameter_lr:
        start = sum(len(model.banks[i].theta) for i in range(b) if not model.banks[i].conjugate)
        rates = [model.inner_lrs[start + i][(row, *s)] for i, s in enumerate(slices)]
        return lambda step: rates
    return lambda step: [model.inner_lrs[min(step, len(model.inner_lrs) - 1)]] * len(slices)


def _adaptable(model: GraphMetaLearner, name: str) -> tuple[bool, ...]:
    b, _, _ = unpadded_slices(model, name)
    return model.adaptable[b]


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


def _node_loss(model: GraphMetaLearner, name: str, weights: list[torch.Tensor], data: Data,
               observed: Data | None, t: int) -> torch.Tensor:
    graph = model.graph
    spec = graph.subtask(name)
    dtype = weights[0].dtype
    x, y = _unpack(data[name])
    keep = _rows(graph, name, data, observed, t)
    parents = [_value(graph, p, data, t).to(dtype) for p in graph.parents(name)]
    if spec.learner.type == "table":
        outputs = weights[0][_table_rows(model, name, data, t)].log_softmax(-1)
    elif spec.learner.type == "gnn":
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
            for layer in range(0, len(weights) - 2, 2):
                hidden = _activation(model, name)(propagate @ hidden @ weights[layer] + weights[layer + 1])
            head_input = torch.cat([hidden.mean(0), *[p[k] for p in parents]])
            outputs.append(head_input @ weights[-2] + weights[-1])
        outputs = torch.stack(outputs)
    else:
        columns = ([torch.as_tensor(x[t]).to(dtype)] if spec.in_dim > 0 else []) + parents
        hidden = torch.cat(columns, dim=-1) if columns else torch.zeros(y.shape[1], 0, dtype=dtype)
        for layer in range(0, len(weights), 2):
            hidden = hidden @ weights[layer] + weights[layer + 1]
            if layer < len(weights) - 2:
                hidden = _activation(model, name)(hidden)
        outputs = hidden
    outputs = outputs[keep]
    if spec.kind == "classification":
        return F.cross_entropy(outputs, y[t][keep].long())
    return F.mse_loss(outputs, y[t][keep].to(dtype))


def _activation(model: GraphMetaLearner, name: str):
    from ..learners.mlp_bank import ACTIVATION_FUNCTIONS

    return ACTIVATION_FUNCTIONS[model.graph.subtask(name).learner.activation]


def _message_passing(model, theta, fast, support, observed, support_before, T, detach):
    """Pad each node's update back into its bank's layout, run the model's message passing, and
    add its correction to each node's output layer."""
    graph = model.graph
    deltas, bases = [], []
    for b, bank in enumerate(model.banks):
        stacked = []
        for i, p in enumerate(bank.theta):
            per_task = []
            for t in range(T):
                per_node = []
                for name in bank.names:
                    _, row, slices = unpadded_slices(model, name)
                    full = p[row].clone()
                    full[slices[i]] = fast[t, name][i].detach() if detach else fast[t, name][i]
                    per_node.append(full)
                per_task.append(torch.stack(per_node))
            stacked.append(torch.stack(per_task))
        bases.append(stacked)
        bank_deltas = [f - p.unsqueeze(0) for f, p, a in zip(stacked, bank.theta, model.adaptable[b]) if a]
        deltas.append([d.detach() for d in bank_deltas] if detach else bank_deltas)
    statistics = torch.stack([
        torch.stack([torch.stack([support_before[t, name], _rows(graph, name, support, observed, t).sum().to(
            support_before[t, name].dtype)]) for name in graph.names])
        for t in range(T)])
    corrections = model.message_passing(deltas, statistics.detach() if detach else statistics)
    corrected = {}
    for b, bank in enumerate(model.banks):
        head = bases[b][-bank.head_size:]
        parts = corrections[b].split([w[0, 0].numel() for w in head], dim=-1)
        weights = [*bases[b][:-bank.head_size], *(w + c.reshape(w.shape) for w, c in zip(head, parts))]
        for name in bank.names:
            _, row, slices = unpadded_slices(model, name)
            for t in range(T):
                corrected[t, name] = [w[t, row][s] for w, s in zip(weights, slices)]
    return corrected
