r"""The statistician's baselines for a table: a linear mixed model and its simpler cousins.

A table's tasks are groups (sites, schools, patients), and the classical answer to "predict a new
group from a few of its rows" is a model of the groups. Node ``n`` reads the design row
:math:`x = [1, \text{features}, \text{parents}]`, the columns its learner reads
(:meth:`~graphmeta.taskgraph.ColumnLayout.input_columns`), less the columns that are linear
combinations of earlier ones on the training rows (the last state of a one-hot parent beside the
constant, a feature that is constant). Every method is fitted once on the rows of the training
tasks (a row's group is its task); for each held-out task it reads the task's support rows and
predicts its query rows. Regression nodes:

``mixed_model``: the linear mixed model, fitted by REML (statsmodels ``MixedLM``),

.. math::
    y_{gi} = x_{gi}^\top \beta + z_{gi}^\top b_g + \varepsilon_{gi}, \qquad
    b_g \sim N(0, G), \quad \varepsilon_{gi} \sim N(0, \sigma^2),

with a random intercept and a random slope on every numeric design column that varies within
groups (:math:`z \subseteq x`; a one-hot state or a group-level feature has none), or the random intercept alone where that
fit does not converge or its :math:`G` is singular (the settings say which). A held-out task's
random effects are their BLUP given its support rows :math:`Z`, :math:`r = y - X \beta`:

.. math::
    \hat b = (G^{-1} + Z^\top Z / \sigma^2)^{-1} Z^\top r / \sigma^2, \qquad
    C = \operatorname{Cov}(b \mid \text{support}) = (G^{-1} + Z^\top Z / \sigma^2)^{-1},

computed as :math:`C = (I + G Z^\top Z / \sigma^2)^{-1} G` so that a singular :math:`G` needs no
inverse (:func:`gaussian_deviation`), one batched solve for all tasks. A query row predicts
:math:`x^\top \beta + z^\top \hat b` with variance :math:`\sigma^2 + z^\top C z` (:math:`\beta`
taken as known: thousands of training rows pin it down).

``group_ridge``: the same update with :math:`G = (\sigma^2 / \lambda) I` on every design column
around the pooled least-squares fit :math:`\beta` (:math:`\sigma^2` its residual variance): ridge
regression of the task's support rows toward the pooled fit, :math:`w = \beta + (X^\top X +
\lambda I)^{-1} X^\top r`, variance :math:`\sigma^2 (1 + x^\top (X^\top X + \lambda I)^{-1} x)`;
:math:`\lambda` of :data:`RIDGE_PENALTIES` chosen per node on the validation tasks (query MSE).

``support_mean``: the mean of the task's support values of the node, variance
:math:`s_w^2 (1 + 1 / K)` with :math:`s_w^2` the within-group variance of the training rows (the
training mean and the total variance where the support has no value of the node).

``pooled_linear``: pooled least squares on every training row, variance :math:`\sigma^2`.

Classification nodes get the rows that match: ``pooled_linear`` a pooled multinomial logistic
regression on the design; ``group_ridge`` and ``mixed_model`` the task's own logistic regression
shrunk toward the pooled one, :math:`\min_W \sum_{\text{support}} \mathrm{CE} + \tfrac{\lambda}{2}
\lVert W - W_{pooled} \rVert^2` (a mixed logistic model with :math:`G = I / \lambda`; Newton
steps, :func:`logistic_fit`), :math:`\lambda` of :data:`LOGISTIC_PENALTIES` chosen on validation
(query cross-entropy); ``support_mean`` the support's state frequencies shrunk toward the pooled
ones, :math:`p = (c + \alpha p_{pooled}) / (K + \alpha)` (a Dirichlet prior of strength
:math:`\alpha` of :data:`DIRICHLET_STRENGTHS`, chosen on validation).

Scores per (task, node), over the query rows where the node and its parents are observed (the rows
graphmeta's learners are scored on): a regression node's ``loss`` and ``mse`` are the mean squared
error in the family's standardised units and ``nll`` the Gaussian negative log-likelihood per row;
a classification node's ``loss`` is the cross-entropy and ``accuracy`` the share of rows whose
likeliest state is right. NaN where a task has no such row. Everything is float64 on the CPU.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial

import numpy as np
import torch

from ..data import Split, TaskBatch
from ..errors import DataError
from ..taskgraph import ColumnLayout, TaskGraph

#: Row labels of the classical methods (a table's evaluation shows them beside graphmeta).
CLASSICAL_METHODS = {
    "mixed_model": "linear mixed model (MixedLM BLUP; classes: logistic shrunk to pooled)",
    "group_ridge": "per-task ridge toward pooled least squares (classes: logistic)",
    "support_mean": "support mean (classes: state frequencies shrunk to pooled)",
    "pooled_linear": "pooled least squares (classes: multinomial logistic), no adaptation",
}
#: What the validation tasks choose from (see the module docstring).
RIDGE_PENALTIES = (0.3, 1.0, 3.0, 10.0, 30.0, 100.0, 300.0)
LOGISTIC_PENALTIES = (0.03, 0.1, 0.3, 1.0, 3.0, 10.0, 30.0, 100.0)
DIRICHLET_STRENGTHS = (0.1, 0.3, 1.0, 3.0, 10.0, 30.0, 100.0)
#: The ridge of the pooled logistic regression: it keeps separable states finite and moves nothing else.
POOLED_LOGISTIC_PENALTY = 1e-3
NEWTON_STEPS = 12
#: A design column whose part not explained by the earlier ones is below this share of its norm is dropped.
DEPENDENT_COLUMN = 1e-8
#: A random-effects covariance with an eigenvalue below this share of its largest is singular.
SINGULAR_COVARIANCE = 1e-6

Scores = dict[str, torch.Tensor]


@dataclass(frozen=True)
class NodeRows:
    """One node's rows of a split: ``design`` ``[T, K, D]`` (``[1, features, parents]``), the
    ``target`` ``[T, K]`` (a number, or a state index), ``counting`` ``[T, K]`` (the node and its
    parents observed) and ``observed`` ``[T, K]`` (the node observed)."""

    design: np.ndarray
    target: np.ndarray
    counting: np.ndarray
    observed: np.ndarray

    @classmethod
    def of(cls, graph: TaskGraph, split: Split, name: str) -> NodeRows:
        layout = ColumnLayout(graph)
        source = torch.cat([split.features, split.values], dim=-1).detach().cpu().double().numpy()
        inputs = source[..., layout.input_columns(name)]
        design = np.concatenate([np.ones_like(source[..., :1]), inputs], axis=-1)
        values = source[..., layout.feature_width + np.arange(layout.value_slices[name].start,
                                                              layout.value_slices[name].stop)]
        if graph.subtask(name).kind == "classification":
            target = values.argmax(-1)
        elif values.shape[-1] == 1:
            target = values[..., 0]
        else:
            raise DataError(f"node {name!r} has {values.shape[-1]} outputs; the classical baselines model one "
                            "number per regression node, as a table's columns are")
        observed = split.observed.cpu().numpy()
        needed = [layout.index[name], *(layout.index[parent] for parent in graph.parents(name))]
        return cls(design, target, observed[..., needed].all(-1), observed[..., layout.index[name]])

    def columns(self, kept: Sequence[int]) -> NodeRows:
        return NodeRows(self.design[..., list(kept)], self.target, self.counting, self.observed)

    def pooled(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(design [R, D], target [R], group [R])`` of the counting rows, a row's group its task."""
        groups = np.nonzero(self.counting)[0]
        return self.design[self.counting], self.target[self.counting], groups


