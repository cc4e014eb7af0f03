"""Pictures of task graphs: the layered drawing of :mod:`graphmeta.viz.layout`, optionally coloured by
a per-node metric.

Every layer is a band holding its markers and labels; edges cross each band straight, along the
layer axis at their own position (a node's, or a dummy point's, which the layout keeps clear of
the layer's labels), and bend only in the empty gaps between bands (see :func:`_edge_curve`).
So, wherever the labels fit the room the layout gives them, no edge runs through a label or
marker of a node it does not join. Everything is drawn on a plain
:class:`matplotlib.figure.Figure` with the Agg canvas, so no display and no pyplot state are
involved; pass ``ax`` to draw into a figure of your own.
"""

from __future__ import annotations

import io
import textwrap
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from math import ceil
from pathlib import Path
from typing import TYPE_CHECKING

import matplotlib
import numpy as np
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.cm import ScalarMappable
from matplotlib.collections import LineCollection, PolyCollection
from matplotlib.colors import Normalize
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.transforms import offset_copy

from ..errors import ConfigError, DataError, GraphError, closest
from ..learners import learner_type, registered
from ..taskgraph import TaskGraph
from .layout import DrawingLayout, drawing_layout

if TYPE_CHECKING:  # matplotlib.typing is new in matplotlib 3.8
    from matplotlib.typing import ColorType

FORMATS = (".png", ".svg", ".pdf")
DIRECTIONS = ("LR", "TB")
KIND_COLOURS = {"regression": "#4C72B0", "classification": "#DD8452"}
MISSING_COLOUR = "#BBBBBB"
EDGE_COLOUR = "#505050"
# Inches between layers and per node slot: labels lie below markers (LR) or right of them (TB).
LAYER_INCHES = {"LR": 1.25, "TB": 0.8}
SLOT_INCHES = {"LR": 0.55, "TB": 1.15}
MIN_INCHES, MAX_INCHES = 5.0, 30.0
COLORBAR_INCHES = 1.1
MAX_PIXELS = 4000
CHAR_WIDTH = 0.7  # glyph width of DejaVu Sans capitals, in font sizes
TEXT_CHAR_WIDTH = 0.6  # mean glyph width of mixed DejaVu Sans text, in font sizes
LINE_HEIGHT = 1.2  # of a label line, in font sizes (at linespacing 1.0 a line takes 1.0 to 1.2)
LABEL_PAD = 0.15  # white backing around a label, in font sizes
CLEARANCE_PT = 2.0  # between a band's markers and labels and the edges passing through it
MAX_BAND = 0.45  # of the distance between layers: the most a band reaches either side of its layer
PORT_SPREAD = 0.8  # of a marker's radius: how far from its centre the edges into one node arrive


