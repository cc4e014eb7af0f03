"""A run's recorded task graph: the ``graph.yaml`` its model was built on, which a run that
already holds a checkpoint is rebuilt on (``from_run``, ``graphmeta evaluate``, ``--resume``).

The family of a run's config does not always give the graph again: a graph learned from a table
(no ``graph`` in a table family's section) depends on the table, on pgmpy's version and its
search; a card or a class of yours may have changed since. So a table family is rebuilt on the
recorded graph itself, and any other family must give the recorded graph again, or the run is
refused with what differs (a :class:`~graphmeta.errors.CheckpointError`), never trained or
evaluated on another decomposition than its checkpoints.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from ..errors import CheckpointError
from ..taskgraph import TaskGraph
from ..taskgraph.comparison import graph_differences
from .config import RunConfig
from .run_dir import RunDirectory


def recorded_graph_file(config: RunConfig) -> Path | None:
    """The ``graph.yaml`` of the run that ``config`` names (``train.run_dir / train.name``) when that
    run holds a checkpoint; ``None`` for a new run (or one that never checkpointed)."""
    if config.train.name is None:
        return None
    run = RunDirectory(Path(config.train.run_dir) / config.train.name)
    has_checkpoint = run.last.is_file() or run.best.is_file()
    return run.graph if has_checkpoint and run.graph.is_file() else None


def on_recorded_graph(config: RunConfig, graph_file: Path) -> RunConfig:
    """``config`` whose family is built on the recorded ``graph_file``: a table family takes it as
    its ``graph`` (so a learned graph is not learned again); any other family is unchanged."""
    if "data" not in config.family:
        return config
    return dataclasses.replace(config, family={**config.family, "graph": str(graph_file)})


def check_recorded_graph(graph: TaskGraph, graph_file: Path) -> None:
    """A :class:`CheckpointError` naming what differs when the family's ``graph`` is not the run's
    recorded ``graph_file``; nothing when they are the same decomposition."""
    differences = graph_differences(TaskGraph.load(graph_file).to_dict(), graph.to_dict(),
                                    "the recorded graph", "the family's")
    if differences:
        raise CheckpointError(f"the family of run {graph_file.parent} now builds another task graph than the one "
                              f"its checkpoints were trained on ({graph_file}): {'; '.join(differences)}. Restore "
                              "the family (its card, class or data) the run was trained with, or train a new run")
