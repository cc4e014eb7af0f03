r"""`TableBank`: every :class:`~graphmeta.learners.Table` node of a graph as one stacked
set of conditional probability tables, adapted by the conjugate Dirichlet update.

Node ``n`` holds log pseudo-counts (its one tensor, ``log_counts``, which is also its head) :math:`\ell_n(u, v) = \log \beta_n(u, v)` for every joint
configuration :math:`u` of its parents and class :math:`v`. A shot whose parents have class
distributions :math:`p_1, \dots, p_P` (one-hot when observed, predicted probabilities when
not) has the configuration distribution :math:`q = p_1 \otimes \dots \otimes p_P`, and the node
predicts the mixture of the columns' means

.. math::
    P(v) = \sum_u q(u)\, \frac{\beta(u, v)}{\sum_{v'} \beta(u, v')},
    \qquad \text{output} = \log P(v)   \quad \text{(log-probabilities are logits).}

Adaptation is closed form: with support counts :math:`n(u, v) = \sum_k q_k(u)\, y_k(v)` over
the shots where the node and its parents are observed, the Dirichlet posterior has
pseudo-counts :math:`\beta + n`, i.e. :math:`\ell \leftarrow \log(e^{\ell} + n)`; one update is
exact Bayes for any support size, and it is differentiable in :math:`\ell`, so the query loss
meta-learns the prior.

Node ``n`` with parents :math:`p_1, \dots, p_P` (``graph.parents`` order) of class counts
:math:`c_1, \dots, c_P` numbers its rows :math:`u = \sum_j s_j \prod_{i > j} c_i` (first parent
slowest, as pgmpy orders CPD columns when the evidence is in that order); the bank pads every
table to its largest node's :math:`\prod_j c_j` rows, and padded rows never receive
probability or counts. For the mixture, the parents' distributions are multiplied out over
slots padded to the widest class count per slot, then each node's rows are gathered.

Padding costs: a bank of :math:`N_b` nodes holds :math:`N_b C_b D_b` numbers per task, with
:math:`C_b` its largest node's rows and :math:`D_b` its widest class count, and so does every
update, loss and message-passing encoder of a meta-step. One node with hundreds of parent
configurations would pad all the others to its size, so :meth:`TableBank.partition` splits
the Table nodes of one spec into banks of similar table sizes (see there).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
import torch
from torch import nn

from ...data import Split
from ...taskgraph import TaskGraph
from ..table import Table
from .bank import LearnerBank, Weights, gather_columns, packed_source
from .partition import cheapest_banks

#: The fixed cost of one more bank in a meta-step (its own ops, their launches and their
#: backward), in padded table numbers per node and task: measured on hailfinder, one bank costs
#: about as much time as this many more numbers in another.
BANK_COST = 1000


class TableBank(LearnerBank):
    """The Table nodes ``names`` of ``graph`` sharing ``spec``."""

    head = ("log_counts",)
    closed_form = True

    @classmethod
    def partition(cls, graph: TaskGraph, names: Sequence[str]) -> list[list[str]]:
        r"""The Table nodes ``names`` as the node lists of several banks (each in ``names`` order),
        smallest tables first, so that padding stays bounded (:func:`~.partition.cheapest_banks`):
        node :math:`n`'s size is its table rows :math:`C_n` (its parents' joint configurations) and
        class count :math:`D_n`, a node costs :math:`C D` and a bank :data:`BANK_COST` more.
        """
        size = {name: (math.prod(graph.subtask(p).width for p in graph.parents(name)), graph.subtask(name).width)
                for name in names}
        return cheapest_banks(names, size, math.prod, BANK_COST)

    def __init__(self, graph: TaskGraph, names: Sequence[str], spec: Table) -> None:
        super().__init__(graph, names)
        self.spec = spec
        parents = [graph.parents(name) for name in self.names]
        slots = max(len(p) for p in parents)
        self.slot_widths = [max(graph.subtask(p[j]).width for p in parents if len(p) > j) for j in range(slots)]
        cards = [[graph.subtask(p).width for p in node_parents] for node_parents in parents]
        self.configurations = max(math.prod(c) for c in cards)
        # per slot, the columns of packed_source(split) + [1] to read: the parent's one-hot,
        # padded with the zero column; an empty slot reads the constant 1 as its only class
        source_width = self.layout.feature_width + self.layout.value_width
        zero, one = source_width, source_width + 1
        width = max(self.slot_widths, default=1)
        index = torch.full((len(self.names), slots, width), zero, dtype=torch.long)
        # row u = sum_j (class of parent j) * stride_j: a linear code of the slots' one-hots
        code = torch.zeros(len(self.names), slots, width, dtype=torch.long)
        # for the mixture: where row u of each node sits in the grid of padded slots (a last,
        # always-zero grid cell for the rows a node does not have)
        grid = math.prod(self.slot_widths)
        rows_in_grid = torch.full((len(self.names), self.configurations), grid, dtype=torch.long)
        grid_strides = _strides(self.slot_widths)
        for row, (node_parents, node_cards) in enumerate(zip(parents, cards)):
            strides = _strides(node_cards)
            for j in range(slots):
                if j < len(node_parents):
                    columns = self.layout.value_slices[node_parents[j]]
                    index[row, j, : node_cards[j]] = torch.arange(columns.start, columns.stop) + self.layout.feature_width
                    code[row, j, : node_cards[j]] = torch.arange(node_cards[j]) * strides[j]
                else:
                    index[row, j, 0] = one
            u = torch.arange(math.prod(node_cards))
            rows_in_grid[row, : len(u)] = sum(
                (u // stride % card) * grid_stride for stride, card, grid_stride in zip(strides, node_cards, grid_strides))
        self.register_buffer("parent_index", index, persistent=False)
        self.register_buffer("rows_in_grid", rows_in_grid, persistent=False)
        # for the rows of one-hot parents: the columns of split.values any node reads, and per
        # column and node its place value (row u is the parents' one-hots times these) and whether it reads it
        columns = index[index < zero].unique()
        place = torch.zeros(len(columns), len(self.names))
        reads = torch.zeros(len(columns), len(self.names), dtype=torch.bool)
        node, slot, value = torch.nonzero(index < zero, as_tuple=True)
        column = torch.searchsorted(columns, index[node, slot, value])
        place[column, node] = code[node, slot, value].to(place.dtype)
        reads[column, node] = True
        self.register_buffer("parent_columns", columns - self.layout.feature_width, persistent=False)
        self.register_buffer("place_values", place, persistent=False)
        self.register_buffer("reads_column", reads, persistent=False)
        self.theta = nn.ParameterDict({"log_counts": nn.Parameter(torch.empty(len(self.names), self.configurations,
                                                                              self.output_width))})
        self.num_statistics = self.configurations * self.output_width  # the support counts of every cell
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Every column: ``prior_strength`` pseudo-counts spread evenly over the node's classes."""
        log_counts = self.theta["log_counts"]
        classes = self.output_mask.sum(-1).to(log_counts.dtype)
        with torch.no_grad():
            log_counts.copy_((self.spec.prior_strength / classes).log()[:, None, None].expand_as(log_counts))

    def forward(self, weights: Weights, split: Split, nodes: torch.Tensor | None = None) -> torch.Tensor:
        """Log-probabilities ``[T, N_b', K, D_out]`` (see the module docstring)."""
        log_counts = weights["log_counts"] if nodes is None else weights["log_counts"][:, nodes]
        num_tasks = log_counts.shape[0]
        if log_counts.stride(0) == 0:  # one table for every task (the meta-initialisation): normalise it once
            log_counts = log_counts[:1]
        output_mask = self.output_mask if nodes is None else self.output_mask[nodes]
        log_counts = log_counts.masked_fill(~output_mask[:, None, :], torch.finfo(log_counts.dtype).min / 4)
        rows = self._rows(split, nodes)
        if rows is not None:  # normalise the C table rows or the K rows read, whichever are fewer
            index = rows[..., None].expand(-1, -1, -1, log_counts.shape[-1])
            if log_counts.shape[2] <= rows.shape[2]:
                return log_counts.log_softmax(-1).expand(num_tasks, -1, -1, -1).gather(2, index)
            return log_counts.expand(num_tasks, -1, -1, -1).gather(2, index).log_softmax(-1)
        mixture = self._configuration_weights(_with_ones(packed_source(split)), nodes) @ log_counts.softmax(-1)
        return mixture.clamp(min=torch.finfo(mixture.dtype).tiny).log()

    def weighted_losses(self, outputs: torch.Tensor, targets: torch.Tensor, weight: torch.Tensor,
                        output_mask: torch.Tensor, is_classification: torch.Tensor, kinds: tuple[bool, bool]
                        ) -> torch.Tensor:
        r""":meth:`LearnerBank.weighted_losses` of this bank's outputs, which are log-probabilities
        :math:`\log P(v)` (normalised, padded classes at :math:`-\infty` in effect): a shot's
        cross-entropy :math:`\log \sum_v e^{\log P(v)} - \log P(y)` is :math:`-\log P(y)`, so the
        log-sum-exp, 0, is not computed."""
        return -((outputs * targets).sum(-1) * weight).sum(-1)

    def posterior(self, weights: Weights, split: Split) -> Weights:
        """The conjugate update ``log(exp(l) + n)`` with the support counts ``n [T, N_b, C, D_out]``."""
        log_counts = weights["log_counts"]
        observed = self.targets(split) * self.example_mask(split).to(log_counts.dtype)[..., None]
        rows = self._rows(split)
        if rows is not None:
            counts = torch.zeros_like(log_counts).scatter_add_(2, rows[..., None].expand_as(observed), observed)
        else:
            counts = self._configuration_weights(_with_ones(packed_source(split))).transpose(-1, -2) @ observed
        return {"log_counts": add_counts(log_counts, counts)}

    def statistics(self, initial: Weights, adapted: Weights) -> torch.Tensor:
        """The support counts ``n = exp(adapted) - exp(initial)`` the conjugate update
        ``adapted = log(exp(initial) + n)`` added, flattened per (task, node), as data."""
        return support_counts(initial["log_counts"], adapted["log_counts"]).flatten(2)

    def corrected(self, initial: Weights, adapted: Weights, corrections: Mapping[str, torch.Tensor],
                  statistics: torch.Tensor | None) -> Weights:
        """The posterior under the corrected prior ``beta e^c``: ``log(exp(theta + c) + n)``, so
        a column's estimate still goes to its own frequencies as its counts grow."""
        log_counts = initial["log_counts"] + corrections["log_counts"]
        return {"log_counts": add_counts(log_counts, statistics.view(log_counts.shape))}

    def _rows(self, split: Split, nodes: torch.Tensor | None = None) -> torch.Tensor | None:
        r"""``[T, N_b', K]``: each shot's table row, read from ``split.values``, when every parent
        value the nodes read is 0/1 (a one-hot, or all zeros for a missing value, whose shot the
        example mask drops); ``None`` when some parent value is a probability, which needs the
        mixture. The row is :math:`u = \sum_j s_j \prod_{i > j} c_i`, the parents' one-hots times
        their place values: one product ``[T, K, parent columns] @ [parent columns, N_b']``. Under
        ``torch.compile`` always ``None``: which case holds is read from the data, which a captured
        graph cannot branch on, and the mixture of one-hot parents is the same row's value."""
        if torch.compiler.is_compiling():
            return None
        if nodes is None:
            return split.derived((self, "rows"), lambda: self._read_rows(split, None))
        return self._read_rows(split, nodes)

    def _read_rows(self, split: Split, nodes: torch.Tensor | None) -> torch.Tensor | None:
        parents = split.values.index_select(-1, self.parent_columns)
        read = parents if nodes is None else parents[..., self.reads_column[:, nodes].any(1)]
        if not torch.equal(read, read.bool().to(read.dtype)):
            return None
        place = self.place_values if nodes is None else self.place_values[:, nodes]
        return (parents @ place.to(parents.dtype)).round().long().transpose(1, 2)

    def _configuration_weights(self, source: torch.Tensor, nodes: torch.Tensor | None = None) -> torch.Tensor:
        """``[T, N_b', K, C]``: each shot's distribution over the table rows, ``p_1 (x) ... (x) p_P``."""
        index = self.parent_index if nodes is None else self.parent_index[nodes]
        rows_in_grid = self.rows_in_grid if nodes is None else self.rows_in_grid[nodes]
        grid = source.new_ones(source.shape[0], index.shape[0], source.shape[1], 1)
        for j, width in enumerate(self.slot_widths):
            parent = gather_columns(source, index[:, j, :width])
            grid = (grid[..., :, None] * parent[..., None, :]).flatten(-2)
        grid = torch.cat([grid, grid.new_zeros(*grid.shape[:-1], 1)], dim=-1)
        return grid.gather(-1, rows_in_grid[None, :, None, :].expand(*grid.shape[:-1], -1))

    def table_rows(self, name: str, parent_classes: np.ndarray) -> np.ndarray:
        """The table rows of node ``name`` for its parents' classes ``[R, P]`` (``graph.parents`` order)."""
        strides = np.array(_strides([self.graph.subtask(parent).width for parent in self.graph.parents(name)]),
                           dtype=np.int64)
        parent_classes = np.asarray(parent_classes, dtype=np.int64)
        return parent_classes.reshape(len(parent_classes), len(strides)) @ strides

    def extra_repr(self) -> str:
        return (f"nodes={len(self.names)}, configurations={self.configurations}, output_width={self.output_width}, "
                f"prior_strength={self.spec.prior_strength}")


