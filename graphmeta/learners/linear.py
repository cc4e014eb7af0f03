r"""The Linear learner type: Bayesian linear regression with a conjugate Normal-Inverse-Gamma prior."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

from ..errors import GraphError, SpecError
from ..validation import Gt, NonNegativeInt, checked
from .registry import LearnerSpec, LearnerType, register


@checked(error=SpecError)
@dataclass(frozen=True)
class Linear(LearnerSpec):
    r"""A linear-Gaussian regression subtask, adapted in closed form by the conjugate update.

    Output :math:`o` of the node is :math:`y_o = w_o^\top z + e_o`, :math:`e_o \sim N(0, s_o^2)`,
    on :math:`z = [1, x, y_{p_1}, \dots, y_{p_P}]` (a constant, the node's own features, then its
    parents' values: one-hot for a classification parent). The prior is Normal-Inverse-Gamma,

    .. math::
        w_o \mid s_o^2 \sim N(m_o, s_o^2 \Lambda^{-1}), \qquad s_o^2 \sim \mathrm{InvGamma}(a_o, b_o),

    and adaptation is the exact posterior given the support rows (one step does it all, like
    :class:`~graphmeta.learners.Table`); the node predicts with the posterior predictive, a
    Student-t. Meta-training learns the prior of every node: its mean :math:`m`, its full
    precision :math:`\Lambda` and the noise's :math:`a, b`. The model starts it at :math:`m = 0`,
    :math:`\Lambda` = ``prior_precision`` times the identity, :math:`a` = ``noise_shape`` and
    :math:`b` = ``noise_scale``; with ``empirical_bayes`` (the default) the
    :class:`~graphmeta.Trainer` of a family that holds its training groups' rows (a
    :class:`~graphmeta.DataFrameFamily`) then moves it, before the first meta-step, to the
    groups' type-II maximum-likelihood prior (the largest marginal likelihood of every group's
    rows: a linear mixed model's fit, :mod:`graphmeta.learners.linear_prior`), which
    meta-training only refines.

    **Task factors** (``task_factors=r``): where tasks (sites, groups) differ through a few causes
    that move every node at once, each output's prior mean also moves along meta-learned loadings
    :math:`A_o` ``[D, r]`` by :math:`r` numbers :math:`u` per task that the graph's Linear nodes
    share, :math:`w_o \mid u \sim N(m_o + A_o u, s_o^2 \Lambda^{-1})`, :math:`u \sim N(0, I_r)`.
    Adaptation then reads every node's support rows to place the task (the exact posterior mean
    of :math:`u`, :mod:`graphmeta.adapt.task_factor`) before each node's own update. 0 (the
    default): every node's prior is its own.

    The subtask must be a regression subtask; its parents may be of either kind.
    """

    prior_precision: Annotated[float, Gt(0)] = 1.0
    noise_shape: Annotated[float, Gt(0)] = 2.0
    noise_scale: Annotated[float, Gt(0)] = 1.0
    empirical_bayes: bool = True
    task_factors: NonNegativeInt = 0

    def check_subtask(self, subtask: Any) -> None:
        if subtask.kind != "regression":
            raise GraphError(f"subtask {subtask.name!r}: a Linear learner is a linear-Gaussian regression; it needs "
                             f"kind='regression' (got kind={subtask.kind!r}); use a Table or an MLP learner for "
                             f"a classification subtask")


register(LearnerType("linear", Linear, bank=".banks.linear:LinearBank", marker="s", label="Linear"))
