"""``graphmeta draw``: picture a task graph from a YAML/JSON file, a network bundled with pgmpy, or the
task family of a run config (a card, or your own table)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "draw",
        help="draw a task graph to PNG, SVG or PDF",
        description="Draw a task graph, layered by topological generation, to a PNG, SVG or PDF "
                    "(chosen by the suffix of -o).",
    )
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("graph", nargs="?", type=Path, help="task graph file (.yaml, .yml or .json)")
    source.add_argument("--pgmpy", metavar="NAME", help="a network bundled with pgmpy instead, e.g. alarm")
    source.add_argument("--config", type=Path, metavar="CONFIG",
                        help="the graph of a run config's family instead (for a table: given or learned)")
    parser.add_argument("-o", "--output", type=Path,
                        help="picture to write (.png, .svg, .pdf); default: <graph name>.png here")
    parser.add_argument("--metrics", type=Path, metavar="JSON",
                        help='colour nodes by value: a JSON file {"subtask": number, ...}')
    parser.add_argument("--metric-name", help="colorbar title (default: the metrics file's name)")
    parser.add_argument("--direction", choices=("LR", "TB"), default="LR",
                        help="layers left to right (LR, default) or top to bottom (TB)")
    parser.add_argument("--title", help="figure title (default: the graph's name and size)")
    return parser


def run(args: argparse.Namespace) -> int:
    from ..errors import GraphError
    from ..interop.pgmpy import taskgraph_from_pgmpy
    from ..taskgraph import TaskGraph
    from ..viz import FORMATS, draw_task_graph

    if args.output is not None and args.output.suffix.lower() not in FORMATS:
        raise GraphError(f"cannot write a picture to {str(args.output)!r}: use a suffix of {', '.join(FORMATS)}")
    if args.config:
        from ..families import FamilySection
        from ..train.config import load_config

        graph = FamilySection.read(load_config(args.config).family).build().graph
    else:
        graph = taskgraph_from_pgmpy(args.pgmpy) if args.pgmpy else TaskGraph.load(args.graph)
    metrics = _read_metrics(args.metrics) if args.metrics else None
    output = args.output or Path(f"{graph.name or (args.graph.stem if args.graph else 'graph')}.png")
    draw_task_graph(graph, path=output, metrics=metrics, direction=args.direction, title=args.title,
                    metric_name=args.metric_name or (args.metrics.stem if args.metrics else None))
    print(f"wrote {output}")
    return 0


def _read_metrics(path: Path) -> dict[str, float]:
    from ..errors import DataError

    try:
        metrics = json.loads(path.read_text())
    except FileNotFoundError:
        raise DataError(f"no metrics file at {path}") from None
    except json.JSONDecodeError as error:
        raise DataError(f"{path} is not valid JSON: {error}") from None
    if not isinstance(metrics, dict):
        raise DataError(f'{path} must hold a JSON object {{"subtask": number, ...}}, got {type(metrics).__name__}')
    return metrics