def draw_task_graph(
    graph: TaskGraph,
    path: str | Path | None = None,
    *,
    ax: Axes | None = None,
    metrics: Mapping[str, float] | None = None,
    metric_name: str | None = None,
    cmap: str = "viridis",
    title: str | None = None,
    direction: str = "LR",
    dpi: float | None = None,
) -> Figure:
    """Draw ``graph`` layered by topological generation; return the figure.

    Also importable as ``graphmeta.draw``.

    Args:
        graph: the task graph to draw.
        path: also save the figure there, as PNG, SVG or PDF by the suffix.
        ax: axes to draw into; by default a new figure sized to the graph.
        metrics: ``{subtask: value}``; nodes are then coloured by value, with a colorbar;
            nodes without a finite value are grey.
        metric_name: the colorbar's title.
        cmap: matplotlib colormap name for ``metrics``.
        title: the title; ``None`` for the graph's name and size, ``""`` for none.
        direction: ``"LR"`` (layers left to right) or ``"TB"`` (top to bottom).
        dpi: resolution of a saved PNG; by default 150, lowered to keep big graphs within
            ``MAX_PIXELS`` pixels a side.

    Node colour shows the kind (with ``metrics``: the value, the kind then colouring the
    outline), the marker the learner; a latent subtask (``observed=False``) has a dashed outline
    and, with ``metrics``, reads "not scored". Labels give the name and dimensions: ``"HR\\n3 cls"``,
    ``"x\\n2→1"`` (2 own features to 1 value). On big graphs labels are shortened, then
    thinned to those that fit, best connected first, and markers shrink.
    """
    if direction not in DIRECTIONS:
        raise ConfigError(f"unknown direction {direction!r}; choose one of {DIRECTIONS}")
    if cmap not in matplotlib.colormaps:
        raise ConfigError(f"unknown colormap {cmap!r}{closest(cmap, list(matplotlib.colormaps))}")
    suffix = Path(path).suffix.lower() if path is not None else ""
    if path is not None and suffix not in FORMATS:
        raise GraphError(f"cannot save a picture to {str(path)!r}: unknown suffix {suffix!r}, "
                         f"use one of {', '.join(FORMATS)}")
    graph.validate()
    values = _check_metrics(graph, metrics)
    layout = drawing_layout(graph)

    colorbar_axes = None
    if ax is None:
        width, height = _figure_size(layout, direction, colorbar=values is not None)
        figure = Figure(figsize=(width, height))
        FigureCanvasAgg(figure)
        right = 0.2 + (COLORBAR_INCHES if values is not None else 0.0)
        ax = figure.add_axes((0.2 / width, 0.45 / height, 1 - (0.2 + right) / width, 1 - 0.9 / height))
        if values is not None:
            colorbar_axes = figure.add_axes((1 - (right - 0.1) / width, 0.25, 0.15 / width, 0.5))
    figure = _figure(ax)
    _draw(graph, layout, ax, values, metric_name, cmap, direction, colorbar_axes)
    if title is None:
        edges = len(graph.edges)
        title = (f"{graph.name or 'task graph'}: {len(graph)} subtask{'s' * (len(graph) != 1)}, {edges} "
                 f"dependenc{'y' if edges == 1 else 'ies'}")
    if title:
        fit_title(ax, title)
    if path is not None:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        if dpi is None:
            dpi = min(150.0, MAX_PIXELS / max(figure.get_size_inches()))
        figure.savefig(path, format=suffix[1:], dpi=dpi)
    return figure


draw = draw_task_graph  # the short name: graphmeta.draw


def fit_title(ax: Axes, title: str, fontsize: float = 12.0, smallest: float = 7.0) -> None:
    """Set ``title`` so that it fits above ``ax``: the font shrinks down to ``smallest`` points,
    then the text wraps at word boundaries (a long run name over a one-node graph is never cut)."""
    width_pt = ax.get_position().width * _figure(ax).get_figwidth() * 72
    size = float(np.clip(width_pt / (TEXT_CHAR_WIDTH * max(len(title), 1)), smallest, fontsize))
    ax.set_title(textwrap.fill(title, max(8, int(width_pt / (TEXT_CHAR_WIDTH * size)))), fontsize=size)


def _figure(ax: Axes) -> Figure:
    """The figure of ``ax``, whose size in inches sets the size of everything drawn.

    Axes of a subfigure are refused: the drawing would have to work out the subfigure's share of
    its parent's size, and does not.
    """
    figure = ax.figure
    if not isinstance(figure, Figure):
        raise ConfigError(f"cannot draw into axes of a {type(figure).__name__}: pass axes of a "
                          "matplotlib Figure (not of a subfigure), or no ax for a new figure")
    return figure


def task_graph_png(graph: TaskGraph, dpi: float = 80) -> bytes:
    """The picture of ``graph`` as PNG bytes, as a notebook shows it (``%load_ext graphmeta.viz``)."""
    buffer = io.BytesIO()
    draw_task_graph(graph).savefig(buffer, format="png", dpi=dpi)
    return buffer.getvalue()


def _check_metrics(graph: TaskGraph, metrics: Mapping[str, float] | None) -> dict[str, float] | None:
    if metrics is None:
        return None
    if not isinstance(metrics, Mapping):
        raise DataError(f"metrics must be a mapping {{subtask: value}}, got {type(metrics).__name__}")
    values = {}
    for name, value in metrics.items():
        if name not in graph:
            raise GraphError(f"metrics name an unknown subtask {name!r}{closest(str(name), graph.names)}")
        try:
            values[name] = float(value)
        except (TypeError, ValueError):
            raise DataError(f"the metric of subtask {name!r} must be a number, got {value!r}") from None
    return values


def _figure_size(layout: DrawingLayout, direction: str, colorbar: bool) -> tuple[float, float]:
    along = float(np.clip(LAYER_INCHES[direction] * layout.num_layers + 0.5, MIN_INCHES, MAX_INCHES))
    across = float(np.clip(SLOT_INCHES[direction] * layout.extent + 1.5, 0.8 * MIN_INCHES, MAX_INCHES))
    width, height = (along, across) if direction == "LR" else (across, along)
    return width + (COLORBAR_INCHES if colorbar else 0.0), height


