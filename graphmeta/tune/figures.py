"""The figures of a study, drawn from its trials table (:func:`~.results.trials_table`).

``<study folder>/figures/``:

- ``history.png``: each trial's value against its number (pruned trials marked at the bottom),
  and the best value so far;
- ``importances.png``: how much of the value's variation each searched key explains (Optuna's
  default evaluator, PED-ANOVA), once two trials have completed;
- ``parallel_coordinates.png``: one line per completed trial through its settings (each axis
  from the range's low to high, on a log axis where the range is log; choices evenly spaced,
  each labelled), coloured by its value;
- ``seeds.png``: each seed's value of the best completed trials, with their mean ± 95% CI.

Plain :class:`matplotlib.figure.Figure` objects on the Agg canvas, like :mod:`graphmeta.train.figures`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import optuna
import pandas as pd
from matplotlib import colormaps
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from .search_space import Dimension


def _figure(width: float, height: float) -> Figure:
    figure = Figure(figsize=(width, height))
    FigureCanvasAgg(figure)
    return figure


def _save(figure: Figure, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    return path


def _completed(table: pd.DataFrame) -> pd.DataFrame:
    return table[table["state"] == "complete"] if len(table) else table


def plot_history(table: pd.DataFrame, direction: str, objective: str, path: Path) -> Path:
    """Trial values against trial numbers, and the best so far."""
    figure = _figure(7, 4)
    ax = figure.add_subplot()
    completed = _completed(table)
    ax.plot(completed["trial"], completed["value"], "o", color="C0", label="completed trial (mean over seeds)")
    if len(completed):
        best = completed["value"].cummin() if direction == "minimize" else completed["value"].cummax()
        ax.step(completed["trial"], best, where="post", color="C1", label="best so far")
    stopped = table[table["state"].isin(["pruned", "fail"])] if len(table) else table
    if len(stopped):
        ax.plot(stopped["trial"], [ax.get_ylim()[0]] * len(stopped), "x", color="0.5", label="pruned or failed")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("trial")
    ax.set_ylabel(f"validation {objective}")
    ax.set_title("optimisation history")
    ax.legend(fontsize="small")
    ax.grid(alpha=0.3)
    return _save(figure, path)


def plot_importances(study: optuna.Study, path: Path) -> Path | None:
    """The importance of every searched key; ``None`` (nothing drawn) before two trials complete
    with a key that varies."""
    completed = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    varying = {name for trial in completed for name in trial.params
               if len({repr(t.params.get(name)) for t in completed}) > 1}
    if len(completed) < 2 or not varying:
        return None
    importances = optuna.importance.get_param_importances(study, params=sorted(varying))
    figure = _figure(7, 0.9 + 0.45 * len(importances))
    ax = figure.add_subplot()
    names = list(importances)[::-1]
    ax.barh(names, [importances[name] for name in names], color="C0")
    ax.set_xlabel("importance (share of the variation of the value)")
    ax.set_title(f"parameter importances over {len(completed)} completed trials")
    return _save(figure, path)


def _axis_position(values: pd.Series, dimension: Dimension) -> np.ndarray:
    """``values`` of one key on a [0, 1] axis: choices evenly spaced, ranges linear or logarithmic."""
    if isinstance(dimension, tuple):
        index = {repr(choice): n for n, choice in enumerate(dimension)}
        return np.array([index.get(repr(value), math.nan) for value in values]) / max(len(dimension) - 1, 1)
    low, high, numbers = dimension.low, dimension.high, values.to_numpy(dtype=float)
    if dimension.log:
        low, high, numbers = math.log(low), math.log(high), np.log(numbers)
    return (numbers - low) / (high - low) if high > low else np.full(len(numbers), 0.5)


def _axis_ticks(dimension: Dimension) -> list[tuple[float, str]]:
    """The labelled points of one key's [0, 1] axis: every choice at its own position (as
    :func:`_axis_position` places it), or a range's low and high ends."""
    if isinstance(dimension, tuple):
        spacing = max(len(dimension) - 1, 1)
        return [(n / spacing, str(choice)) for n, choice in enumerate(dimension)]
    return [(0.0, f"{dimension.low:g}"), (1.0, f"{dimension.high:g}")]