def classical_baselines(graph: TaskGraph, training: Split, tasks: TaskBatch,
                        validation: TaskBatch) -> tuple[dict[str, Scores], dict[str, str]]:
    """Every classical method of the module docstring on ``tasks``, fitted on ``training`` (the
    rows of each training task as one task, ``[T_train, rows, ...]``), with its settings chosen on
    ``validation``: ``({method: {"loss", "accuracy", "mse", "nll": [T, N]}}, {method: settings})``,
    the scores in the fields of :class:`~graphmeta.train.evaluation.MethodResult`."""
    T, N = tasks.num_tasks, len(graph)
    scores = {method: {key: torch.full((T, N), math.nan, dtype=torch.float64)
                       for key in ("loss", "accuracy", "mse", "nll")} for method in CLASSICAL_METHODS}
    notes: dict[str, list[str]] = {method: [] for method in CLASSICAL_METHODS}
    layout = ColumnLayout(graph)
    for n, name in enumerate(graph.names):
        # the fit depends on the training rows and on what the node reads: kept with the split, made once
        key = ("classical fit", name, tuple(layout.input_columns(name)), tuple(graph.parents(name)))
        fit = training.derived(key, partial(fitted_node, graph, training, name))
        held_out = [NodeRows.of(graph, split, name).columns(fit.kept)
                    for split in (validation.support, validation.query, tasks.support, tasks.query)]
        node_scores, node_notes = fit.scores(*held_out)
        for method, values in node_scores.items():
            for field_name, value in values.items():
                scores[method][field_name][:, n] = torch.from_numpy(value)
        for method, note in node_notes.items():
            notes[method].append(f"{name}: {note}")
    return scores, {method: "; ".join(parts) for method, parts in notes.items() if parts}