@dataclass(frozen=True)
class _Frame:
    """How the layout maps onto the axes."""

    direction: str
    layer_pt: float  # distance between adjacent layers, in points
    slot_pt: float  # one node slot along a layer, in points
    scale: np.ndarray  # points per data unit along x and y

    def xy(self, layer: float | np.ndarray, position: float | np.ndarray) -> tuple:
        """Data coordinates of a layout point (or of arrays of them): layers run right (LR) or down (TB)."""
        return (layer, -position) if self.direction == "LR" else (position, -layer)


@dataclass(frozen=True)
class _LabelStyle:
    fontsize: float
    lines: int  # 1: name; 2: and dimensions; 3: and the metric
    max_chars: int  # longer names are cut
    keep: frozenset[str]  # the nodes labelled


def _draw(graph: TaskGraph, layout: DrawingLayout, ax: Axes, values: dict[str, float] | None,
          metric_name: str | None, cmap: str, direction: str, colorbar_axes: Axes | None) -> None:
    ax.set_axis_off()
    norm = None
    if values is not None:
        finite = [v for v in values.values() if np.isfinite(v)]
        if finite:
            norm = Normalize(min(finite), max(finite))
            colorbar = ax.figure.colorbar(ScalarMappable(norm, cmap), cax=colorbar_axes,
                                          ax=None if colorbar_axes else ax, fraction=0.03, pad=0.01)
            colorbar.set_label(metric_name or "metric")
        elif colorbar_axes is not None:
            colorbar_axes.set_axis_off()
    frame = _frame(ax, layout, direction)
    diameter = float(np.clip(min(0.42 * frame.slot_pt, 0.25 * frame.layer_pt), 1.5, 13.0))
    style = _label_style(graph, layout, frame, diameter, 3 if values is not None else 2)
    texts = {name: _label(graph, name, style, values) for name in graph.names if name in style.keep}
    bands = _band_half_depths(layout, frame, diameter, style, texts)
    _draw_edges(layout, ax, frame, diameter, bands)
    _draw_nodes(graph, layout, ax, frame, diameter, values, norm, cmap)
    _draw_labels(layout, ax, frame, diameter, style, texts)
    _draw_legend(graph, ax, values)


def _frame(ax: Axes, layout: DrawingLayout, direction: str) -> _Frame:
    along = (-0.6, layout.num_layers - 0.4)
    across = (-layout.extent / 2 - 0.2, layout.extent / 2 + 0.2)
    if direction == "LR":
        ax.set_xlim(*along)
        ax.set_ylim(-across[1], -across[0])
    else:
        ax.set_xlim(*across)
        ax.set_ylim(-along[1], -along[0])
    box = ax.get_position()
    figure = _figure(ax)
    width_pt = box.width * figure.get_figwidth() * 72
    height_pt = box.height * figure.get_figheight() * 72
    scale = np.array([width_pt / np.ptp(ax.get_xlim()), height_pt / np.ptp(ax.get_ylim())])
    layer_pt, slot_pt = (scale[0], scale[1]) if direction == "LR" else (scale[1], scale[0])
    return _Frame(direction, float(layer_pt), float(slot_pt), scale)


def _arrowhead(diameter: float) -> float:
    """Length of an edge's arrowhead, in points, for markers ``diameter`` points wide."""
    return float(np.clip(0.5 * diameter, 1.5, 6.0))


def _band_half_depths(layout: DrawingLayout, frame: _Frame, diameter: float, style: _LabelStyle,
                      texts: dict[str, str]) -> np.ndarray:
    """How far every layer's band reaches either side of its layer, in layers (see :func:`_edge_curve`).

    The band of layer ``L`` holds its markers, its labels and every arrowhead ending there:

        b_L * layer_pt = max(r + 0.5 + head, max over labels on L of e) + CLEARANCE_PT,

    with ``r`` the marker radius, ``head`` the arrowhead length (so that an arrowhead ends a
    straight run into its marker) and ``e`` a label's half-extent along the layer axis, its
    backing included: left to right the label is centred under its marker and ``e`` is half its
    width, top to bottom it is centred beside it and ``e`` is half its height. Capped at
    :data:`MAX_BAND`, so that every gap keeps a tenth of a layer for the bends: the ends of a
    label wider than that (long names on a crowded graph) can meet passing edges.
    """
    reach = np.full(layout.num_layers, diameter / 2 + 0.5 + _arrowhead(diameter))
    pad = LABEL_PAD * style.fontsize if style.lines > 1 else 0.0
    for name, text in texts.items():
        lines = text.split("\n")
        if frame.direction == "LR":
            half = CHAR_WIDTH * style.fontsize * max(map(len, lines)) / 2 + pad
        else:
            half = LINE_HEIGHT * style.fontsize * len(lines) / 2 + pad
        reach[layout.layer[name]] = max(reach[layout.layer[name]], half)
    return np.minimum((reach + CLEARANCE_PT) / frame.layer_pt, MAX_BAND)


