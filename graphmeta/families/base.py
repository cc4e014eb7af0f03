"""`TaskFamily`: a distribution over tasks of one task graph, sampled as :class:`TaskBatch` episodes.

A family draws every task in two steps, each from its own random stream:

1. ``draw_params(num_tasks, rng)``: the task parameters (one set per task: a sinusoid's
   amplitude and phase, a Bayesian network's CPDs, ...);
2. ``draw_examples(params, rows, rng)``: ``rows`` *joint* draws of the whole graph per task,
   already packed as a :class:`~graphmeta.data.Split` (``ColumnLayout`` columns).

``sample`` cuts the rows into ``shots`` support and ``query`` query examples; with one support
size per task (a list ``shots``, as a range of sizes in :mod:`graphmeta.train.episode_sampler` gives),
the support keeps the padded ``[T, max K_t]`` layout and task ``t``'s rows past ``K_t`` are
unobserved (values and features 0), so a batch can mix sizes. ``draw_tasks``
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

Arguments. Every family keeps each constructor argument as the attribute of the same name (the
convention of scikit-learn's estimators), so ``config``, the arguments in YAML form, is read off
the signature; constructors and the sampling methods are ``@checked`` (:mod:`graphmeta.validation`),
so a wrong argument is a :class:`~graphmeta.errors.ConfigError` naming it.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from typing import Annotated, Any

import numpy as np
import torch

from ..data import DenseGraphs, Split, TaskBatch
from ..errors import ConfigError
from ..learners import LearnerSpec, learner_to_dict
from ..registry import Registry
from ..taskgraph import ColumnLayout, TaskGraph
from ..validation import NonNegativeInt, OneOf, PositiveInt, checked, parameters

SPLITS = ("train", "val", "test")
SplitName = Annotated[str, OneOf(SPLITS)]


class TaskFamily(ABC):
    """A distribution over tasks of ``graph``; subclasses define ``draw_params`` and ``draw_examples``,
    and keep every constructor argument as the attribute of the same name.

    ``card`` is the dataset card the family came from (:func:`~graphmeta.load_family`), if any.
    """

    card: Any = None

    def __init__(self, graph: TaskGraph, seed: int) -> None:
        self.graph = graph.validate()
        self.seed = seed
        self.layout = ColumnLayout(graph)
        self._next_seed = dict.fromkeys(SPLITS, 0)
        self._observable = torch.tensor([self.graph.subtask(name).observed for name in self.graph.names])
        self._latent_values = torch.zeros(self.layout.value_width, dtype=torch.bool)  # the latent nodes' columns
        for name in self.graph.latent:
            self._latent_values[self.layout.value_slices[name]] = True

    @property
    def config(self) -> dict[str, Any]:
        """The constructor arguments in YAML form (tuples as lists, a learner spec as a mapping),
        read off the signature: ``type(family)(**family.config)`` builds the same family."""
        return {name: _yaml_form(getattr(self, name)) for name in parameters(type(self))}

    def fixed_tasks(self, split: SplitName) -> tuple[int, int] | None:
        """``(tasks, most rows of one task)`` of ``split`` where the family holds a fixed set of tasks
        of fixed sizes (a table): an evaluation then takes every task of the split and every row
        of each; ``None`` (here) where every task is drawn anew with as many examples as asked."""
        return None

    def hide_latent(self, split: Split) -> Split:
        """``split`` with the latent nodes of ``graph`` hidden: their value columns 0 and never observed.

        ``draw_examples`` draws a latent node's values like any other's, since its children read
        them, and hides them only here, so a learner is given the observed nodes' labels alone.
        """
        if self._observable.all():
            return split
        return Split(split.features, torch.where(self._latent_values, 0.0, split.values),
                     split.observed & self._observable, split.graphs)

    @abstractmethod
    def draw_params(self, num_tasks: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
        """The parameters of ``num_tasks`` tasks, as arrays with a leading task axis."""

    @abstractmethod
    def draw_examples(self, params: dict[str, np.ndarray], rows: int, rng: np.random.Generator) -> Split:
        """``rows`` joint draws of the whole graph for every task of ``params``, all observed."""

    @checked
    def sample(self, num_tasks: PositiveInt, shots: PositiveInt | Sequence[PositiveInt], query: PositiveInt,
               split: SplitName = "train", seed: NonNegativeInt | None = None) -> TaskBatch:
        """``num_tasks`` tasks with ``shots`` support (one count, or one per task) and ``query``
        query examples per node.

        Every example is one joint draw of the graph (a child's input is its own features and
        its parents' values in the same row). Tensors are on the CPU in the default dtype.
        """
        sizes = support_sizes_per_task(shots, num_tasks, f"{type(self).__name__}.sample()")
        widest = max(sizes)
        params, examples_rng = self.draw_tasks(num_tasks, split, seed)
        joint = self.draw_examples(params, widest + query, examples_rng)
        support = _rows(joint, slice(0, widest))
        if min(sizes) < widest:
            support = _first_rows(support, torch.tensor(sizes))
        return TaskBatch(self.graph, support, _rows(joint, slice(widest, widest + query)))

    @checked
    def task_params(self, num_tasks: PositiveInt, split: SplitName = "train",
                    seed: NonNegativeInt = 0) -> dict[str, np.ndarray]:
        """The true parameters of the tasks that ``sample(num_tasks, ..., split, seed)`` draws."""
        return self.draw_tasks(num_tasks, split, seed)[0]

    @checked
    def draw_tasks(self, num_tasks: PositiveInt, split: SplitName,
                   seed: NonNegativeInt | None) -> tuple[dict[str, np.ndarray], np.random.Generator]:
        """The parameters of the ``num_tasks`` tasks of one call and the stream their examples come
        from: what ``sample`` uses, so that other forms of the same draws (tables) match it."""
        params_rng, examples_rng = self.generators(split, seed)
        return self.draw_params(num_tasks, params_rng), examples_rng

    @checked
    def generators(self, split: SplitName,
                   seed: NonNegativeInt | None) -> tuple[np.random.Generator, np.random.Generator]:
        """The ``(params, examples)`` random streams of one call (see the module docstring)."""
        if seed is None:
            seed = self._next_seed[split]
            self._next_seed[split] += 1
        sequence = np.random.SeedSequence([self.seed, SPLITS.index(split), seed])
        params, examples = sequence.spawn(2)
        return np.random.default_rng(params), np.random.default_rng(examples)

    def __repr__(self) -> str:
        options = ", ".join(f"{key}={value!r}" for key, value in self.config.items())
        return f"{type(self).__name__}({options})"


#: The task families that dataset cards name (``family: sinusoid``), each registered by its module
#: under its ``name`` (``@FAMILIES.register``).
FAMILIES: Registry[type[TaskFamily]] = Registry("task family")


def family_rng(seed: int) -> np.random.Generator:
    """The stream of a family's fixed draws (structure, shared weights): disjoint from every task stream."""
    return np.random.default_rng(np.random.SeedSequence([seed, len(SPLITS)]))


def _yaml_form(value: Any) -> Any:
    """An argument as YAML writes it: tuples as lists, a learner spec as its mapping."""
    if isinstance(value, LearnerSpec):
        return learner_to_dict(value)
    if isinstance(value, (tuple, list)):
        return [_yaml_form(item) for item in value]
    return value


def task_latents(rng: np.random.Generator, num_tasks: int, groups: int, dim: int, shared: bool) -> np.ndarray:
    """``[T, groups, dim]`` standard-normal task latents: one per task repeated over groups if ``shared``."""
    if shared:
        return np.repeat(rng.standard_normal((num_tasks, 1, dim)), groups, axis=1)
    return rng.standard_normal((num_tasks, groups, dim))


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


def support_sizes_per_task(shots: int | Sequence[int], num_tasks: int, where: str) -> list[int]:
    """``shots`` as one support size per task: a count repeated, or a list of ``num_tasks`` sizes."""
    sizes = [shots] * num_tasks if isinstance(shots, int) else list(shots)
    if len(sizes) != num_tasks:
        raise ConfigError(f"{where}: shots lists {len(sizes)} support sizes for {num_tasks} tasks; give one per "
                          "task, or one count for all")
    return sizes


def _first_rows(split: Split, sizes: torch.Tensor) -> Split:
    """``split`` with task ``t``'s rows from ``sizes[t]`` on unobserved, their values and features 0."""
    dropped = (torch.arange(split.shots) >= sizes[:, None])[..., None]  # [T, K, 1]
    return Split(split.features.masked_fill(dropped, 0), split.values.masked_fill(dropped, 0),
                 split.observed & ~dropped, split.graphs)


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