def grouped_training_rows(family: object) -> Split | None:
    """The training rows of a family that holds a table, task by task (``family.grouped_rows``),
    for :func:`classical_baselines`; else ``None``."""
    return family.grouped_rows("train") if hasattr(family, "grouped_rows") else None


def fitted_node(graph: TaskGraph, training: Split, name: str) -> RegressionFit | ClassificationFit:
    """What the classical methods of node ``name`` learn from the ``training`` rows."""
    rows = NodeRows.of(graph, training, name)
    kept = independent_columns(rows.pooled()[0])
    rows = rows.columns(kept)
    if graph.subtask(name).kind == "classification":
        return ClassificationFit.of(rows, kept, graph.subtask(name).num_classes)
    return RegressionFit.of(rows, kept)


# ------------------------------------------------------------------------------ regression
@dataclass(frozen=True)
class RegressionFit:
    """A regression node's fits on the training rows: the design columns ``kept``, pooled least
    squares (``beta``, residual variance ``noise``), the mixed model (``mixed_beta``, ``covariance``
    :math:`G` on the columns ``random``, ``mixed_noise`` :math:`\\sigma^2`, ``mixed_note`` what was
    fitted), and the training values with their within-group variance (for ``support_mean``)."""

    kept: list[int]
    beta: np.ndarray
    noise: float
    mixed_beta: np.ndarray
    covariance: np.ndarray
    mixed_noise: float
    random: list[int]
    mixed_note: str
    values: np.ndarray
    within: float

    @classmethod
    def of(cls, train: NodeRows, kept: list[int]) -> RegressionFit:
        design, target, groups = train.pooled()
        beta, *_ = np.linalg.lstsq(design, target, rcond=None)
        noise = float(np.sum((target - design @ beta) ** 2) / max(len(target) - design.shape[1], 1))
        mixed = fit_mixed_model(design, target, groups, random_slope_columns(design, groups))
        return cls(kept, beta, noise, *mixed, target, within_group_variance(target, groups))

    def ridge(self, penalty: float, support: NodeRows, query: NodeRows) -> tuple[np.ndarray, np.ndarray]:
        """``group_ridge``'s query means and variances: :math:`G = (\\sigma^2 / \\lambda) I` around the pooled fit."""
        covariance = np.eye(len(self.beta)) * self.noise / penalty
        return deviation_predictions(self.beta, covariance, self.noise, range(len(self.beta)), support, query)

    def scores(self, val_support: NodeRows, val_query: NodeRows, support: NodeRows,
               query: NodeRows) -> tuple[dict[str, dict[str, np.ndarray]], dict[str, str]]:
        """Every method's scores ``[T]`` on the ``query`` rows given the ``support`` rows, the ridge's
        penalty chosen on the validation rows; and the settings to report."""
        penalty = _chosen(RIDGE_PENALTIES, lambda p: gaussian_scores(*self.ridge(p, val_support, val_query),
                                                                     val_query)["mse"])
        predictions = {
            "mixed_model": deviation_predictions(self.mixed_beta, self.covariance, self.mixed_noise, self.random,
                                                 support, query),
            "group_ridge": self.ridge(penalty, support, query),
            "support_mean": support_mean(support, query, self.values, self.within),
            "pooled_linear": (query.design @ self.beta, np.full(query.target.shape, self.noise)),
        }
        scores = {method: gaussian_scores(mean, variance, query) for method, (mean, variance) in predictions.items()}
        return scores, {"mixed_model": self.mixed_note, "group_ridge": f"penalty {penalty:g}"}


