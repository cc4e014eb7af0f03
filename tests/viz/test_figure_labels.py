"""Labels and edges that a reader must tell apart stay apart, measured on the rendered artists:
the tick labels of ``curves.png``'s log axis, every choice of a categorical axis in the tuning
study's parallel coordinates, and the edges that merge into one node of a task-graph drawing."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest
from matplotlib.collections import LineCollection

from graphmeta.interop.pgmpy import taskgraph_from_pgmpy
from graphmeta.train.figures import plot_training_curves
from graphmeta.tune.figures import plot_parallel_coordinates
from graphmeta.tune.search_space import Dimension
from graphmeta.viz import draw_task_graph


def visible_tick_labels(figure, axis) -> list:
    """The non-empty tick labels (major and minor) inside the axis's view, after drawing."""
    figure.canvas.draw()
    low, high = sorted(axis.get_view_interval())
    ticks = [*zip(axis.get_majorticklocs(), axis.get_ticklabels()),
             *zip(axis.get_minorticklocs(), axis.get_ticklabels(minor=True))]
    return [label for location, label in ticks if low <= location <= high and label.get_text()]


def overlapping(figure, texts) -> list[tuple[str, str]]:
    renderer = figure.canvas.get_renderer()
    boxes = [(text.get_text(), text.get_window_extent(renderer)) for text in texts]
    return [(a, b) for (a, box_a), (b, box_b) in itertools.combinations(boxes, 2) if box_a.overlaps(box_b)]


def curve_records(losses: list[float]) -> list[dict]:
    return [{"step": 10 * n, "split": "train", "loss_after": loss, "loss_before": 1.2 * loss}
            for n, loss in enumerate(losses)]


@pytest.mark.parametrize("losses", [np.geomspace(2.0, 0.02, 30).tolist(),  # two decades
                                    np.geomspace(0.9, 0.07, 30).tolist(),  # just over one
                                    np.geomspace(0.5, 0.2, 30).tolist()])  # under half of one
def test_log_axis_tick_labels_of_the_curves_never_overlap(tmp_path, losses):
    figure = plot_training_curves(curve_records(losses), tmp_path / "curves.png")
    ax = figure.axes[0]
    assert ax.get_yscale() == "log"
    labels = visible_tick_labels(figure, ax.yaxis)
    assert len(labels) >= 2, "the axis must keep enough labels to be read"
    assert overlapping(figure, labels) == []


def test_the_overlap_check_can_fail(tmp_path):
    """Labelling every minor tick of a two-decade axis (the old formatter) is caught."""
    figure = plot_training_curves(curve_records(np.geomspace(2.0, 0.02, 30).tolist()), tmp_path / "curves.png")
    ax = figure.axes[0]
    ax.yaxis.set_minor_formatter(lambda value, _: f"{value:g}")
    assert overlapping(figure, visible_tick_labels(figure, ax.yaxis))


def test_parallel_coordinates_label_every_choice_of_a_categorical_axis(tmp_path):
    space: dict[str, Dimension] = {
        "model.algorithm": ("maml", "metasgd", "mamlpp"),
        "train.schedule": ("constant", "exponential", "cosine"),
    }
    table = pd.DataFrame({"trial": [0, 1, 2], "state": ["complete"] * 3, "value": [0.3, 0.2, 0.25],
                          "model.algorithm": ["maml", "metasgd", "mamlpp"],
                          "train.schedule": ["cosine", "exponential", "constant"]})
    path = plot_parallel_coordinates(table, space, "loss", tmp_path / "parallel.png")
    assert path is not None and path.is_file()
    figure = _last_parallel_figure(table, space, tmp_path)
    ax = figure.axes[0]
    labels = {text.get_text(): text.xy for text in ax.texts}
    for axis, choices in enumerate(space.values()):
        for n, choice in enumerate(choices):
            assert labels[choice] == pytest.approx((axis, n / (len(choices) - 1))), choice
    figure.canvas.draw()
    assert overlapping(figure, ax.texts) == []


def _last_parallel_figure(table: pd.DataFrame, space: dict, tmp_path):
    """The figure :func:`plot_parallel_coordinates` draws, captured from its save."""
    import graphmeta.tune.figures as figures

    captured = []
    original = figures._save
    try:
        figures._save = lambda figure, path: captured.append(figure) or path
        plot_parallel_coordinates(table, space, "loss", tmp_path / "again.png")
    finally:
        figures._save = original
    return captured[0]


def test_edges_merging_into_one_node_arrive_apart_in_their_parents_order():
    """In the ALARM drawing every node with several parents (CATECHOL has four) gets each parent's
    edge at its own point of its marker, ordered as the edges come in, so no two merge."""
    graph = taskgraph_from_pgmpy("alarm")
    figure = draw_task_graph(graph)
    figure.canvas.draw()
    ax = figure.axes[0]
    (edges,) = [c for c in ax.collections if isinstance(c, LineCollection)]
    curves = [ax.transData.transform(segment) for segment in edges.get_segments()]
    width_px = edges.get_linewidths()[0] * figure.dpi / 72
    into: dict[str, list[np.ndarray]] = {}
    for (_, child), curve in zip(graph.edges, curves):
        into.setdefault(child, []).append(curve)
    assert len(into["CATECHOL"]) == 4
    merging = {child: curves for child, curves in into.items() if len(curves) > 1}
    assert merging
    for child, arriving in merging.items():
        ends = np.array([curve[-1] for curve in arriving])
        gaps = [np.linalg.norm(a - b) for a, b in itertools.combinations(ends, 2)]
        assert min(gaps) > 2 * width_px, f"edges into {child} end {min(gaps):.2f} px apart"
        # the last straight run of each edge keeps its side: the ends are ordered as the runs' starts
        across = 1 if abs(arriving[0][-1][0] - arriving[0][-2][0]) > abs(arriving[0][-1][1] - arriving[0][-2][1]) else 0
        starts = np.array([curve[-2][across] for curve in arriving])
        assert np.array_equal(np.argsort(starts), np.argsort(ends[:, across])), child
