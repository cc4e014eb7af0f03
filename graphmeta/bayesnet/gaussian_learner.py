r"""`GaussianNetMetaLearner`: fit a linear-Gaussian Bayesian network of known structure for a new
site from a few rows, after meta-learning from the rows of many related sites; the result is a
pgmpy ``LinearGaussianBayesianNetwork``.

The continuous sibling of :class:`~graphmeta.bayesnet.BayesNetMetaLearner`. Every variable
:math:`v` is a :class:`~graphmeta.learners.Linear` learner on the design row :math:`z = [1,
x_{p_1}, \dots, x_{p_P}]` of its parents' values, with a Normal-Inverse-Gamma prior

.. math::
    w_v \mid s_v^2 \sim N(m_v, s_v^2 \Lambda_v^{-1}), \qquad s_v^2 \sim \mathrm{InvGamma}(a_v, b_v),

adapted to the new site's support rows by the exact conjugate posterior :math:`(M, \Lambda_n,
a_n, b_n)` (:mod:`graphmeta.learners.banks.linear`), whatever the number of rows. Meta-training
learns the prior from the related sites by the query log-likelihood of held-out rows after
adaptation. It starts at the empirical-Bayes prior of the training sites, which the Trainer sets
for every Linear node (:func:`~graphmeta.learners.linear_prior.empirical_bayes_priors`): the method
of moments on their own least-squares fits refined to the largest marginal likelihood of all their
rows, which estimates the Bayes-optimal prior when sites differ by independent perturbations of every
coefficient (the ``independent`` families). Sites often also differ through a few shared causes
(a site's conditions move every variable at once, the ``latent`` families): with ``task_factors``
(2 by default) every prior mean also moves along meta-learned loadings by the site's factor, placed
from all the variables' support rows together before each variable's own update
(:mod:`graphmeta.adapt.task_factor`); message passing along the network (``message_passing=True``,
the default) then reads every variable's support statistics and moves each prior mean again. As a
variable's rows grow, its estimate still goes to its own least-squares fit.

Variables are standardised with the mean and standard deviation of the training sites' rows
(:class:`~graphmeta.families.DataFrameFamily`'s coding); the posterior is reported back in the
columns' own units, where it is again Normal-Inverse-Gamma (an affine change of units maps
:math:`w \mapsto \mu_v e_0 + \sigma_v A w`, :math:`\Lambda^{-1} \mapsto A \Lambda^{-1} A^\top`,
:math:`b \mapsto \sigma_v^2 b`, with :math:`A` undoing the parents' standardisation).

The exported CPD of :math:`v` (:meth:`GaussianNetMetaLearner.adapt`) is the posterior mean: the
intercept and parent weights are :math:`M_n` and the noise variance is the posterior mean of
:math:`s_v^2`, :math:`b_n / (a_n - 1)` (the variance of the Student-t predictive at a row whose
coefficients are known; :math:`b_n / a_n` where :math:`a_n \le 1` and that mean is infinite).
The posterior's spread, which a pgmpy CPD cannot hold, is :meth:`GaussianNetMetaLearner.posterior`:
per variable the coefficients' posterior covariance :math:`b_n / (a_n - 1)\, \Lambda_n^{-1}`
and the parameters of the Student-t predictive. Measured results:
``benchmarks/results/gaussian_fewshot.md``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import networkx as nx
import numpy as np
import pandas as pd
import torch

from ..data import Split
from ..errors import DataError, GraphError
from ..families.dataframe import DataFrameFamily, padded_split
from ..interop.linear_gaussian_cpds import linear_gaussian_network
from ..interop.pgmpy import taskgraph_from_pgmpy
from ..learners import Linear
from ..learners.banks.linear import LinearBank
from ..model import GraphMetaLearner
from ..taskgraph import ColumnLayout, TaskGraph
from ..validation import NonNegativeInt, PositiveInt, checked
from .learner import ADAPTATION, NetworkMetaLearner, load_network_learner, meta_fit_method, save_network_learner
from .tasks import split_tables

#: The support sizes a meta-fit prepares for by default: from 1 to 100 rows.
DEFAULT_SHOTS = (1, 100)
#: Upper bound on meta-training steps when ``steps`` is not given. On ecoli70-gaussian
#: (``benchmarks/gaussian_fewshot.py``, loadings started at 0.1 in both) 600 steps scored as well as
#: 2000 on sites whose coefficients differ independently (query log-likelihood at K = 5: -37.649
#: against -37.683 nats per row) and a little worse where they move with a shared factor (K = 3:
#: -32.926 against -32.627, the Bayes limit -32.547), in a third of the time.
MAX_STEPS = 600


@dataclass(frozen=True)
class NodePosterior:
    r"""One variable's Normal-Inverse-Gamma posterior in its column's units, for ``T`` sites:
    ``mean [T, 1 + P]`` (:math:`M_n`: intercept, then the parents' weights), ``spread [T, 1 + P,
    1 + P]`` (:math:`\Lambda_n^{-1}`), ``shape [T]`` (:math:`a_n`) and ``scale [T]`` (:math:`b_n`)."""

    mean: np.ndarray
    spread: np.ndarray
    shape: np.ndarray
    scale: np.ndarray

    @property
    def noise_variance(self) -> np.ndarray:
        r"""``[T]``: the posterior mean of the noise variance, :math:`b_n / (a_n - 1)` (:math:`b_n / a_n`
        where :math:`a_n \le 1` and that mean is infinite)."""
        return self.scale / np.where(self.shape > 1, self.shape - 1, self.shape)

    @property
    def covariance(self) -> np.ndarray:
        r"""``[T, 1 + P, 1 + P]``: the coefficients' posterior covariance, :math:`b_n / (a_n - 1)\, \Lambda_n^{-1}`."""
        return self.noise_variance[:, None, None] * self.spread

    def log_likelihood(self, design: np.ndarray, target: np.ndarray) -> np.ndarray:
        r"""``[T, R]`` Student-t posterior-predictive log-densities of ``target [T, R]`` at the design
        rows ``design [T, R, 1 + P]``: :math:`2 a_n` degrees of freedom, location :math:`z^\top M_n`,
        squared scale :math:`(b_n / a_n)(1 + z^\top \Lambda_n^{-1} z)`."""
        from scipy.special import gammaln

        shape, scale = self.shape[:, None], self.scale[:, None]
        spread = scale * (1 + np.einsum("trd,tde,tre->tr", design, self.spread, design))
        residual = target - np.einsum("trd,td->tr", design, self.mean)
        return (gammaln(shape + 0.5) - gammaln(shape) - 0.5 * np.log(2 * np.pi * spread)
                - (shape + 0.5) * np.log1p(residual**2 / (2 * spread)))


