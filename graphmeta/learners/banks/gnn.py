"""`GNNBank`: every GNN node of a graph as one batched graph network over dense small graphs.

Each (task, node, shot) has its own input graph with adjacency ``A`` and node features
``X``. With ``Â = D^{-1/2} (A + I) D^{-1/2}`` (GCN normalisation, Kipf & Welling 2017) and
fast weights ``[T, N, ...]`` (``conv{l}_weight`` / ``conv{l}_bias`` for ``l = 0..L-1``, then
``head_weight`` / ``head_bias``), node ``n`` of task ``t`` computes

    H_0 = X,    H_l = act(Â H_{l-1} W_l[t, n] + b_l[t, n])                  (l = 1..L)
    g = mean over the graph's nodes of H_L
    output = [g, parents' values] W_head[t, n] + b_head[t, n]

for all (task, node, shot) at once. Graphs are padded to the largest one; padded graph
nodes are masked out of ``Â`` and of the mean.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from ...data import Split
from ...taskgraph import TaskGraph
from ..activations import ACTIVATIONS
from ..gnn import GNN
from .bank import LearnerBank, Weights, gather_columns, packed_source, uniform_


class GNNBank(LearnerBank):
    """The GNN nodes ``names`` of ``graph`` sharing ``spec``."""

    learns_noise = True

    def __init__(self, graph: TaskGraph, names: Sequence[str], spec: GNN) -> None:
        super().__init__(graph, names)
        self.spec = spec
        parent_columns = [self._parent_columns(name) for name in self.names]
        self.parent_width = max(len(c) for c in parent_columns)
        pad = self.layout.feature_width + self.layout.value_width
        self.register_buffer("parent_index", self.layout.gather_index(
            self.names, self._parent_columns, self.parent_width, pad), persistent=False)
        self.feature_width = max(graph.subtask(name).in_dim for name in self.names)
        self.register_buffer("fan_in", torch.tensor([graph.subtask(name).in_dim for name in self.names]),
                             persistent=False)
        self.register_buffer("head_fan_in", torch.tensor([spec.hidden + len(c) for c in parent_columns]),
                             persistent=False)
        self.convolutions = [f"conv{l}" for l in range(spec.layers)]
        self.first_bias = "conv0_bias"
        self.theta = nn.ParameterDict()
        widths = [self.feature_width] + [spec.hidden] * spec.layers
        for layer, d_in, d_out in zip(self.convolutions, widths[:-1], widths[1:]):
            self.theta[f"{layer}_weight"] = nn.Parameter(torch.empty(len(self.names), d_in, d_out))
            self.theta[f"{layer}_bias"] = nn.Parameter(torch.empty(len(self.names), d_out))
        self.theta["head_weight"] = nn.Parameter(torch.empty(len(self.names), spec.hidden + self.parent_width,
                                                             self.output_width))
        self.theta["head_bias"] = nn.Parameter(torch.empty(len(self.names), self.output_width))
        self.activation = ACTIVATIONS[spec.activation]
        self.reset_parameters()

    def _parent_columns(self, name: str) -> list[int]:
        own = self.layout.feature_slices[name]
        return [c for c in self.layout.input_columns(name) if not own.start <= c < own.stop]

    def reset_parameters(self) -> None:
        """``nn.Linear``'s initialisation per node, with each node's true fan-in; padding rows 0."""
        fan_in = self.fan_in
        for layer in self.convolutions:
            uniform_(self.theta[f"{layer}_weight"], fan_in)
            uniform_(self.theta[f"{layer}_bias"], fan_in)
            fan_in = torch.full_like(self.fan_in, self.spec.hidden)
        uniform_(self.theta["head_weight"], self.head_fan_in)
        uniform_(self.theta["head_bias"], self.head_fan_in)
        with torch.no_grad():
            self.theta["conv0_weight"].mul_((torch.arange(self.feature_width) < self.fan_in[:, None])[:, :, None])
            self.theta["head_weight"].mul_(self.real_head_inputs[:, :, None])
        self.reset_noise_scale()

    def dense_inputs(self, split: Split, nodes: torch.Tensor | None = None
                     ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``X [T, N_b, K, M, F]``, normalised ``Â [T, N_b, K, M, M]`` and node mask ``[T, N_b, K, M]``."""
        names = self.names if nodes is None else [self.names[i] for i in nodes.tolist()]
        graphs = [split.graphs[name] for name in names]
        size = max(g.x.shape[2] for g in graphs)
        x = torch.stack([_pad(g.x, (0, self.feature_width - g.x.shape[-1], 0, size - g.x.shape[2]))
                         for g in graphs], dim=1)
        adjacency = torch.stack([_pad(g.adjacency, (0, size - g.x.shape[2], 0, size - g.x.shape[2]))
                                 for g in graphs], dim=1)
        mask_float = torch.stack([_pad(g.mask.to(x.dtype), (0, size - g.x.shape[2])) for g in graphs], dim=1)
        with_loops = adjacency + torch.diag_embed(mask_float)
        inv_sqrt_degree = with_loops.sum(-1).clamp(min=1).rsqrt() * mask_float
        normalised = inv_sqrt_degree.unsqueeze(-1) * with_loops * inv_sqrt_degree.unsqueeze(-2)
        return x, normalised, mask_float

    def forward(self, weights: Weights, split: Split, nodes: torch.Tensor | None = None) -> torch.Tensor:
        """Outputs ``[T, N_b, K, D_out]`` of all (task, node) pairs (or of the bank rows ``nodes``)."""
        if nodes is not None:
            weights = {name: w[:, nodes] for name, w in weights.items()}
        head_input = self.head_inputs(weights, split, nodes)
        return torch.matmul(head_input, weights["head_weight"]) + weights["head_bias"].unsqueeze(-2)

    def head_inputs(self, weights: Weights, split: Split, nodes: torch.Tensor | None = None) -> torch.Tensor:
        """``[g, parents' values] [T, N_b', K, hidden + parent width]``: the pooled graph embedding and
        the parents' values (``weights`` already those of the rows ``nodes``)."""
        x, propagate, mask = self.dense_inputs(split, nodes)
        hidden = x
        for layer in self.convolutions:
            weight, bias = weights[f"{layer}_weight"], weights[f"{layer}_bias"]
            transformed = torch.matmul(hidden, weight.unsqueeze(2))  # [T, N, K, M, H]
            hidden = self.activation(propagate @ transformed + bias[:, :, None, None, :])
        pooled = (hidden * mask.unsqueeze(-1)).sum(-2) / mask.sum(-1, keepdim=True).clamp(min=1)
        index = self.parent_index if nodes is None else self.parent_index[nodes]
        parents = gather_columns(packed_source(split), index)
        return torch.cat([pooled, parents], dim=-1)

    @property
    def real_head_inputs(self) -> torch.Tensor:
        width = self.theta["head_weight"].shape[1]
        return torch.arange(width, device=self.head_fan_in.device) < self.head_fan_in[:, None]

    def extra_repr(self) -> str:
        return (f"nodes={len(self.names)}, feature_width={self.feature_width}, hidden={self.spec.hidden}, "
                f"layers={self.spec.layers}, output_width={self.output_width}")


def _pad(tensor: torch.Tensor, padding: tuple[int, ...]) -> torch.Tensor:
    return nn.functional.pad(tensor, padding) if any(padding) else tensor