def _draw_edges(layout: DrawingLayout, ax: Axes, frame: _Frame, diameter: float, bands: np.ndarray) -> None:
    """Edges as :func:`_edge_curve` through the layer ``bands``, ending in an arrowhead at the child's marker."""
    if not layout.routes:
        return
    head = _arrowhead(diameter)
    radius = diameter / 2
    ports = _arrival_ports(layout, radius)
    curves, heads = [], []
    for edge, route in layout.routes.items():
        port = ports[edge]
        layer, position = route[-1]
        curve = _edge_curve([*route[:-1], (layer, position + port / frame.slot_pt)], bands)
        points = np.column_stack(frame.xy(curve[:, 0], curve[:, 1])) * frame.scale  # in points
        curve = _trim(points, float(np.sqrt(radius**2 - port**2)) + 0.5)  # to the marker's rim at that port
        tip = curve[-1]
        along = tip - curve[-2]
        along = along / (np.linalg.norm(along) or 1.0)
        across = np.array([-along[1], along[0]])
        base = tip - head * along
        heads.append(np.array([tip, base + 0.38 * head * across, base - 0.38 * head * across]) / frame.scale)
        curves.append(_trim(curve, 0.7 * head) / frame.scale)
    alpha = 0.8 if len(curves) <= 200 else 0.45
    width = float(np.clip(diameter / 12, 0.3, 1.0))
    ax.add_collection(LineCollection(curves, colors=EDGE_COLOUR, linewidths=width, alpha=alpha, zorder=1))
    ax.add_collection(PolyCollection(heads, facecolors=EDGE_COLOUR, edgecolors="none", alpha=alpha, zorder=1))


def _arrival_ports(layout: DrawingLayout, radius: float) -> dict[tuple[str, str], float]:
    """Where every edge meets its child's marker: an offset across the layer axis, in points.

    The edges into one child arrive side by side, spread evenly over ``PORT_SPREAD`` of the
    marker's diameter in the order of the points they come from on the layer before, so they
    never cross or merge in the child's band and each parent's edge stays traceable to its own
    arrowhead; a single edge arrives at the centre. The straight runs stay inside the marker's
    width, so they pass no label and no other marker.
    """
    incoming: dict[str, list[tuple[float, tuple[str, str]]]] = {}
    for edge, route in layout.routes.items():
        incoming.setdefault(edge[1], []).append((route[-2][1], edge))
    ports = {}
    for arrivals in incoming.values():
        arrivals.sort()
        spread = PORT_SPREAD * radius if len(arrivals) > 1 else 0.0
        offsets = np.linspace(-spread, spread, len(arrivals))
        ports.update({edge: float(offset) for (_, edge), offset in zip(arrivals, offsets)})
    return ports


def _edge_curve(route: list[tuple[int, float]], bands: np.ndarray) -> np.ndarray:
    """The curve of an edge along ``route`` (its ``(layer, position)`` on every layer it spans), in those units.

    Layer ``L``'s band, ``|layer - L| <= b_L`` (``b_L = bands[L]``), holds all its markers and
    labels; along the layer, the layout keeps every node's and dummy point's position clear of the
    others' markers and labels. So the edge crosses each band straight at its own position
    ``p_L``, and changes position only in the empty gap to the next band, from ``(a, p_L)`` to
    ``(z, p_{L+1})`` with ``a = L + b_L`` and ``z = L + 1 - b_{L+1}``, along the quadratic
    B-spline (:func:`_spline`) with the controls

        (a, p_L),  (a + (z - a) / 4, p_L),  (z - (z - a) / 4, p_{L+1}),  (z, p_{L+1}):

    two parabolic arcs, level where they meet the bands, crossing the gap's middle with slope
    ``2 (p_{L+1} - p_L) / (z - a)`` (so edges through one gap cross rather than run together),
    and inside the gap's box, since a spline lies in the convex hull of its controls.
    """
    bends = []
    for (layer, start), (_, end) in zip(route, route[1:]):
        leave, enter = layer + bands[layer], layer + 1 - bands[layer + 1]
        quarter = (enter - leave) / 4
        bends.append(_spline(np.array([(leave, start), (leave + quarter, start), (enter - quarter, end),
                                       (enter, end)])))
    return np.vstack([route[0], *bends, route[-1]])


