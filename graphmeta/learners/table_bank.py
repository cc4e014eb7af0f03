r"""`TableBank`: every :class:`~graphmeta.learners.spec.Table` node of a graph as one stacked
set of conditional probability tables, adapted by the conjugate Dirichlet update.

Node ``n`` holds log pseudo-counts :math:`\ell_n(u, v) = \log \beta_n(u, v)` for every joint
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

Parents are slots ``0 .. P-1`` in ``graph.parents`` order, slot ``j`` padded to the widest
class count ``W_j`` found there (a node with fewer parents reads a one-class constant in its
empty slots), so every node indexes its table by
:math:`u = \sum_j s_j \prod_{i > j} W_i` over the same ``prod_j W_j`` rows; rows whose
configuration a node cannot have never receive probability or counts.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

from ..data import Split
from ..graph import TaskGraph
from .bank import LearnerBank, Weights, gather_columns, packed_source
from .spec import Table


class TableBank(LearnerBank):
    """The Table nodes ``names`` of ``graph`` sharing ``spec``."""

    head_size = 1
    conjugate = True

    def __init__(self, graph: TaskGraph, names: Sequence[str], spec: Table) -> None:
        super().__init__(graph, names)
        self.spec = spec
        parents = [graph.parents(name) for name in self.names]
        slots = max(len(p) for p in parents)
        self.slot_widths = [max((graph.subtask(p[j]).width for p in parents if len(p) > j)) for j in range(slots)]
        self.configurations = math.prod(self.slot_widths)
        # per slot, the columns of packed_source(split) + [1] to read: the parent's one-hot,
        # padded with the zero column; an empty slot reads the constant 1 as its only class
        source_width = self.layout.feature_width + self.layout.value_width
        zero, one = source_width, source_width + 1
        index = torch.full((len(self.names), slots, max(self.slot_widths, default=1)), zero, dtype=torch.long)
        for row, node_parents in enumerate(parents):
            for j in range(slots):
                if j < len(node_parents):
                    columns = self.layout.value_slices[node_parents[j]]
                    index[row, j, : columns.stop - columns.start] = torch.arange(columns.start, columns.stop) + (
                        self.layout.feature_width)
                else:
                    index[row, j, 0] = one
        self.register_buffer("parent_index", index, persistent=False)
        # row u = sum_j (class of slot j) * stride_j: a linear code of the slots' one-hots
        strides = torch.tensor([math.prod(self.slot_widths[j + 1:]) for j in range(slots)], dtype=torch.long)
        classes = torch.arange(index.shape[-1])
        self.register_buffer("row_code", (strides[:, None] * classes).expand(len(self.names), -1, -1).reshape(
            len(self.names), -1), persistent=False)
        self.theta = nn.ParameterList([nn.Parameter(torch.empty(len(self.names), self.configurations,
                                                                self.output_width))])
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Every column: ``prior_strength`` pseudo-counts spread evenly over the node's classes."""
        classes = self.output_mask.sum(-1).to(self.theta[0].dtype)
        with torch.no_grad():
            self.theta[0].copy_((self.spec.prior_strength / classes).log()[:, None, None].expand_as(self.theta[0]))

    def forward(self, weights: Weights, split: Split, nodes: torch.Tensor | None = None) -> torch.Tensor:
        """Log-probabilities ``[T, N_b', K, D_out]`` (see the module docstring)."""
        log_counts = weights[0] if nodes is None else weights[0][:, nodes]
        output_mask = self.output_mask if nodes is None else self.output_mask[nodes]
        log_counts = log_counts.masked_fill(~output_mask[:, None, :], torch.finfo(log_counts.dtype).min / 4)
        rows = self._rows(split, nodes)
        if rows is not None:  # normalise the K rows read, not all C
            return log_counts.gather(2, rows[..., None].expand(-1, -1, -1, log_counts.shape[-1])).log_softmax(-1)
        mixture = self._configuration_weights(split, nodes) @ log_counts.softmax(-1)
        return mixture.clamp(min=torch.finfo(mixture.dtype).tiny).log()

    def posterior(self, weights: Weights, split: Split) -> Weights:
        """The conjugate update ``log(exp(l) + n)`` with the support counts ``n [T, N_b, C, D_out]``."""
        observed = self.targets(split) * self.example_mask(split).to(weights[0].dtype)[..., None]
        rows = self._rows(split)
        if rows is not None:
            counts = torch.zeros_like(weights[0]).scatter_add_(2, rows[..., None].expand_as(observed), observed)
        else:
            counts = self._configuration_weights(split).transpose(-1, -2) @ observed
        return (torch.logaddexp(weights[0], counts.log()),)

    def _rows(self, split: Split, nodes: torch.Tensor | None = None) -> torch.Tensor | None:
        """``[T, N_b', K]``: each shot's table row when every parent value is 0/1 (a one-hot, or all
        zeros for a missing value, whose shot the example mask drops); ``None`` when some parent
        value is a probability, which needs the mixture."""
        index = self.parent_index if nodes is None else self.parent_index[nodes]
        code = self.row_code if nodes is None else self.row_code[nodes]
        parents = gather_columns(_with_ones(packed_source(split)), index.flatten(1))
        if not bool(((parents == 0) | (parents == 1)).all()):
            return None
        return (parents * code[:, None, :].to(parents.dtype)).sum(-1).round().long()

    def _configuration_weights(self, split: Split, nodes: torch.Tensor | None = None) -> torch.Tensor:
        """``[T, N_b', K, C]``: each shot's distribution over the table rows, ``p_1 (x) ... (x) p_P``."""
        index = self.parent_index if nodes is None else self.parent_index[nodes]
        source = _with_ones(packed_source(split))
        weights = source.new_ones(source.shape[0], index.shape[0], source.shape[1], 1)
        for j, width in enumerate(self.slot_widths):
            parent = gather_columns(source, index[:, j, :width])
            weights = (weights[..., :, None] * parent[..., None, :]).flatten(-2)
        return weights

    def table_rows(self, name: str, parent_classes: np.ndarray) -> np.ndarray:
        """The table rows of node ``name`` for its parents' classes ``[R, P]`` (``graph.parents`` order)."""
        strides = np.cumprod([1, *self.slot_widths[::-1]])[::-1][1:]
        parent_classes = np.asarray(parent_classes, dtype=np.int64).reshape(len(parent_classes), -1)
        return parent_classes @ strides[: parent_classes.shape[1]]

    def extra_repr(self) -> str:
        return (f"nodes={len(self.names)}, configurations={self.configurations}, output_width={self.output_width}, "
                f"prior_strength={self.spec.prior_strength}")


def _with_ones(source: torch.Tensor) -> torch.Tensor:
    """``source [T, K, S]`` with a trailing column of ones, the one class of an empty parent slot."""
    return torch.cat([source, source.new_ones(*source.shape[:2], 1)], dim=-1)