class GaussianNetMetaLearner(NetworkMetaLearner):
    """Meta-learn the CPDs of a linear-Gaussian Bayesian network with a known DAG across related sites.

    Args:
        structure: a pgmpy ``LinearGaussianBayesianNetwork`` (CPDs are ignored; only the DAG is
            used), a bundled network's name (``"ecoli70"``), a networkx ``DiGraph`` or a
            :class:`~graphmeta.TaskGraph` (its nodes and edges; every node becomes a scalar
            Linear regression).
        task_factors: how many numbers per site move every variable's prior (module docstring); 0:
            each variable's prior is its own.
        message_passing, message_channels, message_rounds: the
            :class:`~graphmeta.GraphMetaLearner` arguments of the same names.

    Example::

        learner = GaussianNetMetaLearner("ecoli70")
        learner.meta_fit(site_tables)            # DataFrames of related sites, one float column per variable
        model = learner.adapt(new_site)          # a pgmpy LinearGaussianBayesianNetwork
        model.simulate(100)
        learner.posterior([new_site])["aceB"].covariance   # the coefficients' posterior covariance
    """

    run_prefix = "graphmeta-gaussian-net-"

    @checked
    def __init__(self, structure: Any, *, task_factors: NonNegativeInt = 2, message_passing: bool = True,
                 message_channels: PositiveInt = 64, message_rounds: NonNegativeInt = 2) -> None:
        self.learner = Linear(task_factors=task_factors)
        self.graph = linear_graph(structure, self.learner)
        self.config: dict[str, Any] = {"message_passing": message_passing, "message_channels": message_channels,
                                       "message_rounds": message_rounds}
        self.model = GraphMetaLearner(self.graph, **ADAPTATION, **self.config)
        self.layout = ColumnLayout(self.graph)
        self.parents = {name: self.graph.parents(name) for name in self.graph.names}
        # the column units: standardisation by the training sites' rows (identity until meta_fit)
        self.column_mean = np.zeros(len(self.graph))
        self.column_std = np.ones(len(self.graph))
        self.shots: tuple[int, int] | None = None  # the range of support sizes meta-fitted for

    def __repr__(self) -> str:
        options = ", ".join(f"{key}={value!r}" for key, value in self.config.items())
        return f"GaussianNetMetaLearner({self.graph!r}, task_factors={self.learner.task_factors}, {options})"

    # ------------------------------------------------------------------ verbs
    meta_fit = meta_fit_method(
        "GaussianNetMetaLearner", shots=DEFAULT_SHOTS, outer_lr=0.01, early_stopping_patience=10, max_steps=MAX_STEPS,
        doc="""Meta-train on ``tasks``, one DataFrame per related network (site, one float column per
        variable, NaN where missing); returns the training summary. Starts afresh each call.

        The arguments are :meth:`BayesNetMetaLearner.meta_fit`'s: ``val_tasks`` (default: the last
        ``val_fraction`` of ``tasks``) pick the stopping step; ``steps`` bounds the meta-training
        steps (default: early stopping, at most :data:`MAX_STEPS`), the outer rate decays
        exponentially from ``outer_lr`` to :data:`~.learner.FINAL_LR_RATIO` of it; ``shots`` are
        the support sizes to prepare for, a range (default :data:`DEFAULT_SHOTS`) or one count.
        The prior starts at the training sites' empirical-Bayes prior (module docstring).
        """)

    def adapt(self, support: pd.DataFrame) -> Any:
        """A pgmpy ``LinearGaussianBayesianNetwork`` fitted to the new site's ``support`` rows: one
        ``LinearGaussianCPD`` per variable, the posterior mean (module docstring), parents in the
        structure's order."""
        if not isinstance(support, pd.DataFrame):
            raise DataError(f"support must be a pandas DataFrame, got {type(support).__name__}")
        posterior = self.posterior([support])
        return linear_gaussian_network(self.parents, {v: p.mean[0] for v, p in posterior.items()},
                                       {v: p.noise_variance[0] for v, p in posterior.items()})

    def posterior(self, supports: Sequence[pd.DataFrame]) -> dict[str, NodePosterior]:
        """``{variable: NodePosterior}``: every variable's posterior given each site's support rows,
        adapted for all sites at once, in the columns' own units."""
        values = self._standardised(list(supports), "support table")
        rows = (~np.isnan(values)).any(-1).sum(-1)
        if (rows == 0).any():
            raise DataError(f"support table {int(np.argmin(rows))} has no observed value: give at least one row")
        parameter = next(self.model.parameters())
        split = _split(values, self.layout).to(device=parameter.device, dtype=parameter.dtype)
        with torch.no_grad():
            adapted = self.model.adapt(split)
        posterior = {}
        for bank, fast in zip(self.model.banks, adapted.fast):
            assert isinstance(bank, LinearBank)  # linear_graph makes every node a Linear regression
            factor = bank.factor(fast["precision_factor"])
            spread = torch.cholesky_inverse(factor).double().cpu().numpy()
            mean = fast["mean"][..., 0].double().cpu().numpy()
            shape, scale = (fast[key][..., 0].double().exp().cpu().numpy() for key in ("log_shape", "log_scale"))
            for row, name in enumerate(bank.names):
                size = 1 + len(self.parents[name])
                posterior[name] = self._in_units(name, NodePosterior(mean[:, row, :size], spread[:, row, :size, :size],
                                                                     shape[:, row], scale[:, row]))
        return {name: posterior[name] for name in self.graph.names}

    # ----------------------------------------------------------- persistence
    def save(self, path: str | Path) -> Path:
        """Write the structure, the configuration, the column units and the meta-learned state; the
        file loads with ``torch.load(weights_only=True)``."""
        return save_network_learner(self, path, graph=self.graph.to_dict(),
                                    column_mean=torch.as_tensor(self.column_mean, dtype=torch.float64),
                                    column_std=torch.as_tensor(self.column_std, dtype=torch.float64))

    @classmethod
    def load(cls, path: str | Path) -> GaussianNetMetaLearner:
        """A learner saved with :meth:`save`."""
        def build(state: Mapping[str, Any]) -> GaussianNetMetaLearner:
            graph = TaskGraph.from_dict(state["graph"])  # its Linear spec holds the task factors
            spec = graph.subtask(graph.names[0]).learner
            learner = cls(graph, task_factors=spec.task_factors if isinstance(spec, Linear) else 0, **state["config"])
            units = [state[key].double().numpy() for key in ("column_mean", "column_std")]
            if any(unit.shape != (len(learner.graph),) for unit in units):
                raise DataError(f"its column units hold {[unit.shape for unit in units]} numbers for "
                                f"{len(learner.graph)} variables")
            learner.column_mean, learner.column_std = units
            return learner

        return load_network_learner(cls, path, ("graph", "column_mean", "column_std"), build)

    # ---------------------------------------------------------------- helpers
    def _episodes(self, tasks: Sequence[pd.DataFrame], val_tasks: Sequence[pd.DataFrame] | None,
                  val_fraction: float, seed: int) -> tuple[DataFrameFamily, int]:
        """The sites as a :class:`~graphmeta.families.DataFrameFamily`, whose coding of the training
        sites' rows sets the column units."""
        train, val = split_tables(list(tasks), None if val_tasks is None else list(val_tasks), val_fraction)
        training = {f"train {i}": frame for i, frame in enumerate(train)}
        held_out = {f"val {i}": frame for i, frame in enumerate(val)}
        family = DataFrameFamily({**training, **held_out}, graph=self.graph, val_tasks=tuple(held_out),
                                 test_fraction=0.0, learner=self.learner, seed=seed)
        self.column_mean = np.array([family.codings[name].mean for name in self.graph.names])
        self.column_std = np.array([family.codings[name].std for name in self.graph.names])
        return family, len(val)

    def _in_units(self, name: str, standard: NodePosterior) -> NodePosterior:
        r"""``standard`` (the standardised variables' posterior) in the columns' units: ``w -> mu e_0 + sigma A w``."""
        index = [self.graph.names.index(parent) for parent in self.parents[name]]
        n = self.graph.names.index(name)
        undo = np.eye(1 + len(index))  # A: z_standard = A^T z_column
        undo[0, 1:] = -self.column_mean[index] / self.column_std[index]
        undo[1:, 1:] = np.diag(1 / self.column_std[index])
        mean = self.column_std[n] * standard.mean @ undo.T
        mean[:, 0] += self.column_mean[n]
        return NodePosterior(mean, undo @ standard.spread @ undo.T, standard.shape,
                             self.column_std[n] ** 2 * standard.scale)

    def _standardised(self, frames: list[pd.DataFrame], what: str) -> np.ndarray:
        """``[S, max rows, N]`` standardised values of ``frames`` (NaN where missing or padded)."""
        if not frames:
            raise DataError(f"give a non-empty list of DataFrames ({what}s), one per site")
        out = np.full((len(frames), max(len(frame) for frame in frames), len(self.graph)), np.nan)
        for s, frame in enumerate(frames):
            if not isinstance(frame, pd.DataFrame):
                raise DataError(f"{what} {s} must be a pandas DataFrame, got {type(frame).__name__}")
            columns = frame.reindex(columns=self.graph.names)
            try:
                out[s, : len(frame)] = columns.to_numpy(dtype=np.float64, na_value=np.nan)
            except (TypeError, ValueError):
                raise DataError(f"{what} {s} holds a value that is not a number in one of the columns "
                                f"{self.graph.names}") from None
        return (out - self.column_mean) / self.column_std