def _spline(points: np.ndarray, samples: int = 10) -> np.ndarray:
    """The quadratic B-spline from ``points[0]`` to ``points[-1]`` with the inner points as controls."""
    if len(points) == 2:
        return points
    knots = [points[0], *((points[1:-2] + points[2:-1]) / 2), points[-1]]
    t = np.linspace(0, 1, samples)[:, None]
    pieces = [(1 - t) ** 2 * start + 2 * t * (1 - t) * control + t**2 * end
              for start, control, end in zip(knots, points[1:-1], knots[1:])]
    return np.concatenate([pieces[0], *(piece[1:] for piece in pieces[1:])])


def _trim(curve: np.ndarray, length: float) -> np.ndarray:
    """``curve`` shortened by ``length`` at its end, keeping at least a tenth of it."""
    steps = np.linalg.norm(np.diff(curve, axis=0), axis=1)
    remaining = min(length, 0.9 * steps.sum())
    end = len(curve) - 1
    while end > 1 and steps[end - 1] < remaining:
        remaining -= steps[end - 1]
        end -= 1
    fraction = remaining / steps[end - 1] if steps[end - 1] > 0 else 0.0
    return np.vstack([curve[:end], curve[end] + (curve[end - 1] - curve[end]) * fraction])


def _draw_nodes(graph: TaskGraph, layout: DrawingLayout, ax: Axes, frame: _Frame, diameter: float,
                values: dict[str, float] | None, norm: Normalize | None, cmap: str) -> None:
    colormap = matplotlib.colormaps[cmap]
    by_marker: dict[tuple[str, bool], list[str]] = {}
    for name in graph.names:
        subtask = graph.subtask(name)
        by_marker.setdefault((learner_type(subtask.learner).marker, subtask.observed), []).append(name)
    # matplotlib draws one marker shape and one outline style per call; a latent node's outline is dashed
    for (marker, observed), names in by_marker.items():
        xy = np.array([frame.xy(layout.layer[name], layout.position[name]) for name in names])
        kinds = [KIND_COLOURS[graph.subtask(name).kind] for name in names]
        faces: Sequence[ColorType]
        edges: ColorType | Sequence[ColorType]
        if values is None:
            faces, edges, width = kinds, "#2b2b2b", 0.6
        else:
            faces = [colormap(norm(values[name])) if norm is not None and _known(values, name)
                     else MISSING_COLOUR for name in names]
            edges, width = kinds, float(np.clip(diameter / 6, 0.5, 2.0))
        ax.scatter(xy[:, 0], xy[:, 1], s=diameter**2, marker=marker, c=faces, edgecolors=edges,
                   linewidths=width if observed else max(width, 1.0), linestyles="-" if observed else "--",
                   zorder=3)


def _known(values: dict[str, float], name: str) -> bool:
    return bool(np.isfinite(values.get(name, np.nan)))


def _draw_labels(layout: DrawingLayout, ax: Axes, frame: _Frame, diameter: float, style: _LabelStyle,
                 texts: dict[str, str]) -> None:
    """``texts[name]`` beside the marker of every labelled node: below it (LR) or right of it (TB)."""
    offset = diameter / 2 + 1.5
    if frame.direction == "LR":
        shift, horizontal, vertical = {"y": -offset}, "center", "top"
    else:
        shift, horizontal, vertical = {"x": offset}, "left", "center"
    transform = offset_copy(ax.transData, fig=_figure(ax), units="points", **shift)
    # A white backing keeps labels legible over edges; small print on big graphs goes without (it is slow).
    box = {"boxstyle": f"round,pad={LABEL_PAD}", "facecolor": "white", "edgecolor": "none", "alpha": 0.9}
    backing = box if style.lines > 1 else None
    for name, text in texts.items():
        x, y = frame.xy(layout.layer[name], layout.position[name])
        ax.text(x, y, text, transform=transform, fontsize=style.fontsize, linespacing=1.0, zorder=4,
                clip_on=False, ha=horizontal, va=vertical, bbox=backing)