def add_counts(log_counts: torch.Tensor, counts: torch.Tensor) -> torch.Tensor:
    """``log(exp(log_counts) + counts)``, stably, for ``counts >= 0``: ``logaddexp`` where a count is
    positive, ``log_counts`` itself where it is 0. (The log of a zero count is never taken: a
    table's counts are mostly 0, and ``log(0) = -inf`` takes a slow path, ten times slower.)"""
    seen = counts > 0
    return torch.where(seen, torch.logaddexp(log_counts, torch.where(seen, counts, 1.0).log()), log_counts)


def support_counts(initial: torch.Tensor, adapted: torch.Tensor) -> torch.Tensor:
    """The counts ``n = exp(adapted) - exp(initial)`` a conjugate update ``adapted = log(exp(initial) + n)``
    added, as data (no gradient: they do not depend on the weights)."""
    with torch.no_grad():
        return adapted.exp() * -torch.expm1(initial - adapted)


def _strides(widths: Sequence[int]) -> list[int]:
    """Mixed-radix place values, the first digit slowest: ``prod(widths[j + 1:])`` for each ``j``."""
    return [math.prod(widths[j + 1:]) for j in range(len(widths))]


def _with_ones(source: torch.Tensor) -> torch.Tensor:
    """``source [T, K, S]`` with a trailing column of ones, the one class of an empty parent slot."""
    return torch.cat([source, source.new_ones(*source.shape[:2], 1)], dim=-1)
