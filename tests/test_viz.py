"""draw_task_graph: figures, files, metrics, labels, notebooks, and the drawing layout behind them."""

from __future__ import annotations

import time
from types import SimpleNamespace

import numpy as np
import pytest
from matplotlib.collections import PathCollection
from matplotlib.colors import to_rgba
from matplotlib.figure import Figure

import graphmeta
from graphmeta import ConfigError, DataError, GraphError, TaskGraph
from graphmeta.viz import draw_task_graph, load_ipython_extension
from graphmeta.viz.draw import MAX_INCHES, MISSING_COLOUR, _spline, _trim
from graphmeta.viz.layout import crossings, drawing_layout, isotonic, room


def labels(figure: Figure) -> list[str]:
    return [text.get_text() for text in figure.axes[0].texts]


def markers(figure: Figure) -> list[PathCollection]:
    return [c for c in figure.axes[0].collections if isinstance(c, PathCollection)]


def test_returns_a_figure_and_leaves_pyplot_alone(mixed):
    import matplotlib.pyplot as plt

    before = plt.get_fignums()
    figure = draw_task_graph(mixed)
    assert isinstance(figure, Figure)
    assert plt.get_fignums() == before
    assert figure.axes[0].get_title() == "mixed: 5 subtasks, 5 dependencies"


def test_labels_give_names_and_dimensions(mixed, alarm):
    assert set(labels(draw_task_graph(mixed))) == {
        "weather\n4→3 cls", "x\n2→1", "molecule\n5→1", "traffic\n1→2 cls", "delay\n0→2",
    }
    alarm_labels = labels(draw_task_graph(alarm))
    assert len(alarm_labels) == 37 and "HR\n3 cls" in alarm_labels


def test_markers_and_legend_show_kind_and_learner(mixed):
    figure = draw_task_graph(mixed)
    shapes = markers(figure)
    assert sorted(len(c.get_offsets()) for c in shapes) == [1, 4]  # one GNN node, four MLP nodes
    legend = [text.get_text() for text in figure.axes[0].get_legend().get_texts()]
    assert legend == ["regression", "classification", "MLP learner", "GNN learner"]


def test_table_learners_have_their_own_marker():
    graph = (TaskGraph().add_subtask("a", kind="classification", num_classes=2, learner="table")
             .add_subtask("b", kind="classification", num_classes=3, learner="table")
             .add_subtask("c", in_dim=1).add_dependency("a", "b").add_dependency("b", "c"))
    figure = draw_task_graph(graph, metrics={"a": 0.1, "b": 0.2, "c": 0.3})
    assert sorted(len(c.get_offsets()) for c in markers(figure)) == [1, 2]
    legend = [text.get_text() for text in figure.axes[0].get_legend().get_texts()]
    assert "Table learner" in legend and "MLP learner" in legend


@pytest.mark.parametrize(("suffix", "magic"), [(".png", b"\x89PNG"), (".svg", b"<?xml"), (".pdf", b"%PDF")])
def test_saves_by_suffix(mixed, tmp_path, suffix, magic):
    path = tmp_path / "sub" / f"graph{suffix}"
    draw_task_graph(mixed, path=path)
    assert path.read_bytes().startswith(magic)


def test_short_name_and_positional_path(mixed, tmp_path):
    assert graphmeta.draw is draw_task_graph
    graphmeta.draw(mixed, tmp_path / "mixed.svg")
    assert (tmp_path / "mixed.svg").read_bytes().startswith(b"<?xml")
    with pytest.raises(TypeError):
        draw_task_graph(mixed, None, Figure().add_subplot())  # ax is keyword-only


def test_notebooks_show_task_graphs_as_png_once_the_extension_is_loaded(mixed):
    """``%load_ext graphmeta.viz`` registers a PNG formatter for TaskGraph with IPython's display system."""

    class Formatter:  # IPython's BaseFormatter, reduced to what the extension uses
        def __init__(self):
            self.printers = {}

        def for_type(self, typ, func):
            self.printers[typ] = func

    png = Formatter()
    load_ipython_extension(SimpleNamespace(display_formatter=SimpleNamespace(formatters={"image/png": png})))
    assert png.printers[TaskGraph](mixed).startswith(b"\x89PNG")


