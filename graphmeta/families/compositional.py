"""`CompositionalFamily`: regression DAGs of nonlinear nodes whose parameters share a task latent."""

from __future__ import annotations

from typing import Annotated, ClassVar

import numpy as np

from ..data import Split
from ..interop.cpd_table import level_indices, padded_parents
from ..taskgraph import TaskGraph
from ..validation import NonNegativeFloat, NonNegativeInt, OneOf, PositiveInt, checked
from .base import FAMILIES, TaskFamily, family_rng, observed_split, task_latents

STRUCTURES = ("chain", "tree", "dag")
#: Which nodes are latent subtasks (never labelled): none, or every node with a child.
LATENT_NODES = ("none", "non-sinks")


@FAMILIES.register
@checked
class CompositionalFamily(TaskFamily):
    r"""Regression nodes ``n0 ... n{N-1}`` on a chain, a tree or a random DAG.

    **Structure** (fixed by the family seed): ``chain`` is ``n0 -> n1 -> ... -> n{N-1}``;
    ``tree`` gives ``n_i`` the parent ``n_{(i-1) // branching}``; ``dag`` gives ``n_i`` (``i > 0``)
    :math:`k_i \sim U\{1..\text{max\_parents}\}` parents (at most ``i``) drawn uniformly from
    ``n0 ... n_{i-1}``.

    **Nodes.** Node ``i`` has own features :math:`x_i \in \mathbb{R}^{\text{in\_dim}}` and the input
    :math:`h_i = [x_i; y_{pa(i)}]` of width :math:`D_i = \text{in\_dim} + |pa(i)|`. Fixed by the
    family seed: :math:`\mu_i \sim N(0, I_{D_i + 1})` and :math:`M_i \in \mathbb{R}^{(D_i + 1) \times d}`
    with entries :math:`N(0, 1/d)`. For task ``t``:

    .. math::
        z_{t,i} \sim N(0, I_d), \qquad (w_{t,i}, b_{t,i}) = \mu_i + \sigma M_i z_{t,i}

        x_i \sim U[-2, 2]^{\text{in\_dim}}, \qquad
        y_i = \sin\!\big(w_{t,i}^\top h_i / \sqrt{D_i} + b_{t,i}\big) + \tau \varepsilon_i,
        \quad \varepsilon_i \sim N(0, 1)

    With ``shared=True`` one latent :math:`z_{t,i} = z_t` drives every node of a task, so data
    at one node informs all the others (the case message passing exists for). With
    ``shared=False`` each node draws its own :math:`z_{t,i}`: every node has the same marginal
    distribution as before, but nothing is shared (the control). Values stay in
    :math:`[-1, 1]` plus noise at any depth; a child reads its parents' noisy values.

    **Latent nodes.** With ``latent_nodes="non-sinks"`` every node with a child is a latent subtask
    (``observed=False``): the data are drawn as above, and only the sinks' values are given; the
    intermediate values exist but stay hidden (their columns 0 and unobserved), so a graph learner
    must learn them from the sinks alone. :meth:`supervised` is the same family with every node
    observed: the same structure, tasks and draws, the hidden values given (a fully supervised
    reference).

    ``task_params``: ``latent [T, N, d]``, ``weights [T, N, in_dim + P]`` (own features first, then
    parent slots in ``graph.parents`` order, zero past a node's in-degree), ``bias [T, N]``.
    The fixed maps are ``mean`` (:math:`\mu`, ``[N, in_dim + P + 1]``, bias last) and ``mixing``
    (:math:`M`, ``[N, in_dim + P + 1, d]``), padded the same way.
    """

    name: ClassVar[str] = "compositional"

    def __init__(
        self,
        structure: Annotated[str, OneOf(STRUCTURES)] = "dag",
        num_nodes: PositiveInt = 16,
        in_dim: PositiveInt = 1,
        max_parents: PositiveInt = 3,
        branching: PositiveInt = 2,
        latent_dim: PositiveInt = 4,
        task_scale: NonNegativeFloat = 1.0,
        noise: NonNegativeFloat = 0.05,
        shared: bool = True,
        latent_nodes: Annotated[str, OneOf(LATENT_NODES)] = "none",
        seed: NonNegativeInt = 0,
    ) -> None:
        self.structure, self.num_nodes, self.in_dim = structure, num_nodes, in_dim
        self.max_parents, self.branching, self.latent_dim = max_parents, branching, latent_dim
        self.task_scale, self.noise, self.shared = task_scale, noise, shared
        self.latent_nodes = latent_nodes
        rng = family_rng(seed)
        parents = _structure(self.structure, num_nodes, max_parents, branching, rng)
        has_child = {p for ps in parents for p in ps}
        hidden = {i for i in range(num_nodes) if latent_nodes == "non-sinks" and i in has_child}
        graph = TaskGraph(f"compositional-{self.structure}" + ("-latent" if hidden else ""))
        for i in range(num_nodes):
            graph.add_subtask(f"n{i}", in_dim=self.in_dim, observed=i not in hidden)
            for parent in parents[i]:  # parents precede children, so each edge is checked in O(1)
                graph.add_dependency(f"n{parent}", f"n{i}")
        super().__init__(graph, seed)

        named = {f"n{i}": [f"n{p}" for p in ps] for i, ps in enumerate(parents)}
        parent_index, present = padded_parents(graph, named)
        slots = np.concatenate([np.ones((num_nodes, self.in_dim), bool), present, np.ones((num_nodes, 1), bool)], 1)
        self.mean = rng.standard_normal(slots.shape) * slots
        self.mixing = rng.standard_normal((*slots.shape, self.latent_dim)) / np.sqrt(self.latent_dim) * slots[..., None]
        self._scale = 1.0 / np.sqrt(self.in_dim + present.sum(1))  # 1 / sqrt(D_i)
        self._levels = [(_contiguous(nodes), parent_index[nodes]) for nodes in level_indices(graph)]

    def supervised(self) -> CompositionalFamily:
        """This family with every node observed: the same structure, tasks and draws (same seed),
        the latent nodes' values given, for a fully supervised reference."""
        return type(self)(**{**self.config, "latent_nodes": "none"})

    def draw_params(self, num_tasks: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
        latent = task_latents(rng, num_tasks, len(self.graph), self.latent_dim, self.shared)
        theta = self.mean + self.task_scale * np.einsum("npd,tnd->tnp", self.mixing, latent)
        return {"latent": latent, "weights": theta[..., :-1], "bias": theta[..., -1]}

    def draw_examples(self, params: dict[str, np.ndarray], rows: int, rng: np.random.Generator) -> Split:
        # node-major [N, T, S]: a level's inputs are gathered as whole contiguous blocks
        weights = np.moveaxis(params["weights"] * self._scale[:, None], 0, -1).astype(np.float32)[..., None]
        bias = params["bias"].T.astype(np.float32)[..., None]  # [N, T, 1]
        num_nodes, num_tasks = bias.shape[:2]
        x = rng.uniform(-2.0, 2.0, size=(num_nodes, self.in_dim, num_tasks, rows)).astype(np.float32)
        y = self.noise * rng.standard_normal((num_nodes, num_tasks, rows), dtype=np.float32)
        for nodes, parents in self._levels:
            pre = bias[nodes]
            for j in range(self.in_dim):
                pre = pre + x[nodes, j] * weights[nodes, j]
            for slot in range(parents.shape[1]):
                pre = pre + y[parents[:, slot]] * weights[nodes, self.in_dim + slot]
            y[nodes] += np.sin(pre)
        features = x.transpose(2, 3, 0, 1).reshape(num_tasks, rows, -1)
        return self.hide_latent(observed_split(features, y.transpose(1, 2, 0), num_nodes))


def _structure(structure: str, num_nodes: int, max_parents: int, branching: int,
               rng: np.random.Generator) -> list[list[int]]:
    """Each node's parents (all earlier nodes), for ``structure``."""
    if structure == "chain":
        return [[i - 1] if i else [] for i in range(num_nodes)]
    if structure == "tree":
        return [[(i - 1) // branching] if i else [] for i in range(num_nodes)]
    counts = rng.integers(1, max_parents + 1, size=num_nodes)
    return [sorted(rng.choice(i, size=min(i, counts[i]), replace=False).tolist()) for i in range(num_nodes)]


def _contiguous(index: np.ndarray) -> np.ndarray | slice:
    """``index`` as a slice when it is a run of consecutive integers: views instead of copies."""
    if len(index) and np.array_equal(index, np.arange(index[0], index[0] + len(index))):
        return slice(int(index[0]), int(index[0]) + len(index))
    return index
