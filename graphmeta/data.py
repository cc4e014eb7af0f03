"""`TaskBatch`: T tasks, each with a support and a query set for every node, as padded tensors.

Examples are *joint*: shot ``k`` of task ``t`` is one draw of the whole graph, so a child's
input at shot ``k`` is its own features with its parents' values at the same shot (teacher
forcing). A node whose value is missing at a shot is masked there by ``observed``; shots
past a task's size are simply unobserved everywhere. A latent node (``observed=False``) has no
labels at all: its value columns stay 0 and unobserved, and the banks fill them with its
predictions (:class:`~graphmeta.learners.banks.bank_set.BankSet`).
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, TypeVar

import torch

from .errors import DataError
from .taskgraph import ColumnLayout, TaskGraph

Derived = TypeVar("Derived")


@dataclass(frozen=True)
class DenseGraphs:
    """Small input graphs of one GNN node, padded to ``M`` graph-nodes: one graph per (task, shot).

    ``x``: ``[T, K, M, F]`` node features; ``adjacency``: ``[T, K, M, M]`` 0/1 (no self loops);
    ``mask``: ``[T, K, M]`` which graph-nodes are real.
    """

    x: torch.Tensor
    adjacency: torch.Tensor
    mask: torch.Tensor

    def to(self, *args: Any, **kwargs: Any) -> DenseGraphs:
        x = self.x.to(*args, **kwargs)
        return DenseGraphs(x, self.adjacency.to(device=x.device, dtype=x.dtype), self.mask.to(device=x.device))

    def select(self, tasks: torch.Tensor) -> DenseGraphs:
        return DenseGraphs(self.x[tasks], self.adjacency[tasks], self.mask[tasks])


@dataclass(frozen=True)
class Split:
    """One side (support or query) of a :class:`TaskBatch`.

    ``features``: ``[T, K, F]`` own features of all non-GNN nodes (``ColumnLayout.feature_slices``);
    ``values``: ``[T, K, W]`` every node's value, classification one-hot (``ColumnLayout.value_slices``);
    ``observed``: ``[T, K, N]`` bool, node ``n``'s value is present at shot ``k`` of task ``t``;
    ``graphs``: ``{node: DenseGraphs}`` inputs of GNN nodes;
    ``fill_missing``: how a node observed at a shot where a value its input reads is not (a parent's
    missing cell) counts there. ``True``: the missing value is filled with that parent's prediction,
    level by level, and the shot counts wherever the node itself is observed; ``False``: the shot
    does not count; ``None`` (the default): ``True`` where the split has such shots
    (:meth:`~graphmeta.learners.banks.bank_set.BankSet.resolved`). Conjugate learners (Table, Linear)
    fit and score the shots whose inputs are all observed, either way.

    A split's tensors are not changed after it is made, so what depends on its data alone (a
    bank's targets, example mask, table rows) is computed once per split (:meth:`derived`),
    however many losses a meta-step takes on it.
    """

    features: torch.Tensor
    values: torch.Tensor
    observed: torch.Tensor
    graphs: dict[str, DenseGraphs] = field(default_factory=dict)
    fill_missing: bool | None = None
    _derived: dict[Hashable, Any] = field(default_factory=dict, init=False, repr=False, compare=False)

    def derived(self, key: Hashable, compute: Callable[[], Derived]) -> Derived:
        """``compute()`` the first time ``key`` is asked of this split, the same result after. Under
        ``torch.compile`` it is computed where asked, not kept: the captured graph computes it once
        anyway, and a kept tensor computed inside ``torch.func.grad`` would leak out of it."""
        if torch.compiler.is_compiling():
            return compute()
        if key not in self._derived:
            self._derived[key] = compute()
        return self._derived[key]

    @property
    def num_tasks(self) -> int:
        return self.values.shape[0]

    @property
    def shots(self) -> int:
        """Shots per task, the padded size: the largest task's."""
        return self.values.shape[1]

    @property
    def task_rows(self) -> torch.Tensor:
        """``[T]`` each task's own shots: those at which some node is observed (a task of a table
        takes what it has, so these may differ from task to task and from ``shots``)."""
        return self.observed.any(-1).sum(-1)

    def to(self, *args: Any, **kwargs: Any) -> Split:
        features = self.features.to(*args, **kwargs)
        return Split(
            features,
            self.values.to(*args, **kwargs),
            self.observed.to(features.device),
            {name: g.to(*args, **kwargs) for name, g in self.graphs.items()},
            self.fill_missing,
        )

    def select(self, tasks: torch.Tensor) -> Split:
        return Split(self.features[tasks], self.values[tasks], self.observed[tasks],
                     {name: g.select(tasks) for name, g in self.graphs.items()}, self.fill_missing)


