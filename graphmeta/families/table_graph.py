"""The task graph of a table: which columns become nodes, the dependencies (given, or learned
from the training rows by pgmpy), and every node's subtask as the table's columns decide it.

A given graph (a :class:`~graphmeta.TaskGraph`, a task-graph file or mapping, a networkx
``DiGraph`` or a pgmpy model) supplies the dependencies and each node's learner; the table
supplies the kinds, classes and widths (:mod:`~graphmeta.families.column_coding`). A node the
graph gives no learner gets the family's, or with ``learner="auto"`` the one its column calls for
(:func:`auto_learner`). Used by :class:`~graphmeta.families.DataFrameFamily`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Annotated, Any, Literal

import pandas as pd

from ..errors import ConfigError, DataError, GraphError, closest
from ..interop.structure_learning import taskgraph_from_data
from ..learners import MLP, LearnerSpec, Linear, Table, learner_from
from ..learners.registry import LEARNERS
from ..taskgraph import TaskGraph
from ..taskgraph.reader import GraphStructure, read_graph, read_mapping, require_acyclic
from ..validation import BeforeValidator
from .column_coding import ColumnCoding, state_name

#: How a graph is learned from the table when none is given.
STRUCTURE_METHODS = ("hill_climb", "pc")

#: The ``learner`` that picks each node's learner from its column (:func:`auto_learner`).
AUTO: Literal["auto"] = "auto"


def table_learner_from(value: Any) -> LearnerSpec | str:
    """:data:`AUTO` as it is, anything else the spec :func:`~graphmeta.learners.learner_from`
    makes of it; a misspelt name's "did you mean" weighs ``auto`` beside the registered names."""
    if value == AUTO:
        return AUTO
    if isinstance(value, str) and value not in LEARNERS:
        raise GraphError(f"unknown learner {value!r}{closest(value, [AUTO, *LEARNERS])}; choose {AUTO} or one of "
                         f"{', '.join(LEARNERS)}")
    return learner_from(value)


#: A table family's ``learner`` argument: :data:`AUTO`, or what
#: :data:`~graphmeta.taskgraph.subtask.Learner` takes (a spec, a registered name, a mapping).
TableLearner = Annotated[LearnerSpec | Literal["auto"], BeforeValidator(table_learner_from)]


def auto_learner(kind: str, in_dim: int, parent_kinds: Sequence[str]) -> LearnerSpec:
    r"""The learner :data:`AUTO` gives a node: :class:`~graphmeta.learners.Linear` for a numeric
    column (:math:`y = w^\top x + b + \varepsilon`, a Normal-Inverse-Gamma prior on
    :math:`(w, b, \sigma^2)` that the :class:`~graphmeta.Trainer` starts at the training tasks'
    empirical-Bayes fit); for a classification column a :class:`~graphmeta.learners.Table`
    (a Dirichlet-categorical CPD per parent configuration) where it has no features
    (``in_dim == 0``) and every parent is a class, an :class:`~graphmeta.learners.MLP` otherwise.

    The rule is what ``benchmarks/grouped_tables.py`` found best on real grouped tables: level with
    a linear mixed model in every dataset x K cell, where MLP nodes were worse in some."""
    if kind == "regression":
        return Linear()
    if in_dim == 0 and all(parent == "classification" for parent in parent_kinds):
        return Table()
    return MLP()


def given_structure(graph: Any) -> GraphStructure | None:
    """The nodes, edges and node specs of a given graph, in any form :func:`read_graph` reads or a
    :class:`TaskGraph`; names as strings, like the table's columns."""
    if graph is None:
        return None
    structure = read_mapping(graph.to_dict()) if isinstance(graph, TaskGraph) else read_graph(graph, partial=True)
    return GraphStructure(structure.name, [str(node) for node in structure.nodes],
                          [(str(parent), str(child)) for parent, child in structure.edges],
                          {str(node): spec for node, spec in structure.specs.items()})


