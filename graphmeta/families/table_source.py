"""A table and its tasks: reading a table file or DataFrame, naming each row's task, leaving out
tasks too small for an episode, and splitting the tasks into training, validation and test.

The reading side of :class:`~graphmeta.families.DataFrameFamily`: ``data`` is a DataFrame with
a task column, a mapping ``{task name: DataFrame}``, or the path of a ``.csv``, ``.tsv`` or
``.parquet`` file (:data:`READERS`); :func:`table_and_tasks` gives the table and the task name
of every row, whatever the form.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..errors import ConfigError, DataError, closest
from .base import family_rng
from .column_coding import state_name

#: Readers of the table files ``data`` may name, by suffix.
READERS = {".csv": pd.read_csv, ".tsv": lambda path: pd.read_csv(path, sep="\t"),
           ".parquet": pd.read_parquet, ".pq": pd.read_parquet}
#: The fewest rows a task can have: one support row and one query row.
MIN_TASK_ROWS = 2


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


def table_and_tasks(data: Any, task_column: str | None) -> tuple[pd.DataFrame, pd.Series]:
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


def large_enough_tasks(table: pd.DataFrame, labels: pd.Series, min_rows: int) -> tuple[pd.DataFrame, pd.Series]:
    """The rows of the tasks with at least ``min_rows`` rows (a warning naming the others) and at
    least :data:`MIN_TASK_ROWS` (a warning counting the others)."""
    sizes = labels.value_counts(sort=False)
    small = sizes[sizes < max(min_rows, MIN_TASK_ROWS)]
    if small.empty:
        return table, labels
    if min_rows > MIN_TASK_ROWS:
        listed = ", ".join(f"{name!r} ({size} rows)" for name, size in small.items())
        warnings.warn(f"DataFrameFamily: {len(small)} task(s) have fewer than min_rows={min_rows} rows and "
                      f"are left out: {listed}", UserWarning, stacklevel=3)
    else:
        warnings.warn(f"DataFrameFamily: {len(small)} task(s) have a single row, too few for one support and one "
                      "query row, and are left out", UserWarning, stacklevel=3)
    keep = ~labels.isin(small.index).to_numpy()
    if not keep.any():
        raise DataError(f"every task has fewer than {max(min_rows, MIN_TASK_ROWS)} rows: "
                        + ("lower min_rows" if min_rows > MIN_TASK_ROWS else "a task needs a support and a "
                           "query row, so group the rows into fewer tasks"))
    return table[keep].reset_index(drop=True), labels[keep].reset_index(drop=True)


def split_tasks(names: list[str], val_tasks: tuple[str, ...] | None, test_tasks: tuple[str, ...] | None,
                val_fraction: float, test_fraction: float, seed: int) -> dict[str, tuple[str, ...]]:
    """``{split: task names}``: the lists given, then seeded fractions of the other tasks."""
    listed = {"val": val_tasks, "test": test_tasks}
    for split, tasks in listed.items():
        for task in tasks or ():
            if task not in names:
                raise DataError(f"{split}_tasks names the task {task!r}, which the table does not have"
                                f"{closest(task, names)}; tasks: {', '.join(map(repr, names))}")
    both = set(val_tasks or ()) & set(test_tasks or ())
    if both:
        raise ConfigError(f"the task(s) {sorted(both)} are in both val_tasks and test_tasks: a task belongs to one split")
    if val_fraction + test_fraction >= 1:
        raise ConfigError(f"val_fraction + test_fraction is {val_fraction + test_fraction:g}: leave "
                          "some tasks for training (the sum must be below 1)")
    free = [name for name in names if name not in set(val_tasks or ()) | set(test_tasks or ())]
    free = [free[i] for i in family_rng(seed).permutation(len(free))]
    splits = {}
    for split, fraction in (("test", test_fraction), ("val", val_fraction)):
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


def all_present(rows: pd.DataFrame, columns: Sequence[str]) -> np.ndarray:
    """Whether every one of ``columns`` has a value in each row (a column ``rows`` lacks has none)."""
    present = np.ones(len(rows), dtype=bool)
    for column in columns:
        present &= rows[column].notna().to_numpy() if column in rows.columns else False
    return present


def _string_columns(table: pd.DataFrame) -> pd.DataFrame:
    duplicated = table.columns[table.columns.duplicated()].unique().tolist()
    if duplicated:
        raise DataError(f"the table has duplicate column names {duplicated}: a node needs a unique name")
    return table
