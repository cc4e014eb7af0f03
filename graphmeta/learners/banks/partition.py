r"""How nodes of one learner spec split into banks so that padding stays bounded.

A bank pads every node to its largest one, so one large node makes all the others cost as much.
With each node's size :math:`s_n` (a tuple of dimensions), a per-node cost :math:`c(s)` that grows
with every dimension, and a fixed cost :math:`\beta` per bank (its own ops, their launches and their
backward), a bank :math:`b` costs :math:`N_b\, c(\max_{n \in b} s_n) + \beta` (the maximum taken per
dimension). Ordering the distinct sizes by :math:`c` (then by the sizes themselves), the banks are
the runs of consecutive sizes of least total cost, found by dynamic programming over the distinct
sizes: one bank when padding is cheap, several when a few nodes are far larger than the rest.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence


def cheapest_banks(names: Sequence[str], size: Mapping[str, tuple[int, ...]],
                   node_cost: Callable[[tuple[int, ...]], float], bank_cost: float) -> list[list[str]]:
    """``names`` as the node lists of several banks (each in ``names`` order), smallest sizes first,
    of least total cost (module docstring)."""
    sizes = sorted({size[name] for name in names}, key=lambda s: (node_cost(s), s))
    members = [sum(size[name] == s for name in names) for s in sizes]
    # best[j]: the least cost of the first j sizes; start[j]: where the last of those banks starts
    best, start = [0.0] + [math.inf] * len(sizes), [0] * (len(sizes) + 1)
    for j in range(1, len(sizes) + 1):
        largest, nodes = tuple(0 for _ in sizes[0]), 0
        for i in range(j - 1, -1, -1):
            largest, nodes = tuple(map(max, largest, sizes[i])), nodes + members[i]
            cost = best[i] + nodes * node_cost(largest) + bank_cost
            if cost < best[j]:
                best[j], start[j] = cost, i
    bounds, j = [], len(sizes)
    while j > 0:
        bounds.append((start[j], j))
        j = start[j]
    return [[name for name in names if size[name] in sizes[i:j]] for i, j in reversed(bounds)]
