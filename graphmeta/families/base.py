"""`TaskFamily`: a distribution over tasks of one task graph, sampled as :class:`TaskBatch` episodes.

A family draws every task in two steps, each from its own random stream:

1. ``draw_params(num_tasks, rng)``: the task parameters (one set per task: a sinusoid's
   amplitude and phase, a Bayesian network's CPDs, ...);
2. ``draw_examples(params, rows, rng)``: ``rows`` *joint* draws of the whole graph per task,
   already packed as a :class:`~graphmeta.data.Split` (``GraphLayout`` columns).

``sample`` cuts the rows into ``shots`` support and ``query`` query examples. ``draw_tasks``
is step 1 of one call together with its example stream, so a family's other forms of the same
draws (``sample_dataframes``) start where ``sample`` does.

Seeding. The streams of one call come from ``numpy.random.SeedSequence((family seed, split,
seed))`` (the split as its index in :data:`SPLITS`), spawned into a parameter stream and an
example stream. Hence the same ``(family seed, split, seed)`` gives the same tasks, for any
number of shots; the task parameters do not depend on the shots at all, so
``task_params(T, split, seed)`` are exactly the parameters behind ``sample(T, ..., split,
seed)``; and train, val and test tasks come from disjoint seed sequences. ``seed=None`` takes
the split's next unused seed, ``0, 1, 2, ...`` in call order, so successive calls give new
tasks and a fresh family replays the same sequence.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch

from ..data import DenseGraphs, Split, TaskBatch
from ..errors import ConfigError, closest
from ..graph import TaskGraph
from ..layout import GraphLayout

SPLITS = ("train", "val", "test")


class TaskFamily(ABC):
    """A distribution over tasks of ``graph``; subclasses define ``draw_params`` and ``draw_examples``.

    ``config`` holds the constructor arguments (shown by ``repr``); ``card`` is the dataset
    card the family came from (:func:`~graphmeta.load_family`), if any.
    """

    card: Any = None

    def __init__(self, graph: TaskGraph, seed: int, config: Mapping[str, Any]) -> None:
        self.graph = graph.validate()
        self.seed = check_seed("family seed", seed)
        self.config = {**config, "seed": self.seed}
        self.layout = GraphLayout(graph)
        self._next_seed = dict.fromkeys(SPLITS, 0)

    @abstractmethod
    def draw_params(self, num_tasks: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
        """The parameters of ``num_tasks`` tasks, as arrays with a leading task axis."""

    @abstractmethod
    def draw_examples(self, params: dict[str, np.ndarray], rows: int, rng: np.random.Generator) -> Split:
        """``rows`` joint draws of the whole graph for every task of ``params``, all observed."""

    def sample(self, num_tasks: int, shots: int, query: int, split: str = "train",
               seed: int | None = None) -> TaskBatch:
        """``num_tasks`` tasks with ``shots`` support and ``query`` query examples per node.

        Every example is one joint draw of the graph (a child's input is its own features and
        its parents' values in the same row). Tensors are on the CPU in the default dtype.
        """
        check_count("shots", shots)
        check_count("query", query)
        params, examples_rng = self.draw_tasks(num_tasks, split, seed)
        joint = self.draw_examples(params, shots + query, examples_rng)
        return TaskBatch(self.graph, _rows(joint, slice(0, shots)), _rows(joint, slice(shots, shots + query)))

    def task_params(self, num_tasks: int, split: str = "train", seed: int = 0) -> dict[str, np.ndarray]:
        """The true parameters of the tasks that ``sample(num_tasks, ..., split, seed)`` draws."""
        return self.draw_tasks(num_tasks, split, check_seed("seed", seed))[0]

    def draw_tasks(self, num_tasks: int, split: str,
                   seed: int | None) -> tuple[dict[str, np.ndarray], np.random.Generator]:
        """The parameters of the ``num_tasks`` tasks of one call and the stream their examples come
        from: what ``sample`` uses, so that other forms of the same draws (tables) match it."""
        check_count("num_tasks", num_tasks)
        params_rng, examples_rng = self.generators(split, seed)
        return self.draw_params(num_tasks, params_rng), examples_rng

    def generators(self, split: str, seed: int | None) -> tuple[np.random.Generator, np.random.Generator]:
        """The ``(params, examples)`` random streams of one call (see the module docstring)."""
        if split not in SPLITS:
            raise ConfigError(f"unknown split {split!r}{closest(str(split), SPLITS)}; choose one of {SPLITS}")
        if seed is None:
            seed = self._next_seed[split]
            self._next_seed[split] += 1
        sequence = np.random.SeedSequence([self.seed, SPLITS.index(split), check_seed("seed", seed)])
        params, examples = sequence.spawn(2)
        return np.random.default_rng(params), np.random.default_rng(examples)

    def __repr__(self) -> str:
        options = ", ".join(f"{key}={value!r}" for key, value in self.config.items())
        return f"{type(self).__name__}({options})"


def family_rng(seed: int) -> np.random.Generator:
    """The stream of a family's fixed draws (structure, shared weights): disjoint from every task stream."""
    return np.random.default_rng(np.random.SeedSequence([check_seed("family seed", seed), len(SPLITS)]))


def check_seed(name: str, seed: Any) -> int:
    """``seed`` as a non-negative ``int``, or a :class:`ConfigError` naming it."""
    if isinstance(seed, (int, np.integer)) and not isinstance(seed, bool) and seed >= 0:
        return int(seed)
    raise ConfigError(f"{name} must be a non-negative integer, got {seed!r}")


def check_count(name: str, value: Any, minimum: int = 1) -> int:
    """``value`` as an ``int >= minimum``, or a :class:`ConfigError` naming it."""
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool) and value >= minimum:
        return int(value)
    raise ConfigError(f"{name} must be an integer >= {minimum}, got {value!r}")


