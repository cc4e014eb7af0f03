"""`MLPBank`: every MLP node of a graph as one stacked multilayer perceptron.

For fast weights ``hidden{l}_weight`` / ``hidden{l}_bias`` (``l = 0..L-2``) and ``head_weight`` /
``head_bias``, ``W_l`` of shape ``[T, N, d_{l-1}, d_l]``, node ``n`` of task ``t`` computes, on its
inputs ``x [K, d_0]``,

    h_0 = x,    h_l = act(h_{l-1} W_l[t, n] + b_l[t, n]),    output = h_{L-1} W_head[t, n] + b_head[t, n]

for all ``(t, n)`` at once. ``x`` is the node's own features followed by its parents' values,
padded to the bank's widest input.

The bank computes node-major (``[N, T, K, d]``), so a weight shared by the tasks is one matmul
per node over all ``T K`` rows. A weight matrix is one of

* a :class:`~graphmeta.learners.banks.low_rank.LowRankWeight` ``W[t, n] = W_0[n] - s sum_r a_r^T c_r``:
  then ``h W[t, n] = h W_0[n] - s (h A^T) C``, the shared matmul and two ``K x R`` products per
  (task, node) (rank 0, the meta-initialisation, is the shared matmul alone);
* a dense ``[T, N, d_{l-1}, d_l]`` tensor: one small matmul per (task, node).

Its support gradient comes the same way: ``dL/dW_l[t, n] = sum_k h_{l-1, k}^T dL/dz_{l, k}`` with
``z_l = h_{l-1} W_l + b_l``, so :meth:`MLPBank.support_loss` lets ``autograd.grad`` stop at the
pre-activations ``z_l`` and returns the gradient as those outer products, unformed.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass

import torch
from torch import nn

from ...data import Split
from ...taskgraph import TaskGraph
from ..activations import ACTIVATIONS
from ..mlp import MLP
from .bank import GradientTaps, LearnerBank, Weights, gather_columns, packed_source, uniform_
from .low_rank import LowRankWeight, OuterProducts, TransposedProduct, batched_matmul, node_parts


@dataclass(frozen=True)
class FedTaps:
    """The taps of a pass over the bank rows ``nodes`` whose outputs other nodes read
    (:meth:`MLPBank.fed_forward`): per tapped layer its input ``h_{l-1}`` and pre-activation ``z_l``,
    node-major ``[R, T, K, d]``."""

    nodes: torch.Tensor
    taps: dict[str, tuple[torch.Tensor, torch.Tensor]]


class MLPBank(LearnerBank):
    """The MLP nodes ``names`` of ``graph`` sharing ``spec``."""

    learns_noise = True
    taps_fed_outputs = True

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
        self.activation = ACTIVATIONS[spec.activation]
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
        self.reset_noise_scale()

    def expand(self, num_tasks: int) -> Weights:
        """The meta-initialisation as fast weights: each weight matrix a rank-0
        :class:`~graphmeta.learners.banks.low_rank.LowRankWeight`, each bias a view ``[T, N_b, d]``; no copy."""
        views = super().expand(num_tasks)
        return {name: LowRankWeight.shared(self.theta[name], num_tasks) if name.endswith("_weight") else view
                for name, view in views.items()}

    def forward(self, weights: Weights, split: Split, nodes: torch.Tensor | None = None) -> torch.Tensor:
        """Outputs ``[T, N_b, K, D_out]`` of all (task, node) pairs (or of the bank rows ``nodes``)."""
        return self.tapped_forward(weights, split, nodes)[0]

    def tapped_forward(self, weights: Weights, split: Split, nodes: torch.Tensor | None = None,
                       taps: Collection[str] = (), weights_of_nodes: bool = False
                       ) -> tuple[torch.Tensor, dict[str, tuple[torch.Tensor, torch.Tensor]]]:
        """The outputs, and for each layer in ``taps`` its input ``h_{l-1}`` and pre-activation
        ``z_l`` (node-major ``[N_b', T, K, d]``; ``z_l`` made a leaf of the graph if no weight
        before it has a gradient). ``weights_of_nodes``: ``weights`` are the rows ``nodes`` already
        (:meth:`row_weights`)."""
        index = self.input_index if nodes is None else self.input_index[nodes]
        hidden = gather_columns(packed_source(split), index).transpose(0, 1)
        tapped = {}
        for layer in self.layers:
            weight, bias = weights[f"{layer}_weight"], weights[f"{layer}_bias"]
            if nodes is not None and not weights_of_nodes:
                weight = weight.nodes(nodes) if isinstance(weight, LowRankWeight) else weight[:, nodes]
                bias = bias[:, nodes]
            pre_activation = node_major_affine(hidden, weight, bias)
            if layer in taps:
                if not pre_activation.requires_grad:
                    pre_activation.requires_grad_()
                tapped[layer] = (hidden, pre_activation)
            hidden = pre_activation if layer == "head" else self.activation(pre_activation)
        return hidden.transpose(0, 1).contiguous(), tapped

    def row_weights(self, weights: Weights, index: torch.Tensor, sizes: Sequence[int]) -> list[Weights]:
        """The layers' fast weights of the bank rows ``index``, in consecutive parts of ``sizes``, gathered
        at once (:func:`~graphmeta.learners.banks.low_rank.node_parts`)."""
        names = [f"{layer}_{kind}" for layer in self.layers for kind in ("weight", "bias")]
        parts = {name: weights[name].node_parts(index, sizes) if isinstance(weights[name], LowRankWeight)
                 else node_parts(weights[name], index, sizes, 1) for name in names}
        return [{name: parts[name][i] for name in names} for i in range(len(sizes))]

    def head_inputs(self, weights: Weights, split: Split) -> torch.Tensor:
        """``h_{L-1} [T, N_b, K, d_{L-1}]``, the last hidden layer (the padded inputs without one)."""
        return self.tapped_forward(weights, split, taps=("head",))[1]["head"][0].transpose(0, 1)

    @property
    def real_head_inputs(self) -> torch.Tensor:
        width = self.theta["head_weight"].shape[1]
        if len(self.layers) > 1:
            return torch.ones(len(self), width, dtype=torch.bool, device=self.fan_in.device)
        return torch.arange(width, device=self.fan_in.device) < self.fan_in[:, None]

    def tapped_layers(self, names: Collection[str]) -> list[str]:
        """The layers whose weight or bias is among ``names``: where the gradients of ``names`` are read."""
        return [layer for layer in self.layers if f"{layer}_weight" in names or f"{layer}_bias" in names]

    def fed_forward(self, weights: Weights, split: Split, nodes: torch.Tensor, names: Collection[str]
                    ) -> tuple[torch.Tensor, FedTaps]:
        """The outputs of the bank rows ``nodes``, whose fast weights ``weights`` are (:meth:`row_weights`),
        and their taps (:meth:`tapped_forward` at the layers of ``names``), for :meth:`support_loss` to
        read the gradients through them."""
        outputs, tapped = self.tapped_forward(weights, split, nodes, self.tapped_layers(names), weights_of_nodes=True)
        return outputs, FedTaps(nodes, tapped)

    def support_loss(self, weights: Weights, split: Split, names: Sequence[str], fed: Sequence[FedTaps] = (),
                     nodes: torch.Tensor | None = None) -> tuple[torch.Tensor, GradientTaps]:
        r"""The support loss and taps at the pre-activations of the layers in ``names``: a weight's
        gradient is :class:`~graphmeta.learners.banks.low_rank.OuterProducts` of the layer's input rows and
        ``dL/dz``, a bias's ``sum_k dL/dz_k`` (see the module docstring).

        ``fed``: the taps of the passes (:meth:`fed_forward`) whose outputs other nodes read, those of
        the latent nodes, whose own loss is 0; ``nodes`` (with ``fed``): the other rows, the only ones
        this pass computes (its loss ``[T, len(nodes)]``). A latent node's weights act in its fed pass
        alone, so its whole gradient is the fed pass's,
        :math:`\partial L / \partial W_l = \sum_k h^{fed\,T}_{l-1,k}\, \partial L / \partial z^{fed}_{l,k}`:
        the layer inputs and pre-activation gradients of every row come from the pass that computed
        it, and the weights stay low-rank."""
        layers = self.tapped_layers(names)
        outputs, tapped = self.tapped_forward(weights, split, nodes, taps=layers)
        loss, _ = self.output_losses(outputs, split, nodes)
        # where each bank row is among the rows of this pass followed by the fed passes'
        order = torch.argsort(torch.cat([nodes, *(f.nodes for f in fed)])) if fed else None

        def gradients(pre_activation_grads: Sequence[torch.Tensor]) -> dict[str, torch.Tensor | OuterProducts]:
            grads: dict[str, torch.Tensor | OuterProducts] = {}
            fed_grads = pre_activation_grads[len(layers):]
            for position, (layer, grad) in enumerate(zip(layers, pre_activation_grads)):
                inputs = tapped[layer][0]
                if fed:
                    inputs = torch.cat([inputs, *(f.taps[layer][0] for f in fed)]).index_select(0, order)
                    grad = torch.cat([grad, *fed_grads[position * len(fed):(position + 1) * len(fed)]]
                                     ).index_select(0, order)
                if f"{layer}_weight" in names:
                    grads[f"{layer}_weight"] = OuterProducts(inputs, grad)
                if f"{layer}_bias" in names:
                    grads[f"{layer}_bias"] = grad.sum(2).transpose(0, 1)
            return grads

        tensors = [tapped[layer][1] for layer in layers] + [f.taps[layer][1] for layer in layers for f in fed]
        return loss, GradientTaps(tensors, gradients)

    def extra_repr(self) -> str:
        return (f"nodes={len(self.names)}, input_width={self.input_width}, hidden={self.spec.hidden}, "
                f"output_width={self.output_width}, activation={self.spec.activation}")


def node_major_affine(x: torch.Tensor, weight: torch.Tensor | LowRankWeight, bias: torch.Tensor) -> torch.Tensor:
    """``x [N, T, K, d_in] @ W[t, n] + b[t, n]`` node-major, for ``W`` low-rank or dense ``[T, N, d_in, d_out]``
    and ``bias [T, N, d_out]`` (see the module docstring)."""
    N, T, K, d_in = x.shape
    if isinstance(weight, LowRankWeight) and weight.rank == 0 and bias.stride(0) == 0:
        # weight and bias the same for every task: one matmul per node over all T K rows
        return batched_matmul(x.reshape(N, T * K, d_in), weight.initial, bias[0].unsqueeze(1)).reshape(N, T, K, -1)
    if isinstance(weight, LowRankWeight):
        out = batched_matmul(x.reshape(N, T * K, d_in), weight.initial).reshape(N * T, K, -1)
        if weight.rank:
            update = weight.update
            products = TransposedProduct.apply(x.reshape(N * T, K, d_in), update.left.reshape(N * T, -1, d_in),
                                               "second")
            scale = update.scale
            if not isinstance(scale, float):  # per (node, task): on the K x R products, the smallest factor
                products, scale = products * torch.broadcast_to(scale, (N, T, 1, 1)).reshape(N * T, 1, 1), 1.0
            out = torch.baddbmm(out, products, update.right.reshape(N * T, -1, update.right.shape[-1]), alpha=-scale)
    else:
        out = batched_matmul(x.reshape(N * T, K, d_in), weight.transpose(0, 1).reshape(N * T, d_in, -1))
    return out.reshape(N, T, K, -1) + bias.transpose(0, 1).unsqueeze(2)