def linear_graph(structure: Any, learner: Linear) -> TaskGraph:
    """The task graph of ``structure`` (module docstring of the class) with every node a scalar
    regression of ``learner``."""
    from pgmpy.base import DAG

    if isinstance(structure, (str, DAG)):
        graph = taskgraph_from_pgmpy(structure)
    elif isinstance(structure, TaskGraph):
        graph = structure
    elif isinstance(structure, nx.DiGraph):
        graph = TaskGraph.from_networkx(structure)
    else:
        raise GraphError(f"structure must be a pgmpy LinearGaussianBayesianNetwork, a bundled network's name, a "
                         f"networkx DiGraph or a TaskGraph, got {type(structure).__name__}")
    return TaskGraph.from_dict({"name": graph.name or "gaussian-network",
                                "subtasks": {str(name): {"learner": "linear"} for name in graph.names},
                                "dependencies": [[str(p), str(c)] for p, c in graph.edges]}).with_learner(learner)


def _split(values: np.ndarray, layout: ColumnLayout) -> Split:
    """A :class:`Split` of the standardised ``values [T, R, N]`` (NaN unobserved), scalar nodes in ``layout``."""
    observed = ~np.isnan(values)
    columns = np.zeros((*values.shape[:2], layout.value_width), dtype=np.float32)
    for n, name in enumerate(layout.graph.names):
        columns[..., layout.value_slices[name].start] = np.nan_to_num(values[..., n])
    empty = np.zeros((values.shape[1], layout.feature_width), dtype=np.float32)
    return padded_split([(empty, columns[t], observed[t]) for t in range(len(values))])
