"""`GraphSubtasksFamily`: properties of small molecule-like graphs, with task-specific chemistry."""

from __future__ import annotations

from typing import Annotated, ClassVar

import numpy as np
import torch

from ..data import DenseGraphs, Split
from ..errors import ConfigError
from ..learners import GNN, learner_type
from ..taskgraph import TaskGraph
from ..taskgraph.subtask import Learner
from ..validation import Ge, Le, NonNegativeFloat, NonNegativeInt, PositiveInt, checked
from .base import FAMILIES, TaskFamily, family_rng, observed_split, task_latents

SUBTASKS = ("polarity", "energy", "active")
GROUPS = ("generator", *SUBTASKS)  # what each task latent drives


@FAMILIES.register
@checked
class GraphSubtasksFamily(TaskFamily):
    r"""Three subtasks on one random molecule-like graph per row: two GNN regressions and a label.

    **Input graphs.** :math:`M \sim U\{\text{min\_nodes}..\text{max\_nodes}\}` atoms joined by a
    random recursive tree (atom ``i`` bonds to a uniform earlier atom) plus ring-closing bonds
    between any other pair with probability ``ring_prob``. Atom types :math:`c_i \sim
    \mathrm{Cat}(\pi_t)`; node features are the one-hot types (``in_dim = num_types``).

    **Task chemistry.** Per task, latents :math:`z^{(g)}_t \sim N(0, I_d)` for each group
    ``g`` in (generator, polarity, energy, active): one shared latent :math:`z_t` for all of
    them by default, independent ones with ``shared=False`` (the control, where no subtask's
    data says anything about another's parameters). Fixed by the family seed: matrices
    :math:`G, Q, E, A` with :math:`N(0, 1/d)` entries and offsets :math:`q_0, e_0, a_0 \sim N(0, 1)`.

    .. math::
        \pi_t = \mathrm{softmax}(G z^{(gen)}_t), \quad
        q_t = Q z^{(pol)}_t + q_0, \quad e_t = E z^{(en)}_t + e_0 \in \mathbb{R}^{C}, \quad
        (a_t, b_t) = A z^{(act)}_t + a_0 \in \mathbb{R}^{3}

        \text{polarity} = \frac{1}{M} \sum_i \tanh q_t[c_i] + \tau\varepsilon, \qquad
        \text{energy} = \frac{1}{M} \sum_{(i,j) \in \text{bonds}} \tanh(e_t[c_i]\, e_t[c_j]) + \tau\varepsilon

        P(\text{active} = 1) = \sigma\big(4 (a_{t1}\, \text{polarity} + a_{t2}\, \text{energy} + b_t)\big)

    ``polarity`` is additive over atoms, ``energy`` over bonds (it needs the structure, not
    just the type counts); ``active`` (classification, an MLP node) reads both, as drawn.

    **Why it is a fair test.** Both regression targets are exact functions of the input graph,
    per-atom averages of local terms (an atom's type; a bond's two types), which is what a
    message-passing GNN with a mean readout (the declared GCN learner) approximates well, and
    ``active`` is a logistic function of its parents: nothing needed is hidden except the
    task latent. That latent is low-dimensional and, when shared, identifiable from a few
    shots of any one subtask, so a graph meta-learner that passes what one node learned to its
    neighbours has real information to pass; ``shared=False`` keeps every marginal the same
    and removes it, so the gap between the two isolates the benefit of message passing.
    Graphs are small (6-12 atoms), so sampling is fast.

    ``task_params``: ``latent [T, 4, d]`` (groups in the order above), ``type_probs [T, C]``,
    ``polarity_charges [T, C]``, ``energy_charges [T, C]``, ``active_weights [T, 3]``.
    """

    name: ClassVar[str] = "graph-subtasks"

    def __init__(
        self,
        num_types: Annotated[int, Ge(2)] = 3,
        min_nodes: Annotated[int, Ge(2)] = 6,
        max_nodes: Annotated[int, Ge(2)] = 12,
        ring_prob: Annotated[float, Ge(0), Le(1)] = 0.05,
        latent_dim: PositiveInt = 2,
        noise: NonNegativeFloat = 0.05,
        shared: bool = True,
        learner: Learner | None = None,
        seed: NonNegativeInt = 0,
    ) -> None:
        if max_nodes < min_nodes:
            raise ConfigError(f"GraphSubtasksFamily.max_nodes must be >= min_nodes ({min_nodes}), got {max_nodes}")
        gnn = GNN() if learner is None else learner
        if not learner_type(gnn).takes_graphs:
            raise ConfigError(f"GraphSubtasksFamily.learner must take graphs, like a GNN spec (the polarity and "
                              f"energy inputs are graphs), got {gnn!r}")
        self.num_types, self.min_nodes, self.max_nodes, self.ring_prob = num_types, min_nodes, max_nodes, ring_prob
        self.latent_dim, self.noise, self.shared, self.learner = latent_dim, noise, shared, gnn
        graph = (TaskGraph("graph-subtasks")
                 .add_subtask("polarity", in_dim=self.num_types, learner=gnn)
                 .add_subtask("energy", in_dim=self.num_types, learner=gnn)
                 .add_subtask("active", kind="classification", num_classes=2)
                 .add_dependency("polarity", "active")
                 .add_dependency("energy", "active"))
        super().__init__(graph, seed)

        rng = family_rng(seed)
        scale = 1.0 / np.sqrt(self.latent_dim)
        self._maps = {group: rng.standard_normal((size, self.latent_dim)) * scale
                      for group, size in zip(GROUPS, (self.num_types, self.num_types, self.num_types, 3))}
        self._offsets = {group: rng.standard_normal(size)
                         for group, size in zip(SUBTASKS, (self.num_types, self.num_types, 3))}

    def draw_params(self, num_tasks: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
        latent = task_latents(rng, num_tasks, len(GROUPS), self.latent_dim, self.shared)
        mapped = {g: latent[:, i] @ self._maps[g].T for i, g in enumerate(GROUPS)}
        logits = mapped["generator"]
        probs = np.exp(logits - logits.max(-1, keepdims=True))
        return {
            "latent": latent,
            "type_probs": probs / probs.sum(-1, keepdims=True),
            "polarity_charges": mapped["polarity"] + self._offsets["polarity"],
            "energy_charges": mapped["energy"] + self._offsets["energy"],
            "active_weights": mapped["active"] + self._offsets["active"],
        }

    def draw_examples(self, params: dict[str, np.ndarray], rows: int, rng: np.random.Generator) -> Split:
        num_tasks, size = len(params["latent"]), self.max_nodes
        shape = (num_tasks, rows)
        atoms = rng.integers(self.min_nodes, self.max_nodes + 1, size=shape)
        mask = np.arange(size) < atoms[..., None]  # [T, S, M]

        # bonds, each once below the diagonal: atom i > 0 bonds to a uniform earlier atom (a tree on the
        # real atoms, so the molecule is connected); rings close with probability ring_prob
        earlier = np.floor(rng.random((*shape, size - 1)) * np.arange(1, size)).astype(np.int64)
        bonds = np.zeros((*shape, size, size), dtype=bool)
        np.put_along_axis(bonds[..., 1:, :], earlier[..., None], True, axis=-1)
        bonds |= np.tril(rng.random((*shape, size, size)) < self.ring_prob, k=-1)
        bonds &= mask[..., :, None] & mask[..., None, :]
        adjacency = bonds | bonds.swapaxes(-1, -2)

        cdf = np.cumsum(params["type_probs"], -1)[:, None, None, :-1]
        types = (rng.random((*shape, size, 1)) > cdf).sum(-1)  # [T, S, M]
        one_hot = (types[..., None] == np.arange(self.num_types)) & mask[..., None]

        pick = np.arange(num_tasks)[:, None, None]
        polarity = (np.tanh(params["polarity_charges"][pick, types]) * mask).sum(-1) / atoms
        charge = params["energy_charges"][pick, types]  # [T, S, M]
        energy = (np.tanh(charge[..., :, None] * charge[..., None, :]) * bonds).sum((-1, -2)) / atoms
        polarity = polarity + self.noise * rng.standard_normal(shape)
        energy = energy + self.noise * rng.standard_normal(shape)
        weights = params["active_weights"][:, None]
        logit = 4.0 * (weights[..., 0] * polarity + weights[..., 1] * energy + weights[..., 2])
        active = rng.random(shape) < 1.0 / (1.0 + np.exp(-logit))

        values = np.stack([polarity, energy, ~active, active], axis=-1)
        inputs = DenseGraphs(torch.as_tensor(one_hot, dtype=torch.get_default_dtype()),
                             torch.as_tensor(adjacency, dtype=torch.get_default_dtype()),
                             torch.as_tensor(mask))
        return observed_split(np.zeros((*shape, 0)), values, len(self.graph),
                              {"polarity": inputs, "energy": inputs})
