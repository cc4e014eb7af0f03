"""Episodes of tasks of different sizes, as a table's tasks are (:class:`~graphmeta.families.DataFrameFamily`).

Episodes fit the task. Real tables are mostly small groups (most schools of a school table have
a handful of pupils), so an episode never asks a task for more rows than it has: task ``t`` of
``n_t`` rows gives, drawn without replacement,

.. math::
    K_t = \\min(K, n_t - 1) \\text{ support rows}, \\qquad Q_t = \\min(Q, n_t - K_t) \\text{ query rows},

at least one of each, and the batch pads them to ``[T, max K_t]`` and ``[T, max Q_t]`` with the
rows past a task's own unobserved (the engine's ``observed`` mask), as support sizes of a range
are padded (:meth:`TaskFamily.sample`). Every loss of a (task, node) is the mean over that task's
own rows, so padding weighs nothing; how tasks weigh against each other in the meta-loss is the
model's ``loss_weighting`` (:class:`~graphmeta.GraphMetaLearner`). A task with fewer than two rows
(no room for a query row) is left out, with one warning that counts them
(:func:`~graphmeta.families.table_source.large_enough_tasks`).

Padding costs time in proportion to the widest task of a batch, so training batches are
*bucketed*: the training tasks stand on a circle by size (smallest to largest on the even
ranks, back down on the odd ones, so neighbours differ by at most two ranks), and a meta-batch
is ``T`` neighbours from a seeded start. Every task is as likely to be drawn as any other, and
a batch holds tasks of about one size. Held-out splits (``val``, ``test``) are drawn as a seeded
permutation instead, so a validation or test set smaller than its split is representative of
every size; their tasks are ordered by size within the draw, so the chunks an evaluation
adapts at once are bucketed too.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from ..data import Split
from .base import to_tensor


def size_circle(pool: np.ndarray, row_counts: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The tasks of ``pool`` by size (``row_counts[task]``), ties in a random order, the even ranks
    up and the odd ranks down: a circle on which neighbours differ by at most two ranks."""
    by_size = pool[np.lexsort((rng.random(len(pool)), row_counts[pool]))]
    return np.concatenate([by_size[0::2], by_size[1::2][::-1]])


def drawn_tasks(pool: np.ndarray, row_counts: np.ndarray, num_tasks: int, split: str,
                rng: np.random.Generator) -> np.ndarray:
    """``num_tasks`` tasks of ``pool``: for ``train``, neighbours on the :func:`size_circle` from a
    seeded start; for a held-out split, seeded permutations one after another, ordered by size.
    Either way the pool's tasks take turns: with ``num_tasks`` at least the pool's size every
    task appears, each equally often (±1)."""
    if split == "train":
        circle = size_circle(pool, row_counts, rng)
        return circle[(rng.integers(len(pool)) + np.arange(num_tasks)) % len(pool)]
    rounds = -(-num_tasks // len(pool))
    order = np.concatenate([rng.permutation(pool) for _ in range(rounds)])[:num_tasks]
    return order[np.argsort(row_counts[order], kind="stable")]


def drawn_rows(task_rows: Sequence[np.ndarray], tasks: Sequence[int], rows: int,
               rng: np.random.Generator) -> list[np.ndarray]:
    """Per task of ``tasks``, ``rows`` of its rows ``task_rows[task]`` (all, when it has fewer) in a
    random order."""
    return [rng.choice(task_rows[task], min(rows, len(task_rows[task])), replace=False) for task in tasks]


def support_and_query(drawn: Sequence[np.ndarray], shots: np.ndarray,
                      query: int) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """The support and query rows of each task's ``drawn`` rows: ``K_t = min(shots_t, n_t - 1)``
    first, then up to ``query`` (module docstring)."""
    support = np.minimum(shots, [len(rows) - 1 for rows in drawn])
    return ([rows[:k] for rows, k in zip(drawn, support)],
            [rows[k:k + query] for rows, k in zip(drawn, support)])


def padded_split(tasks: Sequence[tuple[np.ndarray, np.ndarray, np.ndarray]]) -> Split:
    """One task per ``(features [R_t, F], values [R_t, W], observed [R_t, N])`` as a :class:`Split`
    of ``[T, max R_t, ...]``: the rows past a task's own are unobserved, their values and features 0."""
    width = max(len(values) for _, values, _ in tasks)
    features, values, observed = (np.zeros((len(tasks), width, *part.shape[1:]), dtype=part.dtype)
                                  for part in tasks[0])
    for t, (task_features, task_values, task_observed) in enumerate(tasks):
        rows = len(task_values)
        features[t, :rows], values[t, :rows], observed[t, :rows] = task_features, task_values, task_observed
    return Split(to_tensor(features), to_tensor(values), torch.from_numpy(observed), {})
