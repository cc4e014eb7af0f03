"""The figures of a run: training and validation curves, the learning curve of an online run,
and the task graph coloured per node by an evaluation.

Drawing is the caller's choice: training and evaluation write numbers (``metrics.jsonl``,
``evaluation-*.json``) and never draw; :func:`plot_run_figures` draws a run's pictures from
them, as the ``graphmeta train``, ``evaluate`` and ``demo`` commands do. Everything is drawn on
plain :class:`matplotlib.figure.Figure` objects with the Agg canvas (no display, no pyplot
state), like :mod:`graphmeta.viz`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter

from ..taskgraph import TaskGraph
from ..viz import draw_task_graph
from ..viz.draw import fit_title
from .config import load_run_config
from .evaluation import EvaluationReport
from .run_dir import RunDirectory

CURVES = (("train", "loss_after", "train: after adaptation", "-"),
          ("train", "loss_before", "train: before adaptation", ":"),
          ("val", "loss", "validation: after adaptation", "-o"),
          ("val", "loss_before", "validation: before adaptation", ":o"))


def plot_training_curves(records: Sequence[Mapping[str, Any]], path: str | Path, title: str = "") -> Figure:
    """Query loss against step, from ``metrics.jsonl`` records; the best validation step is marked."""
    figure = Figure(figsize=(8.5, 4.2))  # room for the legend beside the axes
    FigureCanvasAgg(figure)
    ax = figure.add_subplot()
    positive = True
    for split, key, label, style in CURVES:
        points = [(r["step"], r[key]) for r in records if r.get("split") == split and r.get(key) is not None]
        if points:
            steps, values = zip(*points)
            positive = positive and min(values) > 0
            ax.plot(steps, values, style, label=label, markersize=3, color="C0" if split == "train" else "C1")
    best = [r for r in records if r.get("split") == "val" and r.get("best")]
    if best:
        step = best[-1]["step"]
        ax.axvline(step, color="0.5", linewidth=0.8, linestyle="--", label=f"best (step {step})")
    if positive and ax.lines:
        ax.set_yscale("log")
        plain_tick_labels(ax)
    ax.set_xlabel("step")
    ax.set_ylabel("query loss")
    if ax.lines:  # beside the axes, so it never covers a curve
        ax.legend(fontsize="small", loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0)
    ax.grid(alpha=0.3)
    fit_title(ax, title or "meta-training")
    figure.tight_layout()
    return _save(figure, path)


def plot_node_metrics(graph: TaskGraph, report: EvaluationReport, directory: str | Path) -> list[Path]:
    """The task graph coloured by per-node query loss after adaptation, and by the improvement
    over no adaptation; returns the paths written."""
    directory = Path(directory)
    pictures = [
        (f"graph-{report.split}-loss.png", report.node_means("adapted"), "query loss after adaptation"),
        (f"graph-{report.split}-improvement.png", report.improvement(), "loss without - with adaptation"),
    ]
    paths = []
    for filename, metrics, label in pictures:
        title = f"{report.name}: {label} ({report.num_tasks} {report.split} tasks)"
        draw_task_graph(graph, path=directory / filename, metrics=metrics, metric_name=label, title=title)
        paths.append(directory / filename)
    return paths


def plot_run_figures(run: RunDirectory | str | Path, report: EvaluationReport | None = None) -> list[Path]:
    """Draw the figures of the run in ``run`` into its ``figures/``: its curves from
    ``metrics.jsonl`` (``curves.png``, or ``online.png`` for an online run, with the threshold
    of its config), those of its ablation run when it has one, and with ``report`` (an
    evaluation of the run) its task graph coloured per node (:func:`plot_node_metrics`).
    The run's own pictures also go to its loggers (TensorBoard, MLflow: :mod:`.loggers`).
    Returns the paths written."""
    run = run if isinstance(run, RunDirectory) else RunDirectory(run)
    runs = [directory for directory in (run, RunDirectory(run.ablation)) if directory.metrics.is_file()]
    paths = [plot_run_curves(directory) for directory in runs]
    if report is not None:
        paths += plot_node_metrics(TaskGraph.load(run.graph), report, run.figures)
    own = [path for path in paths if path.parent == run.figures]
    if own and run.metrics.is_file():
        run.log_figures(own)
        run.close()
    return paths


def plot_run_curves(run: RunDirectory) -> Path:
    """``figures/curves.png`` of a batch run (:func:`plot_training_curves`), or ``figures/online.png``
    of an online run (:func:`plot_online_curves`), from its ``metrics.jsonl``; returns the path."""
    records = run.read_metrics()
    if any(record.get("split") == "online" for record in records):
        path = run.figures / "online.png"
        plot_online_curves(records, path, title=run.path.name,
                           threshold=load_run_config(run.path).online.loss_threshold)
    else:
        path = run.figures / "curves.png"
        plot_training_curves(records, path, title=run.path.name)
    return path


def plot_online_curves(records: Sequence[Mapping[str, Any]], path: str | Path, title: str = "",
                       threshold: float | None = None, references: Mapping[str, float] | None = None) -> Figure:
    """The learning curve of an online run from its ``metrics.jsonl`` records: the query loss of
    every arriving task (before it trains the model), its moving average over a tenth of the
    stream, and ``references`` (``{label: loss}``) as horizontal lines; with a ``threshold``,
    a second panel shows the support examples each task needed to reach it."""
    points = [(r["step"], r["loss"]) for r in records if r.get("loss") is not None]
    figure = Figure(figsize=(7, 6.4 if threshold is not None else 4.2))
    FigureCanvasAgg(figure)
    axes = figure.subplots(2 if threshold is not None else 1, 1, sharex=True, squeeze=False)[:, 0]
    ax = axes[0]
    if points:
        steps, losses = torch.tensor(points, dtype=torch.float64).T
        width = max(1, len(points) // 10)
        kernel = torch.ones(1, 1, width, dtype=torch.float64) / width
        smoothed = torch.nn.functional.conv1d(losses[None, None], kernel)[0, 0]
        ax.plot(steps, losses, ".", color="C0", alpha=0.3, markersize=3, label="arriving task (scored before training)")
        ax.plot(steps[width - 1:], smoothed, "-", color="C0", label=f"moving average of {width} tasks")
    for n, (label, value) in enumerate((references or {}).items()):
        ax.axhline(value, color=f"C{n + 1}", linestyle="--", linewidth=1, label=label)
    if threshold is not None:
        ax.axhline(threshold, color="0.5", linestyle=":", linewidth=1, label=f"threshold {threshold:g}")
        needed = [(r["step"], r["shots_to_threshold"]) for r in records if r.get("shots_to_threshold") is not None]
        if needed:
            axes[1].plot(*zip(*needed), ".", color="C0", alpha=0.4, markersize=3)
            axes[1].set_yscale("log", base=2)
            sizes = sorted({shots for _, shots in needed})
            axes[1].set_yticks(sizes, [str(size) for size in sizes])
        axes[1].set_ylabel("support examples to reach\nthe threshold (if reached)")
        axes[1].grid(alpha=0.3)
    ax.set_ylabel("query loss after adaptation")
    fit_title(ax, title or "online meta-learning")
    if ax.lines:
        ax.legend(fontsize="small")
    ax.grid(alpha=0.3)
    axes[-1].set_xlabel("task of the stream")
    figure.tight_layout()
    return _save(figure, path)


def plain_tick_labels(ax: Axes) -> None:
    """Tick labels of a log-scaled y axis as plain numbers (``0.6``, not ``6x10^-1``), with as many
    minor ticks labelled as fit: all of them on an axis spanning under half a decade, those at
    2 and 5 times a power of ten on one spanning up to a decade, none beyond (the decades' own
    ticks are labelled there), so labels never overlap. Call it once the axis has its limits."""
    low, high = ax.get_ylim()
    decades = math.log10(high / low)
    labelled_mantissas = None if decades <= 0.5 else (2, 5) if decades <= 1 else ()

    def minor_label(value: float, _: int) -> str:
        mantissa = round(value / 10 ** math.floor(math.log10(value) + 1e-9), 6)
        return f"{value:g}" if labelled_mantissas is None or mantissa in labelled_mantissas else ""

    ax.yaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
    ax.yaxis.set_minor_formatter(FuncFormatter(minor_label))


def _save(figure: Figure, path: str | Path) -> Figure:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=120)
    return figure
