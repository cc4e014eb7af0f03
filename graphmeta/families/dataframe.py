"""`DataFrameFamily`: your own table as a task family, one task per value of a task column.

Real data usually sit in one table: a row per record, a column saying which site, patient,
machine or experiment (the *task*) the record comes from, and a column per variable. This
family makes every chosen column a node of the task graph and every task-column value a task;
an episode draws ``shots`` support and ``query`` query rows of one task, without replacement.

Columns become numbers the way scikit-learn's ``StandardScaler`` and ``OneHotEncoder`` would
make them (:class:`ColumnCoding`):

* a numeric column is a regression subtask, standardised with the mean and standard deviation
  of the *training tasks'* rows only, :math:`\\tilde x = (x - \\mu_{train}) / \\sigma_{train}`
  (so no statistic of a validation or test task leaks into training); predictions and errors
  are turned back into the column's own units (:meth:`DataFrameFamily.predict`,
  :meth:`DataFrameFamily.errors`);
* a categorical, boolean or text column is a classification subtask, one-hot over its states,
  whose names are kept (``attrs["state_names"]``; a pandas ``Categorical`` keeps its own order);
* a missing cell (NaN, None, ``pd.NA``) is an unobserved value (the engine's ``observed``
  mask), never a zero: it counts for neither its node's loss nor as a parent's input.

The name: ``Table`` already names graphmeta's conditional-probability-table learner
(:class:`~graphmeta.learners.Table`) and ``CPDTable`` its packed CPDs, so a "TableFamily" would
read as a family of Table learners; this family is named after what it takes, a DataFrame.
"""

from __future__ import annotations

import itertools
import json
import math
import os
import warnings
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import networkx as nx
import numpy as np
import pandas as pd
import torch

from ..data import Split, TaskBatch
from ..errors import ConfigError, DataError, GraphError, check_keys, closest
from ..learners import learner_from
from ..taskgraph import TaskGraph
from ..taskgraph.subtask import Learner
from ..validation import Ge, Lt, NonNegativeInt, OneOf, PositiveInt, checked, load_yaml
from .base import SplitName, TaskFamily, family_rng, to_tensor

if TYPE_CHECKING:
    from ..adapted_graph import AdaptedGraph

STRUCTURE_METHODS = ("hill_climb", "pc")
#: Readers of the table files ``data`` may name, by suffix.
READERS = {".csv": pd.read_csv, ".tsv": lambda path: pd.read_csv(path, sep="\t"),
           ".parquet": pd.read_parquet, ".pq": pd.read_parquet}
#: A text column with more states than this is refused unless listed in ``categorical``: it is
#: far more often an identifier or free text than a variable to classify.
MAX_STATES = 100
Fraction = Annotated[float, Ge(0), Lt(1)]
TaskNames = tuple[str | int, ...]


