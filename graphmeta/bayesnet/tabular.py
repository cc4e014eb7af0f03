r"""A discrete Bayesian network as a task graph of Table learners, and its data as graphmeta tensors.

Variable :math:`v` with parents :math:`\mathrm{pa}(v)` becomes a classification subtask with a
:class:`~graphmeta.learners.Table` learner: a column of Dirichlet pseudo-counts
:math:`\beta(u, \cdot)` for every joint configuration :math:`u` of its parents, which adapts to
a site's rows by the conjugate update :math:`\beta \leftarrow \beta + n` (see
:mod:`graphmeta.learners.banks.table`). Its CPD is :math:`P(v \mid u) = \beta(u, v) / \beta(u)`,
any CPD at all; the column of configuration :math:`u` moves only with the rows that have
:math:`u`, as the Dirichlet posterior of that column does. What one variable's rows cannot say
(a site that shifts many CPDs together) travels between variables by message passing along
the network's edges.

The CPD of a learner is read off by predicting on *probe rows*: for every variable, one row
per configuration of its parents, all variables of all rows observed (see :func:`probe_codes`).
"""

from __future__ import annotations

import numpy as np
import torch

from ..data import Split
from ..learners import Table
from ..taskgraph import ColumnLayout, TaskGraph
from .structure import NetworkStructure


def tabular_graph(structure: NetworkStructure) -> TaskGraph:
    """The task graph of ``structure`` with a Table learner per variable."""
    return structure.graph.with_learner(Table())


def split_from_codes(structure: NetworkStructure, layout: ColumnLayout, codes: np.ndarray,
                     dtype: torch.dtype | None = None) -> Split:
    """The :class:`Split` of state indices ``codes [T, R, N]`` (``-1`` missing) for :func:`tabular_graph`:
    ``values`` every observed variable one-hot, ``observed`` ``codes >= 0``, no own features."""
    dtype = dtype or torch.get_default_dtype()
    codes = np.asarray(codes, dtype=np.int64)
    value_start = np.array([layout.value_slices[name].start for name in structure.names])
    values = _one_hot(value_start + codes, codes >= 0, layout.value_width, dtype)
    return Split(values.new_zeros(*values.shape[:2], 0), values, torch.from_numpy(codes >= 0))


def _one_hot(columns: np.ndarray, present: np.ndarray, width: int, dtype: torch.dtype) -> torch.Tensor:
    """``[T, R, width]`` with a 1 at ``columns[t, r, n]`` wherever ``present`` (one scatter)."""
    index = torch.from_numpy(np.where(present, columns, width))  # absent entries land in a spare column
    out = torch.zeros(*columns.shape[:2], width + 1, dtype=dtype)
    out.scatter_(2, index, 1.0)
    return out[..., :width]


def probe_codes(structure: NetworkStructure) -> np.ndarray:
    """``[columns, N]`` full assignments whose row ``offsets[n] + u`` sets the parents of variable
    ``n`` to configuration ``u`` (pgmpy's column order); every other variable is in state 0."""
    table = structure.table
    owner = np.repeat(np.arange(len(structure.names)), table.configs)
    config = np.arange(table.columns) - table.offsets[owner]
    codes = np.zeros((table.columns, len(structure.names)), dtype=np.int64)
    rows = np.arange(table.columns)
    for j in range(table.parents.shape[1]):  # one pass per parent slot, not per variable
        stride = table.strides[owner, j]
        parent = table.parents[owner, j]
        present = stride > 0
        digit = config // np.maximum(stride, 1) % table.cardinality[parent]
        codes[rows[present], parent[present]] = digit[present]
    return codes
