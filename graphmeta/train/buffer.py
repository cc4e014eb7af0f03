"""`TaskBuffer`: the bounded memory of past tasks an online meta-learner trains on.

Tasks arrive one at a time; the buffer keeps at most ``capacity`` of them, chosen by its policy:

- ``reservoir`` (Vitter's algorithm R): arrival ``i`` (0-based) is stored while there is room;
  after that it replaces slot ``j ~ U{0, ..., i}`` when ``j < capacity`` and is dropped
  otherwise. After ``n`` arrivals every one of them is in the buffer with the same
  probability ``capacity / n``, so a meta-batch drawn uniformly from the buffer is a uniform
  sample of *all* tasks seen so far, and its meta-loss is an unbiased estimate of FTML's
  follow-the-leader objective ``(1/n) sum_{i<n} L_i(theta)`` however long the stream. This is
  the default: it is what FTML optimises, with memory bounded.
- ``fifo``: the latest ``capacity`` tasks (a ring buffer). The objective becomes a sliding
  window ``(1/C) sum_{n-C <= i < n} L_i(theta)``: it follows a drifting task distribution,
  at the price of forgetting older tasks, which a stationary stream does not need.

Meta-batches are ``min(B, size)`` distinct stored tasks, uniformly at random. The random
choices of arrival ``i`` and of meta-batch ``d`` come from ``SeedSequence((seed, 2, i))`` and
``SeedSequence((seed, 3, d))``, so the buffer's state is its tensors and two counters, and a
buffer restored from :meth:`TaskBuffer.state_dict` continues exactly as the original would.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

import numpy as np
import torch

from ..data import DenseGraphs, Split, TaskBatch
from ..errors import CheckpointError, DataError, TrainingError
from ..taskgraph import TaskGraph
from ..validation import NonNegativeInt, OneOf, PositiveInt, checked
from .episode_sampler import derive_seed

BUFFER_POLICIES = ("reservoir", "fifo")
SLOT_STREAM, BATCH_STREAM = 2, 3  # 0 and 1 are the EpisodeSampler's

Tree = dict[str, Any]  # nested dicts of tensors with a leading task axis


@checked
class TaskBuffer:
    """At most ``capacity`` tasks of ``graph``, kept by ``policy`` (``reservoir`` or ``fifo``)."""

    def __init__(self, graph: TaskGraph, capacity: PositiveInt,
                 policy: Annotated[str, OneOf(BUFFER_POLICIES)] = "reservoir", seed: NonNegativeInt = 0) -> None:
        self.graph = graph
        self.capacity = capacity
        self.policy = policy
        self.seed = seed
        self.seen = 0
        self.draws = 0
        self._tasks: Tree | None = None

    def __len__(self) -> int:
        return 0 if self._tasks is None else self._tasks["support"]["values"].shape[0]

    def __repr__(self) -> str:
        return f"TaskBuffer({len(self)}/{self.capacity} tasks, policy={self.policy!r}, seen={self.seen})"

    def add(self, tasks: TaskBatch) -> None:
        """Offer every task of ``tasks`` to the buffer, in order, as arrivals ``seen, seen + 1, ...``."""
        self._check(tasks)
        for t in range(tasks.num_tasks):
            task = _tree(tasks.select([t]))
            if self._tasks is None:
                self._tasks = task
            elif len(self) < self.capacity:
                self._tasks = _map(lambda stored, new: torch.cat([stored, new]), self._tasks, task)
            else:
                slot = self._slot()
                if slot is not None:
                    _map(lambda stored, new: stored.index_copy_(0, torch.tensor([slot], device=stored.device), new),
                         self._tasks, task)
            self.seen += 1

    def sample(self, num_tasks: int) -> TaskBatch:
        """A meta-batch of ``min(num_tasks, len(self))`` distinct stored tasks, uniformly at random."""
        if self._tasks is None:
            raise TrainingError("cannot draw a meta-batch from an empty task buffer: add a task first")
        rng = np.random.default_rng(derive_seed(self.seed, BATCH_STREAM, self.draws))
        self.draws += 1
        chosen = torch.as_tensor(rng.choice(len(self), min(num_tasks, len(self)), replace=False))
        return self._batch(_map(lambda stored: stored[chosen.to(stored.device)], self._tasks))

    def tasks(self) -> TaskBatch:
        """A copy of every stored task, in slot order."""
        if self._tasks is None:
            raise TrainingError("the task buffer is empty")
        return self._batch(_map(torch.clone, self._tasks))

    def state_dict(self) -> dict[str, Any]:
        """The stored tasks (tensors) and counters: loadable with ``torch.load(weights_only=True)``."""
        return {"capacity": self.capacity, "policy": self.policy, "seed": self.seed, "seen": self.seen,
                "draws": self.draws, "tasks": self._tasks}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for key in ("capacity", "policy", "seed"):
            if state[key] != getattr(self, key):
                raise CheckpointError(f"the checkpoint's task buffer has {key} {state[key]!r}, this run "
                                      f"{getattr(self, key)!r}: resume with the run's own settings")
        self.seen, self.draws = int(state["seen"]), int(state["draws"])
        self._tasks = state["tasks"]

    def _slot(self) -> int | None:
        """Where arrival ``seen`` goes once the buffer is full (``None``: dropped)."""
        if self.policy == "fifo":
            return self.seen % self.capacity
        slot = int(np.random.default_rng(derive_seed(self.seed, SLOT_STREAM, self.seen)).integers(self.seen + 1))
        return slot if slot < self.capacity else None

    def _check(self, tasks: TaskBatch) -> None:
        if tasks.graph is not self.graph and tasks.graph != self.graph:
            raise DataError(f"tasks of graph {tasks.graph.name!r} offered to a buffer of graph {self.graph.name!r}")
        if self._tasks is not None:
            shots = tuple(self._tasks[side]["values"].shape[1] for side in ("support", "query"))
            if (tasks.shots, tasks.query_shots) != shots:
                raise DataError(f"tasks with {tasks.shots} support / {tasks.query_shots} query shots offered to "
                                f"a buffer of tasks with {shots[0]} / {shots[1]}: an online run keeps "
                                "train.shots and train.query_shots fixed")

    def _batch(self, tree: Tree) -> TaskBatch:
        return TaskBatch(self.graph, _split(tree["support"]), _split(tree["query"]))


def _tree(batch: TaskBatch) -> Tree:
    def side(split: Split) -> Tree:
        graphs = {name: {"x": g.x, "adjacency": g.adjacency, "mask": g.mask} for name, g in split.graphs.items()}
        return {"features": split.features, "values": split.values, "observed": split.observed, "graphs": graphs}

    return _map(torch.clone, {"support": side(batch.support), "query": side(batch.query)})


def _split(tree: Tree) -> Split:
    graphs = {name: DenseGraphs(**g) for name, g in tree["graphs"].items()}
    return Split(tree["features"], tree["values"], tree["observed"], graphs)


def _map(function: Callable[..., Any], *trees: Any) -> Any:
    """``function`` applied leaf by leaf to trees of the same nested-dict shape."""
    if isinstance(trees[0], dict):
        return {key: _map(function, *(tree[key] for tree in trees)) for key in trees[0]}
    return function(*trees)
