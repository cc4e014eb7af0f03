"""`MLPBank`: every MLP node of a graph as one stacked multilayer perceptron.

For fast weights ``hidden{l}_weight`` / ``hidden{l}_bias`` (``l = 0..L-2``) and ``head_weight`` /
``head_bias``, ``W_l`` of shape ``[T, N, d_{l-1}, d_l]``, node ``n`` of task ``t`` computes, on its
inputs ``x [K, d_0]``,

    h_0 = x,    h_l = act(h_{l-1} W_l[t, n] + b_l[t, n]),    output = h_{L-1} W_head[t, n] + b_head[t, n]

for all ``(t, n)`` at once with one batched matmul per layer. ``x`` is the node's own
features followed by its parents' values, padded to the bank's widest input.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from ..data import Split
from ..taskgraph import TaskGraph
from .bank import LearnerBank, Weights, gather_columns, packed_source, uniform_
from .mlp import MLP

ACTIVATION_FUNCTIONS = {"relu": torch.relu, "tanh": torch.tanh, "gelu": nn.functional.gelu,
                        "silu": nn.functional.silu}


class MLPBank(LearnerBank):
    """The MLP nodes ``names`` of ``graph`` sharing ``spec``."""

    def __init__(self, graph: TaskGraph, names: Sequence[str], spec: MLP) -> None:
        super().__init__(graph, names)
        self.spec = spec
        columns = [self.layout.input_columns(name) for name in self.names]
        self.input_width = max(1, max(len(c) for c in columns))
        pad = self.layout.feature_width + self.layout.value_width
        self.register_buffer("input_index", self.layout.gather_index(
            self.names, self.layout.input_columns, self.input_width, pad), persistent=False)
        self.register_buffer("fan_in", torch.tensor([len(c) for c in columns]), persistent=False)
        widths = [self.input_width, *spec.hidden, self.output_width]
        self.layers = [f"hidden{l}" for l in range(len(spec.hidden))] + ["head"]
        self.first_bias = f"{self.layers[0]}_bias"
        self.theta = nn.ParameterDict()
        for layer, d_in, d_out in zip(self.layers, widths[:-1], widths[1:]):
            self.theta[f"{layer}_weight"] = nn.Parameter(torch.empty(len(self.names), d_in, d_out))
            self.theta[f"{layer}_bias"] = nn.Parameter(torch.empty(len(self.names), d_out))
        self.activation = ACTIVATION_FUNCTIONS[spec.activation]
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """``nn.Linear``'s initialisation per node, with each node's true fan-in; padding rows 0."""
        fan_in = self.fan_in
        for layer in self.layers:
            weight = self.theta[f"{layer}_weight"]
            uniform_(weight, fan_in)
            uniform_(self.theta[f"{layer}_bias"], fan_in)
            fan_in = torch.full_like(self.fan_in, weight.shape[-1])
        with torch.no_grad():
            real_input = torch.arange(self.input_width) < self.fan_in[:, None]
            self.theta[f"{self.layers[0]}_weight"].mul_(real_input[:, :, None])

    def forward(self, weights: Weights, split: Split, nodes: torch.Tensor | None = None) -> torch.Tensor:
        """Outputs ``[T, N_b, K, D_out]`` of all (task, node) pairs (or of the bank rows ``nodes``)."""
        index = self.input_index if nodes is None else self.input_index[nodes]
        hidden = gather_columns(packed_source(split), index)
        for layer in self.layers:
            weight, bias = weights[f"{layer}_weight"], weights[f"{layer}_bias"]
            if nodes is not None:
                weight, bias = weight[:, nodes], bias[:, nodes]
            hidden = batched_affine(hidden, weight, bias)
            if layer != "head":
                hidden = self.activation(hidden)
        return hidden

    def extra_repr(self) -> str:
        return (f"nodes={len(self.names)}, input_width={self.input_width}, hidden={self.spec.hidden}, "
                f"output_width={self.output_width}, activation={self.spec.activation}")


def batched_affine(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """``x [T, N, K, D] @ weight [T, N, D, H] + bias [T, N, H]`` as one fused ``baddbmm``."""
    T, N, K, _ = x.shape
    H = weight.shape[-1]
    out = torch.baddbmm(bias.reshape(T * N, 1, H), x.reshape(T * N, K, -1), weight.reshape(T * N, -1, H))
    return out.reshape(T, N, K, H)