def fit_mixed_model(design: np.ndarray, target: np.ndarray, groups: np.ndarray, random: Sequence[int]
                    ) -> tuple[np.ndarray, np.ndarray, float, list[int], str]:
    """``(beta [D], G [q, q], sigma^2, random columns, what was fitted)`` of the REML fit of
    statsmodels ``MixedLM`` with random effects on the design columns ``random`` (the constant
    among them), or on the constant alone where that fit fails, does not converge or has a
    singular ``G``."""
    # here, not at the top: statsmodels takes seconds to import, and `import graphmeta` should not
    from statsmodels.regression.mixed_linear_model import MixedLM

    tries = [list(random), [0]] if len(random) > 1 else [[0]]
    failure = ""
    for columns in tries:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                fit = MixedLM(target, design, groups, exog_re=design[:, columns]).fit(reml=True, method=["powell", "lbfgs"])
            except (np.linalg.LinAlgError, ValueError) as error:
                failure = f"failed ({type(error).__name__})"
                continue
        covariance = np.atleast_2d(np.asarray(fit.cov_re, dtype=np.float64))
        finite = np.isfinite(covariance).all() and np.isfinite(fit.fe_params).all() and np.isfinite(fit.scale)
        eigenvalues = np.linalg.eigvalsh(covariance) if finite else np.array([math.nan])
        singular = not eigenvalues.min() > SINGULAR_COVARIANCE * max(eigenvalues.max(), 0.0)
        if columns != [0] and (not fit.converged or not finite or singular):
            failure = "did not converge" if not fit.converged else "singular"
            continue
        if not finite:
            break
        slopes = len(columns) - 1
        what = (f"random intercept + {slopes} slope{'s' if slopes > 1 else ''}" if slopes
                else "random intercept only" + (f" (slopes {failure})" if failure else ""))
        return (np.asarray(fit.fe_params, dtype=np.float64), covariance, float(fit.scale), columns,
                what + ("" if fit.converged else ", did not converge"))
    beta, *_ = np.linalg.lstsq(design, target, rcond=None)
    noise = float(np.mean((target - design @ beta) ** 2))
    return beta, np.zeros((1, 1)), noise, [0], "no group effect fitted (MixedLM failed): pooled least squares"