@dataclass(frozen=True)
class TaskBatch:
    """T tasks of one :class:`TaskGraph`, each with a ``support`` and a ``query`` :class:`Split`."""

    graph: TaskGraph
    support: Split
    query: Split

    @property
    def num_tasks(self) -> int:
        return self.support.num_tasks

    @property
    def shots(self) -> int:
        """Support shots per task (the padded size)."""
        return self.support.shots

    @property
    def query_shots(self) -> int:
        return self.query.shots

    @property
    def device(self) -> torch.device:
        return self.support.values.device

    @property
    def dtype(self) -> torch.dtype:
        return self.support.values.dtype

    def to(self, *args: Any, **kwargs: Any) -> TaskBatch:
        """Move (and cast floating tensors) like ``Tensor.to``; masks stay bool."""
        return replace(self, support=self.support.to(*args, **kwargs), query=self.query.to(*args, **kwargs))

    def select(self, tasks: Sequence[int] | torch.Tensor) -> TaskBatch:
        """The sub-batch of the given task indices."""
        index = torch.as_tensor(tasks, dtype=torch.long, device=self.device)
        return replace(self, support=self.support.select(index), query=self.query.select(index))

    def __repr__(self) -> str:
        return (f"TaskBatch({self.num_tasks} tasks x {len(self.graph)} nodes, "
                f"{self.shots} support / {self.query_shots} query shots, {self.dtype}, {self.device})")

    @classmethod
    def from_tensors(
        cls,
        graph: TaskGraph,
        support: Mapping[str, Any],
        query: Mapping[str, Any],
        support_observed: Mapping[str, torch.Tensor] | None = None,
        query_observed: Mapping[str, torch.Tensor] | None = None,
    ) -> TaskBatch:
        """Build a batch from ``{node: (x, y)}`` mappings.

        ``x``: ``[T, K, in_dim]`` own features (``None``, or ``y`` alone, for ``in_dim == 0``;
        for a GNN node, a list of ``T * K`` PyG ``Data`` in task-major order, or a ``Batch``).
        ``y``: ``[T, K, out_dim]`` floats for regression, ``[T, K]`` class indices for
        classification. For a single task, drop the leading ``T`` everywhere.
        ``*_observed``: optional ``{node: [T, K] bool}`` masks of which values are present
        (missing nodes default to all present). Every observed node of the graph must be given;
        a latent node (``observed=False``) takes no labels and no mask: give its features as
        ``(x, None)``, or leave it out when it has none.
        """
        graph.validate()
        support_split, single = _build_split(graph, support, support_observed, "support")
        query_split, _ = _build_split(graph, query, query_observed, "query", single)
        if support_split.num_tasks != query_split.num_tasks:
            raise DataError(f"support has {support_split.num_tasks} tasks but query has {query_split.num_tasks}")
        labelled = torch.tensor([graph.subtask(name).observed for name in graph.names])
        empty = ~support_split.observed.any(dim=1) & labelled  # [T, N]
        if empty.any():
            task, node = (int(i) for i in empty.nonzero()[0])
            raise DataError(f"empty support set for node {graph.names[node]!r} in task {task}: "
                            "every node needs at least one observed support example")
        dtype = torch.promote_types(support_split.values.dtype, query_split.values.dtype)
        return cls(graph, support_split.to(dtype), query_split.to(dtype))


def _unpack(name: str, entry: Any) -> tuple[Any, Any]:
    if isinstance(entry, torch.Tensor):
        return None, entry
    if isinstance(entry, (tuple, list)) and len(entry) == 2:
        return entry[0], entry[1]
    raise DataError(f"node {name!r}: expected (x, y) or a y tensor, got {type(entry).__name__}")


