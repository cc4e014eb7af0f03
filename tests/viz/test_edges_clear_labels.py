"""Edges of a drawn task graph pass no label and no marker of a node they do not join.

Measured on the drawn artists, in display pixels: each edge curve (a polyline of the edge
LineCollection) is resampled at sub-pixel steps, and no sample may lie inside the window
extent of another node's label or within the marker radius of another node's centre.
"""

from __future__ import annotations

import numpy as np
import pytest
from matplotlib.collections import LineCollection, PathCollection
from matplotlib.figure import Figure

import graphmeta
from graphmeta import TaskGraph
from graphmeta.viz import draw_task_graph

STEP_PX = 0.5  # resampling step along an edge curve


def resampled(curve: np.ndarray) -> np.ndarray:
    """Points along the polyline ``curve`` at most :data:`STEP_PX` apart, its vertices included."""
    pieces = [curve[:1]]
    for start, end in zip(curve, curve[1:]):
        steps = max(1, int(np.ceil(np.linalg.norm(end - start) / STEP_PX)))
        pieces.append(start + (end - start) * np.linspace(0, 1, steps + 1)[1:, None])
    return np.concatenate(pieces)


def intrusions(graph: TaskGraph, figure: Figure) -> list[str]:
    """Every (edge, node) pair where the edge's curve enters a label or marker of a node it does not join."""
    figure.canvas.draw()
    renderer = figure.canvas.get_renderer()
    ax = figure.axes[0]
    to_px = ax.transData.transform
    scatters = [c for c in ax.collections if isinstance(c, PathCollection)]
    centres = np.concatenate([to_px(c.get_offsets()) for c in scatters])
    radius_px = np.sqrt(scatters[0].get_sizes()[0]) / 2 * figure.dpi / 72
    # markers are drawn per learner type, so recover each centre's node from the layout's own labels
    label_of = {tuple(np.round(to_px([text.get_position()])[0], 3)): text for text in ax.texts}
    name_at = {key: text.get_text().split("\n")[0] for key, text in label_of.items()}
    assert len(label_of) == len(graph) == len(centres)
    names = [name_at[tuple(np.round(centre, 3))] for centre in centres]
    boxes = {name_at[key]: text.get_window_extent(renderer) for key, text in label_of.items()}
    (edges,) = [c for c in ax.collections if isinstance(c, LineCollection)]
    curves = [to_px(segment) for segment in edges.get_segments()]
    assert len(curves) == len(graph.edges)
    found = []
    for curve in curves:
        parent = names[int(np.argmin(np.linalg.norm(centres - curve[0], axis=1)))]
        child = names[int(np.argmin(np.linalg.norm(centres - curve[-1], axis=1)))]
        assert (parent, child) in graph.edges
        points = resampled(curve)
        for name, centre in zip(names, centres):
            if name in (parent, child):
                continue
            box = boxes[name]
            inside = ((points[:, 0] > box.x0) & (points[:, 0] < box.x1)
                      & (points[:, 1] > box.y0) & (points[:, 1] < box.y1))
            if inside.any():
                found.append(f"{parent}->{child} crosses the label of {name}")
            if np.linalg.norm(points - centre, axis=1).min() < radius_px:
                found.append(f"{parent}->{child} crosses the marker of {name}")
    return found


@pytest.mark.parametrize("direction", ["LR", "TB"])
@pytest.mark.parametrize(("card", "seed"), [("compositional-dag", 0), ("compositional-dag", 1),
                                            ("compositional-dag", 2), ("compositional-tree", 0),
                                            ("compositional-tree", 1)])
def test_sixteen_node_graphs_route_edges_around_other_nodes(card, seed, direction):
    graph = graphmeta.load_family(card, num_nodes=16, seed=seed).graph
    assert len(graph) == 16
    assert intrusions(graph, draw_task_graph(graph, direction=direction)) == []


def test_the_check_sees_an_edge_drawn_through_a_label():
    """A straight edge from a to c through b's label is caught: the check can fail."""
    graph = (TaskGraph("line").add_subtask("a").add_subtask("b").add_subtask("c")
             .add_dependency("a", "b").add_dependency("b", "c").add_dependency("a", "c"))
    figure = draw_task_graph(graph)
    ax = figure.axes[0]
    (edges,) = [c for c in ax.collections if isinstance(c, LineCollection)]
    b = next(text for text in ax.texts if text.get_text().startswith("b"))
    a = next(text for text in ax.texts if text.get_text().startswith("a"))
    c = next(text for text in ax.texts if text.get_text().startswith("c"))
    figure.canvas.draw()
    box = b.get_window_extent(figure.canvas.get_renderer())
    through = ax.transData.inverted().transform([box.x0 + box.width / 2, box.y0 + box.height / 2])
    edges.set_segments([np.array([a.get_position(), b.get_position()]),
                        np.array([b.get_position(), c.get_position()]),
                        np.array([a.get_position(), through, c.get_position()])])
    assert intrusions(graph, figure) == ["a->c crosses the label of b"]
