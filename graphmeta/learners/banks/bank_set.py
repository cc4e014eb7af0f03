r"""`BankSet`: a graph's nodes grouped into banks: one bank per distinct learner spec, or several
where the spec's bank class splits its nodes (``partition(graph, names) -> [names, ...]``, as
:meth:`~graphmeta.learners.banks.table.TableBank.partition` does by table size).

**Latent subtasks** (``observed=False``) have no labels. Where a graph has them, every loss is
taken on the split *filled* (:meth:`BankSet.filled`): level by level from the inputs
(topological generations), each latent node's prediction, a function of its fast weights,
fills its value columns, which its children read:

.. math::
    v_\ell = f_\ell(x_\ell, v_{pa(\ell)};\ \phi_\ell) \quad \text{for latent } \ell,
    \text{ in level order}; \qquad
    L = \sum_{i\ \text{observed}} L_i\big(f_i(x_i, v_{pa(i)};\ \phi_i),\ y_i\big)

(observed parents teacher-forced, latent ones predicted). A latent node has no loss of its own
(0, and no counting shot), so the gradient reaches its weights only through its children:
:math:`\partial L / \partial \phi_\ell = \sum_i (\partial L_i / \partial v_\ell)(\partial v_\ell / \partial \phi_\ell)`.
One batched call per bank and level computes the level's latent nodes (its rows of the bank
alone); the observed nodes' losses are then one pass as without latents.

A latent node's weights act in its level's pass, whose outputs its children read, so one
``autograd.grad`` of the summed support loss finds their whole gradient where it reads them there.
A bank that taps its outputs (``taps_fed_outputs``: the MLP bank's pre-activations,
``dL/dW = sum_k h_k^T dL/dz_k``) reads its latent rows' taps from their levels' passes
(:meth:`~graphmeta.learners.banks.mlp.MLPBank.fed_forward`, the rows' weights of every level
gathered at once) and its observed rows' from its loss pass, which computes those alone
(``loss_rows``; a latent node's loss is 0), so its weights stay low-rank. Any other bank holding a
latent node, and a bank of latent nodes alone, is tapped at its weights themselves
(:func:`~graphmeta.learners.banks.bank.weight_tapped_loss`, made dense where they are low-rank),
its loss pass computing every row. The banks without latent nodes keep their own taps, since
their outputs reach their own losses alone. A graph without latent nodes takes the plain path, unchanged.

**Partly observed nodes.** Where a node is observed at a shot but a value its input reads is not
(a table row with a parent's cell missing), a split with ``fill_missing`` (:meth:`BankSet.resolved`
sets it where the data have such shots) is filled the same way at every node that has children,
its prediction taking the missing cells alone (class probabilities for a classification node):

.. math::
    v_j \leftarrow m_j \odot y_j + (1 - m_j) \odot f_j(x_j, v_{pa(j)};\ \phi_j)

with ``m_j`` the node's observed mask, so a node's loss counts wherever the node itself is observed
and its gradient reaches the parents it filled from. Every bank is then tapped at its weights
(dense), whose gradient sums both uses. Conjugate banks (``closed_form``) still fit and score the
shots whose inputs are all observed.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import replace

import torch
from torch import nn

from ...data import Split
from ...taskgraph import TaskGraph
from ..registry import LearnerSpec, learner_type
from .bank import GradientTaps, LearnerBank, Weights, weight_tapped_loss
from .low_rank import LowRankWeight


class BankSet(nn.Module):
    """All banks of a graph. Fast weights are a list with one :data:`Weights` mapping per bank.

    Per-node results of the banks are concatenated in bank order and put back into
    ``graph.names`` order with one fixed permutation, so no step loops over nodes.
    """

    # buffers (register_buffer), declared for the type checker
    value_nodes: torch.Tensor
    input_pairs: torch.Tensor

    def __init__(self, graph: TaskGraph) -> None:
        groups: dict[LearnerSpec, list[str]] = {}
        for name in graph.names:
            groups.setdefault(graph.subtask(name).learner, []).append(name)
        super().__init__()
        banks = []
        for spec, names in groups.items():
            bank_class = learner_type(spec).bank_class()
            partition = getattr(bank_class, "partition", None)
            banks += [bank_class(graph, part, spec) for part in (partition(graph, names) if partition else [names])]
        self.banks = nn.ModuleList(banks)
        bank_order = torch.cat([bank.node_index for bank in self])
        self.register_buffer("to_graph_order", torch.argsort(bank_order), persistent=False)
        self.in_graph_order = bool((bank_order == torch.arange(len(bank_order))).all())
        latent = set(graph.latent)
        self.latent_levels = self.level_plans(graph, latent)
        # per bank, the rows of its latent nodes in level order, and how many each latent level has
        by_level = [[rows for level in self.latent_levels for part, rows, _, _ in level if part == b]
                    for b in range(len(self))]
        self.latent_rows = [torch.cat(bank_rows) if bank_rows else None for bank_rows in by_level]
        self.latent_sizes = [[len(rows) for rows in bank_rows] for bank_rows in by_level]
        #: Per bank, whether it holds a latent node.
        self.holds_latent = [any(name in latent for name in bank.names) for bank in self]
        #: Per bank, its nodes that are latent or read a latent parent: those no closed-form fit can
        #: adapt, which needs a node's own targets and its inputs as observed.
        self.latent_readers = [[name for name in bank.names if name in latent or latent & set(graph.parents(name))]
                               for bank in self]
        # per bank that taps its latent rows' passes and holds observed nodes too, its observed and its
        # latent rows: its loss passes compute the observed ones alone (a latent node's loss is 0)
        self.loss_rows = [
            (torch.tensor([i for i, name in enumerate(bank.names) if name not in latent]),
             torch.tensor([i for i, name in enumerate(bank.names) if name in latent]))
            if held and bank.taps_fed_outputs and not set(bank.names) <= latent else None
            for bank, held in zip(self, self.holds_latent)]
        #: Per topological level, the nodes with children: what a split with missing inputs fills.
        self.fill_levels = self.level_plans(graph, {name for name in graph.names if graph.children(name)})
        layout = self.banks[0].layout
        value_nodes = torch.empty(layout.value_width, dtype=torch.long)
        for n, name in enumerate(graph.names):
            value_nodes[layout.value_slices[name]] = n
        self.register_buffer("value_nodes", value_nodes, persistent=False)
        # every (node of a gradient bank, observed value its input reads): where a split may miss an input
        pairs = [(layout.index[name], layout.index[read]) for bank in self if not bank.closed_form
                 for name in bank.names for read in graph.observed_inputs(name)]
        self.register_buffer("input_pairs", torch.tensor(pairs, dtype=torch.long).reshape(-1, 2).T.contiguous(),
                             persistent=False)
        order = torch.cat([bank.node_index if rows is None else bank.node_index[torch.cat(rows)]
                           for bank, rows in zip(self, self.loss_rows)])
        self.register_buffer("to_graph_order_with_latent", torch.argsort(order), persistent=False)

    def __iter__(self) -> Iterator[LearnerBank]:
        return iter(self.banks)

    def __len__(self) -> int:
        return len(self.banks)

    def __getitem__(self, index: int) -> LearnerBank:
        return self.banks[index]

    def expand(self, num_tasks: int) -> list[Weights]:
        """The meta-initialisation of every bank as fast weights ``[T, N_b, ...]``."""
        return [bank.expand(num_tasks) for bank in self]

    def level_plans(self, graph: TaskGraph, names: set[str] | None = None
                    ) -> list[list[tuple[int, torch.Tensor, torch.Tensor, torch.Tensor]]]:
        """Per topological level with one of ``names`` (every node: ``None``), per bank with such nodes
        there: ``(bank, rows, output columns, value columns)``, so one bank call computes the level's
        nodes and one ``index_copy`` puts their outputs in the value columns: output column
        ``r * output_width + c`` of row ``r`` is value column ``c`` of its node."""
        layout = self.banks[0].layout
        plans = []
        for level in graph.levels():
            members = set(level) if names is None else set(level) & names
            level_plan = []
            for b, bank in enumerate(self):
                rows = [i for i, name in enumerate(bank.names) if name in members]
                if not rows:
                    continue
                output_columns, value_columns = [], []
                for position, row in enumerate(rows):
                    columns = layout.value_slices[bank.names[row]]
                    output_columns += [position * bank.output_width + c for c in range(columns.stop - columns.start)]
                    value_columns += list(range(columns.start, columns.stop))
                level_plan.append((b, torch.tensor(rows), torch.tensor(output_columns), torch.tensor(value_columns)))
            if level_plan:
                plans.append(level_plan)
        return plans

    def resolved(self, split: Split) -> Split:
        """``split`` with its ``fill_missing`` decided where it is ``None``: whether a node of a gradient
        bank is observed at a shot where a value its input reads is not (one read of the mask on the host)."""
        if split.fill_missing is not None:
            return split

        def decided() -> Split:
            node, read = self.input_pairs
            missing = bool(node.numel()) and bool((split.observed[..., node] & ~split.observed[..., read]).any())
            return replace(split, fill_missing=missing)

        return split.derived((self, "resolved"), decided)  # the same split each time, so what it derives is kept

    def filled(self, fast: list[Weights], split: Split) -> Split:
        """``split`` with each latent node's value columns set to its prediction, level by level, and
        with ``fill_missing`` every missing value a child reads (module docstring), differentiable in the
        fast weights; ``split`` itself where there is nothing to fill."""
        return self._filled(fast, split)[0]

    def _filled(self, fast: list[Weights], split: Split, names: list[Sequence[str]] | None = None
                ) -> tuple[Split, list[list]]:
        """:meth:`filled`, and with ``names`` (per bank, the weights to find gradients of) per bank the
        taps of its latent rows' passes where it taps its outputs (``taps_fed_outputs``; such a bank
        reads its latent rows' weights of every level at once, ``row_weights``)."""
        resolved = self.resolved(split)
        fill = bool(resolved.fill_missing)
        levels = self.fill_levels if fill else self.latent_levels
        if not levels:
            return split, []
        split = resolved
        fed: list[list] = [[] for _ in self]
        device = split.values.device
        # per bank, its latent rows' weights level by level, each level taking the first left
        row_weights = {b: bank.row_weights(fast[b], self.latent_rows[b].to(device), self.latent_sizes[b])
                       for b, bank in enumerate(self) if bank.taps_fed_outputs and self.latent_sizes[b] and not fill}
        values = split.values
        for level in levels:
            current = split if values is split.values else replace(split, values=values)
            for b, rows, output_columns, value_columns in level:
                rows, output_columns, value_columns = (t.to(device) for t in (rows, output_columns, value_columns))
                if b in row_weights:
                    outputs, taps = self.banks[b].fed_forward(row_weights[b].pop(0), current, rows,
                                                              () if names is None else names[b])  # [T, R, K, D]
                    if names is not None:
                        fed[b].append(taps)
                else:
                    outputs = self.banks[b].predicted_values(self.banks[b](fast[b], current, rows), rows)
                predicted = value_columns_of(outputs, output_columns)
                values = values.index_copy(-1, value_columns, self.observed_kept(split, values, value_columns, predicted)
                                           if fill else predicted)
        return replace(split, values=values), fed

    def observed_kept(self, split: Split, values: torch.Tensor, value_columns: torch.Tensor,
                      predicted: torch.Tensor) -> torch.Tensor:
        """``predicted`` ``[T, K, C]`` for the value columns ``value_columns``, with the cells that
        ``split`` observes keeping their ``values``."""
        observed = split.observed.index_select(-1, self.value_nodes[value_columns])
        return torch.where(observed, values.index_select(-1, value_columns), predicted)

    def losses(self, fast: list[Weights], split: Split, accuracy: bool = False
               ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Per (task, node) loss and, with ``accuracy``, accuracy: ``[T, N]`` in ``graph.names`` order
        (latent nodes: 0, and their parents predicted; module docstring)."""
        loss, accuracies, _ = self.query_losses(fast, split, accuracy, noise=False)
        return loss, accuracies

    def query_losses(self, fast: list[Weights], split: Split, accuracy: bool = False, noise: bool = True
                     ) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
        """:meth:`losses` and, with ``noise``, the loss ``[T, N]`` that trains the learned noise scales
        (:meth:`LearnerBank.losses_and_noise`, 0 for nodes without one; ``None`` when no bank learns one),
        from one forward pass: the noise loss reads the same outputs, taken as data."""
        split = self.filled(fast, split)
        losses, accuracies, noises = [], [], []
        for bank, weights, rows in zip(self, fast, self.loss_rows):
            nodes = None if rows is None else rows[0]
            if noise:
                loss, bank_accuracy, noise_loss = bank.losses_and_noise(weights, split, nodes, accuracy=accuracy)
            else:
                (loss, bank_accuracy), noise_loss = bank.losses(weights, split, nodes, accuracy=accuracy), None
            losses.append(loss)
            accuracies.append(bank_accuracy)
            noises.append(noise_loss)
        loss = self._graph_order(losses, "loss")
        accuracy_by_node = self._graph_order(accuracies, "accuracy") if accuracy else None
        if all(result is None for result in noises):
            return loss, accuracy_by_node, None
        return loss, accuracy_by_node, self._graph_order(
            [torch.zeros_like(bank_loss) if result is None else result for bank_loss, result in zip(losses, noises)],
            "loss")

    def regression_scores(self, fast: list[Weights], split: Split) -> tuple[torch.Tensor, torch.Tensor]:
        """Per (task, node) squared error and predictive negative log-likelihood per row ``[T, N]`` in
        ``graph.names`` order (:meth:`LearnerBank.regression_scores`)."""
        split = self.filled(fast, split)
        results = [bank.regression_scores(weights, split) for bank, weights in zip(self, fast)]
        return self._graph_order([r[0] for r in results]), self._graph_order([r[1] for r in results])

    def support_losses(self, fast: list[Weights], split: Split, names: list[Sequence[str]]
                       ) -> tuple[torch.Tensor, list[GradientTaps]]:
        """Per (task, node) loss ``[T, N]`` in ``graph.names`` order and, per bank, where one
        ``autograd.grad`` finds the gradients of its weights ``names[b]`` (with latent nodes: see the
        module docstring)."""
        split = self.resolved(split)
        fill = bool(split.fill_missing)
        if not self.latent_levels and not fill:
            results = [bank.support_loss(weights, split, bank_names)
                       for bank, weights, bank_names in zip(self, fast, names)]
            return self._graph_order([r[0] for r in results]), [r[1] for r in results]
        weight_tapped = [fill or (latent and rows is None) for latent, rows in zip(self.holds_latent, self.loss_rows)]
        fast = [{name: _dense_tap(w) if tapped and name in bank_names and isinstance(w, LowRankWeight) else w
                 for name, w in weights.items()} for weights, bank_names, tapped in zip(fast, names, weight_tapped)]
        split, fed = self._filled(fast, split, names)
        results = [weight_tapped_loss(bank, weights, split, bank_names) if tapped
                   else bank.support_loss(weights, split, bank_names, fed[b], rows[0]) if rows is not None
                   else bank.support_loss(weights, split, bank_names)
                   for b, (bank, weights, bank_names, tapped, rows)
                   in enumerate(zip(self, fast, names, weight_tapped, self.loss_rows))]
        return self._graph_order([r[0] for r in results], None if fill else "loss"), [r[1] for r in results]

    def example_mask(self, split: Split) -> torch.Tensor:
        """``[T, N, K]``: which shots count for each node (value and parents observed; with
        ``fill_missing``, see :meth:`LearnerBank.example_mask`)."""
        split = self.resolved(split)
        return self._graph_order([bank.example_mask(split) for bank in self])

    def _graph_order(self, per_bank: list[torch.Tensor], latent: str | None = None) -> torch.Tensor:
        """The per-bank results ``[T, N_b]`` as ``[T, N]`` in ``graph.names`` order. With ``latent``
        (``"loss"`` or ``"accuracy"``) the banks with ``loss_rows`` give their observed rows' alone, and
        their latent rows read what a node without counting shots has: a loss of 0, an accuracy of 0
        for a classification node and NaN for a regression node."""
        if latent is None or all(rows is None for rows in self.loss_rows):
            if len(per_bank) == 1 and self.in_graph_order:
                return per_bank[0]
            return torch.cat(per_bank, dim=1)[:, self.to_graph_order]
        parts = []
        for bank, result, rows in zip(self, per_bank, self.loss_rows):
            parts.append(result)
            if rows is not None:
                filler = (result.new_zeros(len(rows[1])) if latent == "loss" else
                          torch.where(bank.is_classification[rows[1]], 0.0, math.nan).to(result.dtype))
                parts.append(filler.expand(result.shape[0], -1))
        return torch.cat(parts, dim=1)[:, self.to_graph_order_with_latent]


def value_columns_of(outputs: torch.Tensor, output_columns: torch.Tensor) -> torch.Tensor:
    """The value columns ``[T, K, C]`` that a bank's outputs ``[T, R, K, D]`` of a level plan's rows
    fill (:meth:`BankSet.level_plans`: output column ``r * D + c`` is row ``r``'s ``c``-th)."""
    flat = outputs.transpose(1, 2).reshape(*outputs.shape[:1], outputs.shape[2], -1)
    return flat.index_select(-1, output_columns)


def _dense_tap(weight: LowRankWeight) -> torch.Tensor:
    """A low-rank weight as the dense tensor ``autograd.grad`` reads its gradient at (a new leaf where
    it carries no graph, as after the inner loop's detaching for plain adaptation)."""
    dense = weight.dense()
    return dense if dense.requires_grad else dense.detach().requires_grad_()


def bank_shapes(model_state: Mapping[str, torch.Tensor]) -> list[tuple[int, ...]]:
    """Per learner bank of a :class:`~graphmeta.GraphMetaLearner` state dict, in bank order, the
    shape ``[N_b, ...]`` of its first weight: how the model packs its nodes into banks (a
    checkpoint of another packing, e.g. from a version that grouped nodes otherwise, cannot load)."""
    shapes: dict[int, tuple[int, ...]] = {}
    for key, value in model_state.items():
        if key.startswith("banks.banks."):
            shapes.setdefault(int(key.split(".")[2]), tuple(value.shape))
    return [shapes[b] for b in sorted(shapes)]