def gaussian_deviation(random_design: np.ndarray, residual: np.ndarray, counting: np.ndarray,
                       covariance: np.ndarray, noise: float) -> tuple[np.ndarray, np.ndarray]:
    r"""Each task's deviation :math:`b \sim N(0, G)` given its counting rows ``[T, K]``, random
    design ``[T, K, q]`` and residuals ``[T, K]``: the posterior mean ``[T, q]`` and covariance
    ``[T, q, q]`` (the BLUP and its covariance, module docstring), with :math:`C = (I + G Z^\top Z /
    \sigma^2)^{-1} G`, no inverse of :math:`G`."""
    rows = random_design * counting[..., None]
    gram = np.einsum("tki,tkj->tij", rows, rows)
    cross = np.einsum("tki,tk->ti", rows, np.where(counting, residual, 0.0))
    system = np.eye(len(covariance)) + covariance @ gram / noise
    mean = np.linalg.solve(system, (covariance @ cross[..., None]) / noise)[..., 0]
    spread = np.linalg.solve(system, np.broadcast_to(covariance, system.shape))
    return mean, (spread + np.swapaxes(spread, -1, -2)) / 2


def deviation_predictions(beta: np.ndarray, covariance: np.ndarray, noise: float, random: Sequence[int],
                          support: NodeRows, query: NodeRows) -> tuple[np.ndarray, np.ndarray]:
    """Query means and variances ``[T, K_q]`` of ``x^T beta + z^T b`` with ``b`` on the columns
    ``random`` given each task's support rows (:func:`gaussian_deviation`)."""
    random = list(random)
    deviation, spread = gaussian_deviation(support.design[..., random], support.target - support.design @ beta,
                                           support.counting, covariance, noise)
    rows = query.design[..., random]
    mean = query.design @ beta + np.einsum("tki,ti->tk", rows, deviation)
    return mean, noise + np.einsum("tki,tij,tkj->tk", rows, spread, rows)


def support_mean(support: NodeRows, query: NodeRows, training: np.ndarray,
                 within: float) -> tuple[np.ndarray, np.ndarray]:
    """The mean of each task's observed support values, variance ``within (1 + 1/K)``; the mean and
    variance of the ``training`` values where a task has none."""
    count = support.observed.sum(-1)
    total = np.where(support.observed, support.target, 0.0).sum(-1)
    mean = np.where(count > 0, total / np.maximum(count, 1), training.mean())
    variance = np.where(count > 0, within * (1 + 1 / np.maximum(count, 1)), training.var())
    shape = query.target.shape
    return np.broadcast_to(mean[:, None], shape), np.broadcast_to(variance[:, None], shape)


def gaussian_scores(mean: np.ndarray, variance: np.ndarray, query: NodeRows) -> dict[str, np.ndarray]:
    """``loss`` = ``mse`` and ``nll`` (Gaussian, per row) ``[T]`` over each task's counting query rows."""
    error = (query.target - mean) ** 2
    nll = 0.5 * np.log(2 * math.pi * variance) + error / (2 * variance)
    mse = _row_mean(error, query.counting)
    return {"loss": mse, "mse": mse, "nll": _row_mean(nll, query.counting)}


def independent_columns(design: np.ndarray) -> list[int]:
    """The design columns, in order, that are no linear combination of the ones kept before them
    (the constant first)."""
    kept: list[int] = []
    basis = np.zeros((len(design), 0))
    for column in range(design.shape[1]):
        values = design[:, column]
        rest = values - basis @ (basis.T @ values)
        norm = np.linalg.norm(values)
        if norm > 0 and np.linalg.norm(rest) > DEPENDENT_COLUMN ** 0.5 * norm:
            kept.append(column)
            basis = np.column_stack([basis, rest / np.linalg.norm(rest)])
    return kept


def random_slope_columns(design: np.ndarray, groups: np.ndarray) -> list[int]:
    """The constant (column 0) and the columns that take more than two values and vary within some
    group: the numbers a random slope can read (a one-hot state, or a group-level feature, has none)."""
    return [0] + [column for column in range(1, design.shape[1])
                  if len(np.unique(design[:, column])) > 2
                  and within_group_variance(design[:, column], groups) > DEPENDENT_COLUMN]


