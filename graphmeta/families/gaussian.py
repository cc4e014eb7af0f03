"""`GaussianNetFamily`: related linear-Gaussian Bayesian networks on one DAG (regression tasks)."""

from __future__ import annotations

from typing import Annotated, Any, ClassVar

import numpy as np
import pandas as pd

from ..data import Split
from ..interop.cpd_table import level_indices, padded_parents
from ..interop.pgmpy import resolve_network, taskgraph_from_pgmpy
from ..validation import NonNegativeFloat, NonNegativeInt, OneOf, PositiveInt, checked
from .base import FAMILIES, SplitName, TaskFamily, family_rng, observed_split

PRIORS = ("independent", "latent")


@FAMILIES.register
@checked
class GaussianNetFamily(TaskFamily):
    r"""Tasks are linear-Gaussian networks with the DAG of a pgmpy network, in standardised units.

    The reference network :math:`x_v = \beta_{v0} + \sum_{p} \beta_{vp} x_p + \sigma_v \varepsilon_v`
    is first rescaled so that every variable has mean 0 and variance 1 under it
    (:math:`\tilde x_v = (x_v - m_v) / s_v` with the marginal ``marginal_mean`` :math:`m` and
    ``marginal_std`` :math:`s` from :math:`\Sigma = (I - B)^{-1} D (I - B)^{-\top}`), which
    keeps every variable of every network (``magic-niab`` has means near 77) well scaled:

    .. math::
        \tilde x_v = c^*_{v0} + \sum_p c^*_{vp} \tilde x_p + \tilde\sigma_v \varepsilon_v, \quad
        c^*_{v0} = 0,\ c^*_{vp} = \beta_{vp} s_p / s_v,\ \tilde\sigma_v = \sigma_v / s_v.

    Task ``t`` perturbs every coefficient (intercept and parent weights) by ``scale`` :math:`\tau`:

    * ``prior="independent"`` (the analogue of the Dirichlet family):
      :math:`c_{t,vj} = c^*_{vj} + \tau \varepsilon_{t,vj}`, :math:`\varepsilon \sim N(0, 1)` i.i.d.;
    * ``prior="latent"``: :math:`c_{t,v} = c^*_v + \tau W_v z_t`, one :math:`z_t \sim N(0, I_d)`
      shared by all variables, :math:`W_v` entries :math:`N(0, 1/d)` fixed by the family seed,
      so each coefficient has the same marginal variance :math:`\tau^2` as in the independent prior.

    Noise scales :math:`\tilde\sigma_v` stay fixed. One regression subtask per variable.
    ``task_params``: ``coefficients [T, N, 1 + P]`` (intercept, then parents in
    ``evidence[variable]`` order, zero past the in-degree) and, for the latent prior,
    ``latent [T, d]``. ``network`` is ``"ecoli70"``, ``"magic-niab"``, ``"magic-irri"``,
    ``"arth150"`` or a pgmpy ``LinearGaussianBayesianNetwork`` with CPDs (``network`` then
    holds its name, or the model's class name).
    """

    name: ClassVar[str] = "gaussian"

    def __init__(
        self,
        network: Any = "ecoli70",
        prior: Annotated[str, OneOf(PRIORS)] = "independent",
        scale: NonNegativeFloat = 0.2,
        latent_dim: PositiveInt = 2,
        seed: NonNegativeInt = 0,
    ) -> None:
        from pgmpy.models import LinearGaussianBayesianNetwork

        name, model = resolve_network(network, LinearGaussianBayesianNetwork, "gaussian")
        self.network = name or type(model).__name__
        self.prior, self.scale, self.latent_dim = prior, scale, latent_dim
        graph = taskgraph_from_pgmpy(model)
        graph.name = name
        super().__init__(graph, seed)

        names = graph.names
        cpds = {v: model.get_cpds(v) for v in names}
        self.evidence = {v: list(cpds[v].evidence) for v in names}
        parents, present = padded_parents(graph, self.evidence)
        beta = np.zeros((len(names), 1 + present.shape[1]))
        for n, v in enumerate(names):
            beta[n, : 1 + len(self.evidence[v])] = np.asarray(cpds[v].beta, dtype=np.float64)
        sigma = np.array([float(cpds[v].std) for v in names])
        self.marginal_mean, self.marginal_std = _marginals(beta, parents, present, sigma)
        self._mask = np.concatenate([np.ones((len(names), 1), bool), present], axis=1)
        self._reference = np.zeros_like(beta)
        self._reference[:, 1:] = beta[:, 1:] * self.marginal_std[parents] / self.marginal_std[:, None] * present
        self._noise = sigma / self.marginal_std
        weights = family_rng(seed).standard_normal((*beta.shape, self.latent_dim)) / np.sqrt(self.latent_dim)
        self._weights = weights * self._mask[..., None]
        self._levels = [(nodes, parents[nodes]) for nodes in level_indices(graph)]
        self.beta_star = self._by_variable(self._reference)
        self.noise_std = dict(zip(names, self._noise.tolist()))
        self.latent_weights = self._by_variable(self._weights) if self.prior == "latent" else None

    def draw_params(self, num_tasks: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
        if self.prior == "independent":
            shift = rng.standard_normal((num_tasks, *self._reference.shape)) * self._mask
            return {"coefficients": self._reference + self.scale * shift}
        latent = rng.standard_normal((num_tasks, self.latent_dim))
        shift = np.einsum("njd,td->tnj", self._weights, latent)
        return {"coefficients": self._reference + self.scale * shift, "latent": latent}

    def draw_values(self, params: dict[str, np.ndarray], rows: int, rng: np.random.Generator) -> np.ndarray:
        """``[T, rows, N]`` joint ancestral draws of the standardised variables (``graph.names`` order)."""
        # node-major [N, T, S]: a level's parents are gathered as whole contiguous blocks
        coefficients = np.moveaxis(params["coefficients"], 0, -1).astype(np.float32)[..., None]  # [N, 1 + P, T, 1]
        noise = self._noise.astype(np.float32)[:, None, None]
        x = rng.standard_normal((len(self.graph), coefficients.shape[2], rows), dtype=np.float32) * noise
        for nodes, parents in self._levels:
            mean = coefficients[nodes, 0]
            for slot in range(parents.shape[1]):
                mean = mean + x[parents[:, slot]] * coefficients[nodes, 1 + slot]
            x[nodes] += mean
        return x.transpose(1, 2, 0)

    def draw_examples(self, params: dict[str, np.ndarray], rows: int, rng: np.random.Generator) -> Split:
        x = self.draw_values(params, rows, rng)
        return observed_split(np.zeros((*x.shape[:2], 0)), x, len(self.graph))

    @checked
    def sample_dataframes(self, num_tasks: PositiveInt, rows: PositiveInt, split: SplitName = "train",
                          seed: NonNegativeInt | None = None) -> list[pd.DataFrame]:
        """``num_tasks`` tables, one float column per variable: the draws :meth:`sample` makes with these arguments."""
        params, examples_rng = self.draw_tasks(num_tasks, split, seed)
        x = self.draw_values(params, rows, examples_rng)
        return [pd.DataFrame(task.astype(np.float64), columns=self.graph.names) for task in x]

    def task_cpds(self, num_tasks: int, split: str = "train", seed: int = 0) -> dict[str, np.ndarray]:
        """``{variable: [T, 1 + |parents|]}``: intercept and weights (``evidence`` order) of each task."""
        return self._by_variable(self.task_params(num_tasks, split, seed)["coefficients"], axis=1)

    def task_networks(self, num_tasks: int, split: str = "train", seed: int = 0) -> list[Any]:
        """The same tasks as pgmpy ``LinearGaussianBayesianNetwork`` objects, in standardised units."""
        cpds = self.task_cpds(num_tasks, split, seed)
        return [self._network({v: beta[t] for v, beta in cpds.items()}) for t in range(num_tasks)]

    def reference_network(self) -> Any:
        """The standardised reference network (coefficients ``beta_star``)."""
        return self._network(self.beta_star)

    def _network(self, betas: dict[str, np.ndarray]) -> Any:
        from pgmpy.factors.continuous import LinearGaussianCPD
        from pgmpy.models import LinearGaussianBayesianNetwork

        model = LinearGaussianBayesianNetwork()
        model.add_nodes_from(self.graph.names)
        model.add_edges_from(self.graph.edges)
        model.add_cpds(*(LinearGaussianCPD(v, list(betas[v]), self.noise_std[v], self.evidence[v])
                         for v in self.graph.names))
        return model

    def _by_variable(self, packed: np.ndarray, axis: int = 0) -> dict[str, np.ndarray]:
        """Split ``packed`` along its node ``axis``, cutting the next (coefficient) axis to each in-degree."""
        nodes = np.moveaxis(packed, axis, 0)
        return {v: np.take(nodes[n], np.arange(1 + len(self.evidence[v])), axis=axis)
                for n, v in enumerate(self.graph.names)}


def _marginals(beta: np.ndarray, parents: np.ndarray, present: np.ndarray,
               sigma: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Marginal means and standard deviations of a linear-Gaussian network with padded coefficients."""
    size = len(sigma)
    weights = np.zeros((size, size))
    rows = np.repeat(np.arange(size), parents.shape[1])
    np.add.at(weights, (rows, parents.ravel()), (beta[:, 1:] * present).ravel())
    inverse = np.linalg.inv(np.eye(size) - weights)
    mean = inverse @ beta[:, 0]
    covariance = inverse @ np.diag(sigma**2) @ inverse.T
    return mean, np.sqrt(np.diag(covariance))
