"""TableTasks: episodes of support and query rows drawn from the related sites' tables."""

from __future__ import annotations

import itertools

import numpy as np

from graphmeta.bayesnet.tabular import tabular_graph
from graphmeta.bayesnet.tasks import TableTasks


def decode(split, structure) -> list[set[tuple[int, ...]]]:
    """The rows of every task of ``split`` as state tuples (rows with a missing value left out)."""
    cards = [len(structure.states[name]) for name in structure.names]
    starts = np.cumsum([0, *cards[:-1]])
    values = split.values.numpy()
    codes = np.stack([values[..., s: s + c].argmax(-1) for s, c in zip(starts, cards)], axis=-1)
    complete = split.observed.numpy().all(-1)
    return [{tuple(row) for row, keep in zip(task, mask) if keep} for task, mask in zip(codes, complete)]


def test_episodes_are_disjoint_rows_of_one_table_and_reproducible(tiny_structure):
    distinct = np.array(list(itertools.product(range(3), range(2), range(3))))  # 18 different rows
    codes = np.stack([distinct[np.random.default_rng(t).permutation(18)[:12]] for t in range(4)])
    codes[1, 3] = -1  # a row without values: drawn only after every real row
    tables = [{tuple(row) for row in table if (row >= 0).all()} for table in codes]
    tasks = TableTasks(tiny_structure, tabular_graph(tiny_structure), {"train": codes})
    batch = tasks.sample(4, shots=4, query=7, split="train", seed=5)
    again = tasks.sample(4, shots=4, query=7, split="train", seed=5)
    assert (batch.support.values == again.support.values).all()
    for support, query in zip(decode(batch.support, tiny_structure), decode(batch.query, tiny_structure)):
        assert len(support) == 4 and len(query) == 7 and not support & query
        owner = [t for t, table in enumerate(tables) if support | query <= table]
        assert len(owner) == 1


def test_each_task_draws_its_own_support_size_at_most_half_its_table(tiny_structure):
    distinct = np.array(list(itertools.product(range(3), range(2), range(3))))  # 18 different rows
    codes = np.stack([distinct[np.random.default_rng(t).permutation(18)[:10]] for t in range(3)])
    tasks = TableTasks(tiny_structure, tabular_graph(tiny_structure), {"train": codes})
    batch = tasks.sample(3, shots=[1, 3, 5], query=4, split="train", seed=0)
    assert batch.shots == 5
    assert [len(rows) for rows in decode(batch.support, tiny_structure)] == [1, 3, 5]
    for support, query in zip(decode(batch.support, tiny_structure), decode(batch.query, tiny_structure)):
        assert len(query) == 4 and not support & query
    codes[2, 4:] = -1  # a short table of 4 rows gives half of them, and keeps the other half to score on
    short = TableTasks(tiny_structure, tabular_graph(tiny_structure), {"train": codes}).sample(3, 5, 3, seed=0)
    assert sorted(len(rows) for rows in decode(short.support, tiny_structure)) == [2, 5, 5]
    assert sorted(len(rows) for rows in decode(short.query, tiny_structure)) == [2, 3, 3]
