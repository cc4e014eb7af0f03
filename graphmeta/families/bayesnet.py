"""`BayesNetFamily`: related discrete Bayesian networks on one DAG, with their data as pgmpy DataFrames.

Also :func:`batch_from_dataframes`, which turns tables of a network's variables (pgmpy's form,
missing values allowed) into a :class:`~graphmeta.data.TaskBatch`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Any, ClassVar

import numpy as np
import pandas as pd
import torch

from ..data import Split, TaskBatch
from ..errors import DataError, closest
from ..interop.cpd_table import CPDTable
from ..interop.pgmpy import network_evidence, network_states, resolve_network, taskgraph_from_pgmpy
from ..interop.tabular_cpds import cpd_values, discrete_network
from ..taskgraph import TaskGraph
from ..validation import NonNegativeFloat, NonNegativeInt, OneOf, PositiveFloat, PositiveInt, checked
from .base import FAMILIES, SplitName, TaskFamily, family_rng, observed_split

PRIORS = ("dirichlet", "latent")
LEARNERS = ("mlp", "table")


@FAMILIES.register
@checked
class BayesNetFamily(TaskFamily):
    r"""Tasks are discrete Bayesian networks with the DAG and states of a pgmpy network.

    One classification subtask per variable (``num_classes`` = cardinality,
    ``attrs["state_names"]``), parents as in the network, each with the ``learner``
    ``"mlp"`` (the engine's default MLP on the parents' one-hots) or ``"table"`` (a
    :class:`~graphmeta.learners.Table`: the CPD itself, adapted by the conjugate
    Dirichlet update); a row of a task is one joint
    ancestral draw of all variables. The reference CPDs :math:`\theta^*` are the network's,
    floored and renormalised, because several bundled networks have exact zeros:
    :math:`\theta^*(v \mid u) \propto \max(\theta(v \mid u), \text{floor})`. Task ``t`` draws
    :math:`\theta_t` around them:

    * ``prior="dirichlet"``: every CPD column independently,
      :math:`\theta_t(\cdot \mid u) \sim \mathrm{Dir}(\alpha\, \theta^*(\cdot \mid u))`, so
      :math:`E\,\theta_t = \theta^*` and :math:`\mathrm{Var}\,\theta_t(v \mid u) = \theta^*(1 - \theta^*)/(\alpha + 1)`;
    * ``prior="latent"``: one latent :math:`z_t \sim N(0, I_d)` shared by every variable shifts
      all logits, :math:`\theta_t(\cdot \mid u) = \mathrm{softmax}_v\big(\log \theta^*(v \mid u)
      + s\, W[v, u]^\top z_t\big)` with :math:`W[v, u] \sim N(0, I_d)` fixed by the family seed.

    ``network`` is a bundled name (``"asia"``, ``"alarm"``, ``"child"``, ...) or a pgmpy
    ``DiscreteBayesianNetwork`` with CPDs whose state names are strings (``network`` then holds
    its name, or the model's class name). The prior is public:
    ``theta_star`` and ``latent_weights`` (``{variable: [card, configs(, d)]}`` in
    ``TabularCPD`` layout, parents in ``evidence[variable]`` order), ``alpha``, ``scale``.
    ``task_params`` gives ``theta [T, columns, width]`` (see :class:`CPDTable`) and, for the
    latent prior, ``latent [T, d]``; :meth:`task_cpds` and :meth:`task_networks` give the
    same CPDs per variable and as pgmpy networks.
    """

    name: ClassVar[str] = "bayesnet"

    def __init__(
        self,
        network: Any = "asia",
        prior: Annotated[str, OneOf(PRIORS)] = "dirichlet",
        alpha: PositiveFloat = 10.0,
        latent_dim: PositiveInt = 2,
        scale: NonNegativeFloat = 1.0,
        floor: PositiveFloat = 1e-3,
        seed: NonNegativeInt = 0,
        learner: Annotated[str, OneOf(LEARNERS)] = "mlp",
    ) -> None:
        from pgmpy.models import DiscreteBayesianNetwork

        name, model = resolve_network(network, DiscreteBayesianNetwork, "bayesnet")
        self.network = name or type(model).__name__
        self.prior, self.alpha, self.latent_dim, self.scale, self.floor = prior, alpha, latent_dim, scale, floor
        self.learner = learner
        self.states = network_states(model)
        self.evidence = network_evidence(model)
        graph = taskgraph_from_pgmpy(model).with_learner(self.learner)
        graph.name = name
        super().__init__(graph, seed)

        self.table = CPDTable.build(graph, self.evidence)
        self.theta_star = {variable: _floored(cpd_values(model, variable, self.states, self.evidence[variable]),
                                              self.floor) for variable in graph.names}
        self._log_theta_star = self.table.pack({v: np.log(t) for v, t in self.theta_star.items()}, fill=-np.inf)
        self._padding = self.table.padding()
        weights = family_rng(seed).standard_normal((self.table.columns, self.table.width, self.latent_dim))
        self._weights = np.where(self._padding[..., None], 0.0, weights)
        self.latent_weights = (
            {name: np.moveaxis(w, 0, -1) for name, w in self.table.unpack(np.moveaxis(self._weights, -1, 0)).items()}
            if self.prior == "latent" else None
        )

    # ----------------------------------------------------------------- sampling
    def draw_params(self, num_tasks: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
        if self.prior == "dirichlet":
            # Gamma(a) = Gamma(a + 1) * U^(1/a), in logs: exact for the tiny shapes alpha * floor gives
            real = ~self._padding
            shape = self.alpha * np.exp(self._log_theta_star[real])
            size = (num_tasks, len(shape))
            logits = np.full((num_tasks, *real.shape), -np.inf)
            logits[:, real] = np.log(rng.gamma(shape + 1.0, size=size)) + np.log(rng.random(size)) / shape
            return {"theta": _softmax(logits)}
        latent = rng.standard_normal((num_tasks, self.latent_dim))
        logits = self._log_theta_star + self.scale * np.einsum("cvd,td->tcv", self._weights, latent)
        return {"theta": _softmax(logits), "latent": latent}

    def draw_states(self, params: dict[str, np.ndarray], rows: int, rng: np.random.Generator) -> np.ndarray:
        """``[T, rows, N]`` state indices (into ``states[variable]``, ``graph.names`` order) of joint draws."""
        return self.table.sample(params["theta"], rows, rng)

    def draw_examples(self, params: dict[str, np.ndarray], rows: int, rng: np.random.Generator) -> Split:
        states = torch.from_numpy(self.draw_states(params, rows, rng))
        offsets = torch.tensor([s.start for s in self.layout.value_slices.values()])
        values = torch.zeros(*states.shape[:2], self.layout.value_width)
        values.scatter_(2, states + offsets, 1.0)
        return observed_split(np.zeros((*states.shape[:2], 0)), values, len(self.graph))

    @checked
    def sample_dataframes(self, num_tasks: PositiveInt, rows: PositiveInt, split: SplitName = "train",
                          seed: NonNegativeInt | None = None) -> list[pd.DataFrame]:
        """``num_tasks`` tables in pgmpy's form: one column per variable, state names as strings.

        With the same arguments as :meth:`sample` (``rows = shots + query``) these are the same
        draws, so ``batch_from_dataframes`` of the first ``shots`` and the remaining rows gives
        that batch back. pgmpy's estimators fit them directly.
        """
        params, examples_rng = self.draw_tasks(num_tasks, split, seed)
        states = self.draw_states(params, rows, examples_rng)
        names = self.graph.names
        labels = np.full((len(names), self.table.width), "", dtype=object)
        for n, name in enumerate(names):
            labels[n, : len(self.states[name])] = self.states[name]
        table = labels[np.arange(len(names)), states]  # [T, rows, N]
        return [pd.DataFrame(task, columns=names, dtype=str) for task in table]

    # ------------------------------------------------------------ true tasks
    def task_cpds(self, num_tasks: int, split: str = "train", seed: int = 0) -> dict[str, np.ndarray]:
        """The true CPDs of the tasks ``sample(num_tasks, ..., split, seed)`` draws.

        ``{variable: [T, card, configs]}`` in ``TabularCPD`` layout (parents in ``evidence[variable]`` order).
        """
        return self.table.unpack(self.task_params(num_tasks, split, seed)["theta"])

    def task_networks(self, num_tasks: int, split: str = "train", seed: int = 0) -> list[Any]:
        """The same tasks as pgmpy ``DiscreteBayesianNetwork`` objects (for inference, KL, Bayes-optimal baselines)."""
        cpds = self.task_cpds(num_tasks, split, seed)
        tasks = [{name: table[t] for name, table in cpds.items()} for t in range(num_tasks)]
        return [discrete_network(self.graph, self.states, self.evidence, tables) for tables in tasks]

    def reference_network(self) -> Any:
        """The network with the reference CPDs ``theta_star``."""
        return discrete_network(self.graph, self.states, self.evidence, self.theta_star)


def batch_from_dataframes(graph: TaskGraph, support: Sequence[pd.DataFrame],
                          query: Sequence[pd.DataFrame]) -> TaskBatch:
    """A :class:`TaskBatch` from one support and one query table per task, one column per node.

    A classification node's column holds its ``attrs["state_names"]`` (strings, as pgmpy
    writes them); a regression node's column holds numbers (``out_dim`` 1). Missing values
    (NaN / None) are unobserved; tasks with fewer rows are padded with unobserved rows. Nodes
    with own features (``in_dim > 0``) cannot come from a table.
    """
    if len(support) != len(query):
        raise DataError(f"got {len(support)} support tables but {len(query)} query tables: give one of each per task")
    for name in graph.names:
        if graph.subtask(name).in_dim:
            raise DataError(f"node {name!r} has in_dim {graph.subtask(name).in_dim}: tables hold node values only")
    tensors, masks = zip(*(_side(graph, frames, side) for frames, side in ((support, "support"), (query, "query"))))
    return TaskBatch.from_tensors(graph, tensors[0], tensors[1], masks[0], masks[1])


def _side(graph: TaskGraph, frames: Sequence[pd.DataFrame], side: str) -> tuple[dict, dict]:
    if not frames:
        raise DataError(f"no {side} tables: give one table per task")
    for t, frame in enumerate(frames):
        if not isinstance(frame, pd.DataFrame):
            raise DataError(f"{side} table {t} is a {type(frame).__name__}, expected a pandas DataFrame")
        for column in frame.columns:
            if column not in graph:
                raise DataError(f"{side} table {t} has the column {column!r}, which is no node of the graph"
                                f"{closest(str(column), graph.names)}")
        for name in graph.names:
            if name not in frame.columns:
                raise DataError(f"{side} table {t} has no column for node {name!r}")
    rows = max(len(frame) for frame in frames)
    values: dict[str, torch.Tensor] = {}
    observed: dict[str, torch.Tensor] = {}
    for name in graph.names:
        spec = graph.subtask(name)
        columns = [frame[name].reset_index(drop=True).reindex(range(rows)) for frame in frames]
        present = np.stack([c.notna().to_numpy() for c in columns])
        if spec.kind == "classification":
            states = spec.attrs.get("state_names") or []
            codes = np.stack([pd.Index(states).get_indexer(c.astype(object)) for c in columns]).astype(np.int64)
            unknown = present & (codes < 0)
            if unknown.any():
                t, row = (int(i) for i in np.argwhere(unknown)[0])
                value = columns[t].iloc[row]
                raise DataError(
                    f"{side} table {t}, column {name!r}: value {value!r} ({type(value).__name__}) is not one of its "
                    f"states {states}; state names are strings (convert with df.astype(str))")
            values[name] = torch.from_numpy(np.maximum(codes, 0))
        else:
            numbers = np.stack([pd.to_numeric(c, errors="coerce").to_numpy(dtype=np.float64) for c in columns])
            if (present & np.isnan(numbers)).any():
                raise DataError(f"{side} column {name!r} of a regression node holds non-numeric values")
            values[name] = torch.as_tensor(np.where(present, numbers, 0.0)[..., None], dtype=torch.get_default_dtype())
        observed[name] = torch.from_numpy(present)
    return values, observed


def _floored(values: np.ndarray, floor: float) -> np.ndarray:
    values = np.maximum(values, floor)
    return values / values.sum(axis=0, keepdims=True)


def _softmax(logits: np.ndarray) -> np.ndarray:
    shifted = np.exp(logits - logits.max(axis=-1, keepdims=True))
    return shifted / shifted.sum(axis=-1, keepdims=True)
