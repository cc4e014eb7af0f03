"""`TableTasks`: the tables of related networks as a task family, so the Trainer can meta-train on them.

Each task is one table (one site's records) of state indices. An episode of split ``s``
draws ``num_tasks`` of the split's tables and, in each, ``K_t`` random rows as the support set
and ``query`` further rows as the query set, where ``K_t`` is ``shots`` (one count, or one per
task: :mod:`graphmeta.train.episode_sampler` draws them from a range) but at most half of the table's
rows, so every episode keeps rows to score on. Where a table is short the query set has fewer
rows; the rest of the padded ``[T, max K_t]`` support and ``[T, query]`` query is unobserved.
The draw is a function of ``seed`` alone, so the Trainer's fixed validation episode is the same
at every validation.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from ..data import TaskBatch
from ..errors import ConfigError, DataError
from ..taskgraph import ColumnLayout, TaskGraph
from .structure import NetworkStructure
from .tabular import split_from_codes


class TableTasks:
    """Episodes over ``tables {split: codes [T, R, N]}`` (``-1`` missing, see :meth:`NetworkStructure.encode`)
    for ``graph``, the :func:`~.tabular.tabular_graph` of ``structure``."""

    def __init__(self, structure: NetworkStructure, graph: TaskGraph, tables: Mapping[str, np.ndarray]) -> None:
        self.structure = structure
        self.graph = graph
        self.layout = ColumnLayout(graph)
        self.tables = dict(tables)
        self.empty_rows = {split: ~(codes >= 0).any(-1) for split, codes in self.tables.items()}
        self.config = {"network": structure.graph.name, **{f"{s}_tables": len(c) for s, c in self.tables.items()}}

    def sample(self, num_tasks: int, shots: int | Sequence[int], query: int, split: str = "train",
               seed: int | None = None) -> TaskBatch:
        """``num_tasks`` episodes of ``split`` (tables drawn without replacement while they last)."""
        if split not in self.tables:
            raise ConfigError(f"no {split!r} tables: this family has {', '.join(map(repr, self.tables))}")
        codes, empty = self.tables[split], self.empty_rows[split]
        rng = np.random.default_rng(seed)
        count = len(codes)
        tasks = np.concatenate([rng.permutation(count) for _ in range(-(-num_tasks // count))])[:num_tasks]
        # a random order of each table's rows, rows without any value (padding) last; then support | query
        order = np.argsort(rng.random((num_tasks, codes.shape[1])) + empty[tasks], axis=1)
        real_rows = (~empty[tasks]).sum(1)
        sizes = np.minimum(np.broadcast_to(shots, (num_tasks,)), np.maximum(real_rows // 2, 1))
        picked = codes[tasks[:, None], order[:, : sizes.max() + query]]  # only the rows an episode takes
        support = np.where((np.arange(sizes.max()) < sizes[:, None])[..., None], picked[:, :sizes.max()], -1)
        rows = sizes[:, None] + np.arange(query)  # each task's query rows follow its own support rows
        inside = rows < codes.shape[1]
        query_rows = np.where(inside[..., None],
                              np.take_along_axis(picked, np.minimum(rows, picked.shape[1] - 1)[..., None], 1), -1)
        return TaskBatch(self.graph, split_from_codes(self.structure, self.layout, support),
                         split_from_codes(self.structure, self.layout, query_rows))

    def __repr__(self) -> str:
        return "TableTasks(" + ", ".join(f"{key}={value!r}" for key, value in self.config.items()) + ")"


def split_tables(tasks: list[Any], val_tasks: list[Any] | None, fraction: float) -> tuple[list[Any], list[Any]]:
    """Training and validation tables (DataFrames, one per site) of a meta-fit: ``val_tasks`` when
    given, else the last ``fraction`` of ``tasks`` (at least one, and one left to train on)."""
    if not tasks:
        raise DataError("meta_fit needs a list of DataFrames, one per related network (site)")
    if val_tasks is not None:
        if not val_tasks:
            raise DataError("val_tasks must be a non-empty list of DataFrames")
        return tasks, val_tasks
    if len(tasks) < 2:
        raise DataError("meta_fit needs at least 2 task tables to hold one out for validation (or val_tasks)")
    held_out = min(len(tasks) - 1, max(1, round(fraction * len(tasks))))
    return tasks[:-held_out], tasks[-held_out:]
