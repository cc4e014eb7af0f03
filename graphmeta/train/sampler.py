"""`EpisodeSampler`: the stream of meta-batches a run trains on, and its fixed evaluation tasks.

Meta-batch ``i`` is ``family.sample(B, shots, query, "train", seed=s_i)`` with
``s_i = SeedSequence((run seed, 0, i))``; the fixed tasks of split ``split`` use
``SeedSequence((run seed, 1, index of split))``. So the whole stream is a function of the run
seed and the number of batches drawn, which is the sampler's entire state: a resumed run draws
exactly the batches the uninterrupted run would have.
"""

from __future__ import annotations

from typing import Any, Protocol

import numpy as np

from ..data import TaskBatch
from ..errors import CheckpointError
from ..taskgraph import TaskGraph

SPLITS = ("train", "val", "test")
TRAIN_STREAM, FIXED_STREAM = 0, 1


class Family(Protocol):
    """What a trainer needs of a task family (see :mod:`graphmeta.families`)."""

    graph: TaskGraph

    def sample(self, num_tasks: int, shots: int, query: int, split: str = "train",
               seed: int | None = None) -> TaskBatch: ...


class EpisodeSampler:
    """Meta-batches of ``meta_batch_size`` tasks from ``family``, reproducible from ``seed``."""

    def __init__(self, family: Family, meta_batch_size: int, shots: int, query_shots: int, seed: int) -> None:
        self.family = family
        self.meta_batch_size = meta_batch_size
        self.shots = shots
        self.query_shots = query_shots
        self.seed = seed
        self.drawn = 0

    def next(self) -> TaskBatch:
        """The next training meta-batch."""
        batch = self.family.sample(self.meta_batch_size, self.shots, self.query_shots, "train",
                                   seed=derive_seed(self.seed, TRAIN_STREAM, self.drawn))
        self.drawn += 1
        return batch

    def fixed(self, split: str, num_tasks: int) -> TaskBatch:
        """``num_tasks`` tasks of ``split``, the same ones for a seed whenever they are asked for."""
        return self.family.sample(num_tasks, self.shots, self.query_shots, split,
                                  seed=derive_seed(self.seed, FIXED_STREAM, SPLITS.index(split)))

    def state_dict(self) -> dict[str, Any]:
        return {"seed": self.seed, "drawn": self.drawn}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state["seed"] != self.seed:
            raise CheckpointError(f"the checkpoint's task stream was seeded with {state['seed']}, "
                                  f"this run with {self.seed}: resume with the run's own seed")
        self.drawn = int(state["drawn"])


def derive_seed(*entropy: int) -> int:
    """A 32-bit seed from ``entropy`` (NumPy ``SeedSequence``): distinct inputs give unrelated seeds."""
    return int(np.random.SeedSequence(list(entropy)).generate_state(1)[0])
