"""The graph-level meta-learner: message passing of adapted parameters along the task graph.

After the inner loop, node ``i`` of task ``t`` has moved from its initial fast weights
``theta_i`` to ``phi_i``. Its update ``delta_i = phi_i - theta_i`` (over the weights the
algorithm adapts) is what it learned from its own support set. Related nodes learn related
things, so each node's update is passed to the others. With ``delta_i^h`` the update of the
node's output layer (the bank's ``head`` weights, ``P_h`` numbers) and
``r_i^(m) = ||delta_i^(m)|| / sqrt(P_m)`` the size of the update of each adapted weight m:

    h_i^0 = E_b [delta_i^h / r_i^h, log r_i^(1..M), slog(L_i), slog(K_i)] + e_i
    h_i^{l+1} = h_i^l + relu( S h_i^l + mean_{j in pa(i)} D h_j^l + mean_{j in ch(i)} U h_j^l
                              + G mean_j h_j^l )                        (l = 0..L-1)
    phi_i^h <- phi_i^h + g_b * (O_b h_i^L)              (the corrected weights; the rest stay)

``E_b`` and ``O_b`` are a linear encoder and decoder per bank (banks differ in parameter
counts), ``e_i`` a learned node embedding, ``S, D, U, G`` per round the self, parent ->
child, child -> parent and graph-level (virtual node) weights, ``L_i`` the node's support
loss before adaptation (how surprising its data were), ``K_i`` its number of support
shots and ``slog(x) = sign(x) log(1 + |x|)`` (a Linear node's loss is a negative log-density,
which may lie below -1). A latent subtask (``observed=False``) has no loss and no shots of its
own: it reads ``L_i = K_i = 0``, which marks it (an observed node always has ``K_i >= 1``), while
its update ``delta_i``, learned through its children's losses, says what it learned. The gate ``g_b`` (one entry per head parameter) starts at zero, so an untrained graph
meta-learner leaves the plain algorithm exactly as it is.

**Conjugate banks** (``bank.closed_form``; each bank says through its own methods how it is
read, :meth:`~graphmeta.learners.banks.bank.LearnerBank.statistics` and
:meth:`~graphmeta.learners.banks.bank.LearnerBank.corrected`, so this module names no learner).
For the Table learners the head holds log
pseudo-counts and adaptation added the support counts, ``phi^h = log(exp(theta^h) + n)``, so
the counts themselves, ``n = exp(phi^h) - exp(theta^h)``, are what the node saw (its
*statistics*). The encoder also reads a conjugate bank's statistics, shrunk at a few data
scales ``kappa``: ``n / (K_i + kappa)`` for ``kappa`` in
:data:`COUNT_SCALES` (a linear mix of these is ``(n / K_i) s(K_i)`` for a whole family of
shrinkage curves ``s``, what an estimate of a shared task factor needs at every support size).
And the correction ``c = g_b * (O_b h_i^L)`` multiplies the *prior* pseudo-counts before the
counts are added, instead of moving the posterior:

    phi^h <- log(exp(theta^h + c) + n),

the exact conjugate posterior under the corrected prior ``beta e^c`` (``beta = exp(theta^h)``).
Every column stays a Dirichlet posterior, so as a column's counts grow the estimate goes to its
own frequencies, whatever the correction: what the other nodes said weighs as
``beta e^c / (beta e^c + n)``, the pull of a prior, and fades with the node's own evidence. The
counts are data: they carry no gradient (the update's own gradient in ``theta^h`` is that of
``theta^h + c``).

Why the head: it reads the whole update's size but corrects the output layer only, where a
node's task-specific evidence lives (ANIL's finding, Raghu et al. 2020). The cost is then
``O(T N (P_h + C) C)`` instead of ``O(T N P C)`` for a full-parameter decoder, which for an
MLP 40-40 would cost more than the meta-step itself.

How: the hidden states are node-major, ``[N, T, C]``, so one graph-level operator serves the
T tasks. The parent and child means of every round are one sparse product
``[A_pa; A_ch] H`` with ``H`` the ``[N, T C]`` states (``A_pa[i, j] = 1 / |pa(i)|`` for
``j in pa(i)``, ``A_ch`` likewise over children; a node without parents or children gets 0),
and the weights act after the means (``mean_j D h_j = D mean_j h_j``), so a round moves ``C``
numbers per edge and task whatever its weights.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from ..learners.banks.bank import Weights
from ..learners.banks.bank_set import BankSet
from ..learners.banks.low_rank import update_mean_square
from ..taskgraph import TaskGraph

NUM_STATISTICS = 2  # support loss before adaptation, support shots
#: The data scales ``kappa`` at which a conjugate bank's statistics are shrunk for the encoder, ``n / (K + kappa)``.
COUNT_SCALES = (1.0, 10.0, 100.0)


class DirectedMessageRound(nn.Module):
    """One round ``h <- h + act(S h + mean_pa D h + mean_ch U h + G mean_all h)`` (see module)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.self_weight = nn.Linear(channels, channels)
        self.down = nn.Linear(channels, channels, bias=False)
        self.up = nn.Linear(channels, channels, bias=False)
        self.graph_level = nn.Linear(channels, channels, bias=False)

    def reset_parameters(self) -> None:
        for layer in (self.self_weight, self.down, self.up, self.graph_level):
            layer.reset_parameters()

    def forward(self, hidden: torch.Tensor, means: Callable[[torch.Tensor], torch.Tensor]) -> torch.Tensor:
        """``hidden [N, T, C]`` (node-major); ``means`` maps states ``H [N, T C]`` to ``[A_pa; A_ch] H``
        (see module)."""
        N, T, C = hidden.shape
        rows = hidden.reshape(N * T, C)
        from_parents, from_children = means(hidden.reshape(N, T * C)).view(2, N * T, C)
        # per task: S's bias plus G times the mean over the task's nodes
        readout = torch.addmm(self.self_weight.bias, hidden.mean(0), self.graph_level.weight.t())
        local = torch.addmm(torch.addmm(rows.mm(self.self_weight.weight.t()), from_parents, self.down.weight.t()),
                            from_children, self.up.weight.t())
        return hidden + torch.relu(local.view(N, T, C) + readout)


