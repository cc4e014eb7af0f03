"""`DataFrameFamily`: your own table as a task family, one task per value of a task column.

Real data usually sit in one table: a row per record, a column saying which site, patient,
machine or experiment (the *task*) the record comes from, and a column per variable. This
family makes every chosen column a node of the task graph and every task-column value a task.
Its parts live one concept to a module:

* :mod:`~graphmeta.families.table_source`: reading the table (a DataFrame, a mapping
  ``{task: DataFrame}`` or a file: :func:`read_table`, :func:`absolute_path`), the task of each
  row, and the split of the tasks into training, validation and test;
* :mod:`~graphmeta.families.column_coding`: columns as numbers, the way scikit-learn's
  ``StandardScaler`` and ``OneHotEncoder`` would make them (:class:`ColumnCoding`): a numeric
  column is a regression subtask standardised with the *training tasks'* statistics only, a
  categorical, boolean or text column a classification subtask one-hot over its states (their
  names kept in ``attrs["state_names"]``), a missing cell unobserved, never a zero;
  predictions and errors are turned back into the column's own units (:meth:`DataFrameFamily.predict`,
  :meth:`DataFrameFamily.errors`);
* :mod:`~graphmeta.families.table_graph`: the task graph of the table, given or learned;
* :mod:`~graphmeta.families.sized_episodes`: episodes that fit the task: task ``t`` of ``n_t``
  rows gives :math:`K_t = \\min(K, n_t - 1)` support and :math:`Q_t = \\min(Q, n_t - K_t)` query
  rows, padded, and training batches are bucketed by size.

The name: ``Table`` already names graphmeta's conditional-probability-table learner
(:class:`~graphmeta.learners.Table`) and ``CPDTable`` its packed CPDs, so a "TableFamily" would
read as a family of Table learners; this family is named after what it takes, a DataFrame.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import numpy as np
import pandas as pd
import torch

from ..data import Split, TaskBatch
from ..errors import DataError
from ..validation import Ge, Lt, NonNegativeInt, OneOf, PositiveInt, checked
from .base import SplitName, TaskFamily, support_sizes_per_task

# Names re-exported for imports from this module (tests, benchmarks, user code) made before the split.
from .column_coding import MAX_STATES, ColumnCoding, column_codings, encode_frame, read_coding, state_name
from .sized_episodes import drawn_rows, drawn_tasks, padded_split, support_and_query
from .table_graph import (
    AUTO,
    STRUCTURE_METHODS,
    TableLearner,
    given_structure,
    learned_edges,
    node_columns,
    table_task_graph,
)
from .table_source import (
    MIN_TASK_ROWS,
    READERS,
    absolute_path,
    all_present,
    large_enough_tasks,
    read_table,
    split_tasks,
    table_and_tasks,
)

if TYPE_CHECKING:
    from ..adapted_graph import AdaptedGraph

Fraction = Annotated[float, Ge(0), Lt(1)]
TaskNames = tuple[str | int, ...]

__all__ = ["MAX_STATES", "MIN_TASK_ROWS", "READERS", "STRUCTURE_METHODS", "ColumnCoding", "DataFrameFamily",
           "absolute_path", "padded_split", "read_coding", "read_table", "state_name"]


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
            model; ``None`` learns one from the pooled training rows (:func:`~graphmeta.taskgraph_from_data`,
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
        min_rows: leave out, with a warning naming them, tasks with fewer rows. Not needed for small
            tasks: an episode takes what a task has (:mod:`~graphmeta.families.sized_episodes`);
            tasks of fewer than two rows are always left out (with one warning counting them).
        structure_method: ``hill_climb`` (BIC score) or ``pc``, when the graph is learned.
        learner: the learner of every node the graph gives none: a spec, name or mapping for
            all of them, or ``auto`` (the default) for one per column
            (:func:`~graphmeta.families.table_graph.auto_learner`): a numeric column a
            :class:`~graphmeta.learners.Linear` node, a class column a
            :class:`~graphmeta.learners.Table` where every parent is a class and it has no
            features, an :class:`~graphmeta.learners.MLP` otherwise. Why: on real grouped tables
            (``benchmarks/grouped_tables.py``) this rule is level with a linear mixed model in every
            dataset x K cell, while MLP nodes everywhere are worse beyond the interval in some. A
            Linear node starts, in the :class:`~graphmeta.Trainer`, at the training tasks'
            empirical-Bayes prior (a linear mixed model's maximum-likelihood fit, from
            :meth:`grouped_rows`).
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
        learner: TableLearner = AUTO,
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
        self.learner = learner

        table, labels = table_and_tasks(data if self.data is None else self.data, task_column)
        table, labels = large_enough_tasks(table, labels, min_rows)
        sizes = labels.value_counts()
        self.task_sizes = {name: int(sizes[name]) for name in pd.unique(labels)}
        self.tasks = split_tasks(list(self.task_sizes), self.val_tasks, self.test_tasks, val_fraction, test_fraction,
                                 seed)
        training = labels.isin(self.tasks["train"]).to_numpy()
        structure = given_structure(graph)
        features = self.features or {}
        nodes = node_columns(table, structure, self.columns, self.categorical, features)
        feature_columns = list(dict.fromkeys(c for cols in features.values() for c in cols))
        self.codings = column_codings(table, nodes, feature_columns, self.categorical, training,
                                      explicit=self.columns is not None or structure is not None)
        nodes = [name for name in nodes if name in self.codings]
        edges = structure.edges if structure is not None else self._learned_edges(table[training], nodes)
        task_graph = table_task_graph(Path(self.data).stem if self.data else "table", nodes, edges, structure,
                                      self.codings, features, self.learner)
        super().__init__(task_graph, seed)
        self.graph_source = (absolute_path(graph) if isinstance(graph, (str, os.PathLike))
                             else None if graph is None else task_graph.to_dict())

        self._features, self._values, self._observed = self._encode(table, "the table")
        positions = labels.groupby(labels, sort=False).indices
        self._task_rows = [positions[name] for name in self.task_sizes]
        self._task_index = {name: i for i, name in enumerate(self.task_sizes)}
        self._row_counts = np.array(list(self.task_sizes.values()))

    @property
    def config(self) -> dict[str, Any]:
        """The constructor arguments in YAML form; ``graph`` as given when it was a file or ``None``,
        else as the task-graph mapping it was read as (see the class docstring for ``data``)."""
        return {**super().config, "graph": self.graph_source}

    # ----------------------------------------------------------------- sampling
    @checked
    def sample(self, num_tasks: PositiveInt, shots: PositiveInt | Sequence[PositiveInt], query: PositiveInt,
               split: SplitName = "train", seed: NonNegativeInt | None = None) -> TaskBatch:
        """``num_tasks`` episodes of the tasks of ``split`` (:meth:`draw_tasks`), task ``t`` with
        ``K_t = min(shots_t, n_t - 1)`` support and ``Q_t = min(query, n_t - K_t)`` query rows of its
        ``n_t``, drawn without replacement and padded (:mod:`~graphmeta.families.sized_episodes`);
        ``shots`` one count, or one per task."""
        sizes = np.array(support_sizes_per_task(shots, num_tasks, "DataFrameFamily.sample()"))
        params, examples_rng = self.draw_tasks(num_tasks, split, seed)
        drawn = drawn_rows(self._task_rows, params["task"], max(sizes) + query, examples_rng)
        support, query_rows = support_and_query(drawn, sizes, query)
        return TaskBatch(self.graph, self._split_of(support), self._split_of(query_rows))

    def draw_params(self, num_tasks: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
        """Not used: a table's tasks are drawn from one split, by :meth:`draw_tasks`."""
        raise NotImplementedError("a DataFrameFamily draws the tasks of one split: use draw_tasks(num_tasks, split, "
                                  "seed)")

    @checked
    def draw_tasks(self, num_tasks: PositiveInt, split: SplitName,
                   seed: NonNegativeInt | None) -> tuple[dict[str, np.ndarray], np.random.Generator]:
        """``{"task": [T] indices into task_sizes}`` of one call, and the stream the rows are drawn
        from. Training tasks: ``T`` neighbours on the circle of sizes from a seeded start
        (bucketing); held-out tasks: seeded permutations one after another, ordered by size
        (:func:`~graphmeta.families.sized_episodes.drawn_tasks`). Either way the split's tasks take
        turns: with ``T`` at least the split's size every task appears, each equally often (±1)."""
        params_rng, examples_rng = self.generators(split, seed)
        tasks = drawn_tasks(self._split_indices(split), self._row_counts, num_tasks, split, params_rng)
        return {"task": tasks}, examples_rng

    def fixed_tasks(self, split: SplitName) -> tuple[int, int]:
        """``(tasks, most rows of one task)`` of ``split``: a table holds a fixed set of tasks."""
        index = self._split_indices(split)
        return len(index), int(self._row_counts[index].max())

    def draw_examples(self, params: dict[str, np.ndarray], rows: int, rng: np.random.Generator) -> Split:
        """``rows`` distinct rows of each task of ``params`` (all of a smaller task), in a random order,
        padded; missing cells and the rows past a task's own unobserved."""
        return self._split_of(drawn_rows(self._task_rows, params["task"], rows, rng))

    @checked
    def pooled_rows(self, split: SplitName = "train") -> Split:
        """Every row of the tasks of ``split`` as one task (``[1, rows, ...]``): what a pooled model,
        which ignores which task a row comes from, trains on."""
        index = np.concatenate([self._task_rows[task] for task in self._split_indices(split)])
        return self._split_of([index])

    @checked
    def grouped_rows(self, split: SplitName = "train") -> Split:
        """Every row of each task of ``split``, one task each (``[T, most rows, ...]``, padded): what
        a model of the groups, such as a linear mixed model, trains on."""
        return self._split_of([self._task_rows[task] for task in self._split_indices(split)])

    def batch_from_frames(self, support: pd.DataFrame | Sequence[pd.DataFrame],
                          query: pd.DataFrame | Sequence[pd.DataFrame] | None = None) -> TaskBatch:
        """Tasks of your own rows (a new site's records, say), coded like the family's table: the
        same standardisation and states, missing cells and missing columns unobserved, other columns
        ignored. One DataFrame is one task; a list of DataFrames is one task each, of any sizes
        (padded, the rows past a task's own unobserved). ``query`` defaults to the support rows."""
        query = support if query is None else query
        frames = [_frames_of(given, side) for given, side in ((support, "support"), (query, "query"))]
        if len(frames[0]) != len(frames[1]):
            raise DataError(f"support has {len(frames[0])} task(s) but query has {len(frames[1])}: give one query "
                            "DataFrame per support DataFrame")
        if not frames[0]:
            raise DataError("no task: give a DataFrame of rows, or a list of them (one per task)")
        splits = [self._split_of_frames(side_frames, side) for side_frames, side in zip(frames, ("support", "query"))]
        return TaskBatch(self.graph, *splits)

    # --------------------------------------------------------------- in units
    def predict(self, adapted: AdaptedGraph, rows: pd.DataFrame) -> pd.DataFrame:
        """Every node's prediction for ``rows`` of the one task ``adapted`` was adapted to, from its
        parents' and features' values in the same row: a number in the column's own units, or the
        likeliest state. A parent's missing cell is predicted through that parent, in turn; NaN where
        a feature of the node, or of a missing parent it is predicted through, is missing."""
        if adapted.num_tasks != 1:
            raise DataError(f"predict takes rows of one task, but the weights were adapted to {adapted.num_tasks}: "
                            "adapt to one task's support (batch_from_frames, or family.sample(1, ...))")
        if not isinstance(rows, pd.DataFrame):
            raise DataError(f"rows must be a pandas DataFrame of one task, got {type(rows).__name__}")
        split = self._split_of_frames([rows], "rows")
        inputs = {name: split.features[0, :, self.layout.feature_slices[name]]
                  for name in self.graph.names if self.graph.subtask(name).in_dim}
        observed, usable = {}, {}
        for name in self.graph.names:  # parents first
            value = split.values[0, :, self.layout.value_slices[name]]
            present = torch.from_numpy(all_present(rows, [name]))
            observed[name] = (torch.where(present, value.argmax(-1), -1) if self.codings[name].kind == "classification"
                              else torch.where(present[:, None], value, math.nan))
            usable[name] = all_present(rows, self.features_of(name))
            for parent in self.graph.parents(name):
                usable[name] &= all_present(rows, [parent]) | usable[parent]
        predicted = adapted.predict(inputs=inputs, observed=observed, shots=len(rows))
        frame = pd.DataFrame(index=rows.index)
        for name in self.graph.names:
            decoded = self.codings[name].decode(predicted[name].cpu().double().numpy())
            frame[name] = pd.Series(decoded, index=rows.index).where(usable[name])
        return frame

    def errors(self, adapted: AdaptedGraph, batch: TaskBatch) -> pd.DataFrame:
        """The query errors of ``adapted`` on ``batch`` in the table's units (:meth:`query_errors`);
        NaN for a node without an observed query row (value and parents) in a task."""
        metrics = adapted.evaluate(batch)
        scored = adapted.banks.example_mask(batch.query.to(metrics["loss"].device)).any(-1)
        return self.query_errors(*(torch.where(scored, metrics[key], math.nan) for key in ("mse", "accuracy")))

    def query_errors(self, mse: torch.Tensor, accuracy: torch.Tensor) -> pd.DataFrame:
        """Per-node query errors in the table's units, one row per task, from the standardised
        per (task, node) squared error ``mse`` and ``accuracy`` ``[T, N]`` (of ``AdaptedGraph.evaluate``
        or the evaluation's methods): ``"<node> rmse"`` in the column's own units for a regression node
        (standardising is affine, so :math:`\\mathrm{RMSE} = \\sigma_{train} \\sqrt{\\mathrm{MSE}_{std}}`),
        ``"<node> accuracy"`` for a classification node. NaN where a task had no observed query row."""
        mse, accuracy = mse.detach().cpu().double(), accuracy.detach().cpu().double()
        errors = {}
        for n, name in enumerate(self.graph.names):
            coding = self.codings[name]
            if coding.kind == "classification":
                errors[f"{name} accuracy"] = accuracy[:, n].numpy()
            else:
                errors[f"{name} rmse"] = coding.std * mse[:, n].sqrt().numpy()
        return pd.DataFrame(errors)

    def features_of(self, node: str) -> tuple[str, ...]:
        """The feature columns of ``node``, in its input order."""
        return (self.features or {}).get(node, ())

    # ----------------------------------------------------------------- helpers
    def _learned_edges(self, rows: pd.DataFrame, nodes: list[str]) -> list[tuple[str, str]]:
        """The DAG pgmpy learns from the training rows with every node observed (:func:`learned_edges`);
        a method of its own so that a test can stand in for pgmpy."""
        return learned_edges(rows, nodes, self.codings, self.structure_method)

    def _encode(self, frame: pd.DataFrame, where: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(features [R, F], values [R, W], observed [R, N])`` of ``frame`` in the column layout
        (:func:`~graphmeta.families.column_coding.encode_frame`)."""
        return encode_frame(frame, where, self.layout, self.codings, self.features or {})

    def _split_of(self, index: Sequence[np.ndarray]) -> Split:
        """The table rows ``index[t]`` of each task ``t`` as a :class:`Split`, padded (:func:`padded_split`)."""
        return padded_split([(self._features[rows], self._values[rows], self._observed[rows]) for rows in index])

    def _split_of_frames(self, frames: Sequence[pd.DataFrame], side: str) -> Split:
        """The rows of each frame as one task of a :class:`Split`, padded (:func:`padded_split`)."""
        return padded_split([self._encode(frame.rename(columns=str), side) for frame in frames])

    def _split_indices(self, split: str) -> np.ndarray:
        if not self.tasks[split]:
            raise DataError(f"the family has no {split} tasks: list some in {split}_tasks, or raise {split}_fraction"
                            if split != "train" else "the family has no training tasks")
        return np.array([self._task_index[name] for name in self.tasks[split]])


def _frames_of(given: Any, side: str) -> list[pd.DataFrame]:
    """``given`` as a list of DataFrames, one per task: one DataFrame, or a list or tuple of them."""
    frames = [given] if isinstance(given, pd.DataFrame) else list(given) if isinstance(given, (list, tuple)) else None
    if frames is None or not all(isinstance(frame, pd.DataFrame) for frame in frames):
        wrong = given if frames is None else next(f for f in frames if not isinstance(f, pd.DataFrame))
        raise DataError(f"{side} must be a pandas DataFrame or a list of them (one per task), got "
                        f"{type(wrong).__name__}")
    return frames
