"""Define a task graph by hand, check it, save it as YAML, load it back and draw it.

A delivery-time task decomposed into subtasks: the weather (a 3-class classification from 4
sensor readings) and the road load (a regression from 2 features) both feed traffic (a
2-class classification), which with the weather feeds the delay (2 values). A fifth subtask
scores the parcel's packaging from a small graph of its parts, with a GNN learner.

    python examples/define_task_graph.py [OUTPUT_DIR]    # default: runs/example
"""

from __future__ import annotations

import sys
from pathlib import Path

from graphmeta import GNN, MLP, TaskGraph, draw


def build() -> TaskGraph:
    return (
        TaskGraph("delivery")
        .add_subtask("weather", in_dim=4, kind="classification", num_classes=3, learner=MLP(hidden=(32,)))
        .add_subtask("road_load", in_dim=2)
        .add_subtask("packaging", in_dim=6, learner=GNN(hidden=16, layers=2))
        .add_subtask("traffic", in_dim=1, kind="classification", num_classes=2)
        .add_subtask("delay", out_dim=2)
        .add_dependency("weather", "traffic")
        .add_dependency("road_load", "traffic")
        .add_dependency("weather", "delay")
        .add_dependency("traffic", "delay")
        .add_dependency("packaging", "delay")
    )


def main(out: Path) -> None:
    graph = build().validate()
    print(graph.summary())
    print(f"\nlevels (one batched call each): {graph.levels()}")
    print(f"delay sees {graph.input_width('delay')} input columns: weather one-hot (3), traffic one-hot (2), "
          "packaging (1)")

    path = graph.save(out / "delivery.yaml")
    assert TaskGraph.load(path) == graph, "the YAML round trip must be lossless"
    print(f"\nsaved and reloaded {path}")

    picture = out / "delivery.png"
    draw(graph, picture)
    print(f"drew {picture}")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path("runs/example"))
