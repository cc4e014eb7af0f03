"""The graph-level meta-learner: message passing of adapted parameters along the task graph.

After the inner loop, node ``i`` of task ``t`` has moved from ``theta_i`` to ``phi_i``. Its
update ``delta_i = phi_i - theta_i`` is what it learned from its own support set. Related
nodes learn related things, so each node's update is passed to the others:

    r_i   = ||delta_i|| / sqrt(P) + eps                      (update size)
    h_i^0 = E_b [delta_i / r_i, log r_i, log(1 + L_i^before), log(1 + L_i^after), log(1 + K_i)] + e_i
    h_i^{l+1} = h_i^l + act( S h_i^l + mean_{j in pa(i)} D h_j^l + mean_{j in ch(i)} U h_j^l
                             + G mean_{j} h_j^l )                       (l = 0..L-1)
    phi_i <- phi_i + g_b * (O_b h_i^L)

``E_b`` and ``O_b`` are a linear encoder and decoder per bank (banks have different
parameter counts ``P``), ``e_i`` a learned node embedding, ``S, D, U, G`` per round the
self, parent -> child, child -> parent and graph-level (virtual node) weights, ``L^before``
and ``L^after`` the node's support loss before and after the inner loop and ``K_i`` its
number of support shots. The gate ``g_b`` (one entry per parameter) starts at zero, so an
untrained graph meta-learner leaves the plain algorithm exactly as it is.

The T task graphs are one PyG batch: ``T`` disjoint copies of the task graph.
"""

from __future__ import annotations

import torch
from torch import nn
from torch_geometric.nn import MessagePassing

from ..graph import TaskGraph

NUM_STATISTICS = 4


class DirectedMessageRound(MessagePassing):
    """One round ``h <- h + act(S h + mean_pa D h + mean_ch U h + G mean_all h)`` (see module)."""

    def __init__(self, channels: int) -> None:
        super().__init__(aggr="mean")
        self.self_weight = nn.Linear(channels, channels)
        self.down = nn.Linear(channels, channels, bias=False)
        self.up = nn.Linear(channels, channels, bias=False)
        self.graph_level = nn.Linear(channels, channels, bias=False)

    def reset_parameters(self) -> None:
        for layer in (self.self_weight, self.down, self.up, self.graph_level):
            layer.reset_parameters()

    def forward(self, hidden: torch.Tensor, edge_index: torch.Tensor, num_tasks: int) -> torch.Tensor:
        """``hidden [T * N, C]``; ``edge_index`` parent -> child over the batch of T graphs."""
        from_parents = self.propagate(edge_index, x=self.down(hidden))
        from_children = self.propagate(edge_index.flip(0), x=self.up(hidden))
        per_task = hidden.reshape(num_tasks, -1, hidden.shape[-1])
        readout = self.graph_level(per_task.mean(dim=1, keepdim=True)).expand_as(per_task).reshape_as(hidden)
        return hidden + torch.relu(self.self_weight(hidden) + from_parents + from_children + readout)

    def message(self, x_j: torch.Tensor) -> torch.Tensor:
        return x_j


class ParameterMessagePassing(nn.Module):
    """Encode each node's parameter update, pass messages along the graph, decode a correction."""

    def __init__(self, graph: TaskGraph, bank_sizes: list[int], bank_nodes: list[torch.Tensor],
                 channels: int = 32, rounds: int = 2) -> None:
        super().__init__()
        self.num_nodes = len(graph)
        self.channels = channels
        edge_index, _ = graph.to_pyg()
        self.register_buffer("edge_index", edge_index, persistent=False)
        for b, nodes in enumerate(bank_nodes):
            self.register_buffer(f"bank_nodes_{b}", nodes, persistent=False)
        self.encoders = nn.ModuleList(nn.Linear(size + NUM_STATISTICS, channels) for size in bank_sizes)
        self.decoders = nn.ModuleList(nn.Linear(channels, size) for size in bank_sizes)
        self.node_embedding = nn.Parameter(torch.zeros(self.num_nodes, channels))
        self.rounds = nn.ModuleList(DirectedMessageRound(channels) for _ in range(rounds))
        self.gates = nn.ParameterList(nn.Parameter(torch.zeros(size)) for size in bank_sizes)

    def reset_parameters(self) -> None:
        for module in [*self.encoders, *self.decoders, *self.rounds]:
            module.reset_parameters()
        with torch.no_grad():
            self.node_embedding.zero_()
            for gate in self.gates:
                gate.zero_()

    def batched_edge_index(self, num_tasks: int) -> torch.Tensor:
        """Edges of ``num_tasks`` disjoint copies of the task graph (task ``t``'s nodes at ``t * N``)."""
        offsets = torch.arange(num_tasks, device=self.edge_index.device) * self.num_nodes
        return (self.edge_index.unsqueeze(1) + offsets[None, :, None]).reshape(2, -1)

    def forward(self, deltas: list[torch.Tensor], statistics: torch.Tensor) -> list[torch.Tensor]:
        """Corrections ``[T, N_b, P_b]`` for the flat updates ``deltas[b] [T, N_b, P_b]``.

        ``statistics [T, N, 3]``: support loss before, after, and shot count, per node.
        """
        num_tasks = statistics.shape[0]
        hidden = statistics.new_zeros(num_tasks, self.num_nodes, self.channels)
        for b, (delta, encoder) in enumerate(zip(deltas, self.encoders)):
            nodes = getattr(self, f"bank_nodes_{b}")
            size = delta.pow(2).mean(-1, keepdim=True).add(1e-12).sqrt()
            features = torch.cat([delta / size, size.log(), statistics[:, nodes].log1p()], dim=-1)
            hidden = hidden.index_copy(1, nodes, encoder(features))
        hidden = (hidden + self.node_embedding).reshape(num_tasks * self.num_nodes, self.channels)
        edge_index = self.batched_edge_index(num_tasks)
        for round_ in self.rounds:
            hidden = round_(hidden, edge_index, num_tasks)
        hidden = hidden.reshape(num_tasks, self.num_nodes, self.channels)
        return [gate * decoder(hidden[:, getattr(self, f"bank_nodes_{b}")])
                for b, (decoder, gate) in enumerate(zip(self.decoders, self.gates))]