@dataclass(frozen=True)
class ColumnCoding:
    """How one column becomes numbers: a standardised number, or the one-hot of its states.

    ``kind`` is ``"regression"`` (``mean`` and ``std`` of the training tasks' rows) or
    ``"classification"`` (``states``, the state names as strings).
    """

    name: str
    kind: str
    states: tuple[str, ...] = ()
    mean: float = 0.0
    std: float = 1.0

    @property
    def width(self) -> int:
        """Columns of its encoding: 1 for a number, one per state for a one-hot."""
        return len(self.states) if self.kind == "classification" else 1

    def encode(self, column: pd.Series, where: str) -> tuple[np.ndarray, np.ndarray]:
        """``([R, width] numbers, [R] present)`` of ``column``; a missing cell is absent and all zeros.
        A value that fits no state, or text in a numeric column, is a DataError naming ``where``."""
        present = column.notna().to_numpy()
        encoded = np.zeros((len(column), self.width))
        if self.kind == "classification":
            names = column[present].astype(object).map(state_name)
            codes = pd.Index(self.states).get_indexer(names)
            if (codes < 0).any():
                value = names.iloc[int(np.argmax(codes < 0))]
                raise DataError(f"{where}: column {self.name!r} holds {value!r}, which is none of its states "
                                f"{list(self.states)}")
            encoded[np.flatnonzero(present), codes] = 1.0
            return encoded, present
        numbers = pd.to_numeric(column, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
        junk = present & np.isnan(numbers)
        if junk.any():
            raise DataError(f"{where}: column {self.name!r} holds numbers, but also {column[junk].iloc[0]!r}; give a "
                            "missing value as an empty cell or NaN")
        encoded[present, 0] = (numbers[present] - self.mean) / self.std
        return encoded, present

    def decode(self, values: np.ndarray) -> np.ndarray:
        """Outputs of this column's node in the table's terms: ``[..., 1]`` standardised numbers in
        the column's own units, ``[..., states]`` scores or probabilities as the likeliest state name."""
        if self.kind == "classification":
            return np.asarray(self.states, dtype=object)[values.argmax(-1)]
        return values[..., 0] * self.std + self.mean


@checked
class DataFrameFamily(TaskFamily):
    r"""The tasks of a table: one task per value of ``task_column``, one node per chosen column.

    Args:
        data: a DataFrame with a task column; a mapping ``{task name: DataFrame}`` (then no
            ``task_column``); or the path of a ``.csv``, ``.tsv`` or ``.parquet`` file (``pd.read_csv``
            defaults; a relative path is taken from the working directory).
        task_column: the column naming each row's task (its values become task names, as strings).
        graph: the decomposition: a :class:`~graphmeta.TaskGraph`, a task-graph file (``.yaml``,
            ``.yml``, ``.json``) or mapping in :meth:`TaskGraph.to_dict` form (``subtasks`` may be
            omitted where ``dependencies`` name every node), a networkx ``DiGraph`` or a pgmpy
            model; ``None`` learns one from the pooled training rows (``TaskGraph.from_data``,
            rows with a missing node value left out). Its nodes must be columns; it gives the
            dependencies and each node's learner, the table gives kinds, classes and widths. A
            cycle is a GraphError naming it and edges whose removal breaks every cycle.
        columns: the columns that become nodes; by default the graph's nodes, or, with no graph,
            every column but the task and feature columns.
        categorical: numeric columns to treat as classes (0/1 codes, small counts), one state per
            value; text, boolean and ``Categorical`` columns are classes anyway.
        features: ``{node: [column, ...]}``: columns given to a node as its own inputs, not predicted
            (numbers standardised like nodes, classes one-hot). A row with a missing feature
            counts as a row where that node is unobserved.
        val_tasks, test_tasks: the task names of the validation and test splits; every other task
            is a training task. A split not listed takes a seeded ``val_fraction`` /
            ``test_fraction`` of the tasks not listed (at least one task when the fraction is > 0).
        min_rows: leave out, with a warning naming them, tasks with fewer rows (0: keep every task).
            Sampling a split with a task smaller than ``shots + query`` is a DataError naming it.
        structure_method: ``hill_climb`` (BIC score) or ``pc``, when the graph is learned.
        learner: the learner of every node the graph gives none (``mlp`` by default).
        seed: seeds the fraction split and the episode streams (see :class:`TaskFamily`).

    Bad input is a named error: a missing task column, a column named in ``columns``,
    ``features``, ``categorical`` or the graph that the table lacks (with the closest name), a
    column whose values are no one kind (numbers mixed with text, dates), and a column with one
    value only. Such a constant column is dropped with a warning when it was taken by default
    (``columns`` and ``graph`` not given), and an error when it was asked for.

    After construction: ``graph``, ``tasks`` (``{split: task names}``), ``task_sizes``
    (``{task: rows}``) and ``codings`` (``{column: ColumnCoding}``, the statistics and states).
    ``config`` holds a file ``data`` as its absolute path and an in-memory table as ``None``
    (a run's ``config.yaml`` cannot hold it: save the table to a file to rebuild the family
    from a run).
    """

    def __init__(
        self,
        data: Any,
        task_column: str | None = None,
        graph: Any = None,
        columns: tuple[str, ...] | None = None,
        categorical: tuple[str, ...] = (),
        features: Mapping[str, Sequence[str]] | None = None,
        val_tasks: TaskNames | None = None,
        test_tasks: TaskNames | None = None,
        val_fraction: Fraction = 0.2,
        test_fraction: Fraction = 0.2,
        min_rows: NonNegativeInt = 0,
        structure_method: Annotated[str, OneOf(STRUCTURE_METHODS)] = "hill_climb",
        learner: Learner = "mlp",
        seed: NonNegativeInt = 0,
    ) -> None:
        self.data = absolute_path(data) if isinstance(data, (str, os.PathLike)) else None
        self.task_column = task_column
        self.columns = None if columns is None else tuple(columns)
        self.categorical = tuple(categorical)
        self.features = None if features is None else {node: tuple(cols) for node, cols in features.items()}
        self.val_tasks = None if val_tasks is None else tuple(str(t) for t in val_tasks)
        self.test_tasks = None if test_tasks is None else tuple(str(t) for t in test_tasks)
        self.val_fraction, self.test_fraction = val_fraction, test_fraction
        self.min_rows, self.structure_method = min_rows, structure_method
        self.learner = learner_from(learner)

        table, labels = _table_and_tasks(data if self.data is None else self.data, task_column)
        table, labels = self._large_enough(table, labels)
        sizes = labels.value_counts()
        self.task_sizes = {name: int(sizes[name]) for name in pd.unique(labels)}
        self.tasks = self._split_tasks(list(self.task_sizes), seed)
        training = labels.isin(self.tasks["train"]).to_numpy()
        structure = _given_structure(graph)
        nodes = self._node_columns(table, structure)
        self.codings = self._codings(table, nodes, training, explicit=self.columns is not None or structure is not None)
        nodes = [name for name in nodes if name in self.codings]
        edges = structure.edges if structure is not None else self._learned_edges(table[training], nodes)
        task_graph = self._task_graph(nodes, edges, structure)
        super().__init__(task_graph, seed)
        self.graph_source = (absolute_path(graph) if isinstance(graph, (str, os.PathLike))
                             else None if graph is None else task_graph.to_dict())

        self._features, self._values, self._observed = self._encode(table, "the table")
        positions = labels.groupby(labels, sort=False).indices
        self._task_rows = [positions[name] for name in self.task_sizes]
        self._task_index = {name: i for i, name in enumerate(self.task_sizes)}

    @property
    def config(self) -> dict[str, Any]:
        """The constructor arguments in YAML form; ``graph`` as given when it was a file or ``None``,
        else as the task-graph mapping it was read as (see the class docstring for ``data``)."""
        return {**super().config, "graph": self.graph_source}

    # ----------------------------------------------------------------- sampling
    @checked
    def sample(self, num_tasks: PositiveInt, shots: PositiveInt | Sequence[PositiveInt], query: PositiveInt,
               split: SplitName = "train", seed: NonNegativeInt | None = None) -> TaskBatch:
        """``num_tasks`` episodes of the tasks of ``split``, each ``shots`` support and ``query``
        query rows of one task drawn without replacement. The split's tasks take turns, in a
        seeded order, so every task appears equally often (±1); a task with fewer rows than an
        episode draws is a DataError naming it."""
        self._require_rows(split, (shots if isinstance(shots, int) else max(shots)) + query)
        return super().sample(num_tasks, shots, query, split, seed)

    def draw_params(self, num_tasks: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
        """Not used: a table's tasks are drawn from one split, by :meth:`draw_tasks`."""
        raise NotImplementedError("a DataFrameFamily draws the tasks of one split: use draw_tasks(num_tasks, split, "
                                  "seed)")

    @checked
    def draw_tasks(self, num_tasks: PositiveInt, split: SplitName,
                   seed: NonNegativeInt | None) -> tuple[dict[str, np.ndarray], np.random.Generator]:
        """``{"task": [T] indices into task_sizes}`` of one call: the split's tasks in seeded random
        orders, one after another, and the stream the rows are drawn from."""
        params_rng, examples_rng = self.generators(split, seed)
        pool = self._split_indices(split)
        rounds = -(-num_tasks // len(pool))
        order = np.concatenate([params_rng.permutation(pool) for _ in range(rounds)])[:num_tasks]
        return {"task": order}, examples_rng

    def draw_examples(self, params: dict[str, np.ndarray], rows: int, rng: np.random.Generator) -> Split:
        """``rows`` distinct rows of each task of ``params``, in a random order; missing cells unobserved."""
        index = np.stack([rng.choice(self._task_rows[task], rows, replace=False) for task in params["task"]])
        return self._split_of(index)

    @checked
    def pooled_rows(self, split: SplitName = "train") -> Split:
        """Every row of the tasks of ``split`` as one task (``[1, rows, ...]``): what a pooled model,
        which ignores which task a row comes from, trains on."""
        index = np.concatenate([self._task_rows[task] for task in self._split_indices(split)])
        return self._split_of(index[None])

    def batch_from_frames(self, support: pd.DataFrame, query: pd.DataFrame | None = None) -> TaskBatch:
        """One task of your own rows (a new site's records, say), coded like the family's table: the
        same standardisation and states, missing cells and missing columns unobserved, other columns
        ignored. ``query`` defaults to the support rows."""
        query = support if query is None else query
        splits = [self._split_of_frame(frame, side) for frame, side in ((support, "support"), (query, "query"))]
        return TaskBatch(self.graph, *splits)

    # --------------------------------------------------------------- in units
    def predict(self, adapted: AdaptedGraph, rows: pd.DataFrame) -> pd.DataFrame:
        """Every node's prediction for ``rows`` of the one task ``adapted`` was adapted to, from its
        parents' and features' values in the same row: a number in the column's own units, or the
        likeliest state. NaN where a parent or feature of the node is missing in that row."""
        if adapted.num_tasks != 1:
            raise DataError(f"predict takes rows of one task, but the weights were adapted to {adapted.num_tasks}: "
                            "adapt to one task's support (batch_from_frames, or family.sample(1, ...))")
        split = self._split_of_frame(rows, "rows")
        inputs = {name: split.features[0, :, self.layout.feature_slices[name]]
                  for name in self.graph.names if self.graph.subtask(name).in_dim}
        observed = {}
        for name in self.graph.names:
            value = split.values[0, :, self.layout.value_slices[name]]
            observed[name] = value.argmax(-1) if self.codings[name].kind == "classification" else value
        predicted = adapted.predict(inputs=inputs, observed=observed, shots=len(rows))
        frame = pd.DataFrame(index=rows.index)
        for name in self.graph.names:
            inputs_present = _all_present(rows, [*self.graph.parents(name), *self.features_of(name)])
            decoded = self.codings[name].decode(predicted[name].cpu().double().numpy())
            frame[name] = pd.Series(decoded, index=rows.index).where(inputs_present)
        return frame

    def errors(self, adapted: AdaptedGraph, batch: TaskBatch) -> pd.DataFrame:
        """The query errors of ``adapted`` on ``batch`` in the table's units (:meth:`query_errors`);
        NaN for a node without an observed query row (value and parents) in a task."""
        metrics = adapted.evaluate(batch)
        scored = adapted.banks.example_mask(batch.query.to(metrics["loss"].device)).any(-1)
        return self.query_errors(*(torch.where(scored, metrics[key], math.nan) for key in ("loss", "accuracy")))

    def query_errors(self, loss: torch.Tensor, accuracy: torch.Tensor) -> pd.DataFrame:
        """Per-node query errors in the table's units, one row per task, from the standardised
        per (task, node) ``loss`` and ``accuracy`` ``[T, N]`` (of ``AdaptedGraph.evaluate`` or the
        evaluation's methods): ``"<node> rmse"`` in the column's own units for a regression node
        (standardising is affine, so :math:`\\mathrm{RMSE} = \\sigma_{train} \\sqrt{\\mathrm{MSE}_{std}}`),
        ``"<node> accuracy"`` for a classification node. NaN where a task had no observed query row."""
        loss, accuracy = loss.detach().cpu().double(), accuracy.detach().cpu().double()
        errors = {}
        for n, name in enumerate(self.graph.names):
            coding = self.codings[name]
            if coding.kind == "classification":
                errors[f"{name} accuracy"] = accuracy[:, n].numpy()
            else:
                errors[f"{name} rmse"] = coding.std * loss[:, n].sqrt().numpy()
        return pd.DataFrame(errors)

    def features_of(self, node: str) -> tuple[str, ...]:
        """The feature columns of ``node``, in its input order."""
        return (self.features or {}).get(node, ())

    # ----------------------------------------------------------------- helpers
    def _large_enough(self, table: pd.DataFrame, labels: pd.Series) -> tuple[pd.DataFrame, pd.Series]:
        sizes = labels.value_counts(sort=False)
        small = sizes[sizes < self.min_rows]
        if small.empty:
            return table, labels
        listed = ", ".join(f"{name!r} ({size} rows)" for name, size in small.items())
        warnings.warn(f"DataFrameFamily: {len(small)} task(s) have fewer than min_rows={self.min_rows} rows and are "
                      f"left out: {listed}", UserWarning, stacklevel=3)
        keep = ~labels.isin(small.index).to_numpy()
        if not keep.any():
            raise DataError(f"every task has fewer than min_rows={self.min_rows} rows: lower min_rows")
        return table[keep].reset_index(drop=True), labels[keep].reset_index(drop=True)

    def _split_tasks(self, names: list[str], seed: int) -> dict[str, tuple[str, ...]]:
        """``{split: task names}``: the lists given, then seeded fractions of the other tasks."""
        listed = {"val": self.val_tasks, "test": self.test_tasks}
        for split, tasks in listed.items():
            for task in tasks or ():
                if task not in names:
                    raise DataError(f"{split}_tasks names the task {task!r}, which the table does not have"
                                    f"{closest(task, names)}; tasks: {', '.join(map(repr, names))}")
        both = set(self.val_tasks or ()) & set(self.test_tasks or ())
        if both:
            raise ConfigError(f"the task(s) {sorted(both)} are in both val_tasks and test_tasks: a task belongs to one split")
        if self.val_fraction + self.test_fraction >= 1:
            raise ConfigError(f"val_fraction + test_fraction is {self.val_fraction + self.test_fraction:g}: leave "
                              "some tasks for training (the sum must be below 1)")
        free = [name for name in names if name not in set(self.val_tasks or ()) | set(self.test_tasks or ())]
        free = [free[i] for i in family_rng(seed).permutation(len(free))]
        splits = {}
        for split, fraction in (("test", self.test_fraction), ("val", self.val_fraction)):
            if listed[split] is not None:
                splits[split] = listed[split]
                continue
            count = min(max(round(fraction * len(names)), 1 if fraction > 0 else 0), max(len(free) - 1, 0))
            splits[split], free = tuple(free[:count]), free[count:]
        if not free:
            raise DataError(f"no training task is left: the table has {len(names)} task(s), of which "
                            f"{len(splits['val'])} validate and {len(splits['test'])} test")
        return {"train": tuple(name for name in names if name in set(free)), "val": splits["val"],
                "test": splits["test"]}

    def _node_columns(self, table: pd.DataFrame, structure: _Structure | None) -> list[str]:
        available = list(table.columns)
        feature_columns = [column for node_columns in (self.features or {}).values() for column in node_columns]
        for name, where in [*((c, "columns") for c in self.columns or ()), *((c, "categorical") for c in self.categorical),
                            *((c, "features") for c in feature_columns)]:
            if name not in available:
                raise ConfigError(f"{where} names the column {name!r}, which the table does not have"
                                  f"{closest(name, available)}; columns: {', '.join(map(repr, available))}")
        if structure is not None:
            for name in structure.nodes:
                if name not in available:
                    raise DataError(f"the graph's node {name!r} is no column of the table{closest(name, available)}; "
                                    f"columns: {', '.join(map(repr, available))}")
            if self.columns is not None and set(self.columns) != set(structure.nodes):
                raise ConfigError(f"columns {list(self.columns)} and the graph's nodes {structure.nodes} differ: give "
                                  "one of them, or the same columns")
        nodes = list(self.columns or (structure.nodes if structure is not None else
                                      [c for c in available if c not in set(feature_columns)]))
        for node, node_features in (self.features or {}).items():
            if node not in nodes:
                raise ConfigError(f"features names the node {node!r}, which is not one of the nodes "
                                  f"{nodes}{closest(node, nodes)}")
            for column in node_features:
                if column in nodes:
                    raise ConfigError(f"column {column!r} is both a node and a feature of {node!r}: make it a parent "
                                      f"of {node!r} in the graph instead")
        return nodes

    def _codings(self, table: pd.DataFrame, nodes: list[str], training: np.ndarray,
                 explicit: bool) -> dict[str, ColumnCoding]:
        """The coding of every node and feature column; implicit constant columns dropped with a warning."""
        feature_columns = list(dict.fromkeys(c for cols in (self.features or {}).values() for c in cols))
        codings, constant = {}, []
        for name in [*nodes, *feature_columns]:
            coding = read_coding(name, table[name], name in self.categorical)
            if coding is None:
                constant.append(name)
                continue
            if coding.kind == "regression":
                coding = _with_statistics(coding, table.loc[training, name])
            codings[name] = coding
        asked = [name for name in constant if explicit or name in feature_columns]
        if asked:
            values = {name: table[name].dropna().unique()[:1].tolist() for name in asked}
            raise DataError(f"column(s) {', '.join(map(repr, asked))} hold one value only ({values}): a constant "
                            "column says nothing; leave it out of columns, features and the graph")
        if constant:
            warnings.warn(f"DataFrameFamily: constant column(s) {', '.join(map(repr, constant))} left out (one value "
                          "only)", UserWarning, stacklevel=3)
        return codings

    def _learned_edges(self, rows: pd.DataFrame, nodes: list[str]) -> list[tuple[str, str]]:
        """The DAG pgmpy learns from the training rows with every node observed."""
        if len(nodes) < 2:
            return []
        frame = pd.DataFrame({name: rows[name].astype(object).map(state_name, na_action="ignore")
                              if self.codings[name].kind == "classification" else pd.to_numeric(rows[name])
                              for name in nodes}).dropna()
        if len(frame) < 2 * len(nodes):
            raise DataError(f"only {len(frame)} training rows have every node observed, too few to learn a graph "
                            f"over {len(nodes)} columns from: give the graph (graph=...)")
        return TaskGraph.from_data(frame.reset_index(drop=True), method=self.structure_method).edges

    def _task_graph(self, nodes: list[str], edges: list[tuple[str, str]], structure: _Structure | None) -> TaskGraph:
        _require_acyclic(nodes, edges)
        name = Path(self.data).stem if self.data else "table"
        graph = TaskGraph(name)
        for node in nodes:
            coding = self.codings[node]
            given = structure.specs.get(node, {}) if structure is not None else {}
            if given.get("kind", coding.kind) != coding.kind:
                hint = (f"; list it in categorical=[{node!r}] to classify its values" if coding.kind == "regression"
                        else "")
                raise DataError(f"the graph makes {node!r} a {given['kind']} subtask, but its column is "
                                f"{'numeric' if coding.kind == 'regression' else 'categorical'}{hint} (or give "
                                "the graph's dependencies alone, as a file, mapping or networkx DiGraph: the "
                                "table decides the kinds)")
            in_dim = sum(self.codings[column].width for column in self.features_of(node))
            learner = given.get("learner") or self.learner
            if coding.kind == "classification":
                graph.add_subtask(node, in_dim=in_dim, kind="classification", num_classes=len(coding.states),
                                  learner=learner, attrs={"state_names": list(coding.states)})
            else:
                graph.add_subtask(node, in_dim=in_dim, learner=learner)
        for parent, child in edges:
            graph.add_dependency(parent, child)
        return graph

    def _encode(self, frame: pd.DataFrame, where: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(features [R, F], values [R, W], observed [R, N])`` of ``frame`` in the column layout;
        a column the frame lacks is unobserved throughout."""
        rows = len(frame)
        features = np.zeros((rows, self.layout.feature_width), dtype=np.float32)
        values = np.zeros((rows, self.layout.value_width), dtype=np.float32)
        observed = np.zeros((rows, len(self.graph)), dtype=bool)
        missing = pd.Series(np.full(rows, np.nan), index=frame.index, dtype=object)
        for n, name in enumerate(self.graph.names):
            values[:, self.layout.value_slices[name]], observed[:, n] = self.codings[name].encode(
                frame[name] if name in frame.columns else missing, where)
            start = self.layout.feature_slices[name].start
            for column in self.features_of(name):
                coding = self.codings[column]
                encoded, present = coding.encode(frame[column] if column in frame.columns else missing, where)
                features[:, start:start + coding.width] = encoded
                observed[:, n] &= present
                start += coding.width
        return features, values, observed

    def _split_of(self, index: np.ndarray) -> Split:
        """The rows ``index [T, K]`` of the table as a :class:`Split`."""
        return Split(to_tensor(self._features[index]), to_tensor(self._values[index]),
                     torch.from_numpy(self._observed[index]), {})

    def _split_of_frame(self, frame: pd.DataFrame, side: str) -> Split:
        if not isinstance(frame, pd.DataFrame):
            raise DataError(f"{side} must be a pandas DataFrame, got {type(frame).__name__}")
        features, values, observed = self._encode(frame.rename(columns=str), side)
        return Split(to_tensor(features[None]), to_tensor(values[None]), torch.from_numpy(observed[None]), {})

    def _split_indices(self, split: str) -> np.ndarray:
        if not self.tasks[split]:
            raise DataError(f"the family has no {split} tasks: list some in {split}_tasks, or raise {split}_fraction"
                            if split != "train" else "the family has no training tasks")
        return np.array([self._task_index[name] for name in self.tasks[split]])

    def _require_rows(self, split: str, rows: int) -> None:
        short = [(name, self.task_sizes[name]) for name in self.tasks[split] if self.task_sizes[name] < rows]
        if short:
            listed = ", ".join(f"{name!r} ({size} rows)" for name, size in short)
            raise DataError(f"{len(short)} {split} task(s) have fewer rows than an episode draws (shots + query = "
                            f"{rows}): {listed}; lower shots or query, or build the family with min_rows={rows} to "
                            "leave such tasks out (with a warning naming them)")


# --------------------------------------------------------------------- reading
def state_name(value: Any) -> str:
    """A value as a state name: ``True``, ``"3"`` for the number 3.0, the text itself for text."""
    if isinstance(value, (bool, np.bool_)):
        return str(bool(value))
    if isinstance(value, (float, np.floating)) and float(value).is_integer():
        return str(int(value))
    return str(value)


def read_coding(name: str, column: pd.Series, categorical: bool) -> ColumnCoding | None:
    """The kind and states of ``column`` (statistics not yet filled in), ``None`` when it holds one
    value only; a column whose values are no one kind is a DataError naming it."""
    present = column.dropna()
    if present.empty:
        raise DataError(f"column {name!r} has no values: every cell is missing")
    dtype = column.dtype
    if isinstance(dtype, pd.CategoricalDtype):
        states = [state_name(s) for s in dtype.categories]
    elif categorical or pd.api.types.is_bool_dtype(dtype):
        states = _sorted_states(present)
    elif pd.api.types.is_numeric_dtype(dtype) and not pd.api.types.is_complex_dtype(dtype):
        return ColumnCoding(name, "regression") if present.nunique() > 1 else None
    elif pd.api.types.is_object_dtype(dtype) or pd.api.types.is_string_dtype(dtype):
        kinds = Counter(_value_kind(value) for value in present)
        if set(kinds) == {"number"}:
            return ColumnCoding(name, "regression") if present.nunique() > 1 else None
        if set(kinds) == {"boolean"}:
            states = _sorted_states(present)
        elif set(kinds) == {"text"}:
            parsed = pd.to_numeric(present, errors="coerce")
            if parsed.notna().all():
                return ColumnCoding(name, "regression") if parsed.nunique() > 1 else None
            if parsed.notna().any():
                text = present[parsed.isna()].unique()[:3].tolist()
                raise DataError(f"cannot read column {name!r}: {int(parsed.notna().sum())} of its values are numbers "
                                f"but {int(parsed.isna().sum())} are text ({text}); mark missing values as empty cells "
                                f"(pd.read_csv(na_values=[...])), or list it in categorical=[{name!r}] to treat every "
                                "value as a class")
            states = sorted(present.unique().tolist())
            if len(states) > MAX_STATES and not categorical:
                raise DataError(f"column {name!r} holds {len(states)} different texts, more an identifier or free text "
                                f"than classes: leave it out of columns, or list it in categorical=[{name!r}]")
        else:
            shown = {kind: next(v for v in present if _value_kind(v) == kind) for kind in kinds}
            raise DataError(f"cannot read column {name!r}: it mixes kinds of values ({shown}); give it numbers only, "
                            "or text only (classes)")
    else:
        raise DataError(f"cannot read column {name!r} of type {dtype}: convert it to numbers (dates: e.g. days since a "
                        "start) or to text (classes), or leave it out of columns")
    return ColumnCoding(name, "classification", tuple(states)) if present.astype(object).map(state_name).nunique() > 1 \
        else None


def _sorted_states(values: pd.Series) -> list[str]:
    """The distinct values as state names, in their natural order: numbers by value, then text."""
    def order(value: Any) -> tuple[int, float, str]:
        kind = _value_kind(value)
        return (0, float(value), "") if kind in ("number", "boolean") else (1, 0.0, str(value))

    return list(dict.fromkeys(state_name(v) for v in sorted(values.unique().tolist(), key=order)))


def _value_kind(value: Any) -> str:
    if isinstance(value, (bool, np.bool_)):
        return "boolean"
    if isinstance(value, (int, float, np.integer, np.floating)):
        return "number"
    if isinstance(value, str):
        return "text"
    return type(value).__name__


def _with_statistics(coding: ColumnCoding, training: pd.Series) -> ColumnCoding:
    """``coding`` with the mean and standard deviation (``ddof=0``, as scikit-learn's) of the training rows."""
    numbers = pd.to_numeric(training, errors="coerce").dropna().to_numpy(dtype=np.float64)
    if numbers.size == 0:
        raise DataError(f"column {coding.name!r} has no value in the training tasks' rows, so it cannot be "
                        "standardised: choose other validation/test tasks or leave it out")
    std = float(numbers.std())
    if std == 0:
        raise DataError(f"column {coding.name!r} is constant ({numbers[0]:g}) over the training tasks' rows, so it "
                        "cannot be standardised: choose other validation/test tasks or leave it out")
    return ColumnCoding(coding.name, coding.kind, coding.states, float(numbers.mean()), std)


def _all_present(rows: pd.DataFrame, columns: Sequence[str]) -> np.ndarray:
    """Whether every one of ``columns`` has a value in each row (a column ``rows`` lacks has none)."""
    present = np.ones(len(rows), dtype=bool)
    for column in columns:
        present &= rows[column].notna().to_numpy() if column in rows.columns else False
    return present


def _table_and_tasks(data: Any, task_column: str | None) -> tuple[pd.DataFrame, pd.Series]:
    """``(table, task name of each row)``, the table without its task column, columns named by strings."""
    if isinstance(data, Mapping):
        if task_column is not None:
            raise ConfigError("task_column names the task column of one table; a mapping {task: DataFrame} names its "
                              "tasks by its keys: leave task_column out")
        if not data:
            raise DataError("the mapping {task: DataFrame} is empty: give one table per task")
        for name, frame in data.items():
            if not isinstance(frame, pd.DataFrame):
                raise DataError(f"task {name!r} of the mapping is a {type(frame).__name__}, not a pandas DataFrame")
        frames = [frame.rename(columns=str) for frame in data.values()]
        table = pd.concat(frames, ignore_index=True)
        labels = pd.Series(np.repeat([str(name) for name in data], [len(frame) for frame in frames]))
        return _string_columns(table), labels
    if isinstance(data, (str, os.PathLike)):
        data = read_table(data)
    if data is None:
        raise DataError("no data: give a DataFrame, a mapping {task: DataFrame} or a table file. A family built from "
                        "an in-memory table is recorded with data: null, since a run's config cannot hold the table; "
                        "save it (DataFrame.to_csv) and name the file to rebuild the family from a run")
    if not isinstance(data, pd.DataFrame):
        raise DataError(f"data must be a pandas DataFrame, a mapping {{task: DataFrame}} or the path of a .csv or "
                        f".parquet file, got {type(data).__name__}")
    table = _string_columns(data.rename(columns=str).reset_index(drop=True))
    if task_column is None:
        raise ConfigError("task_column is missing: name the column that says which task (site, patient, machine, "
                          "...) each row comes from")
    if task_column not in table.columns:
        raise DataError(f"the table has no task column {task_column!r}{closest(task_column, table.columns)}; columns: "
                        f"{', '.join(map(repr, table.columns))}")
    labels = table[task_column]
    if labels.isna().any():
        rows = np.flatnonzero(labels.isna().to_numpy())
        raise DataError(f"{len(rows)} row(s) have no task: column {task_column!r} is empty in row(s) "
                        f"{rows[:5].tolist()}; fill or drop them")
    return table.drop(columns=[task_column]), labels.map(state_name)


def _string_columns(table: pd.DataFrame) -> pd.DataFrame:
    duplicated = table.columns[table.columns.duplicated()].unique().tolist()
    if duplicated:
        raise DataError(f"the table has duplicate column names {duplicated}: a node needs a unique name")
    return table


def absolute_path(path: str | os.PathLike) -> str:
    """A file argument as a family keeps it: its absolute path, so a run's config finds it from anywhere."""
    return str(Path(path).resolve())


def read_table(path: str | os.PathLike) -> pd.DataFrame:
    """The table in a ``.csv``, ``.tsv`` or ``.parquet`` file (pandas' defaults)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"no table file at {path}")
    reader = READERS.get(path.suffix.lower())
    if reader is None:
        raise DataError(f"cannot read {path}: give a {', '.join(READERS)} file, or a DataFrame")
    try:
        return reader(path)
    except (ImportError, ValueError, pd.errors.ParserError) as error:
        raise DataError(f"cannot read {path}: {error}") from None


# ---------------------------------------------------------------------- graphs
@dataclass(frozen=True)
class _Structure:
    """A given graph as plain data: nodes, ``(parent, child)`` edges and per-node ``learner`` / ``kind``."""

    nodes: list[str]
    edges: list[tuple[str, str]]
    specs: dict[str, dict[str, Any]]


def _given_structure(graph: Any) -> _Structure | None:
    """The nodes, edges and node specs of a given graph, in any of the forms ``graph`` takes."""
    if graph is None:
        return None
    if isinstance(graph, TaskGraph):
        specs = {name: {"learner": graph.subtask(name).learner, "kind": graph.subtask(name).kind} for name in graph.names}
        return _Structure(graph.names, graph.edges, specs)
    if isinstance(graph, nx.DiGraph):  # pgmpy's models are DiGraphs too
        specs = {str(name): {key: data[key] for key in ("learner", "kind") if data.get(key) is not None}
                 for name, data in graph.nodes(data=True)}
        return _Structure([str(n) for n in graph.nodes], [(str(u), str(v)) for u, v in graph.edges], specs)
    if isinstance(graph, (str, os.PathLike)):
        return _given_structure(_read_graph_file(Path(graph)))
    if isinstance(graph, Mapping):
        check_keys(graph, ("name", "subtasks", "dependencies"), "the graph", GraphError)
        subtasks = graph.get("subtasks") or {}
        if isinstance(subtasks, (list, tuple)):
            subtasks = dict.fromkeys(subtasks)
        if not isinstance(subtasks, Mapping):
            raise GraphError(f"the graph's subtasks must map each node to its spec (or list the nodes), got {subtasks!r}")
        edges = []
        for edge in graph.get("dependencies") or []:
            if not isinstance(edge, (list, tuple)) or len(edge) != 2:
                raise GraphError(f"a dependency must be a [parent, child] pair, got {edge!r}")
            edges.append((str(edge[0]), str(edge[1])))
        nodes = list(dict.fromkeys([*map(str, subtasks), *(node for edge in edges for node in edge)]))
        specs = {}
        for node, spec in subtasks.items():
            spec = dict(spec or {})
            check_keys(spec, ("in_dim", "kind", "out_dim", "num_classes", "learner", "attrs"), f"subtask {node!r}",
                       GraphError)
            specs[str(node)] = {key: learner_from(spec[key]) if key == "learner" else spec[key]
                                for key in ("learner", "kind") if spec.get(key) is not None}
        return _Structure(nodes, edges, specs)
    raise ConfigError(f"graph must be a TaskGraph, a task-graph file (.yaml, .yml, .json), a mapping, a networkx "
                      f"DiGraph or a pgmpy model, or None to learn one; got {type(graph).__name__}")


def _read_graph_file(path: Path) -> Any:
    if not path.is_file():
        raise GraphError(f"no task graph file at {path}")
    if path.suffix in (".yaml", ".yml"):
        return load_yaml(path, str(path), GraphError)
    if path.suffix == ".json":
        try:
            return json.loads(path.read_text())
        except json.JSONDecodeError as error:
            raise GraphError(f"{path} is not valid JSON: {error}") from None
    raise GraphError(f"unknown task graph file type {path.suffix!r}: use .yaml, .yml or .json")


def _require_acyclic(nodes: list[str], edges: list[tuple[str, str]]) -> None:
    """A GraphError naming the cycles of a graph (up to five) and edges whose removal breaks them all."""
    for parent, child in edges:
        if parent == child:
            raise GraphError(f"the graph has a self-loop on {parent!r}: a subtask cannot depend on itself; remove "
                             f"the edge {parent} -> {child}")
    dag = nx.DiGraph()
    dag.add_nodes_from(nodes)
    dag.add_edges_from(edges)
    if nx.is_directed_acyclic_graph(dag):
        return
    position = {node: i for i, node in enumerate(dag.nodes)}
    cycles = [_starting_at_first(cycle, position) for cycle in itertools.islice(nx.simple_cycles(dag), 5)]
    shown = "; ".join(" -> ".join([*cycle, cycle[0]]) for cycle in cycles)
    breaking = _edges_breaking_cycles(dag)
    listed = ", ".join(f"{u} -> {v}" for u, v in breaking)
    raise GraphError(f"the graph has {'a cycle' if len(cycles) == 1 else 'cycles'}: {shown}; a task graph must be a DAG. "
                     f"Removing {'the edge' if len(breaking) == 1 else 'the edges'} {listed} would break "
                     f"{'it' if len(cycles) == 1 else 'every cycle'} (so would any one edge of each cycle)")


def _starting_at_first(cycle: list[str], position: dict[str, int]) -> list[str]:
    """``cycle`` rotated to start at its node given first, so a message reads in the user's order."""
    start = min(range(len(cycle)), key=lambda i: position[cycle[i]])
    return cycle[start:] + cycle[:start]


def _edges_breaking_cycles(dag: nx.DiGraph) -> list[tuple[str, str]]:
    """A small set of edges whose removal leaves a DAG: greedily the edge on the most cycles
    (among the first hundred found), ties to the edge given last."""
    remaining, removed = dag.copy(), []
    order = {edge: i for i, edge in enumerate(dag.edges)}
    while not nx.is_directed_acyclic_graph(remaining):
        counts = Counter(edge for cycle in itertools.islice(nx.simple_cycles(remaining), 100)
                         for edge in zip(cycle, [*cycle[1:], cycle[0]]))
        edge = max(counts, key=lambda e: (counts[e], order[e]))
        remaining.remove_edge(*edge)
        removed.append(edge)
    return removed