def plot_parallel_coordinates(table: pd.DataFrame, space: Mapping[str, Dimension], objective: str,
                              path: Path) -> Path | None:
    """One line per completed trial through its settings, coloured by its value; ``None`` before
    a trial completes."""
    completed = _completed(table)
    paths = [name for name in space if name in completed.columns]
    if not len(completed) or not paths:
        return None
    figure = _figure(max(6.0, 1.6 * len(paths) + 2), 4.5)
    ax = figure.add_subplot()
    positions = np.stack([_axis_position(completed[name], space[name]) for name in paths], axis=1)
    values = completed["value"].to_numpy(dtype=float)
    spread = values.max() - values.min()
    colours = (values - values.min()) / spread if spread > 0 else np.zeros_like(values)
    for row, colour in zip(positions, colours):
        ax.plot(range(len(paths)), row, color=colormaps["viridis"](colour), alpha=0.8)
    for n, name in enumerate(paths):
        ax.axvline(n, color="0.6", linewidth=0.8)
        for position, label in _axis_ticks(space[name]):
            ax.annotate(label, (n, position), textcoords="offset points", xytext=(3, 0), va="center",
                        fontsize="x-small", bbox={"boxstyle": "round,pad=0.1", "facecolor": "white", "alpha": 0.7,
                                                  "edgecolor": "none"})
    ax.set_xticks(range(len(paths)), paths, rotation=15, fontsize="small")
    ax.set_yticks([])
    ax.set_ylim(-0.1, 1.1)
    scale = ax.scatter([], [], c=[], cmap="viridis", vmin=values.min(), vmax=values.max())
    figure.colorbar(scale, ax=ax, label=f"validation {objective}")
    ax.set_title("settings of the completed trials")
    return _save(figure, path)


def plot_seed_spread(table: pd.DataFrame, direction: str, objective: str, path: Path, top: int = 10) -> Path | None:
    """Each seed's value of the ``top`` best completed trials, with the mean and its 95% CI;
    ``None`` before a trial completes."""
    completed = _completed(table).sort_values("value", ascending=direction == "minimize").head(top)
    seed_columns = [column for column in table.columns if str(column).startswith("seed ")]
    if not len(completed) or not seed_columns:
        return None
    figure = _figure(7, 4)
    ax = figure.add_subplot()
    for position, (_, row) in enumerate(completed.iterrows()):
        seeds = row[seed_columns].dropna().to_numpy(dtype=float)
        ax.plot([position] * len(seeds), seeds, "o", color="C0", alpha=0.6, markersize=4)
        error = 0.0 if pd.isna(row["ci95"]) else row["ci95"]
        ax.errorbar(position + 0.15, row["value"], yerr=error, fmt="s", color="C1", capsize=3)
    ax.set_xticks(range(len(completed)), [f"trial {n}" for n in completed["trial"]], rotation=30, fontsize="small")
    ax.set_ylabel(f"validation {objective}")
    ax.set_title(f"seeds of the best {len(completed)} trials (dots) and mean ± 95% CI")
    ax.grid(alpha=0.3, axis="y")
    return _save(figure, path)


def plot_study_figures(study: optuna.Study, table: pd.DataFrame, space: Mapping[str, Dimension], objective: str,
                       folder: Path) -> list[Path]:
    """Every figure of the module docstring that the trials so far allow, in ``folder``; their paths."""
    direction = study.direction.name.lower()
    drawn = [plot_history(table, direction, objective, folder / "history.png"),
             plot_importances(study, folder / "importances.png"),
             plot_parallel_coordinates(table, space, objective, folder / "parallel_coordinates.png"),
             plot_seed_spread(table, direction, objective, folder / "seeds.png")]
    return [path for path in drawn if path is not None]
