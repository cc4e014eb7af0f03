r"""`EpisodeSampler`: the stream of meta-batches a run trains on, and its fixed evaluation tasks.

Meta-batch ``i`` is ``family.sample(B, shots, query, "train", seed=s_i)`` with
``s_i = SeedSequence((run seed, 0, i))``; the fixed tasks of split ``split`` use
``SeedSequence((run seed, 1, index of split))``. So the whole stream is a function of the run
seed and the number of batches drawn, which is the sampler's entire state: a resumed run draws
exactly the batches the uninterrupted run would have. In a data-parallel run every process draws
the same meta-batch and keeps its ``share`` of the tasks (:mod:`.distributed`), so the meta-batches
are the same for any number of processes.

**Support sizes.** ``shots`` is a count ``K`` (every task has ``K`` support examples) or a range
``(low, high)``: then every task of a meta-batch draws its own size, log-uniformly,

.. math::
    K_t = \min\big(\lfloor \exp(\log low + u_t (\log(high + 1) - \log low)) \rfloor,\ high\big),
    \qquad u_t \sim U(0, 1),

so :math:`P(K) \propto \log((K + 1) / K)`: each doubling of the support size gets the same share
of tasks (as many tasks have 1 example as have 100 to 200 of the range ``(1, 200)``). The
batch keeps its padded ``[T, max K_t]`` layout, the rows past ``K_t`` unobserved (see
:meth:`graphmeta.families.TaskFamily.sample`), so one batch mixes sizes. The sizes of meta-batch
``i`` come from ``SeedSequence((run seed, 0, i, 1))``; the fixed tasks spread theirs evenly over
the range (:math:`u_t = (t + 1/2) / T`), so validation weighs every size alike at every validation.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Any, Protocol, Union

import numpy as np

from ..data import TaskBatch
from ..errors import CheckpointError
from ..taskgraph import TaskGraph
from ..validation import Ordered, PositiveInt

SPLITS = ("train", "val", "test")
TRAIN_STREAM, FIXED_STREAM = 0, 1
#: The extra entropy of a meta-batch's support sizes, after its task seed's.
SIZES_STREAM = 1

#: A support size: a count ``K``, or a range ``(low, high)`` that each task draws its own ``K`` from.
Shots = Union[PositiveInt, Annotated[tuple[PositiveInt, PositiveInt], Ordered()]]  # noqa: UP007 (a runtime alias the validator reads)


class Family(Protocol):
    """What a trainer needs of a task family (see :mod:`graphmeta.families`)."""

    graph: TaskGraph

    def sample(self, num_tasks: int, shots: int | Sequence[int], query: int, split: str = "train",
               seed: int | None = None) -> TaskBatch: ...


class EpisodeSampler:
    """Meta-batches of ``meta_batch_size`` tasks from ``family``, reproducible from ``seed``; ``shots``
    a count or a ``(low, high)`` range (see the module docstring); ``share``: the tasks of every
    meta-batch this process trains on (a data-parallel run), ``None``: all."""

    def __init__(self, family: Family, meta_batch_size: int, shots: int | tuple[int, int], query_shots: int,
                 seed: int, share: range | None = None) -> None:
        self.family = family
        self.meta_batch_size = meta_batch_size
        self.shots = shots
        self.query_shots = query_shots
        self.seed = seed
        self.share = share
        self.drawn = 0

    def next(self) -> TaskBatch:
        """The next training meta-batch (this process's share of it)."""
        entropy = (self.seed, TRAIN_STREAM, self.drawn)
        fractions = np.random.default_rng(derive_seed(*entropy, SIZES_STREAM)).random(self.meta_batch_size)
        batch = self.family.sample(self.meta_batch_size, support_sizes(self.shots, fractions), self.query_shots,
                                   "train", seed=derive_seed(*entropy))
        self.drawn += 1
        return batch if self.share is None else batch.select(list(self.share))

    def fixed(self, split: str, num_tasks: int, shots: int | tuple[int, int] | None = None,
              query: int | None = None) -> TaskBatch:
        """``num_tasks`` tasks of ``split``, the same ones for a seed whenever they are asked for,
        with :meth:`fixed_shots` support examples and ``query`` query examples (default: the sampler's)."""
        sizes = self.fixed_shots(num_tasks, shots)
        return self.family.sample(num_tasks, sizes, self.query_shots if query is None else query, split,
                                  seed=derive_seed(self.seed, FIXED_STREAM, SPLITS.index(split)))

    def fixed_shots(self, num_tasks: int, shots: int | tuple[int, int] | None = None) -> int | list[int]:
        """The support sizes :meth:`fixed` asks for: ``shots`` (default: the sampler's), a range spread
        evenly over the tasks (:func:`support_sizes`)."""
        fractions = (np.arange(num_tasks) + 0.5) / num_tasks
        return support_sizes(self.shots if shots is None else shots, fractions)

    def state_dict(self) -> dict[str, Any]:
        return {"seed": self.seed, "drawn": self.drawn}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state["seed"] != self.seed:
            raise CheckpointError(f"the checkpoint's task stream was seeded with {state['seed']}, "
                                  f"this run with {self.seed}: resume with the run's own seed")
        self.drawn = int(state["drawn"])


def support_sizes(shots: int | tuple[int, int], fractions: np.ndarray) -> int | list[int]:
    """What ``family.sample`` takes as ``shots``: the count ``shots`` itself, or for a range
    ``(low, high)`` one size per task, at the quantiles ``fractions`` in ``[0, 1)`` of the
    log-uniform distribution of the module docstring."""
    if isinstance(shots, int):
        return shots
    low, high = shots
    sizes = np.floor(np.exp(np.log(low) + fractions * (np.log(high + 1) - np.log(low))))
    return np.clip(sizes, low, high).astype(int).tolist()


def derive_seed(*entropy: int) -> int:
    """A 32-bit seed from ``entropy`` (NumPy ``SeedSequence``): distinct inputs give unrelated seeds."""
    return int(np.random.SeedSequence(list(entropy)).generate_state(1)[0])