def check_positive(name: str, value: Any, allow_zero: bool = False) -> float:
    """``value`` as a finite ``float > 0`` (``>= 0`` with ``allow_zero``), or a :class:`ConfigError`."""
    number = isinstance(value, (int, float, np.number)) and not isinstance(value, bool) and np.isfinite(value)
    if number and (value > 0 or (allow_zero and value == 0)):
        return float(value)
    bound = ">= 0" if allow_zero else "> 0"
    raise ConfigError(f"{name} must be a finite number {bound}, got {value!r}")


def check_choice(name: str, value: Any, choices: Sequence[str]) -> str:
    """``value`` if it is one of ``choices``, else a :class:`ConfigError` with the closest one."""
    if value in choices:
        return value
    raise ConfigError(f"unknown {name} {value!r}{closest(str(value), choices)}; choose one of {tuple(choices)}")


def task_latents(rng: np.random.Generator, num_tasks: int, groups: int, dim: int, shared: bool) -> np.ndarray:
    """``[T, groups, dim]`` standard-normal task latents: one per task repeated over groups if ``shared``."""
    if shared:
        return np.repeat(rng.standard_normal((num_tasks, 1, dim)), groups, axis=1)
    return rng.standard_normal((num_tasks, groups, dim))


def padded_parents(graph: TaskGraph, parents: Mapping[str, Sequence[str]]) -> tuple[np.ndarray, np.ndarray]:
    """``(index [N, P], present [N, P])``: each node's parents as indices into ``graph.names``.

    ``parents`` fixes the order of each node's parents (for example pgmpy's evidence order);
    rows are padded to the largest in-degree ``P`` with index 0 and ``present`` False.
    """
    position = {name: i for i, name in enumerate(graph.names)}
    width = max((len(parents[name]) for name in graph.names), default=0)
    index = np.zeros((len(graph), width), dtype=np.int64)
    present = np.zeros((len(graph), width), dtype=bool)
    for row, name in enumerate(graph.names):
        columns = [position[parent] for parent in parents[name]]
        index[row, : len(columns)] = columns
        present[row, : len(columns)] = True
    return index, present


def level_indices(graph: TaskGraph) -> list[np.ndarray]:
    """The topological levels of ``graph`` as index arrays into ``graph.names``, for ancestral sampling."""
    position = {name: i for i, name in enumerate(graph.names)}
    return [np.array([position[name] for name in level], dtype=np.int64) for level in graph.levels()]


def to_tensor(array: np.ndarray) -> torch.Tensor:
    """A numpy array as a CPU tensor of the default float dtype."""
    return torch.as_tensor(array, dtype=torch.get_default_dtype())


def observed_split(
    features: np.ndarray, values: np.ndarray | torch.Tensor, num_nodes: int,
    graphs: Mapping[str, DenseGraphs] | None = None,
) -> Split:
    """A :class:`Split` of packed ``features [T, S, F]`` and ``values [T, S, W]``, every node observed."""
    values = values if isinstance(values, torch.Tensor) else to_tensor(values)
    observed = torch.ones(*values.shape[:2], num_nodes, dtype=torch.bool)
    return Split(to_tensor(features), values, observed, dict(graphs or {}))


def _rows(split: Split, rows: slice) -> Split:
    cut: dict[int, DenseGraphs] = {}  # GNN nodes that read the same input graphs keep sharing them
    for g in split.graphs.values():
        if id(g) not in cut:
            cut[id(g)] = DenseGraphs(g.x[:, rows].contiguous(), g.adjacency[:, rows].contiguous(),
                                     g.mask[:, rows].contiguous())
    return Split(
        split.features[:, rows].contiguous(),
        split.values[:, rows].contiguous(),
        split.observed[:, rows].contiguous(),
        {name: cut[id(g)] for name, g in split.graphs.items()},
    )