def test_unknown_suffix(mixed, tmp_path):
    with pytest.raises(GraphError, match=r"unknown suffix '\.jpeg', use one of \.png, \.svg, \.pdf"):
        draw_task_graph(mixed, path=tmp_path / "graph.jpeg")
    with pytest.raises(GraphError, match="unknown suffix ''"):
        draw_task_graph(mixed, path=tmp_path / "graph")
    assert not list(tmp_path.iterdir())


def test_metrics_colour_nodes_with_a_colorbar(mixed):
    figure = draw_task_graph(mixed, metrics={"traffic": 0.5, "delay": 2.0, "x": float("nan")},
                             metric_name="query loss")
    assert len(figure.axes) == 2
    assert figure.axes[1].get_ylabel() == "query loss"
    faces = np.concatenate([c.get_facecolors() for c in markers(figure)])
    grey = np.all(np.isclose(faces, to_rgba(MISSING_COLOUR)), axis=1)
    assert grey.sum() == 3  # weather, molecule, and x (NaN)
    assert "traffic\n1→2 cls\n0.5" in labels(figure)
    legend = [text.get_text() for text in figure.axes[0].get_legend().get_texts()]
    assert "no value" in legend


def test_metric_name_defaults(mixed):
    assert draw_task_graph(mixed, metrics={"x": 1}).axes[1].get_ylabel() == "metric"


def test_metrics_errors(mixed):
    with pytest.raises(GraphError, match=r"unknown subtask 'trafic' \(did you mean 'traffic'\?\)"):
        draw_task_graph(mixed, metrics={"trafic": 1.0})
    with pytest.raises(DataError, match="metric of subtask 'x' must be a number, got 'high'"):
        draw_task_graph(mixed, metrics={"x": "high"})
    with pytest.raises(DataError, match="metrics must be a mapping"):
        draw_task_graph(mixed, metrics=[1.0])


def test_draws_into_given_axes(mixed):
    figure = Figure(figsize=(6, 4))
    ax = figure.add_subplot()
    assert draw_task_graph(mixed, ax=ax, title="mine", metrics={"x": 1.0, "delay": 0.0}) is figure
    assert ax.get_title() == "mine" and len(ax.texts) == 5
    assert len(figure.axes) == 2  # the colorbar took room from ax


def test_options(mixed):
    assert draw_task_graph(mixed, title="").axes[0].get_title() == ""
    tall = draw_task_graph(mixed, direction="TB").get_size_inches()
    assert tall[1] >= tall[0]
    with pytest.raises(ConfigError, match="unknown direction 'RL'"):
        draw_task_graph(mixed, direction="RL")
    with pytest.raises(ConfigError, match=r"unknown colormap 'viridiss' \(did you mean 'viridis'\?\)"):
        draw_task_graph(mixed, metrics={"x": 1.0}, cmap="viridiss")
    assert draw_task_graph(mixed, metrics={"x": 1.0}, cmap="magma")


def test_empty_graph():
    with pytest.raises(GraphError, match="empty"):
        draw_task_graph(TaskGraph())


def test_single_node():
    assert labels(draw_task_graph(TaskGraph().add_subtask("only"))) == ["only\n0→1"]


def test_figure_grows_with_the_graph_within_bounds(mixed, alarm):
    small, medium = draw_task_graph(mixed).get_size_inches(), draw_task_graph(alarm).get_size_inches()
    assert np.all(medium > small) and np.all(medium <= MAX_INCHES)


def test_andes_renders_quickly_with_smaller_markers(alarm):
    andes = graphmeta.taskgraph_from_pgmpy("andes")
    start = time.perf_counter()
    figure = draw_task_graph(andes)
    figure.canvas.draw()
    assert time.perf_counter() - start < 10
    assert np.all(figure.get_size_inches() <= MAX_INCHES)
    assert markers(figure)[0].get_sizes()[0] < markers(draw_task_graph(alarm))[0].get_sizes()[0]
    assert 0 < len(labels(figure)) <= len(andes)
    assert all("\n" not in text for text in labels(figure))  # names only


@pytest.mark.slow
def test_munin_renders_under_ten_seconds(tmp_path):
    munin = graphmeta.taskgraph_from_pgmpy("munin")
    start = time.perf_counter()
    draw_task_graph(munin, path=tmp_path / "munin.png")
    assert time.perf_counter() - start < 10
    assert (tmp_path / "munin.png").stat().st_size > 0


