"""`NetworkStructure`: the DAG and states of a discrete Bayesian network, and its data as arrays.

Everything here is numpy over the padded CPD layout of :class:`~graphmeta.interop.cpd_table.CPDTable`:
variable ``n`` owns the columns ``offsets[n] ... offsets[n] + configs[n] - 1``, one per
configuration ``u`` of its parents (pgmpy's order, first evidence variable slowest), each of
width ``max cardinality``. A table of ``T`` tasks is ``[T, columns, width]``.

A data table (pandas, pgmpy's form: one column per variable, state names as values, NaN where
missing) becomes state indices ``[R, N]`` with ``-1`` for a missing value. Then

    config(r, n)  = sum_j s_{r, pa_j(n)} * stride_j(n)           (-1 if a parent is missing)
    n(u, v)       = #{rows r : config(r, n) = u, s_{r, n} = v}    (counts)
    log p(row r)  = sum_n log theta_n(s_{r, n} | config(r, n))   (complete rows)

each one gather or one ``bincount`` over all rows and variables, through the flat index of
each value's table cell (:meth:`NetworkStructure.cells`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np
import pandas as pd

from ..errors import DataError, GraphError, closest
from ..interop.cpd_table import CPDTable
from ..interop.pgmpy import discrete_graph_dict, network_evidence, read_network, taskgraph_from_pgmpy
from ..interop.tabular_cpds import cpd_values, discrete_network
from ..taskgraph import TaskGraph


@dataclass(frozen=True)
class NetworkStructure:
    """Variables (``names``, topological), their string ``states`` and ordered parents (``evidence``).

    Built with :meth:`from_pgmpy`; ``graph`` is the plain task graph (one classification
    subtask per variable) and ``table`` the CPD layout.
    """

    graph: TaskGraph
    states: dict[str, list[str]]
    evidence: dict[str, list[str]]

    @classmethod
    def from_pgmpy(cls, structure: Any, state_names: Mapping[str, Sequence[Any]] | None = None) -> NetworkStructure:
        """From a pgmpy ``DiscreteBayesianNetwork`` (or a bundled network's name).

        Only the DAG, the variables and their state names are used; CPD values are ignored.
        The graph is :func:`~graphmeta.interop.pgmpy.taskgraph_from_pgmpy`'s, so the states follow its rule (from
        ``state_names`` ``{variable: [state, ...]}``, else the CPDs; strings); each variable's
        parents are in its CPD's evidence order (:func:`~graphmeta.interop.pgmpy.network_evidence`).
        """
        from pgmpy.models import DiscreteBayesianNetwork

        _, model = read_network(structure)
        if not isinstance(model, DiscreteBayesianNetwork):
            raise GraphError(f"the structure must be a pgmpy DiscreteBayesianNetwork or a bundled network name, "
                             f"got {type(model).__name__}")
        graph = taskgraph_from_pgmpy(structure, state_names)
        states = {name: list(graph.subtask(name).attrs["state_names"]) for name in graph.names}
        return cls(graph, states, network_evidence(model))

    def to_dict(self) -> dict[str, Any]:
        """Plain data that :meth:`from_dict` turns back into the structure."""
        return {"name": self.graph.name, "states": {v: list(s) for v, s in self.states.items()},
                "evidence": {v: list(p) for v, p in self.evidence.items()}}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> NetworkStructure:
        """Inverse of :meth:`to_dict`."""
        states = {v: list(s) for v, s in data["states"].items()}
        evidence = {v: list(p) for v, p in data["evidence"].items()}
        return cls(TaskGraph.from_dict(discrete_graph_dict(data.get("name") or "", states, evidence)), states, evidence)

    # ---------------------------------------------------------------- layout
    @property
    def names(self) -> list[str]:
        return self.graph.names

    @cached_property
    def table(self) -> CPDTable:
        return CPDTable.build(self.graph, self.evidence)

    # ------------------------------------------------------------------ data
    def encode(self, frames: pd.DataFrame | Sequence[pd.DataFrame], what: str = "table") -> np.ndarray:
        """State indices ``[T, R, N]`` (``graph.names`` order, ``-1`` missing) of ``T`` tables,
        shorter tables padded with missing rows; one DataFrame gives ``[R, N]``.

        A value is read as ``str(value)`` (pandas' ``astype(str)``) and looked up among its
        variable's states. A column that is no variable, a variable without a column, or a value
        that is not one of its variable's states is a :class:`DataError` naming it (the first
        offence in table order, then variable order).
        """
        single = isinstance(frames, pd.DataFrame)
        frames = [frames] if single else list(frames)

        def label(t: int) -> str:
            return what if single else f"{what} {t}"

        for t, frame in enumerate(frames):
            problem = self._frame_problem(frame, label(t))
            if problem is not None:
                self._encode_tables(frames[:t], label)  # an unknown value in an earlier table comes first
                raise DataError(problem)
        codes = self._encode_tables(frames, label)
        return codes[0] if single else codes

    def _frame_problem(self, frame: Any, where: str) -> str | None:
        """What makes ``frame`` no table of these variables, or ``None``."""
        if not isinstance(frame, pd.DataFrame):
            return f"{where} is a {type(frame).__name__}, expected a pandas DataFrame"
        for column in frame.columns:
            if column not in self.states:
                return (f"{where} has the column {column!r}, which is no variable of the network"
                        f"{closest(str(column), self.names)}")
        for name in self.names:
            if name not in frame.columns:
                return f"{where} has no column for variable {name!r} (use NaN where it is unknown)"
        return None

    def _encode_tables(self, frames: Sequence[pd.DataFrame], label: Callable[[int], str]) -> np.ndarray:
        """:meth:`encode` of tables that have every variable's column and no other.

        Tables whose columns have the same dtypes are joined and each variable read once for
        all of them. Joining tables of different dtypes could change their values (an int
        column joined to a float one reads ``1.0``), so each such group goes alone.
        """
        lengths = np.array([len(frame) for frame in frames], dtype=np.int64)
        starts = np.cumsum(lengths) - lengths
        real = np.arange(lengths.max(initial=0)) < lengths[:, None]  # [T, R]: the joined rows, row-major
        flat = np.empty((int(lengths.sum()), len(self.names)), dtype=np.int64)
        unknown = np.zeros(flat.shape, dtype=bool)
        groups: dict[tuple[Any, ...], list[int]] = {}
        for t, frame in enumerate(frames):
            groups.setdefault(tuple(frame.dtypes[self.names]), []).append(t)
        for group in groups.values():
            joined = pd.concat([frames[t] for t in group], ignore_index=True) if len(group) > 1 else frames[group[0]]
            rows = np.concatenate([np.arange(starts[t], starts[t] + lengths[t]) for t in group])
            for n, name in enumerate(self.names):
                present = joined[name].notna().to_numpy()
                index = pd.Index(self.states[name]).get_indexer(joined[name].astype(str)).astype(np.int64)
                flat[rows, n] = np.where(present, index, -1)
                unknown[rows, n] = present & (index < 0)
        if unknown.any():
            positions, columns = np.nonzero(unknown)
            table = np.repeat(np.arange(len(frames)), lengths)[positions]
            first = np.lexsort((positions, columns, table))[0]  # the first table, then variable, then row
            t, name = int(table[first]), self.names[columns[first]]
            value = frames[t][name].iloc[positions[first] - starts[t]]
            raise DataError(f"{label(t)}, column {name!r}: value {value!r} is not one of its states "
                            f"{self.states[name]}{closest(str(value), self.states[name])}")
        codes = np.full((*real.shape, len(self.names)), -1, dtype=np.int64)
        codes[real] = flat
        return codes

    def configurations(self, codes: np.ndarray) -> np.ndarray:
        """``[..., N]`` parent-configuration index of every variable in every row, ``-1`` where a parent is missing.

        One pass per parent slot ``j``, over the variables with a ``j``-th parent only.
        """
        table = self.table
        index = np.zeros(codes.shape, dtype=np.int64)
        missing = np.zeros(codes.shape, dtype=bool)
        for j in range(table.parents.shape[1]):
            nodes = np.flatnonzero(table.strides[:, j] > 0)
            parent = codes[..., table.parents[nodes, j]]
            index[..., nodes] += np.maximum(parent, 0) * table.strides[nodes, j]
            missing[..., nodes] |= parent < 0
        return np.where(missing, -1, index)

    def cells(self, codes: np.ndarray) -> np.ndarray:
        """``[T, R, N]``: where each value of ``codes [T, R, N]`` falls in tables ``[T, columns, width]``
        read flat, ``(t * columns + offsets[n] + config(r, n)) * width + s_{r, n}``; ``-1`` where the
        value or a parent is missing."""
        table = self.table
        config = self.configurations(codes)
        task = np.arange(codes.shape[0])[:, None, None]
        cell = (task * table.columns + table.offsets + config) * table.width + codes
        return np.where((config >= 0) & (codes >= 0), cell, -1)

    def counts(self, codes: np.ndarray) -> np.ndarray:
        """``[T, columns, width]`` counts ``n(u, v)`` of ``codes [T, R, N]``; a row counts for a
        variable when its value and all its parents' values are present."""
        table = self.table
        cells = self.cells(codes)
        flat = np.bincount(cells[cells >= 0], minlength=codes.shape[0] * table.columns * table.width)
        return flat.reshape(codes.shape[0], table.columns, table.width).astype(np.float64)

    def log_likelihood(self, tables: np.ndarray, codes: np.ndarray) -> np.ndarray:
        """``[T, R]`` log-likelihood of the complete rows ``codes [T, R, N]`` under ``tables [T, columns, width]``."""
        return self.cell_log_likelihood(tables, self.complete_cells(codes))

    def complete_cells(self, codes: np.ndarray) -> np.ndarray:
        """:meth:`cells` of complete rows (a :class:`DataError` if a value is missing), for
        :meth:`cell_log_likelihood`: to score the same rows under many tables, find them once."""
        if (codes < 0).any():
            raise DataError("log_likelihood needs complete rows; these have missing values")
        return self.cells(codes)

    @staticmethod
    def cell_log_likelihood(tables: np.ndarray, cells: np.ndarray) -> np.ndarray:
        """``[T, R]``: :meth:`log_likelihood` of the rows whose :meth:`complete_cells` are ``cells [T, R, N]``."""
        with np.errstate(divide="ignore"):
            return np.log(np.ravel(tables)[cells]).sum(-1)

    # --------------------------------------------------------------- pgmpy CPDs
    def pack_network(self, model: Any) -> np.ndarray:
        """``[columns, width]``: the CPDs of a pgmpy network over these variables, in this layout
        (whatever the network's parent and state order)."""
        return self.table.pack({name: cpd_values(model, name, self.states, self.evidence[name]) for name in self.names})

    def to_network(self, tables: Mapping[str, np.ndarray]) -> Any:
        """A pgmpy ``DiscreteBayesianNetwork`` with one ``TabularCPD`` per variable from
        ``{variable: [card, configs]}`` (evidence and states in this structure's order)."""
        return discrete_network(self.graph, self.states, self.evidence, tables)