def _build_split(
    graph: TaskGraph, data: Mapping[str, Any], observed: Mapping[str, torch.Tensor] | None, side: str,
    single: bool | None = None,
) -> tuple[Split, bool]:
    layout = ColumnLayout(graph)
    for name in data:
        if name not in graph:
            graph.subtask(name)  # raises GraphError naming the unknown node
    for name in observed or {}:
        if not graph.subtask(name).observed:
            raise DataError(f"{side} gives an observed mask for latent node {name!r}: a latent node is never "
                            "observed; drop its mask (or make the subtask observed=True)")
    missing = [name for name in graph.names if name not in data
               and (graph.subtask(name).observed or graph.subtask(name).in_dim > 0)]
    if missing:
        raise DataError(f"{side} has no data for node(s) {', '.join(map(repr, missing))}")

    entries = {name: _unpack(name, data[name]) if name in data else (None, None) for name in graph.names}
    for name, (_, y) in entries.items():
        if y is not None and not graph.subtask(name).observed:
            raise DataError(f"{side} gives labels for latent node {name!r}: a latent subtask (observed=False) is "
                            "never labelled and learns through its children; give its features as (x, None), "
                            "or leave it out when it has none")
    first = next(name for name in graph.names if graph.subtask(name).observed)
    if single is None:
        single = _is_single_task(graph, first, entries[first][1])
    ys: dict[str, torch.Tensor] = {}
    for name, (_, y) in entries.items():
        if y is not None:
            y = torch.as_tensor(y)
            ys[name] = y.unsqueeze(0) if single else y
    num_tasks, shots = ys[first].shape[:2]
    float_dtype = _common_float_dtype(entries)

    values = torch.zeros(num_tasks, shots, layout.value_width, dtype=float_dtype)
    features = torch.zeros(num_tasks, shots, layout.feature_width, dtype=float_dtype)
    mask = torch.ones(num_tasks, shots, len(graph), dtype=torch.bool)
    graphs: dict[str, DenseGraphs] = {}
    for n, name in enumerate(graph.names):
        spec = graph.subtask(name)
        x, _ = entries[name]
        where = f"{side} node {name!r}"
        if not spec.observed:
            mask[:, :, n] = False
            present = torch.ones_like(mask[:, :, n])  # a latent node's own features are read at every shot
        else:
            y = ys[name]
            if observed is not None and name in observed:
                node_mask = torch.as_tensor(observed[name], dtype=torch.bool)
                node_mask = node_mask.unsqueeze(0) if single else node_mask
                _check_shape(where + " observed mask", node_mask, (num_tasks, shots))
                mask[:, :, n] = node_mask
            present = mask[:, :, n]
            if spec.kind == "classification":
                if y.is_floating_point() or y.dtype == torch.bool:
                    raise DataError(f"{where}: classification labels must be an integer tensor, got {y.dtype}")
                _check_shape(where + " labels", y, (num_tasks, shots))
                labels = y.long()
                num_classes = spec.width  # a classification node's value is one-hot over its classes
                bad = present & ((labels < 0) | (labels >= num_classes))
                if bad.any():
                    raise DataError(f"{where}: class label {int(labels[bad][0])} out of range [0, {num_classes})")
                one_hot = torch.nn.functional.one_hot(labels.clamp(0, num_classes - 1), num_classes)
                values[:, :, layout.value_slices[name]] = one_hot.to(float_dtype) * present.unsqueeze(-1)
            else:
                if not y.is_floating_point():
                    raise DataError(f"{where}: regression targets must be floating point, got {y.dtype}")
                _check_shape(where + " targets", y, (num_tasks, shots, spec.out_dim))
                _check_finite(where + " targets", y, present)
                values[:, :, layout.value_slices[name]] = torch.where(present.unsqueeze(-1), y, 0).to(float_dtype)
        if spec.takes_graphs:
            graphs[name] = dense_graphs(where, x, spec.in_dim, num_tasks, shots, float_dtype)
        elif spec.in_dim > 0:
            if x is None:
                raise DataError(f"{where}: in_dim is {spec.in_dim} but no features x were given")
            x = torch.as_tensor(x)
            x = x.unsqueeze(0) if single else x
            if not x.is_floating_point():
                raise DataError(f"{where}: features must be floating point, got {x.dtype}")
            _check_shape(where + " features", x, (num_tasks, shots, spec.in_dim))
            _check_finite(where + " features", x, present)
            # kept where finite, also where the node's value is missing: its prediction reads them there
            usable = present.unsqueeze(-1) | torch.isfinite(x).all(-1, keepdim=True)
            features[:, :, layout.feature_slices[name]] = torch.where(usable, x, 0).to(float_dtype)
        elif x is not None:
            raise DataError(f"{where}: in_dim is 0 but features x were given; pass y alone or (None, y)")
    return Split(features, values, mask, graphs), single