# -------------------------------------------------------------- drawing layout
def test_layout_layers_and_routes(alarm):
    layout = drawing_layout(alarm)
    assert layout.num_layers == len(alarm.levels())
    for depth, names in enumerate(alarm.levels()):
        assert all(layout.layer[name] == depth for name in names)
    assert set(layout.routes) == set(alarm.edges)
    for (parent, child), route in layout.routes.items():
        assert [layer for layer, _ in route] == list(range(layout.layer[parent], layout.layer[child] + 1))
        assert route[0][1] == layout.position[parent] and route[-1][1] == layout.position[child]


def test_layout_keeps_nodes_apart(alarm):
    layout = drawing_layout(alarm)
    for names in alarm.levels():
        spots = sorted(layout.position[name] for name in names)
        assert all(b - a >= sum(room("node")) - 1e-9 for a, b in zip(spots, spots[1:]))
    spans = [p + sign * side for p in layout.position.values() for sign, side in zip((-1, 1), room("node"))]
    assert max(spans) - min(spans) <= layout.extent + 1e-9


def test_ordering_reducescrossings(alarm):
    layout = drawing_layout(alarm)
    down = {name: alarm.children(name) for name in alarm.names}
    adjacent = {(p, c) for p, c in alarm.edges if layout.layer[c] == layout.layer[p] + 1}
    down_adjacent = {name: [c for c in down[name] if (name, c) in adjacent] for name in alarm.names}
    layers_given = [list(names) for names in alarm.levels()]
    layers_drawn = [sorted(names, key=layout.position.__getitem__) for names in alarm.levels()]
    assert crossings(layers_drawn, down_adjacent) <= crossings(layers_given, down_adjacent)


def test_crossings_counts_inversions():
    down = {"a": ["d"], "b": ["c"], "c": [], "d": []}
    assert crossings([["a", "b"], ["c", "d"]], down) == 1
    assert crossings([["a", "b"], ["d", "c"]], down) == 0


def testisotonic():
    assert np.allclose(isotonic(np.array([3.0, 1.0, 2.0])), [2, 2, 2])
    assert np.allclose(isotonic(np.array([1.0, 3.0, 2.0, 4.0])), [1, 2.5, 2.5, 4])
    assert np.allclose(isotonic(np.array([0.0, 1.0])), [0, 1])


def test_spline_and_trim():
    points = np.array([[0.0, 0.0], [1.0, 1.0], [2.0, 0.0]])
    curve = _spline(points)
    assert np.allclose(curve[0], points[0]) and np.allclose(curve[-1], points[-1])
    assert np.allclose(_spline(points[:2]), points[:2])
    line = np.array([[0.0, 0.0], [10.0, 0.0]])
    assert np.allclose(_trim(line, 3.0), [[0, 0], [7, 0]])
    assert np.allclose(_trim(line, 100.0), [[0, 0], [1, 0]])  # never below a tenth


def test_a_long_title_over_a_one_node_graph_fits_in_the_figure():
    graph = TaskGraph("sinusoid-maml-10shot-with-a-long-run-name").add_subtask("sine", in_dim=1)
    figure = draw_task_graph(graph)
    figure.canvas.draw()
    title = figure.axes[0].title
    box = title.get_window_extent(figure.canvas.get_renderer())
    assert title.get_text().replace("\n", " ") == "sinusoid-maml-10shot-with-a-long-run-name: 1 subtask, 0 dependencies"
    assert box.x0 >= 0 and box.x1 <= figure.bbox.width and box.y1 <= figure.bbox.height


def test_training_curves_keep_the_legend_off_the_curves_and_plain_log_ticks(tmp_path):
    from graphmeta.train.figures import plot_training_curves

    records = [{"step": s, "split": "train", "loss_after": 0.5 + 1 / (s + 1), "loss_before": 3.0} for s in range(0, 200, 10)]
    figure = plot_training_curves(records, tmp_path / "curves.png", title="run")
    figure.canvas.draw()
    ax = figure.axes[0]
    renderer = figure.canvas.get_renderer()
    assert ax.get_legend().get_window_extent(renderer).x0 >= ax.get_window_extent(renderer).x1
    labels = [label.get_text() for label in ax.get_yticklabels(minor=True) + ax.get_yticklabels() if label.get_text()]
    assert labels and not any("10^" in label or "times" in label for label in labels), labels
