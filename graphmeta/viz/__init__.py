"""Pictures of task graphs, drawn with matplotlib when the caller asks: nothing below this package
imports it.

* :mod:`~graphmeta.viz.layout`: the drawing layout (layers, order within a layer, positions);
* :mod:`~graphmeta.viz.draw`: :func:`draw_task_graph` (also ``graphmeta.draw``), the figure.

In a notebook, ``%load_ext graphmeta.viz`` shows every :class:`~graphmeta.TaskGraph` as its picture.
"""

from __future__ import annotations

from typing import Any

from ..taskgraph import TaskGraph
from .draw import FORMATS, draw_task_graph, task_graph_png

__all__ = ["FORMATS", "draw_task_graph", "load_ipython_extension", "task_graph_png"]


def load_ipython_extension(ipython: Any) -> None:
    """``%load_ext graphmeta.viz``: IPython then displays a :class:`~graphmeta.TaskGraph` as a PNG picture."""
    ipython.display_formatter.formatters["image/png"].for_type(TaskGraph, task_graph_png)
