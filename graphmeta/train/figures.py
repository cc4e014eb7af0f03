"""The figures of a run: training and validation curves, and the task graph coloured per node.

Everything is drawn on plain :class:`matplotlib.figure.Figure` objects with the Agg canvas
(no display, no pyplot state), like :mod:`graphmeta.viz`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from ..graph import TaskGraph
from ..viz import draw_task_graph
from .evaluation import EvaluationReport

CURVES = (("train", "loss_after", "train: after adaptation", "-"),
          ("train", "loss_before", "train: before adaptation", ":"),
          ("val", "loss", "validation: after adaptation", "-o"),
          ("val", "loss_before", "validation: before adaptation", ":o"))


def plot_training_curves(records: Sequence[Mapping[str, Any]], path: str | Path, title: str = "") -> Figure:
    """Query loss against step, from ``metrics.jsonl`` records; the best validation step is marked."""
    figure = Figure(figsize=(7, 4.2))
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
    ax.set_xlabel("step")
    ax.set_ylabel("query loss")
    ax.set_title(title or "meta-training")
    if ax.lines:
        ax.legend(fontsize="small")
    ax.grid(alpha=0.3)
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


def _save(figure: Figure, path: str | Path) -> Figure:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=120)
    return figure