def within_group_variance(values: np.ndarray, groups: np.ndarray) -> float:
    r"""The pooled within-group variance :math:`\sum_g \sum_i (v_{gi} - \bar v_g)^2 / (n - G)`."""
    sizes = np.bincount(groups)
    means = np.bincount(groups, values) / np.maximum(sizes, 1)
    return float(np.sum((values - means[groups]) ** 2) / max(len(values) - np.count_nonzero(sizes), 1))


# -------------------------------------------------------------------------- classification
@dataclass(frozen=True)
class ClassificationFit:
    """A classification node's fits on the training rows: the design columns ``kept``, the pooled
    multinomial logistic regression ``pooled`` ``[1, D, C]`` and the pooled state ``frequencies`` ``[C]``."""

    kept: list[int]
    pooled: np.ndarray
    frequencies: np.ndarray

    @classmethod
    def of(cls, train: NodeRows, kept: list[int], states: int) -> ClassificationFit:
        design, labels, _ = train.pooled()
        pooled = logistic_fit(design[None], labels[None], np.ones((1, len(labels)), dtype=bool),
                              np.zeros((1, design.shape[1], states)), POOLED_LOGISTIC_PENALTY)
        counts = np.bincount(train.target[train.observed], minlength=states) + 0.5  # no state certain never to occur
        return cls(kept, pooled, counts / counts.sum())

    def shrunk(self, penalty: float, support: NodeRows, query: NodeRows) -> np.ndarray:
        """``[T, K_q, C]``: each task's logistic regression shrunk to the pooled one, on the query rows."""
        prior = np.broadcast_to(self.pooled, (len(support.target), *self.pooled.shape[1:]))
        return _softmax(query.design @ logistic_fit(support.design, support.target, support.counting, prior, penalty))

    def scores(self, val_support: NodeRows, val_query: NodeRows, support: NodeRows,
               query: NodeRows) -> tuple[dict[str, dict[str, np.ndarray]], dict[str, str]]:
        """Every method's scores ``[T]`` on the ``query`` rows given the ``support`` rows, the penalty
        and the Dirichlet strength chosen on the validation rows; and the settings to report."""
        penalty = _chosen(LOGISTIC_PENALTIES, lambda p: categorical_scores(self.shrunk(p, val_support, val_query),
                                                                           val_query)["loss"])
        strength = _chosen(DIRICHLET_STRENGTHS, lambda a: categorical_scores(
            state_frequencies(val_support, self.frequencies, a, val_query.target.shape[1]), val_query)["loss"])
        task_logistic = categorical_scores(self.shrunk(penalty, support, query), query)
        scores = {
            "mixed_model": task_logistic,
            "group_ridge": task_logistic,
            "support_mean": categorical_scores(
                state_frequencies(support, self.frequencies, strength, query.target.shape[1]), query),
            "pooled_linear": categorical_scores(_softmax(query.design @ self.pooled), query),
        }
        shrinkage = f"logistic penalty {penalty:g}"
        return scores, {"mixed_model": shrinkage, "group_ridge": shrinkage,
                        "support_mean": f"Dirichlet strength {strength:g}"}