def _label_style(graph: TaskGraph, layout: DrawingLayout, frame: _Frame, diameter: float,
                 most_lines: int) -> _LabelStyle:
    """The largest style whose labels all fit; else the smallest, thinned, best connected nodes first."""
    longest = max(len(name) for name in graph.names)
    tiers: list[tuple[float, int]] = [(size, lines) for lines in range(most_lines, 1, -1) for size in (9, 8, 7)]
    tiers += [(size, 1) for size in (7, 6, 5, 4.5)]
    fitting = None
    for size, lines in tiers:
        height = lines * LINE_HEIGHT * size
        if frame.direction == "LR":
            max_chars = int(0.9 * frame.layer_pt / (CHAR_WIDTH * size))
            need = height + diameter + 2
        else:
            if max(height, diameter) + 4 > frame.layer_pt:
                continue
            max_chars = 16
            need = diameter + 4 + CHAR_WIDTH * size * max(min(longest, max_chars), 7 if lines > 1 else 0)
        if max_chars < (min(longest, 8) if lines > 1 else 3):
            continue
        fitting = (size, lines, max_chars, need)
        if need <= frame.slot_pt:
            return _LabelStyle(size, lines, max_chars, frozenset(graph.names))
    if fitting is None:
        return _LabelStyle(tiers[-1][0], 1, 3, frozenset())
    size, lines, max_chars, need = fitting
    degree = {name: len(graph.parents(name)) + len(graph.children(name)) for name in graph.names}
    keep: set[str] = set()
    for names in graph.levels():
        taken: list[float] = []
        for name in sorted(names, key=lambda n: -degree[n]):
            if all(abs(layout.position[name] - p) * frame.slot_pt >= need for p in taken):
                taken.append(layout.position[name])
                keep.add(name)
    return _LabelStyle(size, lines, max_chars, frozenset(keep))


def _label(graph: TaskGraph, name: str, style: _LabelStyle, values: dict[str, float] | None) -> str:
    lines = [name if len(name) <= style.max_chars else name[: style.max_chars - 1] + "…"]
    if style.lines >= 2:
        s = graph.subtask(name)
        if s.kind == "classification":
            lines.append(f"{s.in_dim}→{s.num_classes} cls" if s.in_dim else f"{s.num_classes} cls")
        else:
            lines.append(f"{s.in_dim}→{s.out_dim}")
    if style.lines >= 3 and values is not None and not graph.subtask(name).observed:
        lines.append("not scored")  # a latent node has no labels
    elif style.lines >= 3 and values is not None and _known(values, name):
        lines.append(f"{values[name]:.3g}")
    return "\n".join(lines)


def _draw_legend(graph: TaskGraph, ax: Axes, values: dict[str, float] | None) -> None:
    kinds = {graph.subtask(name).kind for name in graph.names}
    learners = {learner_type(graph.subtask(name).learner) for name in graph.names}
    handles = [_legend_handle("s", "white" if values is not None else colour, colour, kind)
               for kind, colour in KIND_COLOURS.items() if kind in kinds]
    handles += [_legend_handle(learner.marker, "white", "#2b2b2b", f"{learner.label} learner")
                for learner in registered() if learner in learners]
    if values is not None and not all(_known(values, name) for name in graph.names):
        handles.append(_legend_handle("o", MISSING_COLOUR, "#2b2b2b", "no value"))
    inches = sum(len(str(handle.get_label())) * CHAR_WIDTH * 8 + 30 for handle in handles) / 72
    rows = 1 if inches < 0.9 * ax.get_position().width * _figure(ax).get_figwidth() else 2
    ax.legend(handles=handles, loc="upper center", bbox_to_anchor=(0.5, 0.0), ncol=ceil(len(handles) / rows),
              frameon=False, fontsize=8, handletextpad=0.3, columnspacing=1.2)


def _legend_handle(marker: str, face: ColorType, edge: ColorType, label: str) -> Line2D:
    """A legend entry showing ``marker`` alone, filled with ``face`` and outlined with ``edge``."""
    return Line2D([], [], linestyle="", marker=marker, markersize=8, markeredgewidth=1.5, markerfacecolor=face,
                  markeredgecolor=edge, label=label)
