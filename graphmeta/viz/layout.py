r"""The drawing layout of a task graph: where each node and each edge goes in a picture.

Not to be confused with :class:`graphmeta.layout.ColumnLayout`, the column layout of the packed
example tensors: this module places nodes on a page and knows nothing of tensors.

A small Sugiyama scheme. Node ``v`` sits on layer ``d(v)``, its topological generation
(:meth:`TaskGraph.levels`), so the picture shows the levels that run as batched calls. An
edge spanning ``d(v) - d(u) > 1`` layers gets a dummy point on every layer in between, so long
edges are routed around nodes. Within a layer, items are ordered by barycenter sweeps,
alternately down and up, each item keyed by the mean rank of its neighbours on the layer just
swept,

    key(v) = mean { rank(w) : w neighbour of v on the previous layer },

keeping the ordering with the fewest crossings seen. Positions along a layer then solve, per
layer and sweep,

    min_p  sum_i (p_i - t_i)^2   subject to   p_i - p_{i-1} >= g_i,

where ``t_i`` is the mean position of item ``i``'s neighbours and ``g_i`` the room the two
items need (a node reserves room after its marker for its label; a dummy is thin). With
``c_i = g_1 + ... + g_i`` this is isotonic regression of ``t_i - c_i``, solved exactly by
pooling adjacent violators.

Positions are in *node slots*: one slot is the room a node needs along its layer.
"""

from __future__ import annotations

from bisect import bisect_right, insort
from dataclasses import dataclass

import numpy as np

from ..taskgraph import TaskGraph

DUMMY_ROOM = 0.35  # of a node's room along its layer
NODE_ROOM = (0.25, 0.75)  # before and after a node's marker: its label lies after it
ORDER_SWEEPS, PLACE_ROUNDS = 8, 6


@dataclass(frozen=True)
class DrawingLayout:
    """Layer and position along the layer of every node, and the points every edge passes."""

    layer: dict[str, int]
    position: dict[str, float]
    routes: dict[tuple[str, str], list[tuple[int, float]]]  # (layer, position) from parent to child
    num_layers: int
    extent: float  # span of all positions with their room, in node slots


def drawing_layout(graph: TaskGraph) -> DrawingLayout:
    """Lay ``graph`` out in layers by topological generation (see the module docstring)."""
    levels = graph.levels()
    layer = {name: depth for depth, names in enumerate(levels) for name in names}
    layers: list[list[object]] = [list(names) for names in levels]
    down: dict[object, list[object]] = {name: [] for name in graph.names}
    up: dict[object, list[object]] = {name: [] for name in graph.names}
    chains: dict[tuple[str, str], list[object]] = {}
    for parent, child in graph.edges:
        chain: list[object] = [parent]
        for depth in range(layer[parent] + 1, layer[child]):
            dummy = (parent, child, depth)
            layers[depth].append(dummy)
            down[dummy], up[dummy] = [], []
            chain.append(dummy)
        chain.append(child)
        for a, b in zip(chain, chain[1:]):
            down[a].append(b)
            up[b].append(a)
        chains[(parent, child)] = chain

    layers = _order(layers, down, up)
    position = _place(layers, down, up)
    low = min(p - room(item)[0] for item, p in position.items())
    high = max(p + room(item)[1] for item, p in position.items())
    position = {item: p - (low + high) / 2 for item, p in position.items()}
    routes = {edge: [(layer[edge[0]] + i, position[item]) for i, item in enumerate(chain)]
              for edge, chain in chains.items()}
    return DrawingLayout(layer, {name: position[name] for name in graph.names}, routes, len(layers), high - low)


def crossings(layers: list[list[object]], down: dict[object, list[object]]) -> int:
    """Edge crossings between adjacent ``layers`` (``down``: each item's neighbours on the next layer).

    Counted as inversions of the lower ends, with the edges sorted by their upper end.
    """
    total = 0
    for upper, lower in zip(layers, layers[1:]):
        rank = {item: i for i, item in enumerate(lower)}
        seen: list[int] = []
        for end in (b for a in upper for b in sorted(rank[n] for n in down[a])):
            total += len(seen) - bisect_right(seen, end)
            insort(seen, end)
    return total


def room(item: object) -> tuple[float, float]:
    """Room an item (a node name, or a dummy point: a tuple) needs before and after its position, in node slots."""
    return (DUMMY_ROOM / 2, DUMMY_ROOM / 2) if isinstance(item, tuple) else NODE_ROOM


def isotonic(values: np.ndarray) -> np.ndarray:
    """The non-decreasing sequence closest to ``values`` in squared error (pool adjacent violators)."""
    means: list[float] = []
    sizes: list[int] = []
    for value in values.tolist():
        means.append(value)
        sizes.append(1)
        while len(means) > 1 and means[-2] > means[-1]:
            mean, size = means.pop(), sizes.pop()
            means[-1] = (means[-1] * sizes[-1] + mean * size) / (sizes[-1] + size)
            sizes[-1] += size
    return np.repeat(means, sizes)


def _order(layers: list[list[object]], down: dict, up: dict) -> list[list[object]]:
    """Barycenter sweeps; the ordering with the fewest crossings seen."""
    best, fewest = [list(items) for items in layers], crossings(layers, down)
    for sweep in range(ORDER_SWEEPS):
        going_down = sweep % 2 == 0
        neighbours = up if going_down else down
        for depth in range(1, len(layers)) if going_down else range(len(layers) - 2, -1, -1):
            reference = layers[depth - 1] if going_down else layers[depth + 1]
            rank = {item: i for i, item in enumerate(reference)}
            stretch = len(layers[depth]) / len(reference)
            keys = []
            for i, item in enumerate(layers[depth]):
                near = [rank[n] for n in neighbours[item]]
                keys.append((sum(near) / len(near) * stretch if near else float(i), i, item))
            layers[depth] = [item for _, _, item in sorted(keys, key=lambda key: key[:2])]
        count = crossings(layers, down)
        if count < fewest:
            best, fewest = [list(items) for items in layers], count
    return best


def _offsets(items: list[object]) -> np.ndarray:
    """Positions of ``items`` packed as tightly as their room allows, the first at 0."""
    return np.cumsum([0.0] + [room(a)[1] + room(b)[0] for a, b in zip(items, items[1:])])


def _place(layers: list[list[object]], down: dict, up: dict) -> dict[object, float]:
    """Positions along the layers: each item pulled to its neighbours' mean, order and room kept."""
    position: dict[object, float] = {}
    for items in layers:
        offsets = _offsets(items)
        position.update(zip(items, (offsets - offsets[-1] / 2).tolist()))
    sweep = list(range(len(layers))) + list(range(len(layers) - 2, 0, -1))
    for _ in range(PLACE_ROUNDS):
        for depth in sweep:
            items = layers[depth]
            target = [float(np.mean([position[n] for n in up[item] + down[item]])) if up[item] or down[item]
                      else position[item] for item in items]
            offsets = _offsets(items)
            position.update(zip(items, (isotonic(np.asarray(target) - offsets) + offsets).tolist()))
    return position