def _is_single_task(graph: TaskGraph, name: str, y: Any) -> bool:
    y = torch.as_tensor(y)
    expected = 2 if graph.subtask(name).kind == "classification" else 3
    if y.dim() not in (expected - 1, expected):
        raise DataError(f"node {name!r}: y has {y.dim()} dimensions; expected {expected} "
                        f"([T, K{', out_dim' if expected == 3 else ''}]) or {expected - 1} for one task")
    return y.dim() == expected - 1


def _common_float_dtype(entries: Mapping[str, tuple[Any, Any]]) -> torch.dtype:
    dtype = torch.get_default_dtype()
    for x, y in entries.values():
        for tensor in (x, y):
            if isinstance(tensor, torch.Tensor) and tensor.is_floating_point():
                dtype = torch.promote_types(dtype, tensor.dtype)
    return dtype


def _check_shape(where: str, tensor: torch.Tensor, shape: tuple[int, ...]) -> None:
    if tuple(tensor.shape) != tuple(shape):
        raise DataError(f"{where} have shape {tuple(tensor.shape)}, expected {tuple(shape)}")


def _check_finite(where: str, tensor: torch.Tensor, present: torch.Tensor) -> None:
    finite = torch.isfinite(tensor).all(dim=-1) | ~present
    if not finite.all():
        task, shot = (int(i) for i in (~finite).nonzero()[0])
        raise DataError(f"{where} contain NaN or inf (task {task}, shot {shot}); clean or mask them")


def dense_graphs(where: str, x: Any, in_dim: int, num_tasks: int, shots: int, dtype: torch.dtype) -> DenseGraphs:
    from torch_geometric.data import Batch, Data
    from torch_geometric.utils import to_dense_adj, to_dense_batch

    if isinstance(x, Data) and not isinstance(x, Batch):
        x = [x]
    if isinstance(x, (list, tuple)):
        if not all(isinstance(g, Data) for g in x):
            raise DataError(f"{where}: a GNN node takes PyG Data graphs as inputs")
        x = Batch.from_data_list(list(x))
    if not isinstance(x, Batch):
        raise DataError(f"{where}: a GNN node takes a list of PyG Data (or a Batch), got {type(x).__name__}")
    if x.num_graphs != num_tasks * shots:
        raise DataError(f"{where}: got {x.num_graphs} graphs, expected tasks x shots = {num_tasks * shots}")
    if x.x is None or x.x.dim() != 2 or x.x.shape[1] != in_dim:
        shape = None if x.x is None else tuple(x.x.shape)
        raise DataError(f"{where}: graph node features have shape {shape}, expected [num_nodes, {in_dim}]")
    if not torch.isfinite(x.x).all():
        raise DataError(f"{where}: graph node features contain NaN or inf")
    dense_x, node_mask = to_dense_batch(x.x.to(dtype), x.batch)
    adjacency = to_dense_adj(x.edge_index, x.batch, max_num_nodes=dense_x.shape[1]).to(dtype)
    adjacency = (adjacency > 0).to(dtype) * (1 - torch.eye(dense_x.shape[1], dtype=dtype))
    size = dense_x.shape[1]
    return DenseGraphs(
        dense_x.reshape(num_tasks, shots, size, in_dim),
        adjacency.reshape(num_tasks, shots, size, size),
        node_mask.reshape(num_tasks, shots, size),
    )
