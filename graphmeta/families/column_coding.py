"""How a table's columns become numbers, the way scikit-learn's ``StandardScaler`` and
``OneHotEncoder`` would make them (:class:`ColumnCoding`):

* a numeric column is a regression subtask, standardised with the mean and standard deviation
  of the *training tasks'* rows only, :math:`\\tilde x = (x - \\mu_{train}) / \\sigma_{train}`
  (so no statistic of a validation or test task leaks into training); :meth:`ColumnCoding.decode`
  turns outputs back into the column's own units;
* a categorical, boolean or text column is a classification subtask, one-hot over its states,
  whose names are kept (a pandas ``Categorical`` keeps its own order);
* a missing cell (NaN, None, ``pd.NA``) is an unobserved value (the engine's ``observed``
  mask), never a zero: it counts for neither its node's loss nor as a parent's input.

:func:`read_coding` reads one column's kind and states, :func:`column_codings` every node and
feature column of a :class:`~graphmeta.families.DataFrameFamily`, and :func:`encode_frame`
turns rows into the family's column layout.
"""

from __future__ import annotations

import warnings
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from ..errors import DataError
from ..taskgraph import ColumnLayout

#: A text column with more states than this is refused unless listed in ``categorical``: it is
#: far more often an identifier or free text than a variable to classify.
MAX_STATES = 100


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


def column_codings(table: pd.DataFrame, nodes: Sequence[str], feature_columns: Sequence[str],
                   categorical: Sequence[str], training: np.ndarray, explicit: bool) -> dict[str, ColumnCoding]:
    """The coding of every node and feature column, numbers standardised over the ``training``
    rows; a constant column is a DataError when ``explicit`` (asked for) or a feature, else left
    out with a warning."""
    codings, constant = {}, []
    for name in [*nodes, *feature_columns]:
        coding = read_coding(name, table[name], name in categorical)
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


def encode_frame(frame: pd.DataFrame, where: str, layout: ColumnLayout, codings: Mapping[str, ColumnCoding],
                 features: Mapping[str, Sequence[str]]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(features [R, F], values [R, W], observed [R, N])`` of ``frame`` in ``layout``, each node
    from its column and the columns ``features`` lists for it; a column the frame lacks is
    unobserved throughout, and so is a node in a row with a missing feature."""
    graph = layout.graph
    rows = len(frame)
    encoded_features = np.zeros((rows, layout.feature_width), dtype=np.float32)
    values = np.zeros((rows, layout.value_width), dtype=np.float32)
    observed = np.zeros((rows, len(graph)), dtype=bool)
    missing = pd.Series(np.full(rows, np.nan), index=frame.index, dtype=object)
    for n, name in enumerate(graph.names):
        values[:, layout.value_slices[name]], observed[:, n] = codings[name].encode(
            frame[name] if name in frame.columns else missing, where)
        start = layout.feature_slices[name].start
        for column in features.get(name, ()):
            coding = codings[column]
            encoded, present = coding.encode(frame[column] if column in frame.columns else missing, where)
            encoded_features[:, start:start + coding.width] = encoded
            observed[:, n] &= present
            start += coding.width
    return encoded_features, values, observed


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