def node_columns(table: pd.DataFrame, structure: GraphStructure | None, columns: tuple[str, ...] | None,
                 categorical: Sequence[str], features: Mapping[str, Sequence[str]]) -> list[str]:
    """The columns that become nodes: ``columns``, else the graph's nodes, else every column but
    the feature columns; a column named anywhere that the table lacks is an error naming it."""
    available = list(table.columns)
    feature_columns = [column for node_columns in features.values() for column in node_columns]
    for name, where in [*((c, "columns") for c in columns or ()), *((c, "categorical") for c in categorical),
                        *((c, "features") for c in feature_columns)]:
        if name not in available:
            raise ConfigError(f"{where} names the column {name!r}, which the table does not have"
                              f"{closest(name, available)}; columns: {', '.join(map(repr, available))}")
    if structure is not None:
        for name in structure.nodes:
            if name not in available:
                raise DataError(f"the graph's node {name!r} is no column of the table{closest(name, available)}; "
                                f"columns: {', '.join(map(repr, available))}")
        if columns is not None and set(columns) != set(structure.nodes):
            raise ConfigError(f"columns {list(columns)} and the graph's nodes {structure.nodes} differ: give "
                              "one of them, or the same columns")
    nodes = list(columns or (structure.nodes if structure is not None else
                             [c for c in available if c not in set(feature_columns)]))
    for node, node_features in features.items():
        if node not in nodes:
            raise ConfigError(f"features names the node {node!r}, which is not one of the nodes "
                              f"{nodes}{closest(node, nodes)}")
        for column in node_features:
            if column in nodes:
                raise ConfigError(f"column {column!r} is both a node and a feature of {node!r}: make it a parent "
                                  f"of {node!r} in the graph instead")
    return nodes


def learned_edges(rows: pd.DataFrame, nodes: list[str], codings: Mapping[str, ColumnCoding],
                  method: str) -> list[tuple[str, str]]:
    """The DAG pgmpy learns (``method``, one of :data:`STRUCTURE_METHODS`) from ``rows`` with every
    node observed."""
    if len(nodes) < 2:
        return []
    frame = pd.DataFrame({name: rows[name].astype(object).map(state_name, na_action="ignore")
                          if codings[name].kind == "classification" else pd.to_numeric(rows[name])
                          for name in nodes}).dropna()
    if len(frame) < 2 * len(nodes):
        raise DataError(f"only {len(frame)} training rows have every node observed, too few to learn a graph "
                        f"over {len(nodes)} columns from: give the graph (graph=...)")
    return taskgraph_from_data(frame.reset_index(drop=True), method=method).edges


def table_task_graph(name: str, nodes: list[str], edges: list[tuple[str, str]], structure: GraphStructure | None,
                     codings: Mapping[str, ColumnCoding], features: Mapping[str, Sequence[str]],
                     learner: LearnerSpec | str) -> TaskGraph:
    """The task graph ``name``: a subtask per node as its column's coding makes it (kind, classes
    and state names; ``in_dim`` the width of its ``features``), the given graph's learner or
    ``learner`` (:data:`AUTO`: :func:`auto_learner` of the node), and ``edges``; a cycle is a
    GraphError, a kind the column contradicts a DataError."""
    require_acyclic(nodes, edges)
    graph = TaskGraph(name)
    for node in nodes:
        coding = codings[node]
        given = structure.specs.get(node, {}) if structure is not None else {}
        if (given.get("kind") or coding.kind) != coding.kind:
            hint = (f"; list it in categorical=[{node!r}] to classify its values" if coding.kind == "regression"
                    else "")
            raise DataError(f"the graph makes {node!r} a {given['kind']} subtask, but its column is "
                            f"{'numeric' if coding.kind == 'regression' else 'categorical'}{hint} (or give "
                            "the graph's dependencies alone, as a file, mapping or networkx DiGraph: the "
                            "table decides the kinds)")
        in_dim = sum(codings[column].width for column in features.get(node, ()))
        node_learner = given.get("learner") or (
            auto_learner(coding.kind, in_dim, [codings[parent].kind for parent, child in edges if child == node])
            if learner == AUTO else learner)
        if coding.kind == "classification":
            graph.add_subtask(node, in_dim=in_dim, kind="classification", num_classes=len(coding.states),
                              learner=node_learner, attrs={"state_names": list(coding.states)})
        else:
            graph.add_subtask(node, in_dim=in_dim, learner=node_learner)
    for parent, child in edges:
        graph.add_dependency(parent, child)
    return graph