class ParameterMessagePassing(nn.Module):
    """Encode each node's parameter update, pass messages along the graph, correct each head.

    ``adapting_names[b]`` names the weights of bank ``b`` that the algorithm adapts (their
    updates are encoded); every bank's ``head`` weights are corrected, each bank's own way
    (:meth:`~graphmeta.learners.banks.bank.LearnerBank.corrected`).
    """

    def __init__(self, graph: TaskGraph, banks: BankSet, adapting_names: list[tuple[str, ...]], channels: int = 32,
                 rounds: int = 2) -> None:
        super().__init__()
        self.banks = list(banks)  # read through their methods; BankSet owns them as modules
        self.heads = [bank.head for bank in banks]
        self.adapting_names = [tuple(names) for names in adapting_names]
        self.num_nodes = len(graph)
        self.channels = channels
        edge_index, _ = graph.to_pyg()
        index, weight = directed_means(edge_index, self.num_nodes)
        self.register_buffer("means_index", index, persistent=False)
        self.register_buffer("means_weight", weight, persistent=False)  # float64: exact 1 / degree in any dtype
        #: one bank holding every node in graph order: its rows are the graph's, no gathering
        self.in_graph_order = len(banks) == 1 and banks.in_graph_order
        self.register_buffer("to_graph_order", banks.to_graph_order, persistent=False)
        for b, bank in enumerate(banks):
            self.register_buffer(f"bank_nodes_{b}", bank.node_index, persistent=False)
        #: per bank, the numbers of each head weight of one node (the corrections' split)
        self.head_sizes = [[bank.theta[name][0].numel() for name in bank.head] for bank in banks]
        statistic_features = [len(COUNT_SCALES) * bank.num_statistics for bank in banks]
        self.encoders = nn.ModuleList(nn.Linear(sum(sizes) + len(names) + NUM_STATISTICS + statistics, channels)
                                      for sizes, names, statistics in zip(self.head_sizes, self.adapting_names,
                                                                          statistic_features))
        self.decoders = nn.ModuleList(nn.Linear(channels, sum(sizes)) for sizes in self.head_sizes)
        self.node_embedding = nn.Parameter(torch.zeros(self.num_nodes, channels))
        self.rounds = nn.ModuleList(DirectedMessageRound(channels) for _ in range(rounds))
        self.gates = nn.ParameterList(nn.Parameter(torch.zeros(sum(sizes))) for sizes in self.head_sizes)

    def reset_parameters(self) -> None:
        for module in [*self.encoders, *self.decoders, *self.rounds]:
            module.reset_parameters()
        with torch.no_grad():
            self.node_embedding.zero_()
            for gate in self.gates:
                gate.zero_()

    def means(self, dtype: torch.dtype) -> torch.Tensor:
        """The sparse ``[A_pa; A_ch]`` ``[2N, N]`` of the module docstring, in ``dtype``."""
        return torch.sparse_coo_tensor(self.means_index, self.means_weight.to(dtype),
                                       (2 * self.num_nodes, self.num_nodes), is_coalesced=True, check_invariants=False)

    def neighbour_means(self, dtype: torch.dtype) -> Callable[[torch.Tensor], torch.Tensor]:
        """``H -> [A_pa; A_ch] H`` for node states ``H [N, T C]`` in ``dtype``: one sparse product;
        under ``torch.compile``, which does not capture sparse tensors, the same sums as one gather
        and one ``index_add``."""
        if not torch.compiler.is_compiling():
            matrix = self.means(dtype)
            return lambda states: torch.sparse.mm(matrix, states)
        rows, columns = self.means_index
        weight = self.means_weight.to(dtype)[:, None]
        return lambda states: states.new_zeros(2 * self.num_nodes, states.shape[1]).index_add_(
            0, rows, states.index_select(0, columns) * weight)

    def forward(self, initial: list[Weights], plain: list[Weights], statistics: torch.Tensor) -> list[Weights]:
        """The adapted weights of every bank with their heads corrected (see the module docstring).

        ``initial[b]`` / ``plain[b]``: bank b's fast weights ``[T, N_b, ...]`` before and after
        the inner loop; ``statistics [T, N, 2]``: support loss before adaptation and support shots.
        """
        # a conjugate bank's sufficient statistics, read once from its update for the encoder and the correction
        sufficient = [bank.statistics(initial[b], plain[b]) for b, bank in enumerate(self.banks)]
        encoded = [encoder(self.encoder_inputs(b, initial[b], plain[b], statistics, sufficient[b]))
                   for b, encoder in enumerate(self.encoders)]
        hidden = encoded[0] if self.in_graph_order else torch.cat(encoded).index_select(0, self.to_graph_order)
        hidden = hidden + self.node_embedding[:, None]
        means = self.neighbour_means(hidden.dtype)
        for round_ in self.rounds:
            hidden = round_(hidden, means)
        corrected = []
        for b, (decoder, gate) in enumerate(zip(self.decoders, self.gates)):
            rows = hidden if self.in_graph_order else hidden.index_select(0, getattr(self, f"bank_nodes_{b}"))
            correction = (gate * decoder(rows)).transpose(0, 1)
            parts = {name: part.reshape(plain[b][name].shape)
                     for name, part in zip(self.heads[b], correction.split(self.head_sizes[b], dim=-1))}
            corrected.append(self.banks[b].corrected(initial[b], plain[b], parts, sufficient[b]))
        return corrected

    def encoder_inputs(self, b: int, initial: Weights, plain: Weights, statistics: torch.Tensor,
                       sufficient: torch.Tensor | None) -> torch.Tensor:
        """Bank ``b``'s encoder inputs, node-major ``[N_b, T, F]``: ``delta^h / r^h``, ``log r^(1..M)``,
        ``log(1 + L)``, ``log(1 + K)`` and a conjugate bank's shrunk sufficient statistics
        ``sufficient [T, N_b, S]`` (see the module docstring).
        The head's updates are formed once, for its features and its sizes; the other sizes come
        from :func:`update_mean_square` (from the factors of a low-rank update)."""
        names = self.adapting_names[b]
        updates = {name: (plain[name] - initial[name]).flatten(2) for name in self.heads[b] if name in names}
        mean_squares = [updates[name].square().mean(-1) if name in updates
                        else update_mean_square(initial[name], plain[name]) for name in names]
        # log r = log sqrt(ms + eps), with ms clamped at 0 against the rounding of a factored norm
        log_sizes = torch.stack(mean_squares, dim=-1).clamp(min=0).add(1e-12).log().mul(0.5)
        head = torch.cat([updates[name] if name in updates
                          else log_sizes.new_zeros(plain[name].shape).flatten(2) for name in self.heads[b]], dim=-1)
        # a pair whose head did not move (no step taken, or every one refused) reads 0 with slope 0: the
        # direction of a zero update is undefined, and the slope 1/sqrt(eps) would only amplify rounding
        head_square = head.square().mean(-1, keepdim=True)
        head_size = torch.where(head_square > 0, head_square.add(1e-12).rsqrt(), 0.0)
        node_statistics = statistics if self.in_graph_order else statistics[:, getattr(self, f"bank_nodes_{b}")]
        # a signed log(1 + |L|): a Linear node's loss is a negative log-density, below -1 for a precise node
        features = [head * head_size, log_sizes, node_statistics.sign() * node_statistics.abs().log1p()]
        if sufficient is not None:
            shots = node_statistics[..., 1:].detach()
            features += [sufficient / (shots + scale) for scale in COUNT_SCALES]
        return torch.cat([feature.transpose(0, 1) for feature in features], dim=-1)


def directed_means(edge_index: torch.Tensor, num_nodes: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The coalesced indices ``[2, 2E]`` and float64 values ``[2E]`` of ``[A_pa; A_ch]`` (see module) for
    the parent -> child ``edge_index [2, E]``: row ``i`` averages node i's parents, row ``N + j`` node
    j's children."""
    parents, children = edge_index
    in_degree = torch.bincount(children, minlength=num_nodes).to(torch.float64)
    out_degree = torch.bincount(parents, minlength=num_nodes).to(torch.float64)
    rows = torch.cat([children, num_nodes + parents])
    columns = torch.cat([parents, children])
    values = torch.cat([1.0 / in_degree[children], 1.0 / out_degree[parents]])
    order = torch.argsort(rows * num_nodes + columns)
    return torch.stack([rows, columns])[:, order], values[order]