def logistic_fit(design: np.ndarray, labels: np.ndarray, counting: np.ndarray, prior: np.ndarray,
                 penalty: float) -> np.ndarray:
    r"""Per task the weights ``[T, D, C]`` of multinomial logistic regression on its counting rows
    with the Gaussian prior :math:`N(\text{prior}, I / \lambda)`: :math:`\min_W \sum_k \mathrm{CE}_k +
    \tfrac{\lambda}{2} \lVert W - W_0 \rVert^2`, by ``NEWTON_STEPS`` Newton steps from the prior,
    each halved (up to 10 times) until the objective does not rise. The penalty makes it strictly
    convex, so the softmax's redundant column needs no reference state."""
    T, _, D = design.shape
    states = prior.shape[-1]
    weight = counting.astype(np.float64)
    onehot = np.eye(states)[labels] * weight[..., None]

    def objective(weights: np.ndarray) -> np.ndarray:
        logits = design @ weights
        log_norm = _logsumexp(logits)
        data = np.sum(weight * log_norm - np.sum(onehot * logits, -1), -1)
        return data + 0.5 * penalty * np.sum((weights - prior) ** 2, axis=(-2, -1))

    weights = np.array(prior, dtype=np.float64)
    eye = np.eye(D * states)
    for _ in range(NEWTON_STEPS):
        probabilities = _softmax(design @ weights)
        gradient = np.einsum("tkd,tkc->tdc", design, probabilities * weight[..., None] - onehot)
        gradient += penalty * (weights - prior)
        curvature = (np.einsum("tkc,ce->tkce", probabilities, np.eye(states))
                     - np.einsum("tkc,tke->tkce", probabilities, probabilities)) * weight[..., None, None]
        hessian = np.einsum("tkd,tkf,tkce->tdcfe", design, design, curvature, optimize=True).reshape(T, D * states, D * states)
        step = np.linalg.solve(hessian + penalty * eye, gradient.reshape(T, -1, 1)).reshape(T, D, states)
        before, scale = objective(weights), np.ones(T)
        for _ in range(10):
            worse = objective(weights - scale[:, None, None] * step) > before
            if not worse.any():
                break
            scale = np.where(worse, scale / 2, scale)
        weights = weights - scale[:, None, None] * step
    return weights


def state_frequencies(support: NodeRows, pooled: np.ndarray, strength: float, query_rows: int) -> np.ndarray:
    r"""``[T, K_q, C]``: each task's support state counts :math:`c` shrunk to ``pooled``,
    :math:`(c + \alpha p) / (K + \alpha)`, the same for every query row."""
    counts = np.einsum("tkc,tk->tc", np.eye(len(pooled))[support.target], support.observed.astype(np.float64))
    probabilities = (counts + strength * pooled) / (counts.sum(-1, keepdims=True) + strength)
    return np.broadcast_to(probabilities[:, None, :], (len(probabilities), query_rows, len(pooled)))


def categorical_scores(probabilities: np.ndarray, query: NodeRows) -> dict[str, np.ndarray]:
    """``loss`` (cross-entropy) and ``accuracy`` ``[T]`` over each task's counting query rows."""
    chosen = np.take_along_axis(probabilities, query.target[..., None], -1)[..., 0]
    hits = (probabilities.argmax(-1) == query.target).astype(np.float64)
    return {"loss": _row_mean(-np.log(np.maximum(chosen, 1e-300)), query.counting),
            "accuracy": _row_mean(hits, query.counting)}


# ---------------------------------------------------------------------------------- helpers
def _chosen(candidates: Sequence[float], score: Callable[[float], np.ndarray]) -> float:
    """The candidate with the lowest mean score over the validation tasks (the middle one when no
    validation task scores)."""
    means = []
    for candidate in candidates:
        values = score(candidate)
        means.append(math.inf if np.isnan(values).all() else float(np.nanmean(values)))
    return candidates[int(np.argmin(means))] if math.isfinite(min(means)) else candidates[len(candidates) // 2]


def _row_mean(values: np.ndarray, counting: np.ndarray) -> np.ndarray:
    """The mean over each task's counting rows ``[T]``; NaN for a task without one."""
    count = counting.sum(-1)
    total = np.where(counting, values, 0.0).sum(-1)
    return np.where(count > 0, total / np.maximum(count, 1), math.nan)


def _logsumexp(logits: np.ndarray) -> np.ndarray:
    top = logits.max(-1, keepdims=True)
    return (top + np.log(np.exp(logits - top).sum(-1, keepdims=True)))[..., 0]


def _softmax(logits: np.ndarray) -> np.ndarray:
    return np.exp(logits - _logsumexp(logits)[..., None])
