r"""Tabular node learners for a discrete Bayesian network, and its data as graphmeta tensors.

Variable :math:`v` with parents :math:`\mathrm{pa}(v)` becomes a classification subtask whose
own features are the one-hot :math:`e_u` of its *joint* parent configuration
:math:`u \in \{0, \dots, \prod_{p} |p| - 1\}` (none for a root), with a linear softmax
learner (``MLP(hidden=())``). Its input is :math:`[e_u, e_{u_1}, \dots, e_{u_P}]` (the engine
appends each parent's one-hot), so its logits are

.. math::
    z(u) = W_{\text{joint}}[u] + \sum_j W_j[u_j] + b,

a free table over configurations: any CPD :math:`P(v \mid u)` is exactly
:math:`\mathrm{softmax}(z(u))`. A linear model on the parent one-hots alone is additive in the
parents' states and cannot represent every CPD; hidden units could, but then a gradient step
on one configuration's rows moves every configuration's column. With the joint one-hot, the
row :math:`W_{\text{joint}}[u]` sees only the support rows with configuration :math:`u`, as
the Dirichlet posterior of that column does; the per-parent weights and the bias pool
evidence across configurations (useful when a site shifts a whole CPD at once, and switched
off by learned per-parameter rates when not). The graph keeps the network's edges, so
message passing runs along the DAG.

The CPD of a learner is read off by predicting on *probe rows*: for every variable, one row
per configuration of its parents, all variables of all rows observed (see :func:`probe_codes`).
"""

from __future__ import annotations

import numpy as np
import torch

from ..data import Split
from ..graph import TaskGraph
from ..layout import GraphLayout
from ..learners.spec import MLP
from .structure import NetworkStructure


def tabular_graph(structure: NetworkStructure) -> TaskGraph:
    """The task graph of ``structure`` with joint-configuration features and linear softmax learners."""
    table = structure.table
    graph = TaskGraph(name=structure.graph.name)
    for n, name in enumerate(structure.names):
        in_dim = int(table.configs[n]) if structure.evidence[name] else 0
        graph.add_subtask(name, in_dim=in_dim, kind="classification", num_classes=len(structure.states[name]),
                          learner=MLP(hidden=()), state_names=list(structure.states[name]))
    for parent, child in structure.graph.edges:
        graph.add_dependency(parent, child)
    return graph.validate()


def split_from_codes(structure: NetworkStructure, layout: GraphLayout, codes: np.ndarray,
                     dtype: torch.dtype | None = None) -> Split:
    """The :class:`Split` of state indices ``codes [T, R, N]`` (``-1`` missing) for :func:`tabular_graph`.

    ``values``: every observed variable one-hot; ``observed``: ``codes >= 0``; ``features``: the
    one-hot of each variable's parent configuration where all its parents are observed (a row
    where one is missing does not count for that variable, so its features are never read).
    """
    dtype = dtype or torch.get_default_dtype()
    codes = np.asarray(codes, dtype=np.int64)
    value_start = np.array([layout.value_slices[name].start for name in structure.names])
    feature_start = np.array([layout.feature_slices[name].start for name in structure.names])
    has_features = np.array([layout.feature_slices[name].stop > layout.feature_slices[name].start
                             for name in structure.names])
    config = structure.configurations(codes)
    values = _one_hot(value_start + codes, codes >= 0, layout.value_width, dtype)
    features = _one_hot(feature_start + config, (config >= 0) & has_features, layout.feature_width, dtype)
    return Split(features, values, torch.from_numpy(codes >= 0))


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
